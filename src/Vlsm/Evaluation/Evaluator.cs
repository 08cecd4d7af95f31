using System.Runtime.ExceptionServices;
using TorchSharp;
using Vlsm.Data;
using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.Models;
using static TorchSharp.torch;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Evaluation;

/// <summary>
/// Scores a model (with or without trained adapter weights) on a split of one or more datasets:
/// Dice, IoU and HD95 per image at the original mask resolution, Dice and IoU at network resolution
/// (see <see cref="PredictionScorer"/>), summarised per prompt key and dataset.
/// </summary>
/// <remarks>
/// Images come through the prefetching <see cref="BatchLoader"/> in file order, without
/// augmentation. Each batch goes through the vision tower once; under <c>--prompt all</c> every key
/// then reuses those vision features for its text and decoder pass, on the records of the batch
/// that have the key. Scoring a batch (decoding the original masks, resizing, HD95, writing masks)
/// runs on worker threads while the model works on the next batch; at most one batch is being
/// scored at a time, so memory stays flat.
/// </remarks>
public sealed class Evaluator
{
    /// <summary>One prompt setting being evaluated: its report key and how each record's text is chosen.</summary>
    private sealed record PromptColumn(string Key, PromptChoice Choice)
    {
        public bool Applies(DatasetRecord record) => Choice.Problem(record.Annotation) is null;
    }

    /// <summary>A thresholded prediction (0/255 at the model's output size) for one record and prompt.</summary>
    private sealed record Predicted(PromptColumn Column, string Text, GrayImage Mask);

    private readonly ISegmenter _predictor;
    private readonly IReadOnlyList<DatasetRecord> _records;
    private readonly Dictionary<RecordId, DatasetRecord> _byId;
    private readonly IReadOnlyList<PromptColumn> _prompts;

    private Evaluator(ISegmenter predictor, IReadOnlyList<DatasetRecord> records, IReadOnlyList<PromptColumn> prompts,
        EvaluationOptions options, EvaluationInfo info)
    {
        _predictor = predictor;
        _records = records;
        _byId = records.ToDictionary(r => r.Id);
        _prompts = prompts;
        Options = options;
        Info = info;
    }

    public EvaluationOptions Options { get; }
    public EvaluationInfo Info { get; }

    /// <summary>What <see cref="Run"/> loaded and, under <c>--on-error skip</c>, left out (and why).</summary>
    public LoadReport Loading { get; } = new();

    /// <summary>Records to evaluate (the unit of progress).</summary>
    public int Images => _records.Count;

    /// <summary>The prompt keys reported: every key present under <c>--prompt all</c>, else the one setting's key.</summary>
    public IReadOnlyList<string> PromptKeys => _prompts.Select(p => p.Key).ToArray();

    /// <summary>
    /// Reads the split of every dataset and checks that the prompt setting can be evaluated, before
    /// any image is decoded.
    /// </summary>
    /// <param name="model">How the report names the model (its folder).</param>
    /// <param name="adapter">How the report names the adapter file, or null for the base model.</param>
    /// <exception cref="VlsmException">
    /// An option is out of range; a dataset lacks the split or has no records in it; a record lacks
    /// the prompt key (named with its file and index); no record has any prompt key under
    /// <c>--prompt all</c>; two mask names would be saved to the same file.
    /// </exception>
    public static Evaluator Plan(ISegmenter predictor, PooledDataset data, EvaluationOptions options, string model, string? adapter)
    {
        ArgumentNullException.ThrowIfNull(predictor);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        var records = new List<DatasetRecord>();
        foreach (var dataset in data.Datasets)
        {
            var split = dataset.RequiredRecords(options.Split);
            if (split.Count == 0)
                throw new VlsmException($"{dataset.SplitFile(options.Split)}: split \"{options.Split}\" of dataset {dataset.Name} has no records, so there is nothing to evaluate. Choose another --split or leave this dataset out.");
            records.AddRange(split);
        }

        PromptColumn[] prompts;
        if (!predictor.Family.TakesText)
        {
            // A text-free model: one column, no prompt read from the records.
            if (options.Prompt != PromptChoice.RandomSpec)
                throw new VlsmException($"--prompt {options.Prompt}: {predictor.Family.Name} models read no text; leave --prompt out.");
            prompts = [new PromptColumn("", PromptChoice.Literal(""))];
        }
        else
        {
            prompts = options.EvaluatesAllPrompts ? EveryKey(records, options.Split) : [SinglePrompt(records, options.Prompt)];
        }
        if (options.MasksDirectory is not null) CheckMaskNamesDiffer(records);

        var info = new EvaluationInfo(model, adapter, options.Prompt, options.Split, options.Threshold, options.MaskThreshold,
            data.Datasets.Select(d => d.Name).ToArray()) { NsdTolerance = options.NsdTolerance, ImageSize = (predictor.Preprocessor.Width, predictor.Preprocessor.Height) };
        return new Evaluator(predictor, records, prompts, options, info);
    }

