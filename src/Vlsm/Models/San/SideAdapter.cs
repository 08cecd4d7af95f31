using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Tensors;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Models.San;

// Field names in this file are the reference's state-dict keys (timm's ViT, SAN's side adapter), hence the snake_case.
#pragma warning disable IDE1006

/// <summary>A module whose children are registered by hand (an <c>nn.Sequential</c> or <c>nn.ModuleDict</c> in Python).</summary>
internal abstract class ManualModule : Module
{
    protected ManualModule(string name) : base(name) { }

    protected override void RegisterComponents()
    {
    }
}

/// <summary>timm's ViT initialisation (<c>init_weights_vit_timm</c>): Linear weights truncated normal with std 0.02, zero biases.</summary>
internal static class TimmInit
{
    public static void Linear(Linear layer)
    {
        using var _ = no_grad();
        TruncatedNormal(layer.weight!, 0.02);
        layer.bias?.zero_();
    }

    /// <summary>
    /// timm's <c>trunc_normal_(std=std)</c>: normal, cut at ±2 (absolute, i.e. 100 standard deviations at
    /// 0.02, so a plain normal draw). Not TorchSharp 0.107's trunc_normal_, which fills the tensor with a constant.
    /// </summary>
    public static void TruncatedNormal(Tensor t, double std)
    {
        using var _ = no_grad();
        init.normal_(t, 0, std);
        using var low = (-2.0).ToScalar();
        using var high = 2.0.ToScalar();
        t.clamp_(low, high);
    }
}

/// <summary>timm's <c>Attention</c>: packed qkv Linear, per-head softmax attention, proj.</summary>
internal sealed class SideAttention : Module
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly int heads;

    public SideAttention(int dim, int heads, bool qkvBias) : base(nameof(SideAttention))
    {
        this.heads = heads;
        qkv = Linear(dim, 3L * dim, hasBias: qkvBias);
        proj = Linear(dim, dim);
        TimmInit.Linear(qkv);
        TimmInit.Linear(proj);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var merged = OpenClipAttention.Attend(x, qkv.weight!, qkv.bias, heads, null);
        return proj.forward(merged);
    }
}

/// <summary>timm's <c>Mlp</c>: fc1, GELU (erf), fc2.</summary>
internal sealed class SideMlp : Module
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public SideMlp(int dim, int hidden) : base(nameof(SideMlp))
    {
        fc1 = Linear(dim, hidden);
        fc2 = Linear(hidden, dim);
        TimmInit.Linear(fc1);
        TimmInit.Linear(fc2);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var h = fc1.forward(x);
        using var a = functional.gelu(h);
        return fc2.forward(a);
    }
}

/// <summary>timm's <c>Block</c> (pre-norm, no layer scale, no drop path).</summary>
internal sealed class SideBlock : Module
{
    private readonly LayerNorm norm1;
    private readonly SideAttention attn;
    private readonly LayerNorm norm2;
    private readonly SideMlp mlp;

    public SideBlock(SanSideVitConfig c) : base(nameof(SideBlock))
    {
        norm1 = LayerNorm(c.EmbedDim, c.LayerNormEps);
        attn = new SideAttention(c.EmbedDim, c.NumHeads, c.QkvBias);
        norm2 = LayerNorm(c.EmbedDim, c.LayerNormEps);
        mlp = new SideMlp(c.EmbedDim, (int)(c.EmbedDim * c.MlpRatio));
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = Plus(x, attn.Forward(norm1.forward(x)));
        return Plus(y, mlp.Forward(norm2.forward(y))).MoveToOuterDisposeScope();
    }
}

/// <summary>SAN's <c>PatchEmbed</c>: a stride-patch convolution, flattened to (B, h·w, C).</summary>
internal sealed class SidePatchEmbed : Module
{
    private readonly SafeConv2d proj;

    public SidePatchEmbed(int patch, int dim) : base(nameof(SidePatchEmbed))
    {
        proj = new SafeConv2d(3, dim, patch, stride: patch);
        RegisterComponents();
    }

    public Tensor Forward(Tensor image, out long h, out long w)
    {
        using var x = proj.forward(image);
        h = x.shape[2];
        w = x.shape[3];
        using var flat = x.flatten(2);
        return flat.transpose(1, 2);
    }
}

