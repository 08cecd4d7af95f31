using Vlsm.Models;
using Vlsm.Models.Registry;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Vlsm.Inference;

/// <summary>
/// The model a command runs: a model folder, trained weights on top, and, when they come from a
/// training run folder, what that run's config.yaml says (so <c>--run RUN</c> needs no <c>--model</c>).
/// </summary>
public sealed record ModelReference(string ModelDirectory, string? Weights, RunDefaults? Run)
{
    /// <summary>The weights file a training run folder holds (the checkpoint with the best validation score).</summary>
    public const string RunBestFile = "best.safetensors";

    /// <summary>
    /// Resolves <c>--model</c>, <c>--adapter</c> and <c>--run</c>: <c>--run RUN</c> means RUN/best.safetensors on
    /// the model RUN/config.yaml names, unless <c>--model</c> names another.
    /// </summary>
    /// <exception cref="VlsmException">Neither a model nor a run is given, both an adapter and a run, or the run folder lacks what it needs.</exception>
    public static ModelReference Resolve(string? model, string? adapter, string? run)
    {
        if (adapter is not null && run is not null)
            throw new VlsmException($"give --adapter or --run, not both (--run {run} means --adapter {Path.Combine(run, RunBestFile)}).");
        if (run is null)
        {
            if (model is null) throw new VlsmException("give --model DIR (a model folder), or --run RUN (a training run folder, whose config.yaml names its model).");
            return new ModelReference(model, adapter, null);
        }
        if (File.Exists(run))
            throw new VlsmException($"--run {run} is a file; give the folder vlsm train wrote, or the file with --adapter.");
        if (!Directory.Exists(run))
            throw new VlsmException($"--run {run}: no such training run folder; give the folder vlsm train wrote, or an adapter file with --adapter.");
        string best = Path.Combine(run, RunBestFile);
        if (!File.Exists(best))
            throw new VlsmException($"{best} not found: the run folder has no best checkpoint (has its training finished an epoch with validation?). Give an adapter or checkpoint file with --adapter.");
        var defaults = RunDefaults.Read(run);
        string modelDir = model ?? defaults.Model
            ?? throw new VlsmException($"{defaults.ConfigFile} names no model; give --model DIR.");
        if (model is null && !Directory.Exists(modelDir))
            throw new VlsmException($"{defaults.ConfigFile} names the model folder {modelDir}, which does not exist (relative paths are read from the current folder); give --model DIR.");
        return new ModelReference(modelDir, best, defaults);
    }

    public IModelFamily Family => ModelFamilies.ForFolder(ModelDirectory);

