using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Models.ClipSeg;
using Vlsm.Tensors;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Models.BiomedClipSeg;

// Field names in this file are timm's state-dict keys (RegisterComponents uses them).
#pragma warning disable IDE1006

/// <summary>timm <c>PatchEmbed</c>: a stride-p convolution, flattened to (B, N, C).</summary>
public sealed class TimmPatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly SafeConv2d proj;

    public TimmPatchEmbed(TimmVitConfig c) : base(nameof(TimmPatchEmbed))
    {
        proj = new SafeConv2d(c.InChannels, c.Width, c.PatchSize, stride: c.PatchSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels)
    {
        using var grid = proj.forward(pixels);
        using var flat = grid.flatten(2);
        return flat.transpose(1, 2);
    }
}

/// <summary>timm <c>Attention</c>: one qkv projection, q·kᵀ·head_dim^-0.5 softmax through SDPA, proj.</summary>
public sealed class TimmAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear qkv, proj;
    private readonly int heads;

    public TimmAttention(int dim, int heads, bool qkvBias) : base(nameof(TimmAttention))
    {
        this.heads = heads;
        qkv = Linear(dim, dim * 3, hasBias: qkvBias);
        proj = Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], n = x.shape[1], d = x.shape[2];
        using var packed = qkv.forward(x);
        var split = packed.view(b, n, 3, heads, d / heads).permute(2, 0, 3, 1, 4).unbind(0);
        using var q = split[0];
        using var k = split[1];
        using var v = split[2];
        using var o = functional.scaled_dot_product_attention(q, k, v);
        using var merged = o.transpose(1, 2).reshape(b, n, d);
        return proj.forward(merged);
    }
}

/// <summary>timm <c>Mlp</c>: fc1, exact GELU, fc2.</summary>
public sealed class TimmMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1, fc2;

    public TimmMlp(int dim, int hidden) : base(nameof(TimmMlp))
    {
        fc1 = Linear(dim, hidden);
        fc2 = Linear(hidden, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var h = fc1.forward(x);
        using var a = functional.gelu(h);
        return fc2.forward(a);
    }
}

/// <summary>
/// timm <c>Block</c>, pre-LN: y = x + attn(norm1(x)), out = y + mlp(norm2(y)). Dense adapters
/// (<see cref="EncoderLayerHooks"/>) act on each sub-block's output before its residual addition.
/// </summary>
public sealed class TimmBlock : nn.Module
{
    private readonly LayerNorm norm1, norm2;
    private readonly TimmAttention attn;
    private readonly TimmMlp mlp;

    public TimmBlock(TimmVitConfig c) : base(nameof(TimmBlock))
    {
        norm1 = nn.LayerNorm(c.Width, c.LayerNormEps);
        attn = new TimmAttention(c.Width, c.Heads, c.QkvBias);
        norm2 = nn.LayerNorm(c.Width, c.LayerNormEps);
        mlp = new TimmMlp(c.Width, c.MlpHidden);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, EncoderLayerHooks hooks = default)
    {
        Tensor a;
        using (var n1 = norm1.forward(x)) a = attn.forward(n1);
        a = Hook(hooks.AfterAttention, a);
        using var y = Plus(x, a);
        a.Dispose();
        Tensor m;
        using (var n2 = norm2.forward(y)) m = mlp.forward(n2);
        m = Hook(hooks.AfterMlp, m);
        var result = Plus(y, m);
        m.Dispose();
        return result;
    }

    internal static Tensor Hook(Func<Tensor, Tensor>? hook, Tensor t)
    {
        if (hook is null) return t;
        var adapted = hook(t);
        t.Dispose();
        return adapted;
    }
}

/// <summary>
/// timm <c>VisionTransformer</c> (0.9.2) as BiomedCLIP's trunk: patch embedding, the class token
/// concatenated before the position table (197 rows) is added, pre-LN blocks, a final norm used
/// only by the pooled path. <c>norm_pre</c>, <c>fc_norm</c> and <c>head</c> are Identity.
/// </summary>
public sealed class TimmVisionTransformer : nn.Module
{
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly TimmPatchEmbed patch_embed;
    private readonly ModuleList<TimmBlock> blocks;
    private readonly LayerNorm norm;

