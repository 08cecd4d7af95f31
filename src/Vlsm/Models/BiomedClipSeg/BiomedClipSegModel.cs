using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Models.ClipSeg;
using static TorchSharp.torch;

namespace Vlsm.Models.BiomedClipSeg;

#pragma warning disable IDE1006 // field names are the reference's state-dict keys

/// <summary>open_clip's <c>CustomTextCLIP</c> for BiomedCLIP: <c>visual</c>, <c>text</c> and the unused <c>logit_scale</c>.</summary>
public sealed class BiomedClip : nn.Module
{
    private readonly BiomedVisual visual;
    private readonly BiomedText text;
    private readonly Parameter logit_scale;

    public BiomedClip(BiomedClipSegConfig c) : base(nameof(BiomedClip))
    {
        visual = new BiomedVisual(c.Vision, c.EmbedDim);
        text = new BiomedText(c.Text, c.EmbedDim);
        logit_scale = new Parameter(tensor((float)Math.Log(1 / 0.07)));
        RegisterComponents();
    }

    public BiomedVisual Visual => visual;
    public BiomedText Text => text;
}

/// <summary>
/// medvlsm's <c>BiomedCLIPSeg</c>: BiomedCLIP's towers (<c>biomedclip.*</c>) and HF CLIPSeg's decoder
/// (<c>decoder.*</c>, vlsm's <see cref="ClipSegDecoder"/>). Parameter names are the reference's
/// state-dict keys, so its checkpoints load strictly.
/// </summary>
public sealed class BiomedClipSegModel : nn.Module
{
    private readonly BiomedClip biomedclip;
    private readonly ClipSegDecoder decoder;

    public BiomedClipSegModel(BiomedClipSegConfig config) : base(nameof(BiomedClipSegModel))
    {
        Config = config;
        biomedclip = new BiomedClip(config);
        decoder = new ClipSegDecoder(config.Decoder);
        RegisterComponents();
    }

    public BiomedClipSegConfig Config { get; }
    public BiomedClip BiomedClip => biomedclip;
    public ClipSegDecoder Decoder => decoder;
    public TimmVisionTransformer Trunk => biomedclip.Visual.Trunk;

    /// <summary>Which block each extract layer reads (the reference's off-by-one unless fixed).</summary>
    public ExtractIndexing Indexing { get; set; } = ExtractIndexing.Reference;

    /// <summary>Which attention mask the text tower uses (the tokenizer's unless fixed).</summary>
    public TextMask TextMask { get; set; } = TextMask.Reference;

    /// <summary>The dtype the towers and the text projection compute in.</summary>
    public ScalarType TowerDtype { get; private set; } = ScalarType.Float32;

    /// <summary>
    /// Casts BiomedCLIP (both towers and their projections) to <paramref name="dtype"/> and keeps no
    /// float32 copy; the decoder stays float32. Inputs and outputs of the encoders stay float32.
    /// Parameters keep their requires_grad flags.
    /// </summary>
    public void SetTowerDtype(ScalarType dtype)
    {
        if (dtype == TowerDtype) return;
        var flags = named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
        biomedclip.to(dtype);
        foreach (var (name, p) in named_parameters()) p.requires_grad = flags[name];
        TowerDtype = dtype;
    }

    /// <summary>The decoder's vision inputs: the blocks the extract layers read, float32, class token first; blocks past the deepest one read are not run.</summary>
    public VisionFeatures EncodeImage(Tensor pixels, Func<int, EncoderLayerHooks>? hooks = null)
    {
        var read = Config.BlocksRead(Indexing);
        using var input = pixels.to(TowerDtype);
        using var embeddings = Trunk.Embed(input);
        var blocks = Trunk.Blocks(embeddings, read.Max() + 1, read.ToHashSet(), hooks);
        var activations = read.Select(i => ClipSegModel.Widen(blocks[i])).ToList();
        foreach (var b in blocks.Values) b.Dispose();
        int grid = Config.Vision.Grid;
        return new VisionFeatures(activations, grid, grid);
    }

    /// <summary>The attention mask the text tower uses for <paramref name="inputIds"/> and the tokenizer's <paramref name="attentionMask"/>.</summary>
    public Tensor TextAttentionMask(Tensor inputIds, Tensor attentionMask) => TextMask == TextMask.Reference
        ? attentionMask.alias()
        : inputIds.ne((long)Config.Text.PadTokenId).to(ScalarType.Int64);

    /// <summary>BERT's last hidden state at every position, in the tower dtype.</summary>
    public Tensor TextHidden(Tensor inputIds, Tensor attentionMask, Func<int, EncoderLayerHooks>? hooks = null)
    {
        if (inputIds.shape[0] != attentionMask.shape[0] || inputIds.shape[1] != attentionMask.shape[1])
            throw new ArgumentException($"input_ids [{string.Join(", ", inputIds.shape)}] and attention_mask [{string.Join(", ", attentionMask.shape)}] differ in shape.");
        using var mask = TextAttentionMask(inputIds, attentionMask);
        return biomedclip.Text.Transformer.Forward(inputIds, mask, hooks);
    }

    /// <summary>The conditional embedding, float32: proj(last_hidden_state[:, 0]), not normalised.</summary>
    public Tensor EncodeText(Tensor inputIds, Tensor attentionMask, Func<int, EncoderLayerHooks>? hooks = null)
    {
        using var hidden = TextHidden(inputIds, attentionMask, hooks);
        using var pooled = BiomedText.Pool(hidden);
        using var projected = biomedclip.Text.Proj.forward(pooled);
        return ClipSegModel.Widen(projected);
    }

    /// <summary>Logits (B, H, W).</summary>
    public Tensor Decode(VisionFeatures vision, Tensor conditional) =>
        decoder.Forward(vision.Activations, conditional, vision.GridHeight, vision.GridWidth);

    /// <summary>Logits (B, H, W) for images and tokenized prompts, as the reference computes them (without its batch-of-1 squeeze).</summary>
    public Tensor Forward(Tensor pixels, Tensor inputIds, Tensor attentionMask)
    {
        if (inputIds.shape[0] != pixels.shape[0])
            throw new VlsmException($"{inputIds.shape[0]} prompts for {pixels.shape[0]} images; give one prompt per image.");
        using var vision = EncodeImage(pixels);
        using var conditional = EncodeText(inputIds, attentionMask);
        return Decode(vision, conditional);
    }
}
