using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;
using Vlsm.Tensors;

namespace Vlsm.Models.Cris;

#pragma warning disable IDE1006 // field names are the reference's state-dict keys

/// <summary>
/// CLIP's anti-aliased bottleneck: 1x1, 3x3, an average pool when strided, 1x1 (x4 channels);
/// the shortcut is average pool, 1x1 conv and BatchNorm when the shape changes.
/// </summary>
internal sealed class CrisBottleneck : Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly SafeConv2d conv1, conv2, conv3;
    private readonly BatchNorm2d bn1, bn2, bn3;
    private readonly ConvBn? downsample;
    private readonly int stride;

    public CrisBottleneck(int inplanes, int planes, int stride) : base(nameof(CrisBottleneck))
    {
        this.stride = stride;
        conv1 = new SafeConv2d(inplanes, planes, 1, bias: false);
        bn1 = BatchNorm2d(planes);
        conv2 = new SafeConv2d(planes, planes, 3, padding: 1, bias: false);
        bn2 = BatchNorm2d(planes);
        conv3 = new SafeConv2d(planes, planes * Expansion, 1, bias: false);
        bn3 = BatchNorm2d(planes * Expansion);
        if (stride > 1 || inplanes != planes * Expansion) downsample = new ConvBn(inplanes, planes * Expansion, 1, relu: false);
        RegisterComponents();
        using (no_grad()) bn3.weight!.zero_(); // CLIP's initialisation: each block starts as its shortcut
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = functional.relu(bn1.call(conv1.call(x)));
        h = functional.relu(bn2.call(conv2.call(h)));
        if (stride > 1) h = functional.avg_pool2d(h, stride);
        h = bn3.call(conv3.call(h));
        var identity = downsample is null ? x : downsample.call(stride > 1 ? functional.avg_pool2d(x, stride) : x);
        return functional.relu(Plus(h, identity)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// CRIS's attention pool over the stride-32 map: every position is a query (no pooled token), the
/// positional embedding's grid is resized bicubically to the map, and a 1x1 conv + BatchNorm
/// branch (<c>connect</c>) is added before a ReLU. Output: (B, embed_dim, H, W).
/// </summary>
internal sealed class CrisAttentionPool : Module<Tensor, Tensor>
{
    private readonly Parameter positional_embedding;
    private readonly Linear k_proj, q_proj, v_proj, c_proj;
    private readonly ConvBn connect;
    private readonly int grid, heads;

    public CrisAttentionPool(int grid, int embedDim, int heads, int outputDim) : base(nameof(CrisAttentionPool))
    {
        this.grid = grid;
        this.heads = heads;
        positional_embedding = new Parameter(randn(grid * grid + 1, embedDim) / Math.Sqrt(embedDim));
        k_proj = Linear(embedDim, embedDim);
        q_proj = Linear(embedDim, embedDim);
        v_proj = Linear(embedDim, embedDim);
        c_proj = Linear(embedDim, outputDim);
        connect = new ConvBn(embedDim, outputDim, 1, relu: false);
        RegisterComponents();
        using (no_grad())
        {
            double std = 1 / Math.Sqrt(embedDim);
            foreach (var l in new[] { q_proj, k_proj, v_proj, c_proj }) init.normal_(l.weight!, 0, std);
        }
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], hd = c / heads;
        var residual = connect.call(x);
        // The grid part of the embedding (row 0, CLIP's pooled token, is not used), resized to (h, w).
        var pos = positional_embedding.narrow(0, 1, grid * grid).reshape(1, grid, grid, c).permute(0, 3, 1, 2);
        pos = functional.interpolate(pos, [h, w], mode: InterpolationMode.Bicubic, align_corners: false);
        var tokens = Plus(x.flatten(2), pos.flatten(2));        // (B, C, HW)
        tokens = tokens.transpose(1, 2);                   // (B, HW, C)
        var q = q_proj.call(tokens).view(b, h * w, heads, hd).transpose(1, 2);
        var k = k_proj.call(tokens).view(b, h * w, heads, hd).transpose(1, 2);
        var v = v_proj.call(tokens).view(b, h * w, heads, hd).transpose(1, 2);
        var o = functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c);
        var projected = c_proj.call(o).transpose(1, 2).reshape(b, -1, h, w);
        return functional.relu(Plus(projected, residual)).MoveToOuterDisposeScope();
    }
}

