using TorchSharp;
using TorchSharp.Modules;
using Vlsm.Tensors;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Models.Smp;

// Field and child names are smp's (torchvision's) state-dict keys, hence the snake_case and the
// "0"/"1" children of what are nn.Sequential blocks in Python.
#pragma warning disable IDE1006

/// <summary>
/// A block smp or torchvision writes as <c>nn.Sequential</c>: children are registered by hand under
/// their indices, so its fields do not become keys under their own names.
/// </summary>
internal abstract class SequentialBlock : Module<Tensor, Tensor>
{
    protected SequentialBlock(string name) : base(name) { }

    protected override void RegisterComponents()
    {
    }

    protected void Child(int index, Module module) => register_module(index.ToString(System.Globalization.CultureInfo.InvariantCulture), module);
}

/// <summary>Conv2d without bias ("0"), BatchNorm2d ("1"), optionally ReLU: torchvision's <c>downsample</c> and smp's <c>Conv2dReLU</c>.</summary>
internal sealed class ConvBnAct : SequentialBlock
{
    private readonly SafeConv2d conv;
    private readonly BatchNorm2d bn;
    private readonly bool relu;

    public ConvBnAct(long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0, long dilation = 1, bool relu = true) : base(nameof(ConvBnAct))
    {
        conv = new SafeConv2d(inChannels, outChannels, kernel, stride: stride, padding: padding, dilation: dilation, bias: false);
        bn = BatchNorm2d(outChannels);
        this.relu = relu;
        Child(0, conv);
        Child(1, bn);
    }

    public override Tensor forward(Tensor x)
    {
        using var c = conv.call(x);
        var b = bn.call(c);
        if (!relu) return b;
        using (b) return functional.relu(b);
    }
}

/// <summary>
/// torchvision's <c>BasicBlock</c>: 3x3 (stride s), BN, ReLU, 3x3, BN; add the shortcut (1x1 conv
/// and BN when the shape changes); ReLU. With <paramref name="dilation"/> above 1 it is what smp's
/// <c>make_dilated</c> leaves: every convolution at stride 1, the 3x3s dilated with padding equal
/// to the dilation, the downsample kept (its 1x1 only loses the stride).
/// </summary>
internal sealed class BasicBlock : Module<Tensor, Tensor>
{
    private readonly SafeConv2d conv1, conv2;
    private readonly BatchNorm2d bn1, bn2;
    private readonly ConvBnAct? downsample;