    private static PromptColumn SinglePrompt(IReadOnlyList<DatasetRecord> records, string spec)
    {
        var choice = PromptChoice.Parse(spec);
        foreach (var record in records)
        {
            if (choice.Problem(record.Annotation) is { } problem)
                throw new VlsmException($"{record.Where}: {problem}. Evaluate a key every record has, or use --prompt all, which evaluates each key on the records that have it.");
        }
        string key = choice.Kind == PromptChoice.Mode.Literal ? "" : choice.Value;
        return new PromptColumn(key, choice);
    }

    /// <summary>Every key p0…pN that some record has with at least one text, in numeric order.</summary>
    private static PromptColumn[] EveryKey(IReadOnlyList<DatasetRecord> records, string split)
    {
        var keys = records
            .SelectMany(r => r.Annotation.Prompts.Where(p => p.Value.Count > 0).Select(p => p.Key))
            .Where(k => PromptChoice.Parse(k).Kind == PromptChoice.Mode.Key)
            .Distinct(StringComparer.Ordinal)
            .OrderBy(AnnotationRecord.PromptKeyOrder).ThenBy(k => k, StringComparer.Ordinal)
            .ToArray();
        if (keys.Length == 0)
            throw new VlsmException($"{records[0].AnnotationPath}: no record of split \"{split}\" has prompts p0…pN, so --prompt all has nothing to evaluate. Give the text to evaluate with --prompt \"TEXT\".");
        return keys.Select(k => new PromptColumn(k, PromptChoice.Key(k))).ToArray();
    }

    /// <summary>Saved masks are named after mask_name with a .png extension: "a.jpg" and "a.png" would overwrite each other.</summary>
    private static void CheckMaskNamesDiffer(IReadOnlyList<DatasetRecord> records)
    {
        foreach (var dataset in records.GroupBy(r => r.Id.Dataset, StringComparer.Ordinal))
        {
            var seen = new Dictionary<string, DatasetRecord>(StringComparer.Ordinal);
            foreach (var record in dataset)
            {
                string file = MaskFileName(record.Id.MaskName);
                if (seen.TryGetValue(file, out var other) && other.Id.MaskName != record.Id.MaskName)
                {
                    throw new VlsmException(
                        $"{record.Where}: mask_name \"{record.Id.MaskName}\" would be saved as {file}, as record {other.Id.Index}'s \"{other.Id.MaskName}\" would; "
                        + "rename one of the masks, or evaluate without --save-masks.");
                }
                seen.TryAdd(file, record);
            }
        }
    }

    /// <summary>mask_name with its subfolders kept and the extension changed to .png (saved masks are PNG whatever the source format).</summary>
    public static string MaskFileName(string maskName)
    {
        ArgumentNullException.ThrowIfNull(maskName);
        return Path.ChangeExtension(maskName.Replace('\\', '/'), ".png");
    }

    /// <summary>
    /// The folder under masks/ or overlays/ for one prompt key and dataset: the key when every key
    /// is evaluated, the dataset when several are, so outputs of different runs of a record never collide.
    /// </summary>
    internal string GroupFolder(string promptKey, string dataset)
    {
        var parts = new List<string>();
        if (Info.AllPrompts) parts.Add(promptKey);
        if (Info.Pooled) parts.Add(dataset);
        return parts.Count == 0 ? "" : Path.Combine(parts.ToArray());
    }

    /// <summary>Runs the model over every record and scores each prediction.</summary>
    /// <param name="progress">Called on the calling thread with the number of records just scored.</param>
    /// <exception cref="VlsmException">A record's image or mask is missing, corrupt or of another size (named with its file).</exception>
    public EvaluationReport Run(Action<int>? progress = null, CancellationToken cancellation = default)
    {
        var samples = new SampleLoader(_predictor.Preprocessor,
            new SampleOptions { MaskMode = MaskMode.Binary, MaskThreshold = Options.MaskThreshold, OnError = Options.OnError, Seed = Options.Seed },
            PromptChoice.Literal("")); // placeholder: each prompt's texts are chosen per record in Predict
        var loader = new BatchLoader(_records, samples,
            new BatchLoaderOptions { BatchSize = Options.BatchSize, Shuffle = false, Workers = Options.Workers, Seed = Options.Seed, PrefetchBatches = 1 });
        var gallery = Options.Overlays > 0 ? new CaseGallery(Options.Overlays, Options.MaskThreshold) : null;

        var scores = new List<ImageScore>(_records.Count * _prompts.Count);
        Task<ImageScore[][]>? scoring = null;
        int scoringCount = 0;
        void CollectScored()
        {
            if (scoring is null) return;
            var scored = scoring.GetAwaiter().GetResult();
            scoring = null;
            foreach (var perRecord in scored) scores.AddRange(perRecord);
            progress?.Invoke(scoringCount);
        }

        try
        {
            foreach (var batch in loader.Epoch(0, Loading, cancellation))
            {
                var predictions = Predict(batch);
                CollectScored();
                scoringCount = batch.Count;
                scoring = Task.Run(() => Score(batch, predictions, gallery), cancellation);
            }
            CollectScored();
        }
        finally
        {
            // After an error elsewhere, let the batch being scored finish writing its masks before returning.
            if (scoring is not null)
            {
                try
                {
                    scoring.Wait(CancellationToken.None);
                }
                catch (AggregateException)
                {
                    // The error already propagating is the one to report.
                }
            }
        }

        if (scores.Count == 0 && Loading.SkippedCount > 0)
            throw new VlsmException($"every record was skipped (--on-error skip), so there is nothing to score; the first: {Loading.Skipped[0].Reason}");
        if (gallery is not null) gallery.Write(Options.OverlaysDirectory!, this);
        return EvaluationReport.Build(Info, scores);
    }

