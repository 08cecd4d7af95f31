using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.IO;

namespace Vlsm.Evaluation;

/// <summary>Mean and standard deviation of one metric.</summary>
/// <remarks>
/// The standard deviation is the population one (divide by n, NumPy's <c>np.std</c> default): the
/// images of a test split are all the images being described, not a sample of them, and that is how
/// the medvlsm benchmark's mean ± std tables are computed.
/// </remarks>
public readonly record struct MetricStats(double Mean, double Std)
{
    /// <exception cref="ArgumentException">No values.</exception>
    public static MetricStats Of(IReadOnlyCollection<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException("a statistic needs at least one value.", nameof(values));
        double mean = values.Sum() / values.Count;
        double squares = values.Sum(v => (v - mean) * (v - mean));
        return new MetricStats(mean, Math.Sqrt(squares / values.Count));
    }

    internal JsonObject ToJson() => new() { ["mean"] = Mean, ["std"] = Std };
}

/// <summary>A metric that is undefined for some images: its statistics over the rest, and how many were left out.</summary>
/// <param name="Stats">Null when the metric is missing for every image.</param>
public sealed record PartialStats(MetricStats? Stats, int Missing)
{
    public static PartialStats Of(IReadOnlyCollection<double?> values)
    {
        var defined = values.Where(v => v is not null).Select(v => v!.Value).ToArray();
        return new PartialStats(defined.Length > 0 ? MetricStats.Of(defined) : null, values.Count - defined.Length);
    }

    /// <summary>Across datasets: the mean of the datasets that have it; the missing counts add up.</summary>
    public static PartialStats MeanOf(IReadOnlyCollection<PartialStats> datasets)
    {
        var means = datasets.Where(d => d.Stats is not null).Select(d => d.Stats!.Value.Mean).ToArray();
        return new PartialStats(means.Length > 0 ? MetricStats.Of(means) : null, datasets.Sum(d => d.Missing));
    }

    internal JsonObject ToJson() => new() { ["mean"] = Stats?.Mean, ["std"] = Stats?.Std, ["missing"] = Missing };
}

/// <summary>
/// The metrics of a set of predictions: Dice, IoU and HD95 at the original mask resolution, Dice and
/// IoU at network resolution (when a model's output was scored), normalised surface Dice, and the
/// Dice gained over all-foreground and all-background predictions. HD95 and NSD are undefined for
/// some images (either mask empty, both masks empty): such images are left out of their statistics
/// and counted as missing.
/// </summary>
/// <param name="Hd95">Null when HD95 is missing for every image.</param>
/// <param name="DiceNetwork">Meaningful only when <see cref="HasNetwork"/>: mask files scored by <c>vlsm score</c> have no network resolution.</param>
public sealed record ScoreSummary(int N, MetricStats Dice, MetricStats IoU, MetricStats? Hd95, int Hd95Missing, MetricStats DiceNetwork, MetricStats IoUNetwork)
{
    public bool HasNetwork { get; init; } = true;

    public PartialStats? Nsd { get; init; }
    public MetricStats? OnesDiceDiff { get; init; }
    public MetricStats? ZerosDiceDiff { get; init; }

