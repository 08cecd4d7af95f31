using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;
using Vlsm.Tensors;

namespace Vlsm.Models.Cris;

#pragma warning disable IDE1006 // field names are the reference's state-dict keys

/// <summary>
/// CRIS's <c>neck</c> (the reference's <c>FPN</c>): the stride-32 map gated by the projected
/// sentence state, fused top-down with the stride-16 and stride-8 maps, aggregated at stride 16,
/// then CoordConv. Output: (B, vis_dim, H/16, W/16).
/// </summary>
public sealed class CrisNeck : nn.Module
{
    private readonly LinearBnRelu txt_proj;
    private readonly ConvBn f1_v_proj;
    private readonly BnRelu norm_layer;
    private readonly ConvBn f2_v_proj, f2_cat, f3_v_proj, f3_cat, f4_proj5, f4_proj4, f4_proj3, aggr;
    private readonly Sequential coordconv;

    public CrisNeck(CrisConfig config) : base(nameof(CrisNeck))
    {
        var i = config.FpnIn;
        var o = config.FpnOut;
        txt_proj = new LinearBnRelu(i[2], o[2]);
        f1_v_proj = new ConvBn(i[2], o[2], 1, 0);
        norm_layer = new BnRelu(o[2]);
        f2_v_proj = new ConvBn(i[1], o[1], 3, 1);
        f2_cat = new ConvBn(o[2] + o[1], o[1], 1, 0);
        f3_v_proj = new ConvBn(i[0], o[0], 3, 1);
        f3_cat = new ConvBn(o[0] + o[1], o[1], 1, 0);
        f4_proj5 = new ConvBn(o[2], o[1], 3, 1);
        f4_proj4 = new ConvBn(o[1], o[1], 3, 1);
        f4_proj3 = new ConvBn(o[1], o[1], 3, 1);
        aggr = new ConvBn(3 * o[1], o[1], 1, 0);
        coordconv = Sequential(new CoordConv(o[1], o[1]), new ConvBn(o[1], o[1], 3, 1));
        RegisterComponents();
    }

    internal static Tensor Upsample2(Tensor x) =>
        functional.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Bilinear, align_corners: false);

    public Tensor Forward(CrisVisionFeatures vision, Tensor state)
    {
        using var scope = NewDisposeScope();
        var gate = txt_proj.call(state).unsqueeze(-1).unsqueeze(-1);
        var f5 = norm_layer.call(f1_v_proj.call(vision.C5).mul(gate));
        var f4 = f2_cat.call(cat([f2_v_proj.call(vision.C4), Upsample2(f5)], 1));
        var f3 = functional.avg_pool2d(f3_v_proj.call(vision.C3), 2, 2);
        f3 = f3_cat.call(cat([f3, f4], 1));
        var fq5 = Upsample2(f4_proj5.call(f5));
        var fq = aggr.call(cat([f4_proj3.call(f3), f4_proj4.call(f4), fq5], 1));
        return coordconv.call(fq).MoveToOuterDisposeScope();
    }
}

/// <summary>The reference's <c>TransformerDecoderLayer</c>, pre-LN, with a LayerNorm after each attention.</summary>
internal sealed class CrisDecoderLayer : nn.Module
{
    private readonly LayerNorm self_attn_norm, cross_attn_norm, norm1, norm2, norm3;
    private readonly PackedAttention self_attn, multihead_attn;
    private readonly Sequential ffn;
    private readonly Dropout dropout1, dropout2, dropout3;

    public CrisDecoderLayer(int dModel, int heads, int dimFfn, double dropout) : base(nameof(CrisDecoderLayer))
    {
        self_attn_norm = LayerNorm(dModel);
        cross_attn_norm = LayerNorm(dModel);
        self_attn = new PackedAttention(dModel, heads, dropout);
        multihead_attn = new PackedAttention(dModel, heads, dropout);
        ffn = Sequential(Linear(dModel, dimFfn), ReLU(), Dropout(dropout), LayerNorm(dimFfn), Linear(dimFfn, dModel));
        norm1 = LayerNorm(dModel);
        norm2 = LayerNorm(dModel);
        norm3 = LayerNorm(dModel);
        dropout1 = Dropout(dropout);
        dropout2 = Dropout(dropout);
        dropout3 = Dropout(dropout);
        RegisterComponents();
    }

    /// <param name="vis">(B, HW, C) visual tokens.</param>
    /// <param name="visPos">(1, HW, C) 2D sine encoding.</param>
    /// <param name="txt">(B, L, C) word features.</param>
    /// <param name="txtPos">(1, L, C) 1D sine encoding.</param>
    /// <param name="padMask">Additive (B, 1, 1, L) mask, or null.</param>
    public Tensor Forward(Tensor vis, Tensor visPos, Tensor txt, Tensor txtPos, Tensor? padMask)
    {
        using var scope = NewDisposeScope();
        var v2 = norm1.call(vis);
        var qk = Plus(v2, visPos);
        vis = Plus(vis, dropout1.call(self_attn_norm.call(self_attn.Forward(qk, qk, v2, null))));
        v2 = norm2.call(vis);
        v2 = multihead_attn.Forward(Plus(v2, visPos), Plus(txt, txtPos), txt, padMask);
        vis = Plus(vis, dropout2.call(cross_attn_norm.call(v2)));
        vis = Plus(vis, dropout3.call(ffn.call(norm3.call(vis))));
        return vis.MoveToOuterDisposeScope();
    }
}