    public TimmVisionTransformer(TimmVitConfig c) : base(nameof(TimmVisionTransformer))
    {
        Config = c;
        cls_token = new Parameter(zeros(1, 1, c.Width));
        pos_embed = new Parameter(Times_(randn(1, c.Grid * c.Grid + 1, c.Width), 0.02));
        patch_embed = new TimmPatchEmbed(c);
        blocks = new ModuleList<TimmBlock>();
        for (int i = 0; i < c.Depth; i++) blocks.Add(new TimmBlock(c));
        norm = nn.LayerNorm(c.Width, c.LayerNormEps);
        RegisterComponents();
    }

    public TimmVitConfig Config { get; }

    /// <summary><c>_pos_embed(patch_embed(x))</c>: (B, 1 + grid², width), class token first.</summary>
    public Tensor Embed(Tensor pixels)
    {
        var c = Config;
        if (pixels.dim() != 4 || pixels.shape[1] != c.InChannels)
            throw new VlsmException($"pixel_values must be (batch, {c.InChannels}, height, width); got ({string.Join(", ", pixels.shape)}).");
        if (pixels.shape[2] != c.ImageSize || pixels.shape[3] != c.ImageSize)
            throw new VlsmException($"BiomedCLIP's ViT takes {c.ImageSize}x{c.ImageSize} images (its position table has {c.Grid}x{c.Grid} patches); got {pixels.shape[2]}x{pixels.shape[3]}.");
        using var tokens = patch_embed.forward(pixels);
        using var cls = cls_token.to(tokens.dtype).expand(tokens.shape[0], 1, -1);
        using var joined = cat(new[] { cls, tokens }, 1);
        using var positions = pos_embed.to(tokens.dtype);
        return Plus(joined, positions);
    }

    /// <summary>
    /// Runs blocks 0 … <paramref name="count"/>−1 on the embeddings and returns the output of every
    /// block in <paramref name="keep"/> (0-based block index), the residual stream as it leaves it.
    /// </summary>
    public Dictionary<int, Tensor> Blocks(Tensor embeddings, int count, IReadOnlySet<int> keep, Func<int, EncoderLayerHooks>? hooks = null)
    {
        var kept = new Dictionary<int, Tensor>();
        Tensor h = embeddings;
        for (int i = 0; i < count; i++)
        {
            var next = blocks[i].Forward(h, hooks?.Invoke(i) ?? default);
            if (!ReferenceEquals(h, embeddings)) h.Dispose();
            h = next;
            if (keep.Contains(i)) kept[i] = h.alias();
        }
        if (!ReferenceEquals(h, embeddings)) h.Dispose();
        return kept;
    }

    /// <summary>The pooled path: <c>norm</c>, then the class token (<c>global_pool: token</c>).</summary>
    public Tensor Pool(Tensor lastBlockOutput)
    {
        using var normed = norm.forward(lastBlockOutput);
        using var first = normed.select(1, 0);
        return first.contiguous();
    }
}

/// <summary>open_clip's <c>TimmModel</c> with <c>timm_proj: linear</c>: the trunk and <c>head.proj</c> (no bias).</summary>
public sealed class BiomedVisual : nn.Module
{
    private readonly TimmVisionTransformer trunk;
    private readonly TimmHead head;

    public BiomedVisual(TimmVitConfig c, int embedDim) : base(nameof(BiomedVisual))
    {
        trunk = new TimmVisionTransformer(c);
        head = new TimmHead(c.Width, embedDim);
        RegisterComponents();
    }

    public TimmVisionTransformer Trunk => trunk;
    public TimmHead Head => head;
}

/// <summary>open_clip's <c>TimmModel.head</c>: <c>proj</c>, a bias-free Linear (width → embed_dim).</summary>
public sealed class TimmHead : nn.Module<Tensor, Tensor>
{
    private readonly Linear proj;

    public TimmHead(int width, int embedDim) : base(nameof(TimmHead))
    {
        proj = Linear(width, embedDim, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => proj.forward(x);
}