    /// <exception cref="ArgumentException">No scores.</exception>
    public static ScoreSummary Of(IReadOnlyCollection<ImageScore> scores)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (scores.Count == 0) throw new ArgumentException("a summary needs at least one image.", nameof(scores));
        var hd95 = PartialStats.Of(scores.Select(s => s.Hd95).ToArray());
        MetricStats? All(Func<ImageScore, double?> value) =>
            scores.All(s => value(s) is not null) ? MetricStats.Of(scores.Select(s => value(s)!.Value).ToArray()) : null;
        var diceNetwork = All(s => s.DiceNetwork);
        var iouNetwork = All(s => s.IoUNetwork);
        return new ScoreSummary(
            scores.Count,
            MetricStats.Of(scores.Select(s => s.Dice).ToArray()),
            MetricStats.Of(scores.Select(s => s.IoU).ToArray()),
            hd95.Stats,
            hd95.Missing,
            diceNetwork ?? new MetricStats(double.NaN, double.NaN),
            iouNetwork ?? new MetricStats(double.NaN, double.NaN))
        {
            HasNetwork = diceNetwork is not null && iouNetwork is not null,
            Nsd = scores.All(s => s.OnesDiceDiff is not null) ? PartialStats.Of(scores.Select(s => s.Nsd).ToArray()) : null, // computed together by the scorer
            OnesDiceDiff = All(s => s.OnesDiceDiff),
            ZerosDiceDiff = All(s => s.ZerosDiceDiff),
        };
    }

    /// <summary>
    /// The summary of several datasets taken together, each dataset weighing the same whatever its
    /// size: every mean is the mean of the datasets' means, every std the population std of those
    /// means (how much the datasets differ); HD95 and NSD average the datasets that have them. N and
    /// the missing counts are totals.
    /// </summary>
    /// <exception cref="ArgumentException">No summaries.</exception>
    public static ScoreSummary MeanOf(IReadOnlyCollection<ScoreSummary> datasets)
    {
        ArgumentNullException.ThrowIfNull(datasets);
        if (datasets.Count == 0) throw new ArgumentException("a mean needs at least one dataset.", nameof(datasets));
        MetricStats Across(Func<ScoreSummary, double> mean) => MetricStats.Of(datasets.Select(mean).ToArray());
        MetricStats? AcrossAll(Func<ScoreSummary, MetricStats?> stats) =>
            datasets.All(d => stats(d) is not null) ? MetricStats.Of(datasets.Select(d => stats(d)!.Value.Mean).ToArray()) : null;
        var hd95 = PartialStats.MeanOf(datasets.Select(d => new PartialStats(d.Hd95, d.Hd95Missing)).ToArray());
        bool network = datasets.All(d => d.HasNetwork);
        return new ScoreSummary(
            datasets.Sum(d => d.N),
            Across(d => d.Dice.Mean),
            Across(d => d.IoU.Mean),
            hd95.Stats,
            hd95.Missing,
            network ? Across(d => d.DiceNetwork.Mean) : new MetricStats(double.NaN, double.NaN),
            network ? Across(d => d.IoUNetwork.Mean) : new MetricStats(double.NaN, double.NaN))
        {
            HasNetwork = network,
            Nsd = datasets.All(d => d.Nsd is not null) ? PartialStats.MeanOf(datasets.Select(d => d.Nsd!).ToArray()) : null,
            OnesDiceDiff = AcrossAll(d => d.OnesDiceDiff),
            ZerosDiceDiff = AcrossAll(d => d.ZerosDiceDiff),
        };
    }

    public JsonObject ToJson()
    {
        var root = new JsonObject
        {
            ["n"] = N,
            ["dice"] = Dice.ToJson(),
            ["iou"] = IoU.ToJson(),
            ["hd95"] = new PartialStats(Hd95, Hd95Missing).ToJson(),
        };
        if (HasNetwork) root["network"] = new JsonObject { ["dice"] = DiceNetwork.ToJson(), ["iou"] = IoUNetwork.ToJson() };
        if (Nsd is not null) root["nsd"] = Nsd.ToJson();
        if (OnesDiceDiff is { } ones) root["ones_dice_diff"] = ones.ToJson();
        if (ZerosDiceDiff is { } zeros) root["zeros_dice_diff"] = zeros.ToJson();
        return root;
    }
}

/// <summary>One dataset's summary for one prompt.</summary>
public sealed record DatasetResult(string Dataset, ScoreSummary Summary);

/// <summary>
/// The results for one prompt (one key under <c>--prompt all</c>, else the single prompt setting):
/// per dataset, and with several datasets their <see cref="Mean"/>.
/// </summary>
/// <param name="Datasets">In the order the datasets were given; a dataset none of whose records has this key is absent.</param>
public sealed record PromptResult(string Prompt, IReadOnlyList<DatasetResult> Datasets, ScoreSummary? Mean);

