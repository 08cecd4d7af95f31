using TorchSharp;
using Vlsm.Tensors;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// Runs one convolution shape through <see cref="SafeConvolution"/> in float32, forward and
/// backward, and through <see cref="ReferenceConvolution"/> in float64, on the same random data.
/// </summary>
internal static class ConvolutionCheck
{
    /// <summary>
    /// Errors of the output, relative to its largest float64 magnitude, and of the input, weight and
    /// bias gradients, relative to the largest magnitude of the terms each one sums (the same
    /// gradient computed from absolute values). A weight or bias gradient sums batch x height x
    /// width terms that largely cancel, so its own magnitude understates the scale float32 works at.
    /// </summary>
    public sealed record Errors(double Output, double InputGradient, double WeightGradient, double BiasGradient)
    {
        public double Max => new[] { Output, InputGradient, WeightGradient, BiasGradient }.Max(e => double.IsNaN(e) ? double.PositiveInfinity : e);

        public override string ToString() => $"output {Output:0.0e0}, d input {InputGradient:0.0e0}, d weight {WeightGradient:0.0e0}, d bias {BiasGradient:0.0e0}";
    }

    public static Errors Run(ConvolutionCall call, ConvolutionPath path, ulong seed)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(seed);
        var input = randn(call.InputShape, generator: generator);
        var weight = randn(call.WeightShape, generator: generator);
        long fanIn = call.Transposed ? call.WeightShape[0] / call.Geometry.Groups * call.WeightShape[2] * call.WeightShape[3] : call.WeightShape[1] * call.WeightShape[2] * call.WeightShape[3];
        weight = weight.div(Math.Sqrt(fanIn));
        long outChannels = call.Transposed ? call.WeightShape[1] * call.Geometry.Groups : call.WeightShape[0];
        Tensor? bias = call.HasBias ? randn([outChannels], generator: generator) : null;

        var x = input.clone().requires_grad_();
        var w = weight.clone().requires_grad_();
        var b = bias?.clone().requires_grad_();
        var y = call.Transposed
            ? SafeConvolution.ConvTranspose2d(x, w, b, call.Geometry, path)
            : SafeConvolution.Conv2d(x, w, b, call.Geometry, path);
        var upstream = randn(y.shape, generator: generator);
        y.backward([upstream]);

        var x64 = input.to(ScalarType.Float64).requires_grad_();
        var w64 = weight.to(ScalarType.Float64).requires_grad_();
        var b64 = bias?.to(ScalarType.Float64).requires_grad_();
        var y64 = call.Transposed
            ? ReferenceConvolution.ConvTranspose2d(x64, w64, b64, call.Geometry)
            : ReferenceConvolution.Conv2d(x64, w64, b64, call.Geometry);
        y64.backward([upstream.to(ScalarType.Float64)]);

        var xa = input.to(ScalarType.Float64).abs().requires_grad_();
        var wa = weight.to(ScalarType.Float64).abs().requires_grad_();
        var ba = bias?.to(ScalarType.Float64).abs().requires_grad_();
        var ya = call.Transposed
            ? ReferenceConvolution.ConvTranspose2d(xa, wa, ba, call.Geometry)
            : ReferenceConvolution.Conv2d(xa, wa, ba, call.Geometry);
        ya.backward([upstream.to(ScalarType.Float64).abs()]);

        return new Errors(
            Relative(y, y64),
            Relative(x.grad!, x64.grad!, xa.grad!),
            Relative(w.grad!, w64.grad!, wa.grad!),
            b is null ? 0 : Relative(b.grad!, b64!.grad!, ba!.grad!));
    }

    private static double Relative(Tensor actual, Tensor expected, Tensor scaleOf)
    {
        using var scope = NewDisposeScope();
        if (!actual.shape.SequenceEqual(expected.shape)) return double.NaN;
        double scale = scaleOf.abs().max().item<double>();
        double diff = actual.to(ScalarType.Float64).sub(expected).abs().max().item<double>();
        return scale == 0 ? diff : diff / scale;
    }

    public static double Relative(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        if (!actual.shape.SequenceEqual(expected.shape)) return double.NaN;
        double scale = expected.abs().max().item<double>();
        double diff = actual.to(ScalarType.Float64).sub(expected).abs().max().item<double>();
        return scale == 0 ? diff : diff / scale;
    }
}
