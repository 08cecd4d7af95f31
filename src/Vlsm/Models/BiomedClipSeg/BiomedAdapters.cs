using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Models.ClipSeg;
using static TorchSharp.torch;

namespace Vlsm.Models.BiomedClipSeg;

#pragma warning disable IDE1006 // field names are VLSM-Adapter's module names, as in CLIPSeg's adapter files

/// <summary>
/// VLSM-Adapter's shallow adapters on BiomedCLIPSeg: one on each ViT block output the decoder reads
/// (V, width of the ViT) and one on the conditional embedding (C, embed_dim). Shallow L (text states
/// added into the conditional embedding) needs equal widths, which BiomedCLIP does not have
/// (BERT 768, embedding 512), so it is refused.
/// </summary>
public sealed class BiomedShallowAdapters : nn.Module
{
    private readonly ModuleList<Adapter>? vision_extract_adapters;
    private readonly Adapter? cond_adapter;

    public BiomedShallowAdapters(BiomedClipSegConfig c, FineTuneSpec spec) : base(nameof(BiomedShallowAdapters))
    {
        CheckParts(c, spec);
        if (spec.Parts.HasFlag(AdapterParts.V)) vision_extract_adapters = ShallowAdapterSet.Stack(c.ExtractLayers.Count, c.Vision.Width, spec);
        if (spec.Parts.HasFlag(AdapterParts.C)) cond_adapter = new Adapter(c.EmbedDim, spec.CondAdapterDim, spec.ZeroInitFc2);
        RegisterComponents();
    }

    /// <exception cref="VlsmException">Shallow adapters asked for the language tower.</exception>
    public static void CheckParts(BiomedClipSegConfig c, FineTuneSpec spec)
    {
        if (spec.Mode == FineTuneMode.Shallow && spec.Parts.HasFlag(AdapterParts.L))
            throw new VlsmException($"shallow L adapters add text hidden states (width {c.Text.HiddenSize}) to the conditional embedding (width {c.EmbedDim}); BiomedCLIP's widths differ, so use --parts v, c or vc, or dense adapters (--mode dense --parts vlc).");
    }

    public ModuleList<Adapter>? VisionExtract => vision_extract_adapters;
    public Adapter? Cond => cond_adapter;
}

/// <summary>
/// VLSM-Adapter's dense adapters on BiomedCLIPSeg: inside timm ViT blocks and BERT layers
/// 0 … max(extract_layers) (V and L), one after each attention and one after each MLP, before the
/// residual addition (for BERT's post-LN layers: before the residual addition and its LayerNorm);
/// plus the conditional-embedding adapter (C).
/// </summary>
public sealed class BiomedDenseAdapters : nn.Module
{
    private readonly ModuleList<Adapter>? v_attn_adapters;
    private readonly ModuleList<Adapter>? v_out_adapters;
    private readonly ModuleList<Adapter>? l_attn_adapters;
    private readonly ModuleList<Adapter>? l_out_adapters;
    private readonly Adapter? cond_adapter;

    public BiomedDenseAdapters(BiomedClipSegConfig c, FineTuneSpec spec) : base(nameof(BiomedDenseAdapters))
    {
        if (spec.Parts.HasFlag(AdapterParts.V))
        {
            v_attn_adapters = ShallowAdapterSet.Stack(c.DenseVisionBlocks, c.Vision.Width, spec);
            v_out_adapters = ShallowAdapterSet.Stack(c.DenseVisionBlocks, c.Vision.Width, spec);
        }
        if (spec.Parts.HasFlag(AdapterParts.L))
        {
            l_attn_adapters = ShallowAdapterSet.Stack(c.DenseTextLayers, c.Text.HiddenSize, spec);
            l_out_adapters = ShallowAdapterSet.Stack(c.DenseTextLayers, c.Text.HiddenSize, spec);
        }
        if (spec.Parts.HasFlag(AdapterParts.C)) cond_adapter = new Adapter(c.EmbedDim, spec.CondAdapterDim, spec.ZeroInitFc2);
        RegisterComponents();
    }

    public Adapter? Cond => cond_adapter;
    public Func<int, EncoderLayerHooks>? VisionHooks => Hooks(v_attn_adapters, v_out_adapters);
    public Func<int, EncoderLayerHooks>? LanguageHooks => Hooks(l_attn_adapters, l_out_adapters);

    private static Func<int, EncoderLayerHooks>? Hooks(ModuleList<Adapter>? attention, ModuleList<Adapter>? output)
    {
        if (attention is null || output is null) return null;
        return i => i < attention.Count ? new EncoderLayerHooks(attention[i].ForwardKeepingDtype, output[i].ForwardKeepingDtype) : default;
    }
}

/// <summary>
/// BiomedCLIPSeg in a fine-tuning mode: decoder only (the reference experiments), shallow or dense
/// adapters, or full. Base parameters are frozen except where the mode trains them, and towers run
/// without autograd unless something inside them trains. It owns the base model.
/// </summary>
public sealed class AdaptedBiomedClipSeg : nn.Module
{
    private readonly BiomedClipSegModel base_model;
    private readonly BiomedShallowAdapters? shallow;
    private readonly BiomedDenseAdapters? dense;

