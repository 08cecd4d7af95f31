using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Models.ClipSeg;

/// <summary>HF CLIPSeg (<c>model_type: clipseg</c>) with VLSM-Adapter's shallow and dense adapters.</summary>
public sealed class ClipSegFamily : IModelFamily
{
    public static ClipSegFamily Instance { get; } = new();

    private ClipSegFamily() { }

    public const string Rd64Refined = "clipseg-rd64-refined";

    public string ModelType => "clipseg";
    public string Name => "CLIPSeg";
    public bool TakesText => true;
    public IReadOnlyList<FineTuneMode> Modes { get; } = [FineTuneMode.Dense, FineTuneMode.Shallow, FineTuneMode.Decoder, FineTuneMode.Full];
    public IReadOnlyList<ComputePrecision> Precisions { get; } = [ComputePrecision.Fp32, ComputePrecision.Bf16];
    public IReadOnlyList<FamilyOption> Options { get; } = [];
    public IReadOnlyList<string> Architectures { get; } = [Rd64Refined];

    /// <summary>VLSM-Adapter's experiments, with the paper's learning rates (full: 1e-5, our choice).</summary>
    public IReadOnlyDictionary<string, TrainingPreset> Presets { get; } = new Dictionary<string, TrainingPreset>
    {
        ["clipseg_shallow_adapter_v"] = new(FineTuneMode.Shallow, "v", 3e-4),
        ["clipseg_shallow_adapter_vl"] = new(FineTuneMode.Shallow, "vl", 3e-4),
        ["clipseg_shallow_adapter_vlc"] = new(FineTuneMode.Shallow, "vlc", 3e-4),
        ["clipseg_dense_adapter_v"] = new(FineTuneMode.Dense, "v", 1e-3),
        ["clipseg_dense_adapter_vl"] = new(FineTuneMode.Dense, "vl", 1e-3),
        ["clipseg_dense_adapter_vlc"] = new(FineTuneMode.Dense, "vlc", 1e-3),
        ["clipseg"] = new(FineTuneMode.Decoder, null, 1e-3),
        ["clipseg_full"] = new(FineTuneMode.Full, null, 1e-5),
    };

    public double DefaultLearningRate(FineTuneMode mode) => mode switch
    {
        FineTuneMode.Shallow => 3e-4,
        FineTuneMode.Dense => 1e-3,
        FineTuneMode.Decoder => 1e-3,
        _ => 1e-5,
    };

    /// <summary>HF folders always carry model_type; there are no legacy CLIPSeg folders to recognise.</summary>
    public bool RecognizesLegacy(JsonObject config) => false;

    public FineTuneSpec CheckSpec(FineTuneSpec spec) => spec;

    public ModelSummary Describe(ModelSource source, FineTuneSpec? spec)
    {
        var config = source.Config(this, ClipSegLoader.ReadConfig, new Dictionary<string, Func<ClipSegConfig>> { [Rd64Refined] = () => ClipSegConfig.Rd64Refined });
        using var built = new ClipSegModel(config);
        var s = ClipSegSummary.Of(built);
        long? trainable = null;
        if (spec is not null)
        {
            using var adapted = new AdaptedClipSeg(built, spec);
            trainable = adapted.TrainableParameterCount;
        }
        var c = config;
        return new ModelSummary(source.ToString(), this,
        [
            new("text", "text tower", s.TextParameters, $"{c.Text.NumHiddenLayers} layers, width {c.Text.HiddenSize}, {c.Text.NumAttentionHeads} heads, MLP {c.Text.IntermediateSize}"),
            new("vision", "vision tower", s.VisionParameters, $"{c.Vision.NumHiddenLayers} layers, width {c.Vision.HiddenSize}, {c.Vision.NumAttentionHeads} heads, patch {c.Vision.PatchSize}, {c.Vision.ImageSize} px grid"),
            new("projection", "projections", s.ProjectionParameters, $"to {c.ProjectionDim}"),
            new("decoder", "decoder", s.DecoderParameters, $"reduce {c.ReduceDim}, extract layers [{string.Join(", ", c.ExtractLayers)}], {(c.UseComplexTransposedConvolution ? "complex" : "simple")} transposed convolution"),
        ], s.TotalParameters, JsonNode.Parse(config.ToJson())!, spec, trainable);
    }

    /// <summary>Its preprocessor's size, or any multiple of the patch size: the vision tower resizes its position embeddings to the patch grid, as HF's CLIPSeg does.</summary>
    public ImageSizeRule ImageSizes(string modelDir)
    {
        var preprocessor = Imaging.ImagePreprocessor.FromFolder(modelDir);
        return new ImageSizeRule(preprocessor.Width, preprocessor.Height, ClipSegLoader.ReadConfig(modelDir).Vision.PatchSize, "CLIPSeg's patch size");
    }

    public ISegmenter OpenSegmenter(ModelRequest request) =>
        ClipSegPredictor.FromFolder(request.Directory, request.Weights, ComputePrecisions.Dtype(request.Precision), request.ImageSize);

    public ITrainableModel OpenTrainable(ModelRequest request, TrainingSetup training) => new ClipSegTraining(request, training);

    /// <summary>A model already in memory (e.g. random weights for the bench) prepared to train; it is owned by the result.</summary>
    public ITrainableModel Trainable(ClipSegModel model, Text.ClipTokenizer tokenizer, Imaging.ImagePreprocessor preprocessor, ComputePrecision precision, TrainingSetup training) =>
        new ClipSegTraining(model, () => tokenizer, () => preprocessor, precision, training);

    public IReadOnlyList<TensorComparison> Verify(string modelDir, string referencePath, string? weightsFile)
    {
        var model = ClipSegLoader.Load(modelDir);
        AdaptedClipSeg? adapted = null;
        try
        {
            using var reference = SafetensorsFile.Open(referencePath);
            adapted = weightsFile is null ? null : AdapterFile.Load(model, weightsFile);
            return ReferenceVerifier.Verify(model, reference, adapted);
        }
        finally
        {
            // The adapted wrapper owns the base model.
            if (adapted is not null) adapted.Dispose();
            else model.Dispose();
        }
    }
}