/// <summary>The side ViT (<c>vit_model</c>): timm's VisionTransformer after SAN removed its cls token, its pos_embed row and its final norm.</summary>
internal sealed class SideVit : Module
{
    private readonly Parameter pos_embed;
    private readonly SidePatchEmbed patch_embed;
    private readonly ModuleList<SideBlock> blocks;
    private readonly int grid;

    public SideVit(SanSideVitConfig c) : base(nameof(SideVit))
    {
        grid = c.Grid;
        pos_embed = new Parameter(empty(1, (long)grid * grid, c.EmbedDim));
        TimmInit.TruncatedNormal(pos_embed, 0.02);
        patch_embed = new SidePatchEmbed(c.PatchSize, c.EmbedDim);
        blocks = new ModuleList<SideBlock>();
        for (int i = 0; i < c.Depth; i++) blocks.Add(new SideBlock(c));
        RegisterComponents();
    }

    public SidePatchEmbed PatchEmbed => patch_embed;

    public SideBlock this[int index] => blocks[index];

    public int Depth => blocks.Count;

    /// <summary>pos_embed (1, L, C), resized bicubically from the built grid to (h, w) when the token count differs (as the reference tests it).</summary>
    public Tensor PositionalEmbedding(long h, long w)
    {
        if (pos_embed.shape[1] == h * w) return pos_embed.alias();
        using var scope = NewDisposeScope();
        long c = pos_embed.shape[2];
        var g = pos_embed.reshape(1, grid, grid, c).permute(0, 3, 1, 2);
        g = functional.interpolate(g, [h, w], mode: InterpolationMode.Bicubic, align_corners: false);
        return g.flatten(2).permute(0, 2, 1).MoveToOuterDisposeScope();
    }
}

/// <summary>SAN's channel <c>LayerNorm</c> on (B, C, H, W): mean and biased variance over C, eps 1e-6, affine.</summary>
internal sealed class ChannelLayerNorm : Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private const double Eps = 1e-6;

    public ChannelLayerNorm(int channels) : base(nameof(ChannelLayerNorm))
    {
        weight = new Parameter(ones(channels));
        bias = new Parameter(zeros(channels));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var u = x.mean([1], keepdim: true);
        var centered = x.sub(u);
        var s = centered.pow(2).mean([1], keepdim: true);
        var normed = centered.div(PlusScalar(s, Eps).sqrt_());
        long c = weight.shape[0];
        return normed.mul(weight.view(1, c, 1, 1)).add(bias.view(1, c, 1, 1), One).MoveToOuterDisposeScope();
    }
}

/// <summary>SAN's <c>AddFusion</c>: <c>input_proj</c> = [channel LayerNorm "0", 1x1 conv "1"] on a CLIP map, resized bilinearly to the side grid, added to the side's patch tokens.</summary>
internal sealed class AddFusion : Module
{
    private readonly InputProjection input_proj;

    public AddFusion(int inChannels, int outChannels) : base(nameof(AddFusion))
    {
        input_proj = new InputProjection(inChannels, outChannels);
        RegisterComponents();
    }

    /// <param name="tokens">Side patch tokens (B, h·w, C).</param>
    /// <param name="clipMap">CLIP feature map (B, D, hc, wc).</param>
    public Tensor Forward(Tensor tokens, Tensor clipMap, long h, long w)
    {
        using var scope = NewDisposeScope();
        var y = input_proj.forward(clipMap.contiguous());
        y = functional.interpolate(y, [h, w], mode: InterpolationMode.Bilinear, align_corners: false);
        y = y.permute(0, 2, 3, 1).reshape(tokens.shape);
        return Plus(tokens, y).MoveToOuterDisposeScope();
    }

    private sealed class InputProjection : ManualModule
    {
        private readonly ChannelLayerNorm norm;
        private readonly SafeConv2d conv;

        public InputProjection(int inChannels, int outChannels) : base(nameof(InputProjection))
        {
            norm = new ChannelLayerNorm(inChannels);
            conv = new SafeConv2d(inChannels, outChannels, 1);
            // fvcore's c2_xavier_fill: kaiming uniform with a = 1, zero bias.
            using (no_grad())
            {
                init.kaiming_uniform_(conv.Weight, 1);
                conv.Bias!.zero_();
            }
            register_module("0", norm);
            register_module("1", conv);
        }