/// <summary>What was evaluated, for the report.</summary>
/// <param name="Prompt">The prompt setting as given: a key, "random", "all", or literal text.</param>
/// <param name="Datasets">Dataset names in the order given.</param>
public sealed record EvaluationInfo(
    string Model,
    string? Adapter,
    string Prompt,
    string Split,
    float Threshold,
    int MaskThreshold,
    IReadOnlyList<string> Datasets)
{
    /// <summary>Normalised surface Dice tolerance, pixels.</summary>
    public double NsdTolerance { get; init; } = EvaluationOptions.DefaultNsdTolerance;

    /// <summary>Where predictions came from when mask files were scored (<c>vlsm score</c>); null for a model's.</summary>
    public string? Predictions { get; init; }

    /// <summary>Mask files scored: their values above this were foreground.</summary>
    public int? PredictionThreshold { get; init; }

    /// <summary>The model's input size, images resized to it (null when mask files were scored).</summary>
    public (int Width, int Height)? ImageSize { get; init; }

    public bool AllPrompts => Prompt == EvaluationOptions.AllPrompts;
    public bool Pooled => Datasets.Count > 1;
}

/// <summary>
/// Per-image scores and their summaries, as <c>per_image.csv</c> and <c>summary.json</c>.
/// </summary>
/// <remarks>
/// summary.json holds the summary itself for one dataset and one prompt;
/// <c>{"datasets": {name: summary, …}, "mean": summary}</c> for several datasets;
/// <c>{"prompts": {"p0": …, …}}</c> under <c>--prompt all</c>, each key holding one of the former.
/// The run's settings (resolution, threshold, model, adapter, prompt, split) are top-level fields.
/// </remarks>
public sealed class EvaluationReport
{
    public const string PerImageFile = "per_image.csv";
    public const string SummaryFile = "summary.json";

    public static readonly IReadOnlyList<string> CsvColumns =
        ["dataset", "split", "index", "img_name", "mask_name", "prompt_key", "prompt", "dice", "iou", "hd95", "dice_net", "iou_net", "nsd", "ones_dice_diff", "zeros_dice_diff"];

    private EvaluationReport(EvaluationInfo info, IReadOnlyList<ImageScore> images, IReadOnlyList<PromptResult> prompts)
    {
        Info = info;
        Images = images;
        Prompts = prompts;
    }

    public EvaluationInfo Info { get; }

    /// <summary>By prompt key (numeric order), then dataset (order given), then record index.</summary>
    public IReadOnlyList<ImageScore> Images { get; }

    /// <summary>One entry, or one per key under <c>--prompt all</c>.</summary>
    public IReadOnlyList<PromptResult> Prompts { get; }

    /// <exception cref="ArgumentException">No scores, or a score from a dataset <paramref name="info"/> does not list.</exception>
    public static EvaluationReport Build(EvaluationInfo info, IEnumerable<ImageScore> scores)
    {
        ArgumentNullException.ThrowIfNull(info);
        ArgumentNullException.ThrowIfNull(scores);
        var datasetOrder = info.Datasets.Select((name, i) => (name, i)).ToDictionary(p => p.name, p => p.i, StringComparer.Ordinal);
        int DatasetPosition(ImageScore s) => datasetOrder.TryGetValue(s.Record.Dataset, out int i)
            ? i
            : throw new ArgumentException($"a score is from dataset \"{s.Record.Dataset}\", which the evaluation info does not list.", nameof(scores));

        var images = scores
            .OrderBy(s => AnnotationRecord.PromptKeyOrder(s.PromptKey)).ThenBy(s => s.PromptKey, StringComparer.Ordinal)
            .ThenBy(DatasetPosition).ThenBy(s => s.Record.Index)
            .ToArray();
        if (images.Length == 0) throw new ArgumentException("no images were scored.", nameof(scores));

        var prompts = new List<PromptResult>();
        foreach (var byKey in images.GroupBy(s => s.PromptKey, StringComparer.Ordinal))
        {
            var datasets = byKey.GroupBy(s => s.Record.Dataset, StringComparer.Ordinal)
                .Select(g => new DatasetResult(g.Key, ScoreSummary.Of(g.ToArray())))
                .ToArray();
            var mean = info.Pooled ? ScoreSummary.MeanOf(datasets.Select(d => d.Summary).ToArray()) : null;
            prompts.Add(new PromptResult(info.AllPrompts ? byKey.Key : info.Prompt, datasets, mean));
        }
        if (!info.AllPrompts && prompts.Count > 1)
            throw new ArgumentException($"scores of several prompt keys ({string.Join(", ", prompts.Select(p => p.Prompt))}) but the prompt setting is \"{info.Prompt}\".", nameof(scores));
        return new EvaluationReport(info, images, prompts);
    }

