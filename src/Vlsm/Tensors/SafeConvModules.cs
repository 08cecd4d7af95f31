using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Vlsm.Tensors;

#pragma warning disable IDE1006 // weight/bias are PyTorch's state-dict names

/// <summary>
/// A convolution layer through <see cref="SafeConvolution"/>, with PyTorch's parameter names
/// (<c>weight</c>, optional <c>bias</c>) and TorchSharp's initialisation (Kaiming uniform with
/// a = sqrt(5), bias uniform in ±1/sqrt(fan_in)), so state dicts and seeded random weights are those
/// of <c>nn.Conv2d</c> and <c>nn.ConvTranspose2d</c>.
/// </summary>
public abstract class SafeConvolutionLayer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter? bias;

    protected SafeConvolutionLayer(string name, long[] weightShape, long outChannels, bool bias, ConvolutionGeometry geometry) : base(name)
    {
        Geometry = geometry;
        weight = new Parameter(empty(weightShape));
        this.bias = bias ? new Parameter(empty(outChannels)) : null;
        using (no_grad())
        {
            nn.init.kaiming_uniform_(weight, Math.Sqrt(5));
            var (fanIn, _) = nn.init.CalculateFanInAndFanOut(weight);
            if (this.bias is not null && fanIn != 0) nn.init.uniform_(this.bias, -1 / Math.Sqrt(fanIn), 1 / Math.Sqrt(fanIn));
        }
        RegisterComponents();
    }

    public ConvolutionGeometry Geometry { get; }

    public Parameter Weight => weight;

    public Parameter? Bias => bias;

    protected static void CheckGroups(string kind, long inChannels, long outChannels, long groups)
    {
        if (groups < 1 || inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"{kind}: {inChannels} input and {outChannels} output channels are not divisible by {groups} groups.");
    }
}

/// <summary><c>nn.Conv2d</c> (square kernel): <c>weight</c> is (out, in / groups, k, k).</summary>
public sealed class SafeConv2d : SafeConvolutionLayer
{
    public SafeConv2d(long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0, long dilation = 1, long groups = 1, bool bias = true)
        : base(nameof(SafeConv2d), [outChannels, inChannels / Math.Max(groups, 1), kernel, kernel], outChannels, bias, ConvolutionGeometry.Square(stride, padding, dilation, groups)) =>
        CheckGroups("Conv2d", inChannels, outChannels, groups);

    public override Tensor forward(Tensor input) => SafeConvolution.Conv2d(input, Weight, Bias, Geometry);
}

/// <summary><c>nn.ConvTranspose2d</c> (square kernel): <c>weight</c> is (in, out / groups, k, k).</summary>
public sealed class SafeConvTranspose2d : SafeConvolutionLayer
{
    public SafeConvTranspose2d(long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0, long outputPadding = 0, long dilation = 1, long groups = 1, bool bias = true)
        : base(nameof(SafeConvTranspose2d), [inChannels, outChannels / Math.Max(groups, 1), kernel, kernel], outChannels, bias, ConvolutionGeometry.Square(stride, padding, dilation, groups, outputPadding)) =>
        CheckGroups("ConvTranspose2d", inChannels, outChannels, groups);

    public override Tensor forward(Tensor input) => SafeConvolution.ConvTranspose2d(input, Weight, Bias, Geometry);
}
