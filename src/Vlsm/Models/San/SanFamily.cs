using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Models.San;

/// <summary>
/// SAN, the Side Adapter Network (<c>model_type: san</c>), as VLSM-Adapter's Table 1 baseline: a
/// frozen CLIP ViT-B/16 and a trainable side network. It trains in one mode, <c>full</c>: the whole
/// model as the reference trains it, its CLIP frozen by SAN's own design.
/// </summary>
public sealed class SanFamily : IModelFamily
{
    public static SanFamily Instance { get; } = new();

    private SanFamily() { }

    public const string VitB16 = "san-vit-b16";

    public string ModelType => SanConfig.ModelType;
    public string Name => "SAN";
    public bool TakesText => true;
    public IReadOnlyList<FineTuneMode> Modes { get; } = [FineTuneMode.Full];
    public IReadOnlyList<ComputePrecision> Precisions { get; } = [ComputePrecision.Fp32];
    public IReadOnlyList<string> Architectures { get; } = [VitB16];

    public IReadOnlyList<FamilyOption> Options { get; } =
    [
        new(SanTrainables.OptionKey,
            "reference trains what vlsm-adapter's SAN trains (the rec head and text run without gradients, so the attention-bias MLP and CLIP's positional embedding never change); "
            + "original lets gradients through the frozen rec head into the attention bias and into CLIP's positional embedding, as the original SAN trains",
            ["reference", "original"], "reference"),
    ];

    /// <summary>configs/model/san.yaml and configs/experiment/san.yaml: AdamW 3e-4, weight decay 1e-3, plateau 0.3/5, batch 32, clipping 0.5, 10-200 epochs.</summary>
    public IReadOnlyDictionary<string, TrainingPreset> Presets { get; } = new Dictionary<string, TrainingPreset>
    {
        ["san"] = new(FineTuneMode.Full, null, 3e-4)
        {
            WeightDecay = 1e-3, BatchSize = 32, Loss = "reference", Scheduler = "plateau", PlateauFactor = 0.3, PlateauPatience = 5,
            MinEpochs = 10, MaxEpochs = 200, GradClip = 0.5,
        },
    };

    public double DefaultLearningRate(FineTuneMode mode) => 3e-4;

    /// <summary>SAN folders always carry model_type.</summary>
    public bool RecognizesLegacy(JsonObject config) => false;

    public FineTuneSpec CheckSpec(FineTuneSpec spec)
    {
        FamilyChecks.Mode(this, spec.Mode);
        if (spec.FreezeText)
            throw new VlsmException("SAN's text tower never trains (it runs without gradients, as in the reference); --freeze-text does not apply.");
        return spec;
    }

    /// <summary>The gradient flow a request's options choose.</summary>
    public static SanGradients Gradients(ModelRequest request) =>
        SanTrainables.Parse(FamilyChecks.Options(Instance, request.Options)[SanTrainables.OptionKey]);

