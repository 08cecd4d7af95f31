using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Tensors;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Models.San;

// Field names in this file are open_clip's (= OpenAI CLIP's) state-dict keys, hence the snake_case.
#pragma warning disable IDE1006

/// <summary>
/// <c>nn.MultiheadAttention</c> as open_clip's blocks hold it (packed <c>in_proj_weight</c> and
/// <c>in_proj_bias</c>, <c>out_proj</c>), computed per image over its tokens: (B, L, D) in and out.
/// open_clip at the commit the benchmark used is sequence-first; this is the same attention, batch-first.
/// </summary>
internal sealed class OpenClipAttention : Module
{
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
    private readonly int heads;

    public OpenClipAttention(int width, int heads) : base(nameof(OpenClipAttention))
    {
        this.heads = heads;
        in_proj_weight = new Parameter(empty(3L * width, width));
        in_proj_bias = new Parameter(zeros(3L * width));
        out_proj = Linear(width, width);
        using (no_grad()) init.xavier_uniform_(in_proj_weight);
        RegisterComponents();
    }

    public int Heads => heads;

    /// <param name="mask">Additive mask broadcastable to (B, heads, L, L), or null.</param>
    public Tensor Forward(Tensor x, Tensor? mask)
    {
        using var merged = Attend(x, in_proj_weight, in_proj_bias, heads, mask);
        return out_proj.forward(merged);
    }

    /// <summary>
    /// Self-attention with packed q/k/v weights (3·D, D), before the output projection: softmax
    /// over each image's tokens with scale head_dim^-0.5 and the additive mask, heads merged: (B, L, D).
    /// </summary>
    public static Tensor Attend(Tensor x, Tensor qkvWeight, Tensor? qkvBias, int heads, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], l = x.shape[1], d = x.shape[2];
        var qkv = functional.linear(x, qkvWeight, qkvBias).view(b, l, 3, heads, d / heads).permute(2, 0, 3, 1, 4).unbind(0);
        var o = functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], mask);
        return o.transpose(1, 2).reshape(b, l, d).MoveToOuterDisposeScope();
    }
}

/// <summary>The block's <c>mlp</c> (an <c>nn.Sequential</c> of c_fc, activation, c_proj in open_clip).</summary>
internal sealed class OpenClipMlp : Module
{
    private readonly Linear c_fc;
    private readonly Linear c_proj;
    private readonly bool quickGelu;

    public OpenClipMlp(int width, int hidden, bool quickGelu) : base(nameof(OpenClipMlp))
    {
        c_fc = Linear(width, hidden);
        c_proj = Linear(hidden, width);
        this.quickGelu = quickGelu;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var h = c_fc.forward(x);
        using var a = quickGelu ? QuickGelu(h) : functional.gelu(h);
        return c_proj.forward(a);
    }

    /// <summary>OpenAI's QuickGELU, x · sigmoid(1.702 x).</summary>
    private static Tensor QuickGelu(Tensor x)
    {
        using var s = Times(x, 1.702);
        using var g = s.sigmoid();
        return x.mul(g);
    }
}

/// <summary>open_clip's <c>ResidualAttentionBlock</c>: x + attn(ln_1(x)), then + mlp(ln_2(x)); LayerNorm eps 1e-5.</summary>
internal sealed class OpenClipBlock : Module
{
    private readonly LayerNorm ln_1;
    private readonly OpenClipAttention attn;
    private readonly LayerNorm ln_2;
    private readonly OpenClipMlp mlp;

    public OpenClipBlock(int width, int heads, double mlpRatio, bool quickGelu) : base(nameof(OpenClipBlock))
    {
        ln_1 = LayerNorm(width, 1e-5);
        attn = new OpenClipAttention(width, heads);
        ln_2 = LayerNorm(width, 1e-5);
        mlp = new OpenClipMlp(width, (int)(width * mlpRatio), quickGelu);
        RegisterComponents();
    }

    public int Heads => attn.Heads;

