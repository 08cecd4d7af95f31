using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Imaging;
using static TorchSharp.torch;

namespace Vlsm.Models;

/// <summary>
/// One kind of model (CLIPSeg, CRIS, ...): everything vlsm needs to describe, load, run, train and
/// verify it. A family is found by the <c>model_type</c> of a folder's config.json
/// (<see cref="Registry.ModelFamilies"/>), in the manner of HF's auto classes; no command asks
/// which family a folder is any other way. docs/adding-a-model-family.md is the checklist.
/// </summary>
public interface IModelFamily
{
    /// <summary>config.json's <c>model_type</c> (clipseg, cris).</summary>
    string ModelType { get; }

    /// <summary>How messages and tables name the family (CLIPSeg, CRIS).</summary>
    string Name { get; }

    /// <summary>Whether the model reads a text prompt; for a text-free family prompts are refused.</summary>
    bool TakesText { get; }

    /// <summary>The fine-tuning modes it trains in; the first is the default.</summary>
    IReadOnlyList<FineTuneMode> Modes { get; }

    /// <summary>The precisions it computes in.</summary>
    IReadOnlyList<ComputePrecision> Precisions { get; }

    /// <summary>Options of this family only (CRIS's padding mask), by their config key.</summary>
    IReadOnlyList<FamilyOption> Options { get; }

    /// <summary>Training presets named like the reference experiments.</summary>
    IReadOnlyDictionary<string, TrainingPreset> Presets { get; }

    /// <summary>Built-in architectures with random weights, for <c>info --arch</c>.</summary>
    IReadOnlyList<string> Architectures { get; }

    /// <summary>The learning rate a mode trains at unless told otherwise (the papers' values).</summary>
    double DefaultLearningRate(FineTuneMode mode);

    /// <summary>True for a config.json of this family that has no <c>model_type</c> (folders written before it was recorded).</summary>
    bool RecognizesLegacy(JsonObject config);

    /// <summary>Components and parameter counts of a model folder or built-in architecture; trainable count for <paramref name="spec"/> when given.</summary>
    ModelSummary Describe(ModelSource source, FineTuneSpec? spec);

    /// <summary>Checks a fine-tuning request against what the family trains (modes, adapter settings).</summary>
    FineTuneSpec CheckSpec(FineTuneSpec spec);

    /// <summary>
    /// The square input sides a folder's model runs at besides its own (<c>--image-size</c>): the
    /// rule that <see cref="FamilyChecks.ImageSize"/> checks a requested side against.
    /// </summary>
    ImageSizeRule ImageSizes(string modelDir);

    /// <summary>The model of a folder with trained weights applied, frozen, ready to predict.</summary>
    ISegmenter OpenSegmenter(ModelRequest request);

    /// <summary>The model of a folder prepared to train as <paramref name="training"/> says.</summary>
    ITrainableModel OpenTrainable(ModelRequest request, TrainingSetup training);

    /// <summary>Runs a reference file's inputs and compares every stored output (<c>vlsm verify</c>).</summary>
    IReadOnlyList<TensorComparison> Verify(string modelDir, string referencePath, string? weightsFile);
}

/// <summary>A model folder (config.json and weights) or the name of a built-in architecture (random weights).</summary>
public sealed record ModelSource(string? Directory, string? Architecture)
{
    public static ModelSource Folder(string dir) => new(dir, null);

    public static ModelSource BuiltIn(string name) => new(null, name);

    public override string ToString() => Directory ?? $"{Architecture} (random weights)";

    /// <summary>The config this source describes: read from the folder, or the family's built-in architecture of that name.</summary>
    /// <exception cref="VlsmException">The family has no built-in architecture of that name.</exception>
    public T Config<T>(IModelFamily family, Func<string, T> readFolder, IReadOnlyDictionary<string, Func<T>> builtIn) =>
        Directory is { } dir ? readFolder(dir)
        : builtIn.TryGetValue(Architecture!, out var make) ? make()
        : throw new VlsmException($"{family.Name} has no built-in architecture \"{Architecture}\"; it has {string.Join(", ", builtIn.Keys)}.");
}

/// <summary>What to load: a model folder, trained weights on top (adapters or a checkpoint), precision and family options.</summary>
public sealed record ModelRequest
{
    public required string Directory { get; init; }