/// <summary>The stride-8 and stride-16 ResNet features and the attention pool's stride-32 output.</summary>
public sealed class CrisVisionFeatures : IDisposable
{
    public CrisVisionFeatures(Tensor c3, Tensor c4, Tensor c5)
    {
        C3 = c3;
        C4 = c4;
        C5 = c5;
    }

    public Tensor C3 { get; }
    public Tensor C4 { get; }
    public Tensor C5 { get; }

    public CrisVisionFeatures Select(Tensor index) => new(C3.index_select(0, index), C4.index_select(0, index), C5.index_select(0, index));

    public void Dispose()
    {
        C3.Dispose();
        C4.Dispose();
        C5.Dispose();
    }
}

/// <summary>CLIP's ModifiedResNet as CRIS uses it: 3-conv stem, four bottleneck stages, the CRIS attention pool.</summary>
internal sealed class CrisResNet : nn.Module
{
    private readonly SafeConv2d conv1, conv2, conv3;
    private readonly BatchNorm2d bn1, bn2, bn3;
    private readonly ModuleList<CrisBottleneck> layer1, layer2, layer3, layer4;
    private readonly CrisAttentionPool attnpool;

    public CrisResNet(CrisClipConfig c) : base(nameof(CrisResNet))
    {
        int width = c.VisionWidth;
        conv1 = new SafeConv2d(3, width / 2, 3, stride: 2, padding: 1, bias: false);
        bn1 = BatchNorm2d(width / 2);
        conv2 = new SafeConv2d(width / 2, width / 2, 3, padding: 1, bias: false);
        bn2 = BatchNorm2d(width / 2);
        conv3 = new SafeConv2d(width / 2, width, 3, padding: 1, bias: false);
        bn3 = BatchNorm2d(width);
        int inplanes = width;
        ModuleList<CrisBottleneck> Stage(int planes, int blocks, int stride)
        {
            var list = new ModuleList<CrisBottleneck>();
            for (int i = 0; i < blocks; i++)
            {
                list.Add(new CrisBottleneck(inplanes, planes, i == 0 ? stride : 1));
                inplanes = planes * CrisBottleneck.Expansion;
            }
            return list;
        }
        layer1 = Stage(width, c.VisionLayers[0], 1);
        layer2 = Stage(width * 2, c.VisionLayers[1], 2);
        layer3 = Stage(width * 4, c.VisionLayers[2], 2);
        layer4 = Stage(width * 8, c.VisionLayers[3], 2);
        attnpool = new CrisAttentionPool(c.PoolGrid, c.VisionEmbedDim, c.VisionHeads, c.EmbedDim);
        RegisterComponents();
    }

    public CrisVisionFeatures Forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.call(conv1.call(pixels)));
        x = functional.relu(bn2.call(conv2.call(x)));
        x = functional.relu(bn3.call(conv3.call(x)));
        x = functional.avg_pool2d(x, 2);
        static Tensor Run(ModuleList<CrisBottleneck> stage, Tensor h)
        {
            foreach (var block in stage) h = block.call(h);
            return h;
        }
        x = Run(layer1, x);
        var c3 = Run(layer2, x);
        var c4 = Run(layer3, c3);
        var c5 = attnpool.call(Run(layer4, c4));
        return new CrisVisionFeatures(c3.MoveToOuterDisposeScope(), c4.MoveToOuterDisposeScope(), c5.MoveToOuterDisposeScope());
    }
}

/// <summary>CLIP's <c>mlp</c>: <c>c_fc</c>, QuickGELU, <c>c_proj</c>.</summary>
internal sealed class CrisMlp : nn.Module
{
    private readonly Linear c_fc, c_proj;

    public CrisMlp(int width) : base(nameof(CrisMlp))
    {
        c_fc = Linear(width, width * 4);
        c_proj = Linear(width * 4, width);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var h = c_fc.call(x);
        using var a = h.mul(functional.sigmoid(Times(h, 1.702)));
        return c_proj.call(a);
    }
}

/// <summary>CLIP's pre-LN <c>ResidualAttentionBlock</c>.</summary>
internal sealed class CrisTextBlock : nn.Module
{
    private readonly PackedAttention attn;
    private readonly LayerNorm ln_1, ln_2;
    private readonly CrisMlp mlp;

