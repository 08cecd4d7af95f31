using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Vlsm.Models.ClipSeg;

#pragma warning disable IDE1006 // field names are HF state-dict keys

/// <summary>HF <c>CLIPSegModel</c>: the CLIP towers and projections (state-dict prefix <c>clip.</c>).</summary>
public sealed class ClipModel : nn.Module
{
    private readonly ClipTextTransformer text_model;
    private readonly ClipVisionTransformer vision_model;
    private readonly Linear visual_projection; // loaded with the checkpoint; segmentation never uses it
    private readonly Linear text_projection;
    private readonly Parameter logit_scale;

    public ClipModel(ClipSegConfig c) : base(nameof(ClipModel))
    {
        text_model = new ClipTextTransformer(c.Text);
        vision_model = new ClipVisionTransformer(c.Vision);
        visual_projection = Linear(c.Vision.HiddenSize, c.ProjectionDim, hasBias: false);
        text_projection = Linear(c.Text.HiddenSize, c.ProjectionDim, hasBias: false);
        logit_scale = new Parameter(tensor(2.6592f));
        RegisterComponents();
    }

    public ClipTextTransformer TextModel => text_model;
    public ClipVisionTransformer VisionModel => vision_model;
    public Linear TextProjection => text_projection;
}

/// <summary>The vision features the decoder reads: hidden states per extract layer, and the patch grid.</summary>
public sealed class VisionFeatures : IDisposable
{
    public VisionFeatures(IReadOnlyList<Tensor> activations, long gridHeight, long gridWidth)
    {
        Activations = activations;
        GridHeight = gridHeight;
        GridWidth = gridWidth;
    }

    /// <summary>HF hidden_states[i+1] for each i in extract_layers, in that order.</summary>
    public IReadOnlyList<Tensor> Activations { get; }
    public long GridHeight { get; }
    public long GridWidth { get; }

    public void Dispose()
    {
        foreach (var a in Activations) a.Dispose();
    }
}

/// <summary>
/// HF <c>CLIPSegForImageSegmentation</c>: frozen-by-default CLIP towers, a text-conditioned
/// decoder. Parameter names equal the HF keys so checkpoints load strictly.
/// </summary>
public sealed class ClipSegModel : nn.Module
{
    private readonly ClipModel clip;
    private readonly ClipSegDecoder decoder;

    public ClipSegModel(ClipSegConfig config) : base(nameof(ClipSegModel))
    {
        Config = config;
        clip = new ClipModel(config);
        decoder = new ClipSegDecoder(config);
        RegisterComponents();
    }

    public ClipSegConfig Config { get; }
    public ClipModel Clip => clip;
    public ClipSegDecoder Decoder => decoder;

    /// <summary>The dtype the CLIP towers and the text projection compute in (see <see cref="SetTowerDtype"/>).</summary>
    public ScalarType TowerDtype { get; private set; } = ScalarType.Float32;

    /// <summary>
    /// Casts the CLIP towers and the text projection to <paramref name="dtype"/> (bfloat16: about
    /// three times the matrix throughput on CPUs with bf16 instructions) and keeps no float32 copy;
    /// the decoder stays float32. <see cref="EncodeImage"/> and <see cref="EncodeText"/> still take
    /// float32 inputs and return float32. Parameters keep their requires_grad flags.
    /// </summary>
    public void SetTowerDtype(ScalarType dtype)
    {
        if (dtype == TowerDtype) return;
        // Module.to replaces (and disposes) the parameters it converts, so the flags are restored by name.
        var flags = named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
        clip.VisionModel.to(dtype);
        clip.TextModel.to(dtype);
        clip.TextProjection.to(dtype);
        foreach (var (name, p) in named_parameters()) p.requires_grad = flags[name];
        TowerDtype = dtype;
        ClearCaches();
    }

    /// <summary>A tower output as float32 (the decoder's and the adapters' dtype).</summary>
    internal static Tensor Widen(Tensor t) => t.dtype == ScalarType.Float32 ? t.alias() : t.to(ScalarType.Float32);

    /// <summary>Vision hidden states at <c>extract_layers</c>, in float32; encoder layers past the deepest one are skipped.</summary>
    public VisionFeatures EncodeImage(Tensor pixelValues, Func<int, EncoderLayerHooks>? hooks = null)
    {
        int p = Config.Vision.PatchSize;
        if (pixelValues.dim() != 4 || pixelValues.shape[1] != Config.Vision.NumChannels)
            throw new VlsmException($"pixel_values must be (batch, {Config.Vision.NumChannels}, height, width); got ({string.Join(", ", pixelValues.shape)}).");
        if (pixelValues.shape[2] % p != 0 || pixelValues.shape[3] % p != 0)
            throw new VlsmException($"image size {pixelValues.shape[2]}x{pixelValues.shape[3]} is not a multiple of the patch size {p}.");
        var keep = Config.ExtractLayers.Select(i => i + 1).ToHashSet();
        using var input = pixelValues.to(TowerDtype);
        var hidden = clip.VisionModel.Forward(input, keep, hooks);
        var activations = Config.ExtractLayers.Select(i => Widen(hidden[i + 1])).ToList();
        foreach (var h in hidden.Values) h.Dispose();
        return new VisionFeatures(activations, pixelValues.shape[2] / p, pixelValues.shape[3] / p);
    }

    /// <summary>The conditional embedding, in float32: text_projection of the pooled text state.</summary>
    public Tensor EncodeText(Tensor inputIds, Tensor? attentionMask, Func<int, EncoderLayerHooks>? hooks = null)
    {
        var (pooled, hidden) = clip.TextModel.Forward(inputIds, attentionMask, null, hooks);
        foreach (var h in hidden.Values) h.Dispose();
        using (pooled)
        using (var projected = clip.TextProjection.forward(pooled))
            return Widen(projected);
    }

    public Tensor Decode(VisionFeatures vision, Tensor conditional) =>
        decoder.Forward(vision.Activations, conditional, vision.GridHeight, vision.GridWidth);

    /// <summary>Logits (B, H, W) for images and prompts, as HF computes them.</summary>
    public Tensor Forward(Tensor pixelValues, Tensor inputIds, Tensor? attentionMask)
    {
        using var vision = EncodeImage(pixelValues);
        using var conditional = EncodeText(inputIds, attentionMask);
        return Decode(vision, conditional);
    }

    /// <summary>Call after changing weights or dtypes in place so cached derived tensors (interpolated position embeddings, stacked q/k/v weights) are rebuilt.</summary>
    public void ClearCaches() => StateDictLoader.ClearDerivedCaches(this);
}
