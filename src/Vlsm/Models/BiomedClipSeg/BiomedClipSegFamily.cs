using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Models.BiomedClipSeg;

/// <summary>
/// medvlsm's BiomedCLIPSeg (<c>model_type: biomedclipseg</c>): BiomedCLIP's ViT-B/16 and PubMedBERT
/// towers with CLIPSeg's decoder. The reference experiments train the decoder only; vlsm adds
/// VLSM-Adapter's shallow and dense adapters and full fine-tuning.
/// </summary>
public sealed class BiomedClipSegFamily : IModelFamily
{
    public static BiomedClipSegFamily Instance { get; } = new();

    private BiomedClipSegFamily() { }

    public const string Architecture = "biomedclipseg";

    /// <summary>Which ViT block extract layer i reads: reference (block i + 1, medvlsm's off-by-one) or fixed (block i, as HF CLIPSeg).</summary>
    public const string ExtractOption = "biomedclipseg_extract";

    /// <summary>The text tower's attention mask: reference (the tokenizer's) or fixed (ids ≠ [PAD]).</summary>
    public const string TextMaskOption = "biomedclipseg_text_mask";

    public string ModelType => BiomedClipSegConfig.ModelType;
    public string Name => "BiomedCLIPSeg";
    public bool TakesText => true;
    public IReadOnlyList<FineTuneMode> Modes { get; } = [FineTuneMode.Decoder, FineTuneMode.Dense, FineTuneMode.Shallow, FineTuneMode.Full];
    public IReadOnlyList<ComputePrecision> Precisions { get; } = [ComputePrecision.Fp32, ComputePrecision.Bf16];
    public IReadOnlyList<string> Architectures { get; } = [Architecture];

    public IReadOnlyList<FamilyOption> Options { get; } =
    [
        new(ExtractOption, "reference reads ViT block i+1 for extract layer i, as medvlsm does; fixed reads block i, as HF CLIPSeg", ["reference", "fixed"], "reference"),
        new(TextMaskOption, "reference attends a literal [PAD] typed in a prompt (the tokenizer's mask), as medvlsm does; fixed masks every [PAD] id", ["reference", "fixed"], "reference"),
    ];

    /// <summary>
    /// medvlsm's experiments: the decoder trains (random in <c>biomed_clipseg</c>; clipseg-rd64-refined's
    /// in <c>biomed_clipseg_d</c>, which the model folder carries when converted with --clipseg), DiceCE
    /// (λ_dice 1.0, λ_ce 0.2), AdamW lr 2e-4 and weight decay 1e-3, ReduceLROnPlateau factor 0.1 and
    /// patience 5, batch 16, 10 to 1000 epochs, gradient clipping 0.5.
    /// </summary>
    public IReadOnlyDictionary<string, TrainingPreset> Presets { get; } = new Dictionary<string, TrainingPreset>
    {
        ["biomed_clipseg"] = Reference,
        ["biomed_clipseg_d"] = Reference,
    };

    private static TrainingPreset Reference => new(FineTuneMode.Decoder, null, 2e-4)
    {
        WeightDecay = 1e-3, BatchSize = 16, Loss = "dice-ce", Scheduler = "plateau", PlateauFactor = 0.1, PlateauPatience = 5,
        EarlyStoppingPatience = 20, MinEpochs = 10, MaxEpochs = 1000, GradClip = 0.5,
    };

    public double DefaultLearningRate(FineTuneMode mode) => mode switch
    {
        FineTuneMode.Decoder => 2e-4,
        FineTuneMode.Shallow => 3e-4,
        FineTuneMode.Dense => 1e-3,
        _ => 1e-5,
    };

    public bool RecognizesLegacy(JsonObject config) => false;

    public FineTuneSpec CheckSpec(FineTuneSpec spec)
    {
        if (spec.FreezeText) throw new VlsmException("--freeze-text is CLIPSeg's; BiomedCLIPSeg's full mode trains both towers (use --mode dense --parts v to adapt vision only).");
        BiomedShallowAdapters.CheckParts(BiomedClipSegConfig.Real, spec);
        return spec;
    }

    /// <summary>Sets the request's options (checked, defaults filled in) on the model.</summary>
    public static void ApplyOptions(BiomedClipSegModel model, ModelRequest request)
    {
        var values = FamilyChecks.Options(Instance, request.Options);
        model.Indexing = values[ExtractOption] == "fixed" ? ExtractIndexing.Fixed : ExtractIndexing.Reference;
        model.TextMask = values[TextMaskOption] == "fixed" ? TextMask.Fixed : TextMask.Reference;
    }

