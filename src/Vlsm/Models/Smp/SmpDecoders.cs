using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Tensors;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Vlsm.Models.Smp;

#pragma warning disable IDE1006 // field names are smp's state-dict keys

/// <summary>A decoder: the encoder's six features in, the head's input out; named intermediates on request (for verification).</summary>
internal interface ISmpDecoder
{
    Tensor Forward(IReadOnlyList<Tensor> features, IDictionary<string, Tensor>? intermediates);
}

/// <summary>
/// smp's Unet <c>DecoderBlock</c>: nearest x2 upsampling, concatenation with the skip (upsampled
/// first), then two 3x3 conv-BN-ReLU (<c>conv1</c>, <c>conv2</c>; no attention).
/// </summary>
internal sealed class UnetBlock : Module<Tensor, Tensor?, Tensor>
{
    private readonly ConvBnAct conv1, conv2;

    public UnetBlock(int inChannels, int skipChannels, int outChannels) : base(nameof(UnetBlock))
    {
        conv1 = new ConvBnAct(inChannels + skipChannels, outChannels, 3, padding: 1);
        conv2 = new ConvBnAct(outChannels, outChannels, 3, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? skip)
    {
        using var scope = NewDisposeScope();
        var h = functional.interpolate(x, [x.shape[2] * 2, x.shape[3] * 2], mode: InterpolationMode.Nearest);
        if (skip is not null) h = cat([h, skip], 1);
        return conv2.call(conv1.call(h)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// smp's <c>UnetDecoder</c> (<c>decoder.blocks.0..4</c>; the center is the identity for ResNets):
/// from the deepest feature up, each block doubles the resolution and takes the next shallower
/// feature as its skip; the last block has none.
/// </summary>
internal sealed class UnetDecoder : nn.Module, ISmpDecoder
{
    private readonly ModuleList<UnetBlock> blocks;

    public UnetDecoder(IReadOnlyList<int> encoderChannels, IReadOnlyList<int> decoderChannels) : base(nameof(UnetDecoder))
    {
        // Features reversed without the input: f5, f4, f3, f2, f1.
        var reversed = encoderChannels.Skip(1).Reverse().ToArray();
        var skips = reversed.Skip(1).Append(0).ToArray();
        blocks = new ModuleList<UnetBlock>();
        for (int i = 0; i < decoderChannels.Count; i++)
            blocks.Add(new UnetBlock(i == 0 ? reversed[0] : decoderChannels[i - 1], skips[i], decoderChannels[i]));
        RegisterComponents();
    }

    public Tensor Forward(IReadOnlyList<Tensor> features, IDictionary<string, Tensor>? intermediates)
    {
        using var scope = NewDisposeScope();
        var x = features[5];
        for (int i = 0; i < blocks.Count; i++)
        {
            x = blocks[i].call(x, i < 4 ? features[4 - i] : null);
            if (i < blocks.Count - 1 && intermediates is not null) intermediates[$"decoder.blocks.{i}"] = x.DetachFromDisposeScope();
        }
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// smp's <c>UnetPlusPlusDecoder</c>: a ModuleDict of nested <see cref="UnetBlock"/>s named
/// <c>x_{depth}_{layer}</c>. Node x_d_l (l = d..3) upsamples x_d_{l-1} (the encoder feature d for
/// l = d) and concatenates x_{d+1}_l ... x_l_l and the encoder feature l + 1, in that order; x_0_4
/// upsamples x_0_3 alone.
/// </summary>
internal sealed class UnetPlusPlusDecoder : nn.Module, ISmpDecoder
{
    private readonly ModuleDict<UnetBlock> blocks;
    private const int Depth = 4;

    public UnetPlusPlusDecoder(IReadOnlyList<int> encoderChannels, IReadOnlyList<int> decoderChannels) : base(nameof(UnetPlusPlusDecoder))
    {
        var reversed = encoderChannels.Skip(1).Reverse().ToArray();
        int[] inChannels = [reversed[0], .. decoderChannels.Take(4)];
        int[] skipChannels = [.. reversed.Skip(1), 0];
        blocks = new ModuleDict<UnetBlock>();
        for (int layer = 0; layer < Depth; layer++)
        {
            for (int depth = 0; depth <= layer; depth++)
            {
                var (inCh, skipCh, outCh) = depth == 0
                    ? (inChannels[layer], skipChannels[layer] * (layer + 1), decoderChannels[layer])
                    : (skipChannels[layer - 1], skipChannels[layer] * (layer + 1 - depth), skipChannels[layer]);
                blocks.Add(Name(depth, layer), new UnetBlock(inCh, skipCh, outCh));
            }
        }
        blocks.Add(Name(0, Depth), new UnetBlock(inChannels[Depth], 0, decoderChannels[Depth]));
        RegisterComponents();
    }

    private static string Name(int depth, int layer) => $"x_{depth}_{layer}";

    public Tensor Forward(IReadOnlyList<Tensor> encoderFeatures, IDictionary<string, Tensor>? intermediates)
    {
        using var scope = NewDisposeScope();
        var f = Enumerable.Range(1, 5).Select(i => encoderFeatures[6 - i]).ToArray(); // f5, f4, f3, f2, f1
        var dense = new Dictionary<string, Tensor>();
        for (int layer = 0; layer < Depth; layer++)
        {
            for (int depth = 0; depth < Depth - layer; depth++)
            {
                if (layer == 0)
                {
                    dense[Name(depth, depth)] = blocks[Name(depth, depth)].call(f[depth], f[depth + 1]);
                    continue;
                }
                int l = depth + layer;
                var skip = cat(Enumerable.Range(depth + 1, l - depth).Select(d => dense[Name(d, l)]).Append(f[l + 1]).ToArray(), 1);
                dense[Name(depth, l)] = blocks[Name(depth, l)].call(dense[Name(depth, l - 1)], skip);
            }
        }
        var output = blocks[Name(0, Depth)].call(dense[Name(0, Depth - 1)], null);
        if (intermediates is not null)
            foreach (var (name, t) in dense) intermediates[$"decoder.blocks.{name}"] = t.DetachFromDisposeScope();
        return output.MoveToOuterDisposeScope();
    }
}

/// <summary>smp's <c>SeparableConv2d</c>: a depthwise conv ("0", groups = in, no bias) then a 1x1 pointwise conv ("1", no bias).</summary>
internal sealed class SeparableConv : SequentialBlock
{
    private readonly SafeConv2d depthwise, pointwise;

    public SeparableConv(int inChannels, int outChannels, int kernel, int padding, int dilation) : base(nameof(SeparableConv))
    {
        depthwise = new SafeConv2d(inChannels, inChannels, kernel, padding: padding, dilation: dilation, groups: inChannels, bias: false);
        pointwise = new SafeConv2d(inChannels, outChannels, 1, bias: false);
        Child(0, depthwise);
        Child(1, pointwise);
    }

    public override Tensor forward(Tensor x)
    {
        using var d = depthwise.call(x);
        return pointwise.call(d);
    }
}

/// <summary>A <see cref="SeparableConv"/> ("0"), BatchNorm ("1"), ReLU: smp's <c>ASPPSeparableConv</c> and DeepLabV3+'s <c>block2</c>.</summary>
internal sealed class SeparableConvBnRelu : SequentialBlock
{
    private readonly SeparableConv conv;
    private readonly BatchNorm2d bn;

    public SeparableConvBnRelu(int inChannels, int outChannels, int padding, int dilation) : base(nameof(SeparableConvBnRelu))
    {
        conv = new SeparableConv(inChannels, outChannels, 3, padding, dilation);
        bn = BatchNorm2d(outChannels);
        Child(0, conv);
        Child(1, bn);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return functional.relu(bn.call(conv.call(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// smp's <c>ASPPPooling</c>: global average pooling ("0", no weights), 1x1 conv ("1"), BatchNorm
/// ("2"), ReLU, then the 1x1 map spread back over the input's size (the reference's bilinear
/// interpolation of a single pixel, which copies it).
/// </summary>
internal sealed class AsppPooling : SequentialBlock
{
    private readonly SafeConv2d conv;
    private readonly BatchNorm2d bn;

    public AsppPooling(int inChannels, int outChannels) : base(nameof(AsppPooling))
    {
        conv = new SafeConv2d(inChannels, outChannels, 1, bias: false);
        bn = BatchNorm2d(outChannels);
        Child(1, conv);
        Child(2, bn);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var pooled = conv.call(functional.adaptive_avg_pool2d(x, [1, 1]));
        // PyTorch refuses batch statistics of one value per channel (a training batch of one image):
        // such a batch is normalised with the running statistics, which it leaves unchanged.
        var normalised = training && pooled.shape[0] == 1
            ? functional.batch_norm(pooled, bn.running_mean, bn.running_var, bn.weight, bn.bias, training: false, eps: bn.eps)
            : bn.call(pooled);
        return functional.relu(normalised).expand(-1, -1, x.shape[2], x.shape[3]).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// smp's <c>ASPP</c> with separable convolutions (<c>decoder.aspp.0</c>): a 1x1 branch, three
/// dilated separable branches, the image-pooling branch (<c>convs.0..4</c>), concatenated in that
/// order and projected by a 1x1 conv-BN-ReLU with dropout 0.5 (<c>project</c>).
/// </summary>
internal sealed class Aspp : nn.Module
{
    private readonly ModuleList<Module<Tensor, Tensor>> convs;
    private readonly ConvBnAct project;

    public Aspp(int inChannels, int outChannels, IReadOnlyList<int> rates) : base(nameof(Aspp))
    {
        convs = new ModuleList<Module<Tensor, Tensor>>();
        convs.Add(new ConvBnAct(inChannels, outChannels, 1));
        foreach (int rate in rates) convs.Add(new SeparableConvBnRelu(inChannels, outChannels, rate, rate));
        convs.Add(new AsppPooling(inChannels, outChannels));
        project = new ConvBnAct(5 * outChannels, outChannels, 1);
        RegisterComponents();
    }

    public const double Dropout = 0.5;

    public Tensor Forward(Tensor x, IDictionary<string, Tensor>? intermediates)
    {
        using var scope = NewDisposeScope();
        var branches = convs.Select(c => c.call(x)).ToArray();
        if (intermediates is not null)
            for (int i = 0; i < branches.Length; i++) intermediates[$"decoder.aspp.0.convs.{i}"] = branches[i].contiguous().DetachFromDisposeScope();
        var projected = functional.dropout(project.call(cat(branches, 1)), Dropout, training);
        return projected.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// <c>decoder.aspp</c> of DeepLabV3+: the ASPP ("0"), a separable 3x3 ("1"), BatchNorm ("2"), ReLU.
/// </summary>
internal sealed class AsppStack : SequentialBlock
{
    private readonly Aspp aspp;
    private readonly SeparableConv conv;
    private readonly BatchNorm2d bn;

    public AsppStack(int inChannels, int outChannels, IReadOnlyList<int> rates) : base(nameof(AsppStack))
    {
        aspp = new Aspp(inChannels, outChannels, rates);
        conv = new SeparableConv(outChannels, outChannels, 3, 1, 1);
        bn = BatchNorm2d(outChannels);
        Child(0, aspp);
        Child(1, conv);
        Child(2, bn);
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    public Tensor Forward(Tensor x, IDictionary<string, Tensor>? intermediates)
    {
        using var scope = NewDisposeScope();
        var a = aspp.Forward(x, intermediates);
        if (intermediates is not null) intermediates["decoder.aspp.0"] = a.DetachFromDisposeScope();
        return functional.relu(bn.call(conv.call(a))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// smp's <c>DeepLabV3PlusDecoder</c>: the ASPP stack on the deepest feature, bilinear upsampling
/// with align_corners (x4 at output stride 16, x2 at 8; <c>up</c>, no weights), the stride-4 feature
/// through a 1x1 conv-BN-ReLU to 48 channels (<c>block1</c>), concatenated after the ASPP output and
/// fused by a separable 3x3 conv-BN-ReLU (<c>block2</c>).
/// </summary>
internal sealed class DeepLabV3PlusDecoder : nn.Module, ISmpDecoder
{
    /// <summary>Channels of the high-resolution branch, fixed by the paper.</summary>
    public const int HighResChannels = 48;

    private readonly AsppStack aspp;
    private readonly ConvBnAct block1;
    private readonly SeparableConvBnRelu block2;
    private readonly int upScale;

    public DeepLabV3PlusDecoder(IReadOnlyList<int> encoderChannels, int channels, IReadOnlyList<int> rates, int outputStride) : base(nameof(DeepLabV3PlusDecoder))
    {
        aspp = new AsppStack(encoderChannels[^1], channels, rates);
        block1 = new ConvBnAct(encoderChannels[^4], HighResChannels, 1);
        block2 = new SeparableConvBnRelu(channels + HighResChannels, channels, 1, 1);
        upScale = outputStride == 8 ? 2 : 4;
        RegisterComponents();
    }

    public Tensor Forward(IReadOnlyList<Tensor> features, IDictionary<string, Tensor>? intermediates)
    {
        using var scope = NewDisposeScope();
        var a = aspp.Forward(features[^1], intermediates);
        // nn.UpsamplingBilinear2d: bilinear with align_corners=True.
        var up = functional.interpolate(a, [a.shape[2] * upScale, a.shape[3] * upScale], mode: InterpolationMode.Bilinear, align_corners: true);
        var high = block1.call(features[^4]);
        if (intermediates is not null)
        {
            intermediates["decoder.aspp"] = a.DetachFromDisposeScope();
            intermediates["decoder.up"] = up.DetachFromDisposeScope();
            intermediates["decoder.block1"] = high.DetachFromDisposeScope();
        }
        return block2.call(cat([up, high], 1)).MoveToOuterDisposeScope();
    }
}
