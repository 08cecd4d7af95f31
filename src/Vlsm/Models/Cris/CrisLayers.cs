using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using Vlsm.Tensors;

namespace Vlsm.Models.Cris;

// Field and child names in the CRIS files are the reference's state-dict keys, hence the snake_case
// and the "0"/"1" children of what are nn.Sequential blocks in Python.
#pragma warning disable IDE1006

/// <summary>
/// A block the reference writes as <c>nn.Sequential</c>: its children are registered by hand under
/// their indices ("0", "1") and its fields are not registered under their own names.
/// </summary>
internal abstract class IndexedBlock : Module<Tensor, Tensor>
{
    protected IndexedBlock(string name) : base(name) { }

    protected override void RegisterComponents()
    {
    }
}

/// <summary>
/// The reference's <c>conv_layer</c> (Conv2d without bias "0", BatchNorm2d "1", ReLU) and, without
/// the ReLU, CLIP's <c>downsample</c> and the attention pool's <c>connect</c> branches.
/// </summary>
internal sealed class ConvBn : IndexedBlock
{
    private readonly SafeConv2d conv;
    private readonly BatchNorm2d bn;
    private readonly bool relu;

    public ConvBn(long inChannels, long outChannels, long kernel, long padding = 0, bool relu = true) : base(nameof(ConvBn))
    {
        conv = new SafeConv2d(inChannels, outChannels, kernel, padding: padding, bias: false);
        bn = BatchNorm2d(outChannels);
        this.relu = relu;
        register_module("0", conv);
        register_module("1", bn);
    }

    public override Tensor forward(Tensor x)
    {
        using var c = conv.call(x);
        var b = bn.call(c);
        if (!relu) return b;
        using (b) return functional.relu(b);
    }
}

/// <summary>The reference's <c>linear_layer</c>: Linear without bias "0", BatchNorm1d "1", ReLU.</summary>
internal sealed class LinearBnRelu : IndexedBlock
{
    private readonly Linear linear;
    private readonly BatchNorm1d bn;

    public LinearBnRelu(long inFeatures, long outFeatures) : base(nameof(LinearBnRelu))
    {
        linear = Linear(inFeatures, outFeatures, hasBias: false);
        bn = BatchNorm1d(outFeatures);
        register_module("0", linear);
        register_module("1", bn);
    }

    public override Tensor forward(Tensor x)
    {
        using var l = linear.call(x);
        // PyTorch refuses batch statistics of a single sample; a one-sample training batch (the
        // last of an epoch) is normalised with the running statistics instead, which it leaves as they are.
        using var b = training && l.shape[0] == 1
            ? functional.batch_norm(l, bn.running_mean, bn.running_var, bn.weight, bn.bias, training: false, eps: bn.eps)
            : bn.call(l);
        return functional.relu(b);
    }
}

/// <summary>The neck's <c>norm_layer</c>: BatchNorm2d "0", ReLU.</summary>
internal sealed class BnRelu : IndexedBlock
{
    private readonly BatchNorm2d bn;

    public BnRelu(long channels) : base(nameof(BnRelu))
    {
        bn = BatchNorm2d(channels);
        register_module("0", bn);
    }

    public override Tensor forward(Tensor x)
    {
        using var b = bn.call(x);
        return functional.relu(b);
    }
}

/// <summary>
/// <c>nn.MultiheadAttention</c>'s parameters (packed <c>in_proj_weight</c>/<c>in_proj_bias</c>,
/// <c>out_proj</c>) computed batch-first: (B, L, E) in and out. Dropout on the attention weights in training.
/// </summary>
internal sealed class PackedAttention : nn.Module
{
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
    private readonly int heads;
    private readonly double dropout;

    public PackedAttention(int embedDim, int heads, double dropout = 0) : base(nameof(PackedAttention))
    {
        this.heads = heads;
        this.dropout = dropout;
        in_proj_weight = new Parameter(empty(3L * embedDim, embedDim));
        in_proj_bias = new Parameter(zeros(3L * embedDim));
        out_proj = Linear(embedDim, embedDim);
        using (no_grad())
        {
            init.xavier_uniform_(in_proj_weight);
            out_proj.bias!.zero_();
        }
        RegisterComponents();
    }

    /// <param name="mask">Additive mask broadcastable to (B, heads, Lq, Lk), or null.</param>
    public Tensor Forward(Tensor query, Tensor key, Tensor value, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long b = query.shape[0], lq = query.shape[1], lk = key.shape[1], e = query.shape[2], hd = e / heads;
        var w = in_proj_weight.chunk(3);
        var bias = in_proj_bias.chunk(3);
        var q = functional.linear(query, w[0], bias[0]).view(b, lq, heads, hd).transpose(1, 2);
        var k = functional.linear(key, w[1], bias[1]).view(b, lk, heads, hd).transpose(1, 2);
        var v = functional.linear(value, w[2], bias[2]).view(b, lk, heads, hd).transpose(1, 2);
        var o = functional.scaled_dot_product_attention(q, k, v, mask, p: training ? dropout : 0);
        return out_proj.forward(o.transpose(1, 2).reshape(b, lq, e)).MoveToOuterDisposeScope();
    }
}

/// <summary>The reference's <c>CoordConv</c>: x and y coordinates in [-1, 1] appended as two channels, then <c>conv1</c>.</summary>
internal sealed class CoordConv : Module<Tensor, Tensor>
{
    private readonly ConvBn conv1;

    public CoordConv(long inChannels, long outChannels) : base(nameof(CoordConv))
    {
        conv1 = new ConvBn(inChannels + 2, outChannels, 3, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        long b = input.shape[0], h = input.shape[2], w = input.shape[3];
        var x = linspace(-1, 1, w, dtype: input.dtype).view(1, 1, 1, w).expand(b, 1, h, w);
        var y = linspace(-1, 1, h, dtype: input.dtype).view(1, 1, h, 1).expand(b, 1, h, w);
        return conv1.call(cat([input, x, y], 1)).MoveToOuterDisposeScope();
    }
}