/// <summary>CRIS's <c>decoder</c>: visual tokens attend to themselves and to the words, with sine position encodings.</summary>
public sealed class CrisDecoder : nn.Module
{
    private readonly ModuleList<CrisDecoderLayer> layers;
    private readonly LayerNorm norm;

    public CrisDecoder(CrisConfig c) : base(nameof(CrisDecoder))
    {
        layers = new ModuleList<CrisDecoderLayer>();
        for (int i = 0; i < c.NumLayers; i++) layers.Add(new CrisDecoderLayer(c.VisDim, c.NumHead, c.DimFfn, c.Dropout));
        norm = LayerNorm(c.VisDim);
        RegisterComponents();
    }

    /// <summary>(B, C, H, W) from the neck's map and the words; same shape out.</summary>
    public Tensor Forward(Tensor vis, CrisTextFeatures text)
    {
        using var scope = NewDisposeScope();
        long b = vis.shape[0], c = vis.shape[1], h = vis.shape[2], w = vis.shape[3];
        var visPos = Position2d(c, h, w).to(vis.dtype).unsqueeze(0);
        var txtPos = Position1d(text.Words.shape[2], text.Words.shape[1]).to(vis.dtype).unsqueeze(0);
        var x = vis.flatten(2).transpose(1, 2);
        foreach (var layer in layers) x = layer.Forward(x, visPos, text.Words, txtPos, text.PadMask);
        return norm.call(x).transpose(1, 2).reshape(b, c, h, w).MoveToOuterDisposeScope();
    }

    /// <summary>sin/cos pairs over <paramref name="positions"/> at the reference's frequencies exp(-ln(10000) 2i / dim): (positions, dim).</summary>
    private static Tensor SineTable(long positions, long dim)
    {
        using var scope = NewDisposeScope();
        var div = exp(arange(0, dim, 2, dtype: ScalarType.Float32) * -(Math.Log(10000.0) / dim));
        var angle = arange(0, positions, dtype: ScalarType.Float32).unsqueeze(1) * div;
        return stack([sin(angle), cos(angle)], -1).reshape(positions, dim).MoveToOuterDisposeScope();
    }

    /// <summary>The reference's <c>pos1d</c>: (length, dim), sin at even and cos at odd channels.</summary>
    internal static Tensor Position1d(long dim, long length) => SineTable(length, dim);

    /// <summary>The reference's <c>pos2d</c> as (H*W, dim): the first half encodes x, the second y.</summary>
    internal static Tensor Position2d(long dim, long height, long width)
    {
        using var scope = NewDisposeScope();
        long half = dim / 2;
        var x = SineTable(width, half).unsqueeze(0).expand(height, width, half);
        var y = SineTable(height, half).unsqueeze(1).expand(height, width, half);
        return cat([x, y], 2).reshape(height * width, dim).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// CRIS's <c>proj</c>: the decoder's map upsampled to stride 4, convolved with a 3x3 kernel (and
/// bias) that a linear layer makes from each sample's sentence state. Output: (B, 1, 4H, 4W).
/// </summary>
public sealed class CrisProjector : nn.Module
{
    private readonly Sequential vis;
    private readonly Linear txt;
    private readonly int inDim;

    public CrisProjector(CrisConfig c) : base(nameof(CrisProjector))
    {
        inDim = c.VisDim / 2;
        var up = new[] { 2.0, 2.0 };
        vis = Sequential(
            Upsample(scale_factor: up, mode: UpsampleMode.Bilinear, align_corners: false),
            new ConvBn(inDim * 2, inDim * 2, 3, 1),
            Upsample(scale_factor: up, mode: UpsampleMode.Bilinear, align_corners: false),
            new ConvBn(inDim * 2, inDim, 3, 1),
            new SafeConv2d(inDim, inDim, 1));
        txt = Linear(c.WordDim, inDim * CrisConfig.KernelSize * CrisConfig.KernelSize + 1);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor state)
    {
        using var scope = NewDisposeScope();
        var v = vis.call(x);
        long b = v.shape[0], c = v.shape[1], h = v.shape[2], w = v.shape[3];
        var kernel = txt.call(state);
        var weight = kernel.narrow(1, 0, kernel.shape[1] - 1).reshape(b, c, CrisConfig.KernelSize, CrisConfig.KernelSize);
        var bias = kernel.select(1, kernel.shape[1] - 1);
        // Every sample's map is one group of a single grouped convolution, with its own kernel.
        var output = SafeConvolution.Conv2d(v.reshape(1, b * c, h, w), weight, bias, ConvolutionGeometry.Square(padding: CrisConfig.KernelSize / 2, groups: b));
        return output.transpose(0, 1).MoveToOuterDisposeScope();
    }
}