    public CrisTextBlock(int width, int heads) : base(nameof(CrisTextBlock))
    {
        attn = new PackedAttention(width, heads);
        ln_1 = LayerNorm(width);
        mlp = new CrisMlp(width);
        ln_2 = LayerNorm(width);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor causal)
    {
        using var scope = NewDisposeScope();
        var n1 = ln_1.call(x);
        var y = Plus(x, attn.Forward(n1, n1, n1, causal));
        return Plus(y, mlp.Forward(ln_2.call(y))).MoveToOuterDisposeScope();
    }
}

/// <summary>CLIP's text <c>Transformer</c> (<c>resblocks</c>).</summary>
internal sealed class CrisTextTransformer : nn.Module
{
    private readonly ModuleList<CrisTextBlock> resblocks;

    public CrisTextTransformer(int width, int layers, int heads) : base(nameof(CrisTextTransformer))
    {
        resblocks = new ModuleList<CrisTextBlock>();
        for (int i = 0; i < layers; i++) resblocks.Add(new CrisTextBlock(width, heads));
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor causal)
    {
        var h = x.alias();
        foreach (var block in resblocks)
        {
            var next = block.Forward(h, causal);
            h.Dispose();
            h = next;
        }
        return h;
    }
}

/// <summary>The text side: word features for every position (after <c>ln_final</c>) and the projected end-token state.</summary>
public sealed class CrisTextFeatures : IDisposable
{
    public CrisTextFeatures(Tensor words, Tensor state, Tensor? padMask)
    {
        Words = words;
        State = state;
        PadMask = padMask;
    }

    /// <summary>(B, L, transformer_width).</summary>
    public Tensor Words { get; }

    /// <summary>(B, embed_dim): <c>ln_final</c> at the end token, times <c>text_projection</c>.</summary>
    public Tensor State { get; }

    /// <summary>Additive (B, 1, 1, L) mask of the words the decoder does not attend to, or null when it attends to all.</summary>
    public Tensor? PadMask { get; }

    public void Dispose()
    {
        Words.Dispose();
        State.Dispose();
        PadMask?.Dispose();
    }
}

/// <summary>CRIS's <c>backbone</c>: CLIP (ModifiedResNet and text transformer) as the reference builds it.</summary>
public sealed class CrisBackbone : nn.Module
{
    private readonly CrisResNet visual;
    private readonly CrisTextTransformer transformer;
    private readonly Embedding token_embedding;
    private readonly Parameter positional_embedding;
    private readonly LayerNorm ln_final;
    private readonly Parameter text_projection;
    private readonly Parameter logit_scale; // loaded with the checkpoint; segmentation never uses it

    public CrisBackbone(CrisClipConfig c) : base(nameof(CrisBackbone))
    {
        visual = new CrisResNet(c);
        transformer = new CrisTextTransformer(c.TransformerWidth, c.TransformerLayers, c.TransformerHeads);
        token_embedding = Embedding(c.VocabSize, c.TransformerWidth);
        positional_embedding = new Parameter(empty(c.ContextLength, c.TransformerWidth));
        ln_final = LayerNorm(c.TransformerWidth);
        text_projection = new Parameter(empty(c.TransformerWidth, c.EmbedDim));
        logit_scale = new Parameter(tensor((float)Math.Log(1 / 0.07)));
        RegisterComponents();
        using (no_grad())
        {
            init.normal_(token_embedding.weight!, 0, 0.02);
            init.normal_(positional_embedding, 0, 0.01);
            init.normal_(text_projection, 0, 1 / Math.Sqrt(c.TransformerWidth));
        }
    }

    public CrisVisionFeatures EncodeImage(Tensor pixels) => visual.Forward(pixels);

    /// <summary>Word features and the end-token state; the end token is the highest id (49407) of each row.</summary>
    public (Tensor Words, Tensor State) EncodeText(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        long b = inputIds.shape[0], l = inputIds.shape[1];
        if (l > positional_embedding.shape[0])
            throw new VlsmException($"input_ids have {l} positions; this model has {positional_embedding.shape[0]} (context_length).");
        var x = Plus(token_embedding.call(inputIds), positional_embedding.narrow(0, 0, l));
        var causal = full(l, l, float.NegativeInfinity, dtype: x.dtype).triu(1);
        var words = ln_final.call(transformer.Forward(x, causal));
        var end = inputIds.argmax(-1).view(b, 1, 1).expand(b, 1, words.shape[2]);
        var state = words.gather(1, end).squeeze(1).matmul(text_projection);
        return (words.MoveToOuterDisposeScope(), state.MoveToOuterDisposeScope());
    }
}
