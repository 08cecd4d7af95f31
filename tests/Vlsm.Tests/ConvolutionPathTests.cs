using Vlsm.Tensors;
using static TorchSharp.torch;
using Xunit.Abstractions;

namespace Vlsm.Tests;

/// <summary>
/// The convolution path against float64 on random shapes, forward and backward: every channel
/// count from 1 to 130 and 514 occurs, with strides, paddings, dilations, groups, transposed
/// kernels and whole-input kernels. It checks the path this CPU uses and the channel-padded path
/// (which every CPU may be given), so a machine without the bug still tests the workaround.
/// </summary>
/// <remarks>Seeds libtorch's global generator and compares draws: runs alone (another test drawing meanwhile changed them).</remarks>
[Collection(GlobalRngCollection.Name)]
public class ConvolutionPathTests
{
    /// <summary>Relative to each tensor's largest magnitude; float32 itself is near 1e-6 on these sizes.</summary>
    public const double Tolerance = 1e-5;

    private readonly ITestOutputHelper output;

    public ConvolutionPathTests(ITestOutputHelper output) => this.output = output;

    [Fact]
    public void ReferenceConvolutionAgreesWithLibTorchInFloat64()
    {
        manual_seed(3);
        foreach (var (inShape, weightShape, g, transposed) in new (long[], long[], ConvolutionGeometry, bool)[]
        {
            ([2, 5, 9, 11], [7, 5, 3, 3], ConvolutionGeometry.Square(padding: 1), false),
            ([2, 6, 13, 10], [4, 3, 3, 2], new ConvolutionGeometry(2, 1, 1, 0, 2, 1, Groups: 2), false),
            ([1, 4, 8, 8], [4, 1, 3, 3], ConvolutionGeometry.Square(padding: 2, dilation: 2, groups: 4), false),
            ([2, 6, 5, 7], [6, 3, 4, 4], ConvolutionGeometry.Square(stride: 4), true),
            ([2, 4, 5, 6], [4, 2, 3, 3], new ConvolutionGeometry(2, 3, 1, 0, Groups: 2, OutputPadH: 1, OutputPadW: 2), true),
            ([2, 3, 6, 6], [3, 2, 3, 3], ConvolutionGeometry.Square(stride: 1, padding: 2, dilation: 2), true),
        })
        {
            var x = randn(inShape, dtype: ScalarType.Float64);
            var w = randn(weightShape, dtype: ScalarType.Float64);
            long outChannels = transposed ? weightShape[1] * g.Groups : weightShape[0];
            var b = randn([outChannels], dtype: ScalarType.Float64);
            var expected = transposed
                ? nn.functional.conv_transpose2d(x, w, b, g.Strides, g.Paddings, g.OutputPaddings, g.Dilations, g.Groups)
                : nn.functional.conv2d(x, w, b, g.Strides, g.Paddings, g.Dilations, g.Groups);
            var actual = transposed ? ReferenceConvolution.ConvTranspose2d(x, w, b, g) : ReferenceConvolution.Conv2d(x, w, b, g);
            Assert.Equal(expected.shape, actual.shape);
            Assert.True(ConvolutionCheck.Relative(actual, expected) < 1e-12, $"{g} transposed {transposed}");
        }
    }

    [Fact]
    public void RandomShapesMatchFloat64ForwardAndBackward()
    {
        var rng = new Random(20261128);
        int checkedShapes = 0;
        var failures = new List<string>();
        while (checkedShapes < 150)
        {
            var call = RandomCall(rng);
            if (call is null) continue;
            checkedShapes++;
            foreach (var path in Paths())
            {
                var errors = ConvolutionCheck.Run(call, path, (ulong)checkedShapes);
                if (!(errors.Max <= Tolerance)) failures.Add($"{SafeConvolution.Name(path)}: {call.Key}: {errors}");
            }
        }
        foreach (var f in failures) output.WriteLine(f);
        Assert.True(failures.Count == 0, $"{failures.Count} failures, first: {failures.FirstOrDefault()}");
    }

    [Fact]
    public void StrideEqualToKernelTransposedConvolutionsMatchFloat64()
    {
        // Each input pixel paints its own block: CLIPSeg's upsampling layers, no bias, a rectangular
        // kernel, 1x1, and 33 channels (not a multiple of anything); on both paths.
        var calls = new ConvolutionCall[]
        {
            new([4, 64, 22, 22], [64, 32, 4, 4], true, ConvolutionGeometry.Square(stride: 4), true, ScalarType.Float32),
            new([4, 32, 88, 88], [32, 1, 4, 4], true, ConvolutionGeometry.Square(stride: 4), true, ScalarType.Float32),
            new([2, 20, 5, 7], [20, 8, 2, 2], false, ConvolutionGeometry.Square(stride: 2), true, ScalarType.Float32),
            new([2, 6, 5, 4], [6, 3, 2, 3], true, new ConvolutionGeometry(StrideH: 2, StrideW: 3), true, ScalarType.Float32),
            new([3, 33, 6, 6], [33, 17, 1, 1], true, ConvolutionGeometry.Square(), true, ScalarType.Float32),
        };
        foreach (var call in calls)
            foreach (var path in new[] { ConvolutionPath.Direct, ConvolutionPath.ChannelPadded })
            {
                var errors = ConvolutionCheck.Run(call, path, (ulong)call.InputShape[1]);
                Assert.True(errors.Max <= Tolerance, $"{SafeConvolution.Name(path)}: {call.Key}: {errors}");
            }
    }