    public ModelSummary Describe(ModelSource source, FineTuneSpec? spec)
    {
        var config = source.Config(this, SanLoader.ReadConfig, new Dictionary<string, Func<SanConfig>> { [VitB16] = () => SanConfig.VitB16 });
        if (spec is not null) CheckSpec(spec);
        using var model = new SanModel(config);
        var names = model.named_parameters().Select(p => (p.name, Count: p.parameter.numel())).ToList();
        long Sum(Func<string, bool> where) => names.Where(p => where(p.name)).Sum(p => p.Count);
        static Func<string, bool> Under(string prefix) => n => n.StartsWith(prefix, StringComparison.Ordinal);
        const string side = SanLoader.SidePrefix;
        long visual = Sum(SanTrainables.IsVisual);
        long text = Sum(n => n.StartsWith(SanLoader.ClipPrefix, StringComparison.Ordinal) && !SanTrainables.IsVisual(n));
        long vit = Sum(Under(side + "vit_model.")), queries = Sum(Under(side + "query_")), fusion = Sum(Under(side + "fusion_layers.")), decoder = Sum(Under(side + "mask_decoder."));
        long total = names.Sum(p => p.Count);
        long received = Sum(n => SanTrainables.ReceivesGradient(config, SanGradients.Reference, n));
        var c = config;
        return new ModelSummary(source.ToString(), this,
        [
            new("clip_visual", "CLIP image tower (frozen)", visual, $"ViT {c.Clip.VisionLayers} layers x {c.Clip.VisionWidth}, patch {c.Clip.PatchSize}, sees the input at x{c.ClipResolution}; blocks {c.FirstLayerIdx}.. are the rec head"),
            new("clip_text", "CLIP text tower (frozen)", text, $"{c.Clip.TextLayers} layers x {c.Clip.TextWidth}, {c.Clip.ContextLength} tokens, embed {c.Clip.EmbedDim}"),
            new("side_vit", "side ViT", vit, $"{c.Side.Depth} blocks x {c.Side.EmbedDim}, {c.Side.NumHeads} heads, patch {c.Side.PatchSize}, {c.Side.ImgSize} px"),
            new("side_queries", "query tokens", queries, $"{c.NumQueries} queries and their positions"),
            new("side_fusion", "fusion layers", fusion, string.Join(", ", c.FusionMap.OrderBy(kv => kv.Key).Select(kv => $"CLIP {kv.Value} -> side {kv.Key}{(kv.Key > c.DecodeIndex ? " (never used)" : "")}"))),
            new("side_mask_decoder", "mask decoder", decoder, $"MLPs {c.MaskDecoder.MlpNumLayers} x {c.MaskDecoder.MlpChannels} -> {c.MaskDecoder.EmbedChannels}; attention bias for {c.MaskDecoder.TotalHeads} heads"),
        ], total, JsonNode.Parse(config.ToJson())!, spec, spec is null ? null : received)
        {
            Counts =
            [
                new("reference_requires_grad", "requires_grad in the reference", Sum(n => SanTrainables.RequiresGrad(config, n)),
                    "side network + CLIP's positional embedding + the text tower, which SAN never freezes but runs without gradients"),
                new("receives_gradient", "receive a gradient (what trains)", received, $"{SanTrainables.OptionKey} reference: no attention-bias MLP, no unused fusion layer"),
                new("receives_gradient_original", "receive a gradient, original flow", Sum(n => SanTrainables.ReceivesGradient(config, SanGradients.Original, n)),
                    $"{SanTrainables.OptionKey} original: + attention-bias MLP and scaling, CLIP's positional embedding"),
                new("paper_trainable", "the paper's \"trainable\"", Sum(SanTrainables.IsSide) + Sum(n => SanTrainables.IsVisual(n) && SanTrainables.RequiresGrad(config, n)),
                    "side network + CLIP's positional embedding (SAN's 8.4M)"),
            ],
        };
    }

    public ISegmenter OpenSegmenter(ModelRequest request)
    {
        Gradients(request); // checks the option's value; prediction is the same for both flows
        return SanPredictor.FromFolder(request.Directory, request.Weights, request.ImageSize);
    }

    /// <summary>
    /// image_size, or any multiple of size_divisibility and the side network's patch at which CLIP
    /// still sees a patch: both ViTs resize their position tables to the grid, and the logits are
    /// resized to the input.
    /// </summary>
    public ImageSizeRule ImageSizes(string modelDir)
    {
        var c = SanLoader.ReadConfig(modelDir);
        static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);
        int divisibility = Math.Max(1, c.SizeDivisibility); // 0: detectron2 pads to no multiple
        int multiple = divisibility / Gcd(divisibility, c.Side.PatchSize) * c.Side.PatchSize;
        int clipSees = (int)Math.Ceiling(c.Clip.PatchSize / c.ClipResolution);
        return new ImageSizeRule(c.ImageWidth, c.ImageHeight, multiple, "SAN's size_divisibility and side-network patch size") { Min = clipSees };
    }

    public ITrainableModel OpenTrainable(ModelRequest request, TrainingSetup training) => new SanTraining(request, training);

    public IReadOnlyList<TensorComparison> Verify(string modelDir, string referencePath, string? weightsFile)
    {
        using var model = SanLoader.Load(modelDir);
        if (weightsFile is not null) SanWeightsFile.Apply(model, weightsFile);
        using var reference = SafetensorsFile.Open(referencePath);
        return SanReferenceVerifier.Verify(model, reference);
    }
}