    /// <summary>
    /// The load request: precision as given, family options from the run's config unless given
    /// (<paramref name="options"/> wins key by key), and the image size given, else the run's.
    /// </summary>
    public ModelRequest Request(ComputePrecision precision, IReadOnlyDictionary<string, string> options, int? imageSize = null)
    {
        var merged = new Dictionary<string, string>(Run?.FamilyOptions ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        foreach (var (key, value) in options) merged[key] = value;
        // The run's size is checked here so that a bad one is blamed on its config.yaml, not on an --image-size never given.
        if (imageSize is null && Run?.ImageSize is { } side) FamilyChecks.ImageSize(Family, ModelDirectory, side, Run.ConfigFile);
        return new ModelRequest { Directory = ModelDirectory, Weights = Weights, Precision = precision, Options = merged, ImageSize = imageSize ?? Run?.ImageSize };
    }

    /// <summary>The image size an opened model runs at, as <see cref="Describe"/> lists it: marked as the run's when <paramref name="given"/> (<c>--image-size</c>) is null and the run recorded one.</summary>
    public (string Name, string Value, bool FromRun) ImageSizeSetting(ISegmenter segmenter, int? given) =>
        ("image size", InputSize.Text(segmenter.Preprocessor.Width, segmenter.Preprocessor.Height), given is null && Run?.ImageSize is not null);

    /// <summary>
    /// One line saying what a command runs: the model, its weights, and each setting, marked when it
    /// came from the run's config.yaml rather than from a flag or a default.
    /// </summary>
    /// <param name="settings">Name, value, and whether the value is the run's.</param>
    /// <param name="options">Family options given on the command line (the run's others are added, marked).</param>
    public string Describe(IEnumerable<(string Name, string Value, bool FromRun)> settings, IReadOnlyDictionary<string, string> options)
    {
        var all = settings.ToList();
        foreach (var (key, value) in Run?.FamilyOptions ?? new Dictionary<string, string>())
            if (!options.ContainsKey(key)) all.Add((key, value, true));
        foreach (var (key, value) in options) all.Add((key, value, false));
        string weights = Weights is null ? "" : $" with {Weights}";
        string items = string.Join(", ", all.Select(s => $"{s.Name} {s.Value}" + (s.FromRun ? " (run)" : "")));
        string source = Run is not null && all.Any(s => s.FromRun) ? $"; (run) = from {Run.ConfigFile}" : "";
        return $"using {ModelDirectory}{weights}: {items}{source}";
    }

    /// <summary>
    /// Opens the model through its family for prediction, after checking that trained weights were
    /// trained on this base (<see cref="BaseWeights.Check"/>).
    /// </summary>
    /// <param name="allowOtherBase">Apply weights trained on another base of the same shape (with a note).</param>
    /// <param name="note">Hears one-line notes (weights without a recorded base, an overridden check).</param>
    /// <param name="imageSize">The side images are resized to (<c>--image-size</c>); null: the run's, else the model's own.</param>
    /// <exception cref="VlsmException">The weights were trained on another base and <paramref name="allowOtherBase"/> is false, the family cannot run at that size, or the model cannot be opened.</exception>
    public ISegmenter Open(ComputePrecision precision, IReadOnlyDictionary<string, string> options, bool allowOtherBase = false, Action<string>? note = null, int? imageSize = null)
    {
        CheckBase(allowOtherBase, note);
        return ModelFamilies.OpenSegmenter(Request(precision, options, imageSize));
    }

    /// <summary>Checks the weights' recorded base against the model folder (nothing to check without weights).</summary>
    public void CheckBase(bool allowOtherBase, Action<string>? note)
    {
        if (Weights is null) return;
        if (Directory.Exists(Weights))
            throw new VlsmException($"--adapter {Weights} is a folder; give the weights file (e.g. best.safetensors in a run folder, or the run folder with --run).");
        if (!File.Exists(Weights))
            throw new VlsmException($"--adapter {Weights}: no such file.");
        var family = ModelFamilies.ForFolder(ModelDirectory); // a missing or foreign model folder is named before its weights are hashed
        // Weights of another family cannot apply whatever the base's bytes; said before the base
        // check, whose message (and --allow-other-base) is for another checkpoint of the same model.
        string? shape;
        using (var file = Vlsm.IO.SafetensorsFile.Open(Weights)) shape = file.Metadata.GetValueOrDefault("base");
        if (shape is not null && ModelFamilies.ForFingerprint(shape) is { } trainedFor && trainedFor != family)
            throw new VlsmException($"{Weights} was trained for a {trainedFor.Name} model ({Vlsm.IO.Printable.Clip(shape)}), but {ModelDirectory} holds a {family.Name} model ({family.ModelType}); "
                + $"give --model the {trainedFor.Name} model folder it was trained on.");
        if (BaseWeights.Check(Weights, ModelDirectory, allowOtherBase) is { } message) note?.Invoke(message);
    }
}

/// <summary>
/// What a training run's config.yaml says about how to run the model it trained: the model folder,
/// the prompt it trained on, how its masks were binarised, the image size and its family options.
/// Commands take these unless a flag says otherwise.
/// </summary>
/// <param name="Prompt">config.yaml's <c>prompt</c>: a key (p3), <c>random</c> or literal text; null when absent.</param>
/// <param name="MaskThreshold">config.yaml's <c>mask_threshold</c> when it is a number (not <c>soft</c>).</param>
public sealed record RunDefaults(string ConfigFile, string? Model, IReadOnlyDictionary<string, string> FamilyOptions)
{
    private static readonly IDeserializer Reader = new DeserializerBuilder().Build();

    public string? Prompt { get; init; }

    public int? MaskThreshold { get; init; }

    /// <summary>config.yaml's sigmoid <c>threshold</c>, when a run records one (training validates at <see cref="MaskRule.DefaultThreshold"/>).</summary>
    public float? Threshold { get; init; }

    /// <summary>config.yaml's <c>image_size</c>: the side the run trained at; null when absent or empty (the model's own size).</summary>
    public int? ImageSize { get; init; }

    /// <summary>config.yaml's <c>mode</c>, <c>parts</c> and <c>preset</c>, for <c>vlsm info</c>.</summary>
    public string? Mode { get; init; }
    public string? Parts { get; init; }
    public string? Preset { get; init; }

    public static RunDefaults Read(string runDir)
    {
        string path = Path.Combine(runDir, "config.yaml");
        if (!File.Exists(path))
            throw new VlsmException($"{path} not found: a training run folder holds the config.yaml it was trained with; give --model DIR and --adapter FILE instead.");
        Dictionary<object, object?> values;
        try
        {
            values = Reader.Deserialize<Dictionary<object, object?>>(File.ReadAllText(path)) ?? new();
        }
        catch (YamlException e)
        {
            throw new VlsmException($"{path} line {e.Start.Line}: {e.InnerException?.Message ?? e.Message}", e);
        }
        string? Scalar(string key) => values.TryGetValue(key, out var v) && v is string text ? text : null;
        // Family options are top-level keys of config.yaml; a value at its default says nothing.
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var option in ModelFamilies.All.SelectMany(f => f.Options))
            if (Scalar(option.Key) is { } value && value != option.Default) options[option.Key] = value;
        int? maskThreshold = int.TryParse(Scalar("mask_threshold"), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int m) ? m : null;
        // A wrong image_size would score the weights at a size they never saw: refused, not ignored.
        int? imageSize = Scalar("image_size") is not { Length: > 0 } side ? null
            : int.TryParse(side, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int n) ? n
            : throw new VlsmException($"{path}: image_size {IO.Printable.Quote(side)} is not a whole number of pixels; correct it, or empty it for the model's own size.");
        return new RunDefaults(path, Scalar("model"), options)
        {
            Prompt = Scalar("prompt"), MaskThreshold = maskThreshold, ImageSize = imageSize,
            Threshold = float.TryParse(Scalar("threshold"), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out float t) ? t : null, Mode = Scalar("mode"), Parts = Scalar("parts"), Preset = Scalar("preset"),
        };
    }
}