    /// <summary>A file <c>vlsm train</c> (or the reference) wrote: adapters, a decoder or a full checkpoint.</summary>
    public string? Weights { get; init; }

    public ComputePrecision Precision { get; init; } = ComputePrecision.Fp32;

    /// <summary>Values of <see cref="IModelFamily.Options"/> by key; missing ones take their defaults.</summary>
    public IReadOnlyDictionary<string, string> Options { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// Run at <c>ImageSize x ImageSize</c> (images resized to it, plainly) instead of the model's own
    /// input size; null: the model's own. Checked beforehand (<see cref="FamilyChecks.ImageSize"/>).
    /// </summary>
    public int? ImageSize { get; init; }
}

/// <summary>
/// Which square input sides a model runs at: its own size (<paramref name="Width"/> x
/// <paramref name="Height"/>, from its preprocessor or config), and other sides that are multiples of
/// <paramref name="Multiple"/> (<paramref name="MultipleOf"/> says what the multiple is, e.g. "its patch
/// size") within <see cref="Min"/>..<see cref="Max"/>, unless <see cref="OnlyOwn"/> says why it takes none.
/// </summary>
public sealed record ImageSizeRule(int Width, int Height, int Multiple, string MultipleOf)
{
    /// <summary>The bounds every family's sides stay within.</summary>
    public const int Smallest = 16, Largest = 4096;

    public int Min { get; init; } = Smallest;
    public int Max { get; init; } = Largest;

    /// <summary>Why the model runs at no size but its own (null: it runs at others).</summary>
    public string? OnlyOwn { get; init; }

    /// <summary>The rule of a model that runs only at its own size, for <paramref name="reason"/>.</summary>
    public static ImageSizeRule Fixed(int width, int height, string reason) => new(width, height, 1, "") { OnlyOwn = reason };
}

/// <summary>The input size a model runs at, and whether it is the model's own.</summary>
public sealed record InputSize(int Width, int Height, bool Own)
{
    /// <summary>The side to resize to (<see cref="ModelRequest.ImageSize"/>): null at the model's own size.</summary>
    public int? Resize => Own ? null : Width;

    /// <summary>The size as one side, when it is square (config.yaml's <c>image_size</c>); null for a non-square own size.</summary>
    public int? Side => Width == Height ? Width : null;

    public override string ToString() => Text(Width, Height);

    /// <summary>A size as <c>image_size</c> gives it: one side when square (352), else WxH.</summary>
    public static string Text(int width, int height) =>
        width == height ? width.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{width}x{height}";
}

/// <summary>How a model trains: what trains, and where frozen parts' outputs may be cached.</summary>
public sealed record TrainingSetup
{
    public required FineTuneSpec Spec { get; init; }

    /// <summary>Cache the outputs of frozen towers (per image, per prompt) after their first use.</summary>
    public bool FeatureCache { get; init; } = true;

    public long FeatureCacheBytes { get; init; } = 2048L << 20;

    /// <summary>Where cached features spill to disk (inside the run folder).</summary>
    public required string CacheDirectory { get; init; }

    /// <summary>Images are augmented, so an image's features change every epoch and must not be cached.</summary>
    public bool Augment { get; init; }
}

/// <summary>An option a family adds (key as in config.yaml, allowed values, default).</summary>
public sealed record FamilyOption(string Key, string Description, IReadOnlyList<string> Values, string Default);

/// <summary>
/// A named reference experiment: mode, adapter placements and learning rate, and any other recipe
/// values that differ from VLSM-Adapter's defaults (null: keep the default).
/// </summary>
public sealed record TrainingPreset(FineTuneMode Mode, string? Parts, double LearningRate)
{
    public double? WeightDecay { get; init; }
    public int? BatchSize { get; init; }

    /// <summary>A loss name of the training layer's registry (config.yaml's <c>loss:</c>).</summary>
    public string? Loss { get; init; }