        public Tensor forward(Tensor x)
        {
            using var n = norm.forward(x);
            return conv.forward(n);
        }
    }
}

/// <summary>The side network's <c>fusion_layers</c> (an <c>nn.ModuleDict</c> of layer_N).</summary>
internal sealed class FusionLayers : ManualModule
{
    private readonly Dictionary<int, AddFusion> layers = new();

    public FusionLayers(IReadOnlyDictionary<int, (int In, int Out)> config) : base(nameof(FusionLayers))
    {
        foreach (var index in config.Keys.Order())
        {
            var layer = new AddFusion(config[index].In, config[index].Out);
            layers[index] = layer;
            register_module($"layer_{index}", layer);
        }
    }

    public AddFusion this[int index] => layers[index];
}

/// <summary>SAN's <c>MLP</c>: Linear (or 1x1 conv) layers with ReLU between them.</summary>
internal sealed class SanMlp : Module
{
    private readonly ModuleList<Module<Tensor, Tensor>> layers;

    public SanMlp(int input, int hidden, int output, int count, bool convolution) : base(nameof(SanMlp))
    {
        layers = new ModuleList<Module<Tensor, Tensor>>();
        for (int i = 0; i < count; i++)
        {
            int n = i == 0 ? input : hidden, k = i == count - 1 ? output : hidden;
            layers.Add(convolution ? new SafeConv2d(n, k, 1) : Linear(n, k));
        }
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        for (int i = 0; i < layers.Count; i++)
        {
            x = layers[i].forward(x);
            if (i < layers.Count - 1) x = functional.relu(x);
        }
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>SAN's <c>MLPMaskDecoder</c>: query and pixel embeddings give the masks; an attention branch gives each rec-head layer's bias per head.</summary>
internal sealed class MaskDecoder : Module
{
    private readonly SanMlp query_mlp;
    private readonly SanMlp pix_mlp;
    private readonly SanMlp attn_mlp;
    private readonly Linear? bias_scaling;
    private readonly SanMaskDecoderConfig config;

    public MaskDecoder(SanMaskDecoderConfig c) : base(nameof(MaskDecoder))
    {
        config = c;
        query_mlp = new SanMlp(c.InChannels, c.MlpChannels, c.EmbedChannels, c.MlpNumLayers, convolution: false);
        pix_mlp = new SanMlp(c.InChannels, c.MlpChannels, c.EmbedChannels, c.MlpNumLayers, convolution: true);
        attn_mlp = new SanMlp(c.InChannels, c.MlpChannels, c.EmbedChannels * c.TotalHeads * c.TotalLayers, c.MlpNumLayers, convolution: true);
        bias_scaling = c.RescaleAttnBias ? Linear(1, 1) : null;
        RegisterComponents();
    }

    /// <summary>Mask logits (B, Q, h, w) and the query embeddings (B, Q, E) the attention bias needs.</summary>
    public (Tensor MaskPreds, Tensor Query) Masks(Tensor query, Tensor x)
    {
        using var scope = NewDisposeScope();
        var q = query_mlp.Forward(query);
        var pix = pix_mlp.Forward(x);
        long b = pix.shape[0], c = pix.shape[1], h = pix.shape[2], w = pix.shape[3];
        var masks = q.matmul(pix.view(b, c, h * w)).view(b, q.shape[1], h, w);
        return (masks.MoveToOuterDisposeScope(), q.MoveToOuterDisposeScope());
    }

    /// <summary>The attention biases, one (B, heads, Q, h, w) per layer, from the query embeddings and the side features.</summary>
    public List<Tensor> AttentionBiases(Tensor queryEmbedding, Tensor x)
    {
        using var scope = NewDisposeScope();
        var attn = attn_mlp.Forward(x);
        long b = attn.shape[0], h = attn.shape[2], w = attn.shape[3], e = config.EmbedChannels, n = config.TotalHeads, l = config.TotalLayers;
        long queries = queryEmbedding.shape[1];
        // einsum("bqc,blnchw->blnqhw") as one batched product.
        var bias = queryEmbedding.unsqueeze(1).matmul(attn.view(b, l * n, e, h * w)).view(b, l, n, queries, h, w);
        if (bias_scaling is not null) bias = functional.linear(bias.unsqueeze(-1), bias_scaling.weight!, bias_scaling.bias).squeeze(-1);
        var result = new List<Tensor>();
        for (int i = 0; i < l; i++) result.Add(bias.select(1, i).MoveToOuterDisposeScope());
        return result;
    }
}

/// <summary>
/// SAN's <c>RegionwiseSideAdapterNetwork</c> (<c>side_adapter_network</c>): query tokens and the
/// side ViT's patch tokens, CLIP features added after the blocks <c>fusion_map</c> names, and the
/// mask decoder on the last deep-supervision block's output.
/// </summary>
internal sealed class SideAdapterNetwork : Module
{
    private readonly Parameter query_embed;
    private readonly Parameter query_pos_embed;
    private readonly SideVit vit_model;
    private readonly FusionLayers fusion_layers;
    private readonly MaskDecoder mask_decoder;
    private readonly SanConfig config;

    public SideAdapterNetwork(SanConfig c) : base(nameof(SideAdapterNetwork))
    {
        config = c;
        query_embed = new Parameter(Times(randn(1, c.NumQueries, c.Side.EmbedDim), 0.02));
        query_pos_embed = new Parameter(Times(randn(1, c.NumQueries, c.Side.EmbedDim), 0.02));
        vit_model = new SideVit(c.Side);
        fusion_layers = new FusionLayers(c.FusionLayers);
        mask_decoder = new MaskDecoder(c.MaskDecoder);
        RegisterComponents();
    }

    public MaskDecoder Decoder => mask_decoder;

    /// <summary>
    /// The decoder's inputs: query tokens (B, Q, C) and patch tokens as (B, C, h, w), after side
    /// block <see cref="SanConfig.DecodeIndex"/> (later blocks cannot change the result and are not run).
    /// </summary>
    /// <param name="clipMaps">CLIP feature maps (B, D, hc, wc) by feature index.</param>
    /// <param name="trace">When given, receives side_patch_embed, side_fuse_out.i and side_block.i as the reference names them.</param>
    public (Tensor Query, Tensor X) Features(Tensor image, IReadOnlyDictionary<int, Tensor> clipMaps, Dictionary<string, Tensor>? trace)
    {
        using var scope = NewDisposeScope();
        var tokens = vit_model.PatchEmbed.Forward(image, out long h, out long w);
        long b = tokens.shape[0], q = config.NumQueries, c = tokens.shape[2];
        Keep(trace, "side_patch_embed", tokens);
        var pos = cat([query_pos_embed, vit_model.PositionalEmbedding(h, w)], 1);
        var x = Plus(cat([query_embed.expand(b, q, c), tokens], 1), pos);
        x = Fuse(0, x, clipMaps, h, w, trace);
        int last = config.DecodeIndex;
        for (int i = 1; i <= last; i++)
        {
            x = vit_model[i - 1].Forward(x);
            Keep(trace, $"side_block.{i}", x);
            x = Fuse(i, x, clipMaps, h, w, trace);
            if (i < vit_model.Depth && i < last) x = Plus(x, pos);
        }
        var query = x.narrow(1, 0, q);
        var patches = x.narrow(1, q, h * w).permute(0, 2, 1).reshape(b, c, h, w);
        return (query.MoveToOuterDisposeScope(), patches.MoveToOuterDisposeScope());
    }

    private Tensor Fuse(int index, Tensor x, IReadOnlyDictionary<int, Tensor> clipMaps, long h, long w, Dictionary<string, Tensor>? trace)
    {
        if (!config.FusionMap.TryGetValue(index, out int source)) return x;
        long q = config.NumQueries;
        var fused = fusion_layers[index].Forward(x.narrow(1, q, h * w), clipMaps[source], h, w);
        var result = cat([x.narrow(1, 0, q), fused], 1);
        Keep(trace, $"side_fuse_out.{index}", result);
        return result;
    }

    private static void Keep(Dictionary<string, Tensor>? trace, string name, Tensor t)
    {
        if (trace is not null) trace[name] = t.detach().clone().MoveToOuterDisposeScope();
    }
}