    [Fact]
    public void TheBugsOwnShapesAreRightOnThePaddedPath()
    {
        // The shapes of the sweep (wrong by 0.26 to 1.8 with oneDNN on Zen 5) and CRIS's CoordConv.
        foreach (long inChannels in new long[] { 17, 33, 65, 66, 130, 258, 514 })
        {
            var call = new ConvolutionCall([2, inChannels, 12, 12], [64, inChannels, 3, 3], false, ConvolutionGeometry.Square(padding: 1), false, ScalarType.Float32);
            var errors = ConvolutionCheck.Run(call, ConvolutionPath.ChannelPadded, (ulong)inChannels);
            Assert.True(errors.Max <= Tolerance, $"{inChannels} input channels: {errors}");
        }
    }

    [Fact]
    public void PaddingChangesNoParameterOrOutputShape()
    {
        var conv = new SafeConv2d(66, 17, 3, padding: 1);
        Assert.Equal(new long[] { 17, 66, 3, 3 }, conv.Weight.shape);
        Assert.Equal(new[] { "weight", "bias" }, conv.state_dict().Keys.ToArray());
        using var y = SafeConvolution.Conv2d(ones(2, 66, 5, 5), conv.Weight, conv.Bias, conv.Geometry, ConvolutionPath.ChannelPadded);
        Assert.Equal(new long[] { 2, 17, 5, 5 }, y.shape);
        var transposed = new SafeConvTranspose2d(20, 40, 2, stride: 2, bias: false);
        Assert.Equal(new[] { "weight" }, transposed.state_dict().Keys.ToArray());
        using var z = SafeConvolution.ConvTranspose2d(ones(1, 20, 3, 3), transposed.Weight, null, transposed.Geometry, ConvolutionPath.ChannelPadded);
        Assert.Equal(new long[] { 1, 40, 6, 6 }, z.shape);
    }

    [Fact]
    public void SafeConv2dStartsFromTorchSharpsInitialisation()
    {
        // Same draws in the same order as nn.Conv2d, so seeded random models are unchanged.
        manual_seed(11);
        using var expected = nn.Conv2d(12, 8, 3, padding: 1);
        manual_seed(11);
        using var actual = new SafeConv2d(12, 8, 3, padding: 1);
        Assert.Equal(expected.weight!.data<float>().ToArray(), actual.Weight.data<float>().ToArray());
        Assert.Equal(expected.bias!.data<float>().ToArray(), actual.Bias!.data<float>().ToArray());
        manual_seed(12);
        using var expectedT = nn.ConvTranspose2d(12, 8, 4, stride: 4);
        manual_seed(12);
        using var actualT = new SafeConvTranspose2d(12, 8, 4, stride: 4);
        Assert.Equal(expectedT.weight!.data<float>().ToArray(), actualT.Weight.data<float>().ToArray());
        Assert.Equal(expectedT.bias!.data<float>().ToArray(), actualT.Bias!.data<float>().ToArray());
    }

    internal static IEnumerable<ConvolutionPath> Paths() =>
        SafeConvolution.Path == ConvolutionPath.ChannelPadded ? [ConvolutionPath.ChannelPadded] : [SafeConvolution.Path, ConvolutionPath.ChannelPadded];

    private static readonly long[] Channels = [1, 2, 3, 4, 5, 8, 15, 16, 17, 20, 24, 31, 32, 33, 40, 48, 64, 65, 66, 80, 96, 100, 128, 130, 514];

    private static ConvolutionCall? RandomCall(Random rng)
    {
        bool transposed = rng.Next(4) == 0;
        long inChannels = Channels[rng.Next(Channels.Length)], outChannels = Channels[rng.Next(Channels.Length)];
        long groups = rng.Next(6) == 0 ? new long[] { 2, 3, 4 }[rng.Next(3)] : 1;
        if (rng.Next(10) == 0) { groups = inChannels; outChannels = inChannels * (1 + rng.Next(2)); } // depthwise
        if (inChannels % groups != 0 || outChannels % groups != 0) return null;
        long k = new long[] { 1, 2, 3, 3, 3, 5, 7 }[rng.Next(7)];
        long stride = new long[] { 1, 1, 2, 2, 3 }[rng.Next(5)];
        long dilation = transposed ? 1 : new long[] { 1, 1, 2, 3, 6 }[rng.Next(5)];
        long padding = rng.Next(2) == 0 ? 0 : dilation * (k / 2);
        long h = new long[] { 1, 2, 3, 5, 7, 12, 13, 16, 26, 33 }[rng.Next(10)];
        long w = rng.Next(2) == 0 ? h : h + rng.Next(1, 6);
        long batch = new long[] { 1, 2, 3, 4, 8 }[rng.Next(5)];
        if (batch * inChannels * h * w > 1_500_000) return null;
        var g = ConvolutionGeometry.Square(stride, padding, dilation, groups);
        if (transposed)
        {
            if ((Math.Min(h, w) - 1) * stride - 2 * padding + k <= 0) return null;
            return new ConvolutionCall([batch, inChannels, h, w], [inChannels, outChannels / groups, k, k], rng.Next(2) == 0, g, true, ScalarType.Float32);
        }
        if (Math.Min(h, w) + 2 * padding < dilation * (k - 1) + 1) return null;
        return new ConvolutionCall([batch, inChannels, h, w], [outChannels, inChannels / groups, k, k], rng.Next(2) == 0, g, false, ScalarType.Float32);
    }
}