    public ModelSummary Describe(ModelSource source, FineTuneSpec? spec)
    {
        var config = source.Config(this, BiomedClipSegLoader.ReadConfig, new Dictionary<string, Func<BiomedClipSegConfig>> { [Architecture] = () => BiomedClipSegConfig.Real });
        using var model = new BiomedClipSegModel(config);
        static long Count(TorchSharp.torch.nn.Module m) => m.parameters().Sum(p => p.numel());
        var visual = model.BiomedClip.Visual;
        var text = model.BiomedClip.Text;
        long trunk = Count(visual.Trunk), visionProj = Count(visual.Head), bert = Count(text.Transformer), textProj = Count(text.Proj);
        long biomedclip = Count(model.BiomedClip), decoder = Count(model.Decoder);
        long? trainable = null;
        if (spec is not null)
        {
            using var adapted = new AdaptedBiomedClipSeg(new BiomedClipSegModel(config), CheckSpec(spec));
            trainable = adapted.TrainableParameterCount;
        }
        var v = config.Vision;
        var t = config.Text;
        var d = config.Decoder;
        return new ModelSummary(source.ToString(), this,
        [
            new("biomedclip", "BiomedCLIP", biomedclip,
                $"ViT-B/{v.PatchSize} trunk {trunk:N0} ({v.Depth} blocks, width {v.Width}, {v.Heads} heads, {v.ImageSize} px) + projection {visionProj:N0}; " +
                $"BERT {bert:N0} ({t.NumHiddenLayers} layers, width {t.HiddenSize}, {t.NumAttentionHeads} heads, vocab {t.VocabSize}) + mlp projection {textProj:N0} to {config.EmbedDim}; logit_scale {biomedclip - trunk - visionProj - bert - textProj}"),
            new("decoder", "decoder", decoder,
                $"CLIPSeg decoder: reduce {d.ReduceDim}, extract layers [{string.Join(", ", d.ExtractLayers)}] (ViT blocks [{string.Join(", ", config.BlocksRead(ExtractIndexing.Reference))}] as the reference reads them), {(d.UseComplexTransposedConvolution ? "complex" : "simple")} transposed convolution"),
        ], biomedclip + decoder, JsonNode.Parse(config.ToJson())!, spec, trainable);
    }

    /// <summary>Only its ViT's own size: timm's ViT, as medvlsm builds it, adds its position table unresized, so it takes no other grid.</summary>
    public ImageSizeRule ImageSizes(string modelDir)
    {
        var v = BiomedClipSegLoader.ReadConfig(modelDir).Vision;
        return ImageSizeRule.Fixed(v.ImageSize, v.ImageSize, $"its ViT adds a fixed {v.Grid}x{v.Grid}-patch position table, which medvlsm's timm model does not resize for other sizes");
    }

    public ISegmenter OpenSegmenter(ModelRequest request) => BiomedClipSegPredictor.FromFolder(request.Directory, request.Weights, request);

    public ITrainableModel OpenTrainable(ModelRequest request, TrainingSetup training) => new BiomedClipSegTraining(request, training);

    /// <summary>A model already in memory (random weights for the bench) prepared to train; it is owned by the result.</summary>
    public ITrainableModel Trainable(BiomedClipSegModel model, Text.WordPieceTokenizer tokenizer, ModelRequest request, TrainingSetup training) =>
        new BiomedClipSegTraining(model, () => tokenizer, request, training);

    public IReadOnlyList<TensorComparison> Verify(string modelDir, string referencePath, string? weightsFile)
    {
        var baseModel = BiomedClipSegLoader.Load(modelDir);
        AdaptedBiomedClipSeg adapted;
        try
        {
            adapted = weightsFile is null ? new AdaptedBiomedClipSeg(baseModel, FineTuneSpec.Create(FineTuneMode.Decoder)) : BiomedClipSegWeightsFile.Load(baseModel, weightsFile);
        }
        catch
        {
            baseModel.Dispose();
            throw;
        }
        using (adapted)
        {
            adapted.eval();
            using var reference = SafetensorsFile.Open(referencePath);
            string vocab = Path.Combine(modelDir, Text.WordPieceTokenizer.VocabFileName);
            var tokenizer = File.Exists(vocab) ? Text.WordPieceTokenizer.FromVocabFile(vocab) : null;
            return BiomedClipSegVerifier.Verify(adapted, reference, tokenizer);
        }
    }
}