    /// <param name="mask">Additive attention mask broadcastable to (B, heads, L, L), or null.</param>
    public Tensor Forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var y = Plus(x, attn.Forward(ln_1.forward(x), mask));
        return Plus(y, mlp.Forward(ln_2.forward(y))).MoveToOuterDisposeScope();
    }
}

/// <summary>open_clip's <c>Transformer</c>: its <c>resblocks</c>.</summary>
internal sealed class OpenClipTransformer : Module
{
    private readonly ModuleList<OpenClipBlock> resblocks;

    public OpenClipTransformer(int width, int layers, int heads, double mlpRatio, bool quickGelu) : base(nameof(OpenClipTransformer))
    {
        resblocks = new ModuleList<OpenClipBlock>();
        for (int i = 0; i < layers; i++) resblocks.Add(new OpenClipBlock(width, heads, mlpRatio, quickGelu));
        RegisterComponents();
    }

    public OpenClipBlock this[int index] => resblocks[index];

    public int Count => resblocks.Count;
}

/// <summary>
/// open_clip's <c>VisionTransformer</c> (<c>clip_model.visual</c>): conv1 without bias, class
/// embedding, positional embedding at the pretraining grid, ln_pre, blocks, ln_post, proj.
/// </summary>
internal sealed class OpenClipVisual : Module
{
    private readonly SafeConv2d conv1;
    private readonly Parameter class_embedding;
    private readonly Parameter positional_embedding;
    private readonly LayerNorm ln_pre;
    private readonly OpenClipTransformer transformer;
    private readonly LayerNorm ln_post;
    private readonly Parameter proj;
    private readonly SanClipConfig config;

    public OpenClipVisual(SanClipConfig c) : base(nameof(OpenClipVisual))
    {
        config = c;
        int w = c.VisionWidth;
        double scale = Math.Pow(w, -0.5);
        conv1 = new SafeConv2d(3, w, c.PatchSize, stride: c.PatchSize, bias: false);
        class_embedding = new Parameter(Times(randn(w), scale));
        positional_embedding = new Parameter(Times(randn((long)c.Grid * c.Grid + 1, w), scale));
        ln_pre = LayerNorm(w, 1e-5);
        transformer = new OpenClipTransformer(w, c.VisionLayers, c.VisionHeads, c.VisionMlpRatio, c.QuickGelu);
        ln_post = LayerNorm(w, 1e-5);
        proj = new Parameter(Times(randn(w, c.EmbedDim), scale));
        RegisterComponents();
    }

    public OpenClipTransformer Transformer => transformer;

    /// <summary>
    /// The feature extractor of SAN (<c>FeatureExtractor</c>): tokens after ln_pre (feature 0) and
    /// after blocks 0..<paramref name="blocks"/>-1 (features 1..blocks), (B, 1 + h·w, D) each; the
    /// positional embedding's grid is resized bicubically to the input's grid, its cls row kept.
    /// </summary>
    /// <param name="keep">Which features to return; blocks after the last kept one are not run.</param>
    public Dictionary<int, Tensor> Features(Tensor image, int blocks, IReadOnlySet<int> keep, out long gridH, out long gridW)
    {
        var kept = new Dictionary<int, Tensor>();
        using var scope = NewDisposeScope();
        var x = conv1.forward(image);
        long b = x.shape[0], d = x.shape[1];
        gridH = x.shape[2];
        gridW = x.shape[3];
        x = x.reshape(b, d, -1).permute(0, 2, 1);
        var cls = class_embedding.view(1, 1, d).expand(b, 1, d);
        x = cat([cls, x], 1);
        x = Plus(x, PositionalEmbedding(gridH, gridW).unsqueeze(0));
        x = ln_pre.forward(x);
        int last = keep.Count == 0 ? 0 : Math.Min(blocks, keep.Max());
        if (keep.Contains(0)) kept[0] = x.alias().MoveToOuterDisposeScope();
        for (int i = 0; i < last; i++)
        {
            x = transformer[i].Forward(x, null);
            if (keep.Contains(i + 1)) kept[i + 1] = x.alias().MoveToOuterDisposeScope();
        }
        return kept;
    }

