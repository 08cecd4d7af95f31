using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Evaluation;

/// <summary>How <c>vlsm score</c> reads prediction files and scores them.</summary>
public sealed record ScoringOptions
{
    public string Split { get; init; } = "test";

    /// <summary>Ground-truth mask values above this are foreground.</summary>
    public int MaskThreshold { get; init; } = 127;

    /// <summary>Prediction values above this are foreground (0: anything not black, as medvlsm's eval_metrics.py).</summary>
    public int PredictionThreshold { get; init; }

    public double NsdTolerance { get; init; } = EvaluationOptions.DefaultNsdTolerance;

    public int Workers { get; init; } = BatchLoaderOptions.DefaultWorkers;

    /// <exception cref="VlsmException">A value is out of range; the message names the option.</exception>
    public void Validate()
    {
        if (string.IsNullOrEmpty(Split) || !MedvlsmDataset.IsValidSplitName(Split))
            throw new VlsmException($"--split \"{Split}\" is not a split name (letters, digits, '_' and '-'; e.g. test).");
        if (MaskThreshold is < 0 or > 254) throw new VlsmException($"--mask-threshold must be within 0..254, got {MaskThreshold}.");
        if (PredictionThreshold is < 0 or > 254) throw new VlsmException($"--pred-threshold must be within 0..254, got {PredictionThreshold}.");
        if (!(NsdTolerance >= 0) || double.IsInfinity(NsdTolerance)) throw new VlsmException($"--nsd-tolerance must be a number of pixels, 0 or more, got {NsdTolerance}.");
        if (Workers < 1) throw new VlsmException($"scoring needs at least 1 worker, got {Workers}.");
    }
}

/// <summary>
/// Scores mask files written by any tool (nnU-Net, a Python run, <c>vlsm eval --save-masks</c> or
/// <c>vlsm predict</c>) against a dataset split, with eval's metrics at the original resolution and
/// eval's report, in the manner of nnU-Net's <c>evaluate_folder</c> and medvlsm's eval_metrics.py.
/// </summary>
/// <remarks>
/// Each record's prediction is looked up, in this order: PRED/DATASET/MASK.png (eval --save-masks
/// with several datasets), PRED/MASK.png (eval --save-masks; MASK is mask_name with its subfolders
/// and a .png extension), PRED/mask_name as it is, PRED/IMAGE.mask.png (vlsm predict; IMAGE is
/// img_name without its extension). A prediction must have its mask's size.
/// </remarks>
public sealed class MaskFileScoring
{
    private readonly IReadOnlyList<(DatasetRecord Record, string Prediction)> pairs;

    private MaskFileScoring(IReadOnlyList<(DatasetRecord, string)> pairs, ScoringOptions options, EvaluationInfo info)
    {
        this.pairs = pairs;
        Options = options;
        Info = info;
    }

    public ScoringOptions Options { get; }
    public EvaluationInfo Info { get; }

    /// <summary>Records to score (the unit of progress).</summary>
    public int Images => pairs.Count;

    /// <exception cref="VlsmException">An option is out of range, the folder is missing, a dataset lacks the split, or records have no prediction file (the first few are named).</exception>
    public static MaskFileScoring Plan(string predictions, PooledDataset data, ScoringOptions options)
    {
        options.Validate();
        if (!Directory.Exists(predictions))
            throw new VlsmException($"--pred {predictions}: no such folder; give the folder of predicted mask files (e.g. eval --save-masks's OUT/masks).");
        bool pooled = data.Datasets.Count > 1;
        var pairs = new List<(DatasetRecord, string)>();
        var missing = new List<string>();
        foreach (var dataset in data.Datasets)
        {
            var records = dataset.RequiredRecords(options.Split);
            if (records.Count == 0)
                throw new VlsmException($"{dataset.SplitFile(options.Split)}: split \"{options.Split}\" of dataset {dataset.Name} has no records to score.");
            foreach (var record in records)
            {
                var candidates = Candidates(predictions, record, pooled).ToList();
                var found = candidates.FirstOrDefault(File.Exists);
                if (found is null) missing.Add($"{record.Where}: none of {string.Join(", ", candidates.Select(c => Path.GetRelativePath(predictions, c)))}");
                else pairs.Add((record, found));
            }
        }
        if (missing.Count > 0)
            throw new VlsmException($"{missing.Count} record(s) of split \"{options.Split}\" have no prediction in {predictions}; first: {string.Join("; ", missing.Take(3))}.");
        var info = new EvaluationInfo(Path.GetFullPath(predictions), null, "", options.Split, 0.5f, options.MaskThreshold, data.Datasets.Select(d => d.Name).ToArray())
        {
            NsdTolerance = options.NsdTolerance,
            Predictions = Path.GetFullPath(predictions),
            PredictionThreshold = options.PredictionThreshold,
        };
        return new MaskFileScoring(pairs, options, info);
    }

    private static IEnumerable<string> Candidates(string root, DatasetRecord record, bool pooled)
    {
        string png = Evaluator.MaskFileName(record.Id.MaskName);
        if (pooled) yield return Path.Combine(root, record.Id.Dataset, png);
        yield return Path.Combine(root, png);
        yield return Path.Combine(root, record.Id.MaskName.Replace('\\', '/'));
        yield return Path.Combine(root, Path.GetFileNameWithoutExtension(record.Id.ImgName) + ".mask.png");
    }

    /// <param name="progress">Called with the number of records just scored.</param>
    /// <exception cref="VlsmException">A file cannot be read or a prediction's size differs from its mask's (both named).</exception>
    public EvaluationReport Run(Action<int>? progress = null, CancellationToken cancellation = default)
    {
        var scores = new ImageScore[pairs.Count];
        const int chunk = 32;
        for (int start = 0; start < pairs.Count; start += chunk)
        {
            int end = Math.Min(start + chunk, pairs.Count);
            var errors = new Exception?[end - start];
            Parallel.For(start, end, new ParallelOptions { MaxDegreeOfParallelism = Options.Workers, CancellationToken = cancellation }, i =>
            {
                try
                {
                    scores[i] = Score(pairs[i].Record, pairs[i].Prediction);
                }
                catch (Exception e)
                {
                    errors[i - start] = e;
                }
            });
            // The first failing record in file order, whichever thread met its error first.
            if (errors.FirstOrDefault(e => e is not null) is { } error) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
            progress?.Invoke(end - start);
        }
        return EvaluationReport.Build(Info, scores);
    }

    private ImageScore Score(DatasetRecord record, string file)
    {
        GrayImage truth = Decode(record.MaskPath, record);
        GrayImage predicted = Decode(file, record);
        if (predicted.Width != truth.Width || predicted.Height != truth.Height)
            throw new VlsmException($"{record.Where}: prediction {file} is {predicted.Width}x{predicted.Height} but the mask {record.MaskPath} is {truth.Width}x{truth.Height}; predictions must be at the mask's size.");
        var binary = new byte[predicted.Pixels.Length];
        for (int k = 0; k < binary.Length; k++) binary[k] = predicted.Pixels[k] > Options.PredictionThreshold ? (byte)255 : (byte)0;
        var m = PredictionScorer.AtOriginal(new GrayImage(predicted.Width, predicted.Height, binary), truth, Options.MaskThreshold, Options.NsdTolerance);
        return m.For(record.Id, "", "");
    }

    private static GrayImage Decode(string path, DatasetRecord record)
    {
        try
        {
            return ImageCodec.DecodeGray(path);
        }
        catch (VlsmException e)
        {
            throw new VlsmException($"{record.Where}: {e.Message}", e);
        }
    }
}