    private Predicted[][] Predict(Batch batch)
    {
        int n = batch.Count;
        var records = batch.Records.Select(id => _byId[id]).ToArray();
        var result = new List<Predicted>[n];
        for (int i = 0; i < n; i++) result[i] = [];

        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        using var pixels = tensor(batch.Images, new long[] { n, 3, batch.Height, batch.Width });
        using var vision = _predictor.EncodeImages(pixels);
        foreach (var column in _prompts)
        {
            var members = Enumerable.Range(0, n).Where(i => column.Applies(records[i])).ToArray();
            if (members.Length == 0) continue;
            var texts = members.Select(i => column.Choice.Choose(records[i], Options.Seed, epoch: 0)).ToArray();

            // One scope per prompt: a batch evaluated under ten keys holds one key's tensors at a time.
            using var promptScope = NewDisposeScope();
            using var subset = members.Length == n ? null : vision.Select(tensor(members.Select(i => (long)i).ToArray()));
            var logits = _predictor.Decode(subset ?? vision, _predictor.Family.TakesText ? texts : null);
            Segmenters.CheckFinite(logits, k => records[members[k]].Where);
            // The one mask rule of validation and predict; 0/255 to resize and save as is.
            var masks = ByteMask(MaskRule.Foreground(logits, Options.Threshold));
            int h = (int)masks.shape[1], w = (int)masks.shape[2];
            var bytes = masks.data<byte>().ToArray();
            for (int k = 0; k < members.Length; k++)
                result[members[k]].Add(new Predicted(column, texts[k], new GrayImage(w, h, bytes.AsSpan(k * w * h, w * h).ToArray())));
        }
        return result.Select(r => r.ToArray()).ToArray();
    }

    private ImageScore[][] Score(Batch batch, Predicted[][] predictions, CaseGallery? gallery)
    {
        var scores = new ImageScore[batch.Count][];
        var errors = new Exception?[batch.Count];
        Parallel.For(0, batch.Count, new ParallelOptions { MaxDegreeOfParallelism = Options.Workers }, i =>
        {
            try
            {
                scores[i] = ScoreRecord(batch, i, predictions[i], gallery);
            }
            catch (Exception e)
            {
                errors[i] = e;
            }
        });
        // The first failing record in file order, whichever thread met its error first.
        if (errors.FirstOrDefault(e => e is not null) is { } error) ExceptionDispatchInfo.Capture(error).Throw();
        return scores;
    }

    private ImageScore[] ScoreRecord(Batch batch, int slot, Predicted[] predictions, CaseGallery? gallery)
    {
        var record = _byId[batch.Records[slot]];
        var (width, height) = batch.OriginalSizes[slot];
        // A very large record: first free what decoding it (and earlier ones) left behind, so at most one such record's buffers are alive here.
        using var turn = LargeImages.Turn(width, height);
        bool large = turn is not null;
        if (large) LargeImages.Collect();
        GrayImage truth;
        try
        {
            truth = ImageCodec.DecodeGray(record.MaskPath);
        }
        catch (VlsmException e)
        {
            throw new VlsmException($"{record.Where}: {e.Message}", e);
        }
        if (truth.Width != width || truth.Height != height)
            throw new VlsmException($"{record.Where}: mask '{record.MaskPath}' was {width}x{height} when loaded and is {truth.Width}x{truth.Height} now; was it changed during the evaluation? Run it again.");

        int plane = batch.Width * batch.Height;
        var networkTruth = batch.Masks.AsSpan(slot * plane, plane);
        var scores = new ImageScore[predictions.Length];
        for (int p = 0; p < predictions.Length; p++)
        {
            var predicted = predictions[p];
            var m = PredictionScorer.Score(predicted.Mask, networkTruth, batch.Width, batch.Height, truth, Options.MaskThreshold, Options.NsdTolerance, out var atOriginal);
            var score = m.For(record.Id, predicted.Column.Key, predicted.Text);
            scores[p] = score;
            if (Options.MasksDirectory is { } masks)
                ImageCodec.SavePng(Path.Combine(masks, GroupFolder(score.PromptKey, record.Id.Dataset), MaskFileName(record.Id.MaskName)), atOriginal);
            gallery?.Offer(score, record, atOriginal);
        }
        // A very large mask leaves its decoded buffers and metrics' arrays behind: collect them before the next record's.
        if (large) LargeImages.Collect();
        return scores;
    }
}