    /// <summary>The summary.json document.</summary>
    public JsonObject ToJson()
    {
        JsonObject root;
        if (Info.AllPrompts)
        {
            var prompts = new JsonObject();
            foreach (var p in Prompts) prompts[p.Prompt] = PromptJson(p);
            root = new JsonObject { ["prompts"] = prompts };
        }
        else
        {
            root = PromptJson(Prompts[0]);
        }
        if (!Info.Pooled) root["dataset"] = Info.Datasets[0];
        root["split"] = Info.Split;
        root["resolution"] = "original";
        root["threshold"] = Info.Predictions is null ? Info.Threshold : null;
        if (Info.PredictionThreshold is { } pt) root["prediction_threshold"] = pt;
        root["mask_threshold"] = Info.MaskThreshold;
        root["nsd_tolerance"] = Info.NsdTolerance;
        // As preprocessor_config.json's size: one number when square, else height and width.
        if (Info.ImageSize is var (w, h))
            root["image_size"] = w == h ? JsonValue.Create(w) : new JsonObject { ["height"] = h, ["width"] = w };
        if (Info.Predictions is not null) root["predictions"] = Info.Predictions;
        root["model"] = Info.Predictions is null ? Info.Model : null;
        root["adapter"] = Info.Adapter;
        root["prompt"] = Info.Prompt;
        return root;
    }

    private JsonObject PromptJson(PromptResult p)
    {
        if (!Info.Pooled) return p.Datasets[0].Summary.ToJson();
        var datasets = new JsonObject();
        foreach (var d in p.Datasets) datasets[d.Dataset] = d.Summary.ToJson();
        return new JsonObject { ["datasets"] = datasets, ["mean"] = p.Mean!.ToJson() };
    }

    public string ToJsonText() => ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>per_image.csv: RFC 4180 (CRLF line ends, fields quoted when they hold a comma, quote or line break); a metric that is undefined or was not computed is empty.</summary>
    public string ToCsv()
    {
        var text = new StringBuilder();
        text.Append(string.Join(',', CsvColumns)).Append("\r\n");
        foreach (var s in Images)
        {
            string[] fields =
            [
                s.Record.Dataset, s.Record.Split, Number(s.Record.Index), s.Record.ImgName, s.Record.MaskName, s.PromptKey, s.Prompt,
                Number(s.Dice), Number(s.IoU), Optional(s.Hd95), Optional(s.DiceNetwork), Optional(s.IoUNetwork),
                Optional(s.Nsd), Optional(s.OnesDiceDiff), Optional(s.ZerosDiceDiff),
            ];
            text.Append(string.Join(',', fields.Select(CsvField))).Append("\r\n");
        }
        return text.ToString();
    }

    /// <summary>Writes per_image.csv and summary.json into <paramref name="directory"/> together: both are replaced, or (on an error) neither.</summary>
    public void Write(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        AtomicFile.WriteAllTexts([(Path.Combine(directory, PerImageFile), ToCsv()), (Path.Combine(directory, SummaryFile), ToJsonText() + "\n")]);
    }

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Optional(double? value) => value is { } v ? Number(v) : "";

    internal static string CsvField(string value) =>
        value.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
}