    public BasicBlock(int inplanes, int planes, int stride, int dilation) : base(nameof(BasicBlock))
    {
        int s = dilation > 1 ? 1 : stride;
        conv1 = new SafeConv2d(inplanes, planes, 3, stride: s, padding: dilation, dilation: dilation, bias: false);
        bn1 = BatchNorm2d(planes);
        conv2 = new SafeConv2d(planes, planes, 3, padding: dilation, dilation: dilation, bias: false);
        bn2 = BatchNorm2d(planes);
        if (stride != 1 || inplanes != planes) downsample = new ConvBnAct(inplanes, planes, 1, stride: s, relu: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = functional.relu(bn1.call(conv1.call(x)));
        h = bn2.call(conv2.call(h));
        var identity = downsample is null ? x : downsample.call(x);
        return functional.relu(Plus(h, identity)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// torchvision's <c>Bottleneck</c> ("v1.5", the stride on the 3x3): 1x1, BN, ReLU, 3x3 (stride s),
/// BN, ReLU, 1x1 (x4), BN; add the shortcut; ReLU. Dilation as in <see cref="BasicBlock"/>.
/// </summary>
internal sealed class Bottleneck : Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly SafeConv2d conv1, conv2, conv3;
    private readonly BatchNorm2d bn1, bn2, bn3;
    private readonly ConvBnAct? downsample;

    public Bottleneck(int inplanes, int planes, int stride, int dilation) : base(nameof(Bottleneck))
    {
        int s = dilation > 1 ? 1 : stride;
        conv1 = new SafeConv2d(inplanes, planes, 1, bias: false);
        bn1 = BatchNorm2d(planes);
        conv2 = new SafeConv2d(planes, planes, 3, stride: s, padding: dilation, dilation: dilation, bias: false);
        bn2 = BatchNorm2d(planes);
        conv3 = new SafeConv2d(planes, planes * Expansion, 1, bias: false);
        bn3 = BatchNorm2d(planes * Expansion);
        if (stride != 1 || inplanes != planes * Expansion) downsample = new ConvBnAct(inplanes, planes * Expansion, 1, stride: s, relu: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = functional.relu(bn1.call(conv1.call(x)));
        h = functional.relu(bn2.call(conv2.call(h)));
        h = bn3.call(conv3.call(h));
        var identity = downsample is null ? x : downsample.call(x);
        return functional.relu(Plus(h, identity)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// smp's <c>ResNetEncoder</c>: torchvision's ResNet without <c>avgpool</c> and <c>fc</c>, returning
/// six features: the input itself, the stem (conv1, bn1, ReLU; stride 2), then layer1 after the
/// max pool (stride 4) and layers 2-4 (strides 8, 16, 32, or 16 and 16 when dilated).
/// </summary>
internal sealed class ResNetEncoder : nn.Module
{
    private readonly SafeConv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly ModuleList<Module<Tensor, Tensor>> layer1, layer2, layer3, layer4;

    /// <param name="outputStride">32 (Unet, Unet++), or 16 / 8 (DeepLabV3+: the last one or two stages dilated).</param>
    public ResNetEncoder(ResNetEncoderConfig c, int inChannels, int outputStride) : base(nameof(ResNetEncoder))
    {
        conv1 = new SafeConv2d(inChannels, c.StemWidth, 7, stride: 2, padding: 3, bias: false);
        bn1 = BatchNorm2d(c.StemWidth);
        int inplanes = c.StemWidth;
        ModuleList<Module<Tensor, Tensor>> Stage(int planes, int blocks, int stride, int dilation)
        {
            var list = new ModuleList<Module<Tensor, Tensor>>();
            for (int i = 0; i < blocks; i++)
            {
                int s = i == 0 ? stride : 1;
                list.Add(c.Block == ResNetBlock.Bottleneck ? new Bottleneck(inplanes, planes, s, dilation) : new BasicBlock(inplanes, planes, s, dilation));
                inplanes = planes * c.Expansion;
            }
            return list;
        }
        // smp's make_dilated: output stride 16 dilates layer4 by 2; 8 dilates layer3 by 2 and layer4 by 4.
        layer1 = Stage(c.Widths[0], c.Layers[0], 1, 1);
        layer2 = Stage(c.Widths[1], c.Layers[1], 2, 1);
        layer3 = Stage(c.Widths[2], c.Layers[2], 2, outputStride == 8 ? 2 : 1);
        layer4 = Stage(c.Widths[3], c.Layers[3], 2, outputStride switch { 8 => 4, 16 => 2, _ => 1 });
        RegisterComponents();
    }

    /// <summary>The six features (feature 0 is <paramref name="x"/> itself, not a copy).</summary>
    public Tensor[] Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var f1 = functional.relu(bn1.call(conv1.call(x)));
        // Max pooling pads with -inf, as PyTorch's does.
        var h = functional.max_pool2d(f1, 3, 2, 1);
        var f2 = Run(layer1, h);
        var f3 = Run(layer2, f2);
        var f4 = Run(layer3, f3);
        var f5 = Run(layer4, f4);
        return new[] { x.alias(), f1, f2, f3, f4, f5 }.Select(t => t.MoveToOuterDisposeScope()).ToArray();
    }

    private static Tensor Run(ModuleList<Module<Tensor, Tensor>> stage, Tensor h)
    {
        foreach (var block in stage) h = block.call(h);
        return h;
    }
}