    /// <summary>"plateau" or "none".</summary>
    public string? Scheduler { get; init; }
    public double? PlateauFactor { get; init; }
    public int? PlateauPatience { get; init; }
    public int? EarlyStoppingPatience { get; init; }
    public int? MinEpochs { get; init; }
    public int? MaxEpochs { get; init; }
    public double? GradClip { get; init; }
}

/// <summary>The dtype a model's frozen towers compute in (with the dense adapters inside them); decoders, trainable weights and optimizers stay float32.</summary>
public enum ComputePrecision { Fp32, Bf16 }

public static class ComputePrecisions
{
    public static string Name(ComputePrecision p) => p == ComputePrecision.Bf16 ? "bf16" : "fp32";

    /// <exception cref="VlsmException">The name is neither fp32 nor bf16.</exception>
    public static ComputePrecision Parse(string name) => name switch
    {
        "fp32" => ComputePrecision.Fp32,
        "bf16" => ComputePrecision.Bf16,
        _ => throw new VlsmException($"precision must be fp32 or bf16, got \"{name}\"."),
    };

    public static ScalarType Dtype(ComputePrecision p) => p == ComputePrecision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
}

/// <summary>Components, parameter counts and configuration of a model, as <c>vlsm info</c> shows them.</summary>
/// <param name="Components">Parts in forward order, each with a JSON key (<c>KEY_parameters</c>), a count and its shape in words.</param>
public sealed record ModelSummary(
    string Source,
    IModelFamily Family,
    IReadOnlyList<ModelComponent> Components,
    long TotalParameters,
    JsonNode Config,
    FineTuneSpec? Spec,
    long? TrainableParameters)
{
    /// <summary>Other counts a family reports beside the components (they need not sum to the total), each with what it counts.</summary>
    public IReadOnlyList<ModelComponent> Counts { get; init; } = [];
}

public sealed record ModelComponent(string Key, string Name, long Parameters, string Shape);

/// <summary>One output tensor of <c>vlsm verify</c>: its largest absolute difference, or why there is none.</summary>
public sealed record TensorComparison(string Name, double MaxAbsDiff, string? Problem = null)
{
    public bool Within(double tolerance) => Problem is null && MaxAbsDiff <= tolerance;
}

/// <summary>Image features a segmenter computes once per batch and decodes with one or more prompts.</summary>
public interface IImageFeatures : IDisposable
{
    /// <summary>The features of the images at <paramref name="index"/> (a 1-d int64 tensor), in that order.</summary>
    IImageFeatures Select(Tensor index);
}

/// <summary>A loaded model with any trained weights applied, frozen, as predict, eval and a server use it.</summary>
public interface ISegmenter : IDisposable
{
    IModelFamily Family { get; }

    ImagePreprocessor Preprocessor { get; }

    IImageFeatures EncodeImages(Tensor pixels);

    /// <summary>Logits (B, h, w) of the images with one prompt each; <paramref name="prompts"/> is null for a text-free family.</summary>
    Tensor Decode(IImageFeatures images, IReadOnlyList<string>? prompts);
}

/// <summary>A batch as a model trains on it: pixels, a prompt per sample (text-taking families), and each sample's cache key.</summary>
public sealed record ModelBatch(Tensor Pixels, IReadOnlyList<string>? Prompts, IReadOnlyList<string> SampleKeys);

/// <summary>A model as training sees it: the trainable tensors, a forward pass, and its trained-weights file.</summary>
public interface ITrainableModel : IDisposable
{
    IModelFamily Family { get; }

    /// <summary>What trains, for the run's first line (e.g. "dense vl (adapter dim 64, …)", "CRIS full").</summary>
    string Description { get; }

    long TrainableParameterCount { get; }

    long TotalParameterCount { get; }

    ImagePreprocessor Preprocessor { get; }

    /// <summary>The tensors the optimizer updates, under the names checkpoints hold them.</summary>
    IEnumerable<(string Name, Parameter Parameter)> TrainableNamed();

    /// <summary>Training mode (dropout, batch statistics where the mode trains them) or evaluation mode.</summary>
    void SetTraining(bool training);

    /// <summary>Logits (B, h, w), frozen parts from caches where the mode allows.</summary>
    Tensor Forward(ModelBatch batch);

    /// <summary>Writes the trained weights with their metadata and fingerprint (best.safetensors, epoch checkpoints).</summary>
    void Save(string path, IReadOnlyDictionary<string, string>? metadata);

    /// <summary>Reads weights <see cref="Save"/> wrote (resuming a run).</summary>
    void LoadInto(string path);
}