    /// <summary>Parameters segmentation never reads (the reference's unused logit scale and pooled-image projection); full mode leaves them out.</summary>
    public static readonly IReadOnlySet<string> UnusedParameters = new HashSet<string>(StringComparer.Ordinal)
    {
        "biomedclip.logit_scale", "biomedclip.visual.head.proj.weight",
    };

    public AdaptedBiomedClipSeg(BiomedClipSegModel baseModel, FineTuneSpec spec) : base(nameof(AdaptedBiomedClipSeg))
    {
        Spec = spec;
        base_model = baseModel;
        if (spec.FreezeText) throw new VlsmException("freeze text is CLIPSeg's; BiomedCLIPSeg trains its towers in full mode or adapts them (--mode dense --parts v).");
        if (spec.Mode == FineTuneMode.Shallow) shallow = new BiomedShallowAdapters(baseModel.Config, spec);
        else if (spec.Mode == FineTuneMode.Dense) dense = new BiomedDenseAdapters(baseModel.Config, spec);
        RegisterComponents();
        foreach (var (_, p) in base_model.named_parameters()) p.requires_grad = false;
        foreach (var (_, p) in TrainableNamed()) p.requires_grad = true;
    }

    public FineTuneSpec Spec { get; }
    public BiomedClipSegModel Base => base_model;
    public BiomedClipSegConfig Config => base_model.Config;

    /// <summary>The module whose state dict is the adapter file (null in decoder and full modes).</summary>
    public nn.Module? Adapters => (nn.Module?)shallow ?? dense;

    /// <summary>
    /// The tensors a trained-weights file holds, under the names it holds them. Adapter modes train the
    /// decoder along with the adapters: unlike CLIPSeg's, BiomedCLIPSeg's decoder was never trained on
    /// its towers' features (it starts random, or as CLIPSeg's, trained on CLIP's).
    /// </summary>
    public IEnumerable<(string Name, Parameter Parameter)> TrainableNamed() => Spec.Mode switch
    {
        FineTuneMode.Shallow or FineTuneMode.Dense => Adapters!.named_parameters().Select(p => (p.name, p.parameter)).Concat(DecoderNamed()),
        FineTuneMode.Decoder => DecoderNamed(),
        _ => base_model.named_parameters().Where(p => !UnusedParameters.Contains(p.name)).Select(p => (p.name, p.parameter)),
    };

    public const string DecoderPrefix = "decoder.";

    private IEnumerable<(string Name, Parameter Parameter)> DecoderNamed() =>
        base_model.named_parameters().Where(p => p.name.StartsWith(DecoderPrefix, StringComparison.Ordinal)).Select(p => (p.name, p.parameter));

    public long TrainableParameterCount => TrainableNamed().Sum(p => p.Parameter.numel());

    /// <summary>Runs the frozen towers in bfloat16, dense adapters inside them too (trainable weights, decoder and optimizer stay float32). Not for full mode.</summary>
    public void UseBf16Towers()
    {
        if (Spec.Mode == FineTuneMode.Full)
            throw new VlsmException("bf16 applies to frozen towers; full mode trains them, so use --precision fp32.");
        base_model.SetTowerDtype(ScalarType.BFloat16);
    }

    public bool VisionTrains => Spec.Mode == FineTuneMode.Full || dense?.VisionHooks is not null;
    public bool TextTrains => Spec.Mode == FineTuneMode.Full || dense?.LanguageHooks is not null;

    public VisionFeatures EncodeImage(Tensor pixels)
    {
        using var _ = VisionTrains ? null : no_grad();
        return base_model.EncodeImage(pixels, dense?.VisionHooks);
    }

    /// <summary>The conditional embedding before any C adapter, float32.</summary>
    public Tensor EncodeText(Tensor inputIds, Tensor attentionMask)
    {
        using var _ = TextTrains ? null : no_grad();
        return base_model.EncodeText(inputIds, attentionMask, dense?.LanguageHooks);
    }

    /// <summary>The trainable part: shallow V adapters on the activations, the C adapter, the decoder.</summary>
    public Tensor Head(VisionFeatures vision, Tensor conditional)
    {
        var activations = vision.Activations;
        List<Tensor>? adapted = null;
        if (shallow?.VisionExtract is { } va)
        {
            adapted = activations.Select((a, i) => va[i].ForwardKeepingDtype(a)).ToList();
            activations = adapted;
        }
        using var cond = ConditionalEmbedding(conditional);
        try
        {
            return base_model.Decoder.Forward(activations, cond, vision.GridHeight, vision.GridWidth);
        }
        finally
        {
            if (adapted is not null) foreach (var a in adapted) a.Dispose();
        }
    }

    /// <summary>The conditional embedding the decoder sees: through the C adapter when there is one.</summary>
    public Tensor ConditionalEmbedding(Tensor conditional) =>
        (shallow?.Cond ?? dense?.Cond) is { } ca ? ca.ForwardKeepingDtype(conditional) : conditional.alias();
}