    /// <summary>The positional embedding (1 + h·w, D) for a grid of h x w: the pretraining grid resized bicubically (align_corners false) unless equal.</summary>
    private Tensor PositionalEmbedding(long h, long w)
    {
        int g = config.Grid;
        if (h == g && w == g) return positional_embedding.alias();
        using var scope = NewDisposeScope();
        long d = positional_embedding.shape[1];
        var prefix = positional_embedding.narrow(0, 0, 1);
        var grid = positional_embedding.narrow(0, 1, (long)g * g).permute(1, 0).reshape(1, d, g, g);
        grid = functional.interpolate(grid, [h, w], mode: InterpolationMode.Bicubic, align_corners: false);
        grid = grid.permute(0, 2, 3, 1).reshape(h * w, d);
        return cat([prefix, grid], 0).MoveToOuterDisposeScope();
    }

    /// <summary>ln_post, then @ proj.</summary>
    public Tensor Project(Tensor tokens)
    {
        using var n = ln_post.forward(tokens);
        return n.matmul(proj);
    }
}

/// <summary>
/// open_clip's <c>CLIP</c> (<c>clip_model</c>): the image tower <c>visual</c> and the text tower's
/// parameters at the top level (token_embedding, positional_embedding, transformer, ln_final,
/// text_projection, logit_scale), as OpenAI's checkpoints name them.
/// </summary>
internal sealed class OpenClipModel : Module
{
    private readonly OpenClipVisual visual;
    private readonly Embedding token_embedding;
    private readonly Parameter positional_embedding;
    private readonly OpenClipTransformer transformer;
    private readonly LayerNorm ln_final;
    private readonly Parameter text_projection;
    private readonly Parameter logit_scale;
    private readonly Tensor causalMask;

    public OpenClipModel(SanClipConfig c) : base(nameof(OpenClipModel))
    {
        visual = new OpenClipVisual(c);
        token_embedding = Embedding(c.VocabSize, c.TextWidth);
        positional_embedding = new Parameter(Times(randn(c.ContextLength, c.TextWidth), 0.01));
        transformer = new OpenClipTransformer(c.TextWidth, c.TextLayers, c.TextHeads, c.TextMlpRatio, c.QuickGelu);
        ln_final = LayerNorm(c.TextWidth, 1e-5);
        text_projection = new Parameter(Times(randn(c.TextWidth, c.EmbedDim), Math.Pow(c.TextWidth, -0.5)));
        logit_scale = new Parameter(tensor((float)Math.Log(1 / 0.07)));
        using (no_grad()) init.normal_(token_embedding.weight!, 0, 0.02);
        RegisterComponents();
        // Not a state-dict entry (open_clip registers it with persistent=False).
        using var minusInfinity = float.NegativeInfinity.ToScalar();
        causalMask = full([c.ContextLength, c.ContextLength], minusInfinity).triu_(1);
    }

    public OpenClipVisual Visual => visual;

    /// <summary><c>encode_text</c> without normalisation: the end token's state (first argmax of the ids) after ln_final, @ text_projection.</summary>
    public Tensor EncodeText(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        long b = inputIds.shape[0], l = inputIds.shape[1];
        if (l > positional_embedding.shape[0])
            throw new VlsmException($"input_ids have {l} positions; the text tower has {positional_embedding.shape[0]}.");
        var x = Plus(token_embedding.forward(inputIds), positional_embedding.narrow(0, 0, l));
        var mask = causalMask.narrow(0, 0, l).narrow(1, 0, l);
        for (int i = 0; i < transformer.Count; i++) x = transformer[i].Forward(x, mask);
        x = ln_final.forward(x);
        var eot = inputIds.argmax(-1);
        var pooled = x[arange(b), eot];
        return pooled.matmul(text_projection).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) causalMask.Dispose();
        base.Dispose(disposing);
    }
}
