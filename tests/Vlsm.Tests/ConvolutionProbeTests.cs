using TorchSharp;
using Vlsm.Tensors;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// The start-up probe that decides whether this CPU needs the channel-padded convolution path:
/// it must notice a wrong forward pass, a wrong backward pass and NaN, pass a right convolution,
/// and leave the global random generator alone.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public class ConvolutionProbeTests
{
    private static readonly ConvolutionFunction Padded = (x, w, g, transposed) => transposed
        ? SafeConvolution.ConvTranspose2d(x, w, null, g, ConvolutionPath.ChannelPadded)
        : SafeConvolution.Conv2d(x, w, null, g, ConvolutionPath.ChannelPadded);

    private static readonly ConvolutionFunction Reference = (x, w, g, transposed) => transposed
        ? ReferenceConvolution.ConvTranspose2d(x, w, null, g)
        : ReferenceConvolution.Conv2d(x, w, null, g);

    private static readonly Scalar NaN = double.NaN.ToScalar();

    [Fact]
    public void TheChannelPaddedPathPassesOnThisCpu()
    {
        var result = ConvolutionProbe.Run(Padded);
        Assert.True(result.DirectIsCorrect, result.FailingCase);
        Assert.True(result.MaxRelativeError < 1e-5, $"{result.MaxRelativeError}");
    }

    [Fact]
    public void TheFloat32ReferencePasses()
    {
        var result = ConvolutionProbe.Run(Reference);
        Assert.True(result.DirectIsCorrect, result.FailingCase);
    }

    [Fact]
    public void AWrongForwardPassIsFound()
    {
        // Off by 1e-3 of the output: ten times the tolerance, far below the bug's errors.
        ConvolutionFunction slightlyWrong = (x, w, g, t) => KeptScalars.Times(Padded(x, w, g, t), 1.001);
        var result = ConvolutionProbe.Run(slightlyWrong);
        Assert.False(result.DirectIsCorrect);
        Assert.InRange(result.MaxRelativeError, 9e-4, 1.1e-3);
        Assert.StartsWith("3x3, 33 in, 17 out", result.FailingCase);
    }

    [Fact]
    public void AWrongBackwardPassIsFound()
    {
        // Right values, but no gradient reaches the input.
        ConvolutionFunction noInputGradient = (x, w, g, t) => KeptScalars.Plus(Padded(x.detach(), w, g, t), KeptScalars.Times(x.sum(), 0));
        var result = ConvolutionProbe.Run(noInputGradient);
        Assert.False(result.DirectIsCorrect);
        Assert.Equal(1.0, result.MaxRelativeError, 6);
    }

    [Fact]
    public void NaNIsFound()
    {
        ConvolutionFunction nan = (x, w, g, t) =>
        {
            var y = Padded(x, w, g, t);
            var mask = zeros_like(y, dtype: ScalarType.Bool);
            mask[0, 0, 0, 0] = tensor(true);
            return y.masked_fill(mask, NaN);
        };
        var result = ConvolutionProbe.Run(nan);
        Assert.False(result.DirectIsCorrect);
        Assert.True(double.IsNaN(result.MaxRelativeError));
        Assert.Contains("NaN", result.FailingCase);
    }

    [Fact]
    public void TheGlobalGeneratorIsLeftAlone()
    {
        manual_seed(7);
        var expected = randn(5).data<float>().ToArray();
        manual_seed(7);
        ConvolutionProbe.Run(Padded);
        var actual = randn(5).data<float>().ToArray();
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void LibTorchsVerdictDecidesThePath()
    {
        var verdict = ConvolutionProbe.Run(ConvolutionProbe.LibTorch);
        if (SafeConvolution.Override is null)
            Assert.Equal(verdict.DirectIsCorrect ? ConvolutionPath.Direct : ConvolutionPath.ChannelPadded, SafeConvolution.Path);
        Assert.Contains(SafeConvolution.Name(SafeConvolution.Path), SafeConvolution.Describe());
    }
}
