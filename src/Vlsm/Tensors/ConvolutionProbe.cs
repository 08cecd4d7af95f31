using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Tensors;

/// <summary>A convolution under test: transposed or not, with the weight layout of PyTorch's functional forms.</summary>
public delegate Tensor ConvolutionFunction(Tensor input, Tensor weight, ConvolutionGeometry geometry, bool transposed);

/// <param name="DirectIsCorrect">Every probe case agreed with float64 within <see cref="ConvolutionProbe.Tolerance"/>.</param>
/// <param name="MaxRelativeError">Largest error over the cases, relative to each output's largest magnitude (NaN if any output was NaN).</param>
/// <param name="FailingCase">The first case that failed and by how much, or null.</param>
/// <param name="Milliseconds">Wall time of the probe.</param>
public sealed record ConvolutionProbeResult(bool DirectIsCorrect, double MaxRelativeError, string? FailingCase, double Milliseconds);

/// <summary>
/// Checks a convolution against <see cref="ReferenceConvolution"/> in float64 on small shapes where the oneDNN bug shows: input channels that do not fill a
/// 16-channel block (forward), output channels that do not (backward of the data), and a strided
/// case with 48 input channels (backward of the data). Each case runs forward and backward.
/// </summary>
public static class ConvolutionProbe
{
    /// <summary>Largest accepted error relative to the output's largest magnitude; float32 gives about 1e-7 here.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>libtorch's convolutions as they come, without any workaround.</summary>
    public static readonly ConvolutionFunction LibTorch = (x, w, g, transposed) => transposed
        ? nn.functional.conv_transpose2d(x, w, null, g.Strides, g.Paddings, g.OutputPaddings, g.Dilations, g.Groups)
        : nn.functional.conv2d(x, w, null, g.Strides, g.Paddings, g.Dilations, g.Groups);

    private sealed record Case(string Name, long Batch, long InChannels, long OutChannels, long Size, ConvolutionGeometry Geometry, bool Transposed = false);

    private static readonly Case[] Cases =
    [
        new("3x3, 33 in, 17 out", 2, 33, 17, 8, ConvolutionGeometry.Square(padding: 1)),
        new("3x3 stride 2, 48 in, 32 out", 2, 48, 32, 9, ConvolutionGeometry.Square(stride: 2, padding: 1)),
        new("transposed 2x2 stride 2, 20 in, 8 out", 2, 20, 8, 5, ConvolutionGeometry.Square(stride: 2), Transposed: true),
    ];

    /// <summary>
    /// Runs every case through <paramref name="convolve"/> in float32, forward and backward, and
    /// compares outputs and input gradients with float64. Uses its own random generator, so the
    /// global one is left as it was.
    /// </summary>
    public static ConvolutionProbeResult Run(ConvolutionFunction convolve)
    {
        var watch = Stopwatch.StartNew();
        double worst = 0;
        string? failing = null;
        using (inference_mode(false))
        using (enable_grad())
        using (var generator = new Generator(20260101))
        {
            foreach (var c in Cases)
            {
                double error = Error(c, convolve, generator);
                if (double.IsNaN(error) || error > worst) worst = error;
                if (failing is null && !(error <= Tolerance))
                    failing = $"{c.Name}: relative error {(double.IsNaN(error) ? "NaN" : error.ToString("0.00e0", System.Globalization.CultureInfo.InvariantCulture))}";
            }
        }
        return new ConvolutionProbeResult(failing is null, worst, failing, watch.Elapsed.TotalMilliseconds);
    }

    private static double Error(Case c, ConvolutionFunction convolve, Generator generator)
    {
        using var scope = NewDisposeScope();
        var input = randn([c.Batch, c.InChannels, c.Size, c.Size], generator: generator);
        long[] weightShape = c.Transposed ? [c.InChannels, c.OutChannels, 3, 3] : [c.OutChannels, c.InChannels, 3, 3];
        if (c.Transposed) weightShape = [c.InChannels, c.OutChannels, 2, 2];
        var weight = randn(weightShape, generator: generator);
        KeptScalars.DividedBy_(weight, Math.Sqrt(weight.numel() / weight.shape[0]));

        // Memory that a kernel reads without having written it holds whatever was freed there last;
        // in a fresh process that is often zeros, which hides the bug. Leave NaNs there first.
        PoisonFreedMemory();

        var x = input.clone().requires_grad_();
        var y = convolve(x, weight, c.Geometry, c.Transposed);
        using var upstream = randn(y.shape, generator: generator);
        y.backward([upstream]);

        var x64 = input.to(ScalarType.Float64).requires_grad_();
        var w64 = weight.to(ScalarType.Float64);
        var y64 = c.Transposed
            ? ReferenceConvolution.ConvTranspose2d(x64, w64, null, c.Geometry)
            : ReferenceConvolution.Conv2d(x64, w64, null, c.Geometry);
        y64.backward([upstream.to(ScalarType.Float64)]);

        return Math.Max(Relative(y, y64), Relative(x.grad!, x64.grad!));
    }

    private static double Relative(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        if (!actual.shape.SequenceEqual(expected.shape)) return double.NaN;
        double scale = expected.abs().max().item<double>();
        double diff = actual.to(ScalarType.Float64).sub(expected).abs().max().item<double>();
        return diff / Math.Max(scale, 1e-30);
    }

    private static readonly Scalar NaN = float.NaN.ToScalar();

    private static void PoisonFreedMemory()
    {
        var poisoned = new List<Tensor>();
        for (long n = 256; n <= 65536; n *= 2)
            for (int i = 0; i < 4; i++)
                poisoned.Add(empty(n).fill_(NaN));
        foreach (var t in poisoned) t.Dispose();
    }
}
