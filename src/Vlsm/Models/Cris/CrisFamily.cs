using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Models.Cris;

/// <summary>The benchmarks' CRIS (<c>model_type: cris</c>), trained in full or decoder mode.</summary>
public sealed class CrisFamily : IModelFamily
{
    public static CrisFamily Instance { get; } = new();

    private CrisFamily() { }

    public const string Rn50 = "cris-rn50";

    /// <summary>The option that chooses the decoder's padding mask.</summary>
    public const string PadMaskOption = "cris_pad_mask";

    public string ModelType => "cris";
    public string Name => "CRIS";
    public bool TakesText => true;
    public IReadOnlyList<FineTuneMode> Modes { get; } = [FineTuneMode.Full, FineTuneMode.Decoder];
    public IReadOnlyList<ComputePrecision> Precisions { get; } = [ComputePrecision.Fp32];
    public IReadOnlyList<string> Architectures { get; } = [Rn50];

    public IReadOnlyList<FamilyOption> Options { get; } =
    [
        new(PadMaskOption, "reference masks ids equal to 0, as the reference does; fixed masks the padding after the end token", ["reference", "fixed"], "reference"),
    ];

    /// <summary>VLSM-Adapter trains all of CRIS at 1e-4; decoder mode trains neck, decoder and projector.</summary>
    public IReadOnlyDictionary<string, TrainingPreset> Presets { get; } = new Dictionary<string, TrainingPreset>
    {
        ["cris"] = new(FineTuneMode.Full, null, 1e-4),
        ["cris_decoder"] = new(FineTuneMode.Decoder, null, 1e-3),
    };

    public double DefaultLearningRate(FineTuneMode mode) => mode == FineTuneMode.Full ? 1e-4 : 1e-3;

    /// <summary>Folders that vlsm convert cris wrote before model_type was recorded: a <c>cris</c> object.</summary>
    public bool RecognizesLegacy(JsonObject config) => config["cris"] is JsonObject;

    public FineTuneSpec CheckSpec(FineTuneSpec spec)
    {
        CrisCheckpointFile.CheckMode(spec.Mode);
        return spec;
    }

    /// <summary>The padding mask a request's options choose.</summary>
    public static CrisPadMask PadMask(ModelRequest request) =>
        FamilyChecks.Options(Instance, request.Options)[PadMaskOption] == "fixed" ? CrisPadMask.Fixed : CrisPadMask.Reference;

    public ModelSummary Describe(ModelSource source, FineTuneSpec? spec)
    {
        var config = source.Config(this, CrisLoader.ReadConfig, new Dictionary<string, Func<CrisConfig>> { [Rn50] = () => CrisConfig.Rn50 });
        using var model = new CrisModel(config);
        var s = CrisSummary.Of(model);
        long? trainable = spec is null ? null : CrisCheckpointFile.TrainableParameterCount(model, CrisCheckpointFile.CheckMode(spec.Mode));
        var c = config;
        return new ModelSummary(source.ToString(), this,
        [
            new("backbone", "backbone", s.BackboneParameters, $"CLIP ResNet [{string.Join(", ", c.Clip.VisionLayers)}] width {c.Clip.VisionWidth}, text {c.Clip.TransformerLayers} layers x {c.Clip.TransformerWidth}, embed {c.Clip.EmbedDim}"),
            new("neck", "neck", s.NeckParameters, $"FPN in [{string.Join(", ", c.FpnIn)}], out [{string.Join(", ", c.FpnOut)}]"),
            new("decoder", "decoder", s.DecoderParameters, $"{c.NumLayers} layers, width {c.VisDim}, {c.NumHead} heads, FFN {c.DimFfn}"),
            new("projector", "projector", s.ProjectorParameters, $"word {c.WordDim} -> {CrisConfig.KernelSize}x{CrisConfig.KernelSize} kernel over {c.VisDim / 2} channels; output {c.ImgSize} px"),
        ], s.TotalParameters, JsonNode.Parse(config.ToJson())!, spec, trainable);
    }

    /// <summary>img_size, or any multiple of 32 within CRIS's bounds: the attention pool resizes its position table to the feature grid and the head upsamples to the input side.</summary>
    public ImageSizeRule ImageSizes(string modelDir)
    {
        int own = CrisLoader.ReadConfig(modelDir).ImgSize;
        return new ImageSizeRule(own, own, 32, "the stride of CRIS's deepest features") { Min = CrisConfig.MinImgSize, Max = CrisConfig.MaxImgSize };
    }

    public ISegmenter OpenSegmenter(ModelRequest request) =>
        CrisPredictor.FromFolder(request.Directory, request.Weights, PadMask(request), request.ImageSize);

    public ITrainableModel OpenTrainable(ModelRequest request, TrainingSetup training) => new CrisTraining(request, training);

    public IReadOnlyList<TensorComparison> Verify(string modelDir, string referencePath, string? weightsFile)
    {
        using var model = CrisLoader.Load(modelDir);
        if (weightsFile is not null) CrisCheckpointFile.Apply(model, weightsFile);
        using var reference = SafetensorsFile.Open(referencePath);
        return CrisReferenceVerifier.Verify(model, reference);
    }
}
