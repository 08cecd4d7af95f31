using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Tensors;

/// <summary>How this process computes float32 and bfloat16 convolutions.</summary>
public enum ConvolutionPath
{
    /// <summary>libtorch's own kernels (oneDNN on x86), as they come.</summary>
    Direct,

    /// <summary>
    /// The same kernels, given only shapes oneDNN computes right on CPUs where the probe found it
    /// wrong: channel counts zero-padded, and a whole-input kernel computed as a matrix product.
    /// </summary>
    ChannelPadded,
}

/// <summary>
/// The one convolution entry point of every model. libtorch's oneDNN float32 convolutions are wrong
/// on some CPUs (AMD Zen 5: errors of order 1, sometimes NaN) whenever a channel dimension does not
/// fill oneDNN's channel blocks, in the forward pass and in the backward pass of the data. A probe
/// (<see cref="ConvolutionProbe"/>) runs once per process, at the first convolution; where it finds
/// the bug, every convolution takes <see cref="ConvolutionPath.ChannelPadded"/>. Zero input channels
/// with zero weights add exactly nothing, and extra output channels are dropped, so the padded
/// path computes the same numbers through shapes oneDNN gets right; autograd carries the gradient
/// through the padding unchanged. Measured on Zen 5 (docs/known-issues.md): convolutions are right
/// when input channels are at most 16 or a multiple of 32 and output channels a multiple of 16;
/// transposed ones when input channels are a multiple of 16 and output channels at most 16 or a
/// multiple of 32. Grouped and 1x1 convolutions were right in every shape tried and go direct,
/// except strided 1x1 ones, whose input gradient crashes libtorch there: the padded path subsamples
/// their input and convolves with stride 1.
/// <c>VLSM_CONVOLUTION=direct|padded</c> overrides the probe (for measurements and tests).
/// </summary>
public static class SafeConvolution
{
    private static readonly Lazy<ConvolutionProbeResult> Probed = new(() => ConvolutionProbe.Run(ConvolutionProbe.LibTorch), LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<ConvolutionPath> Chosen = new(Choose, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Raised once, with <see cref="Describe()"/>'s text, when the first convolution of the process has
    /// chosen its path (the CLI prints it with <c>--verbose</c>). Handlers added later are not called.
    /// </summary>
    public static event Action<string>? PathChosen;

    /// <summary>The probe's finding; runs the probe if nothing has yet.</summary>
    public static ConvolutionProbeResult Probe => Probed.Value;

    /// <summary>
    /// The path convolutions take: one forced on this thread (<see cref="Force"/>), else the
    /// process's (<c>VLSM_CONVOLUTION</c>, or the probe's choice).
    /// </summary>
    public static ConvolutionPath Path => forcedOnThread ?? Chosen.Value;

    [ThreadStatic]
    private static ConvolutionPath? forcedOnThread;

    /// <summary>
    /// Makes this thread's convolutions take <paramref name="path"/> until the result is disposed,
    /// so a benchmark can time both paths in one process. Never for results that matter: the
    /// direct path is wrong on the CPUs the probe flags.
    /// </summary>
    public static IDisposable Force(ConvolutionPath path)
    {
        var previous = forcedOnThread;
        forcedOnThread = path;
        return new OnDispose(() => forcedOnThread = previous);
    }

    /// <summary>The path named by <c>VLSM_CONVOLUTION</c>, if any (then the probe is not needed to choose).</summary>
    public static ConvolutionPath? Override => OverrideRead.Value;

    private static readonly Lazy<ConvolutionPath?> OverrideRead = new(ReadOverride, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The path and why it was chosen, for <c>vlsm env</c> and <c>--verbose</c>.</summary>
    public static string Describe() => Override is { } forced ? Describe(forced, null) : Describe(Path, Probed.Value);

    private static string Describe(ConvolutionPath path, ConvolutionProbeResult? probe)
    {
        if (probe is null) return $"{Name(path)} (forced by VLSM_CONVOLUTION)";
        return probe.DirectIsCorrect
            ? $"{Name(path)} (probe: libtorch's convolutions are right here, max relative error {probe.MaxRelativeError:0.0e0}, {probe.Milliseconds:0.0} ms)"
            : $"{Name(path)} (probe: libtorch's float32 convolution is wrong on this CPU, {probe.FailingCase}; {probe.Milliseconds:0.0} ms)";
    }

    private static ConvolutionPath Choose()
    {
        ConvolutionPath path;
        string description;
        if (Override is { } forced)
        {
            path = forced;
            description = Describe(forced, null);
        }
        else
        {
            var probe = Probed.Value;
            path = probe.DirectIsCorrect ? ConvolutionPath.Direct : ConvolutionPath.ChannelPadded;
            description = Describe(path, probe);
        }
        PathChosen?.Invoke(description);
        return path;
    }

    /// <summary>Short name of a path as <c>VLSM_CONVOLUTION</c> spells it.</summary>
    public static string Name(ConvolutionPath path) => path == ConvolutionPath.Direct ? "direct" : "padded";

    /// <summary>
    /// 2-D convolution with <c>torch.nn.functional.conv2d</c>'s meaning. <paramref name="weight"/> is
    /// (out, in / groups, kh, kw).
    /// </summary>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry geometry) =>
        Conv2d(input, weight, bias, geometry, Path);

    /// <summary>
    /// 2-D transposed convolution with <c>torch.nn.functional.conv_transpose2d</c>'s meaning.
    /// <paramref name="weight"/> is (in, out / groups, kh, kw).
    /// </summary>
    public static Tensor ConvTranspose2d(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry geometry) =>
        ConvTranspose2d(input, weight, bias, geometry, Path);

    /// <summary>
    /// Sees every convolution this thread computes (shapes and geometry), so tests can check each
    /// shape the models use against float64.
    /// </summary>
    [ThreadStatic]
    internal static Action<ConvolutionCall>? Observer;

    /// <summary><see cref="Conv2d(Tensor, Tensor, Tensor?, ConvolutionGeometry)"/> through a given path.</summary>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry g, ConvolutionPath path)
    {
        Observer?.Invoke(new ConvolutionCall(input.shape, weight.shape, bias is not null, g, Transposed: false, weight.dtype));
        if (path == ConvolutionPath.ChannelPadded && IsStridedPointwise(weight, g)) return Subsampled(input, weight, bias, g);
        if (path == ConvolutionPath.Direct || !Affected(weight, g)) return Direct(input, weight, bias, g);
        long inChannels = weight.shape[1], outChannels = weight.shape[0];
        long kh = weight.shape[2], kw = weight.shape[3];
        var (oh, ow) = g.OutputSize(input.shape[2], input.shape[3], kh, kw);
        if (oh == 1 && ow == 1 && g.PadH == 0 && g.PadW == 0) return WholeInput(input, weight, bias, g);
        long paddedIn = inChannels <= 16 ? inChannels : RoundUp(inChannels, 32);
        long paddedOut = RoundUp(outChannels, 16);
        return Padded(input, weight, bias, paddedIn, paddedOut, transposed: false, g);
    }

    /// <summary><see cref="ConvTranspose2d(Tensor, Tensor, Tensor?, ConvolutionGeometry)"/> through a given path.</summary>
    public static Tensor ConvTranspose2d(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry g, ConvolutionPath path)
    {
        Observer?.Invoke(new ConvolutionCall(input.shape, weight.shape, bias is not null, g, Transposed: true, weight.dtype));
        if (path == ConvolutionPath.Direct || !Affected(weight, g)) return DirectTransposed(input, weight, bias, g);
        long inChannels = weight.shape[0], outChannels = weight.shape[1];
        long paddedIn = RoundUp(inChannels, 16);
        long paddedOut = outChannels <= 16 ? outChannels : RoundUp(outChannels, 32);
        return Padded(input, weight, bias, paddedIn, paddedOut, transposed: true, g);
    }

    /// <summary>A 1x1 convolution with a stride above 1 and no padding (ResNet's downsampling shortcuts).</summary>
    private static bool IsStridedPointwise(Tensor weight, ConvolutionGeometry g) =>
        weight.shape[2] == 1 && weight.shape[3] == 1 && (g.StrideH > 1 || g.StrideW > 1) && g.PadH == 0 && g.PadW == 0;

    /// <summary>
    /// A strided 1x1 convolution as the stride-1 convolution of the input's every s-th row and column:
    /// the same sums. On Zen 5 libtorch's gradient of the input of a strided 1x1 convolution stops the
    /// process (SIGFPE, an integer division by zero in libtorch_cpu) for 1024 or more output channels
    /// from 256 or more input channels (ResNet-50's layer3 and layer4 shortcuts); through the
    /// subsampling it is a stride-1 gradient scattered back, which is right.
    /// </summary>
    private static Tensor Subsampled(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry g)
    {
        using var scope = NewDisposeScope();
        var x = input.slice(2, 0, input.shape[2], g.StrideH).slice(3, 0, input.shape[3], g.StrideW);
        return Direct(x, weight, bias, ConvolutionGeometry.Square(groups: g.Groups)).MoveToOuterDisposeScope();
    }

    private static bool Affected(Tensor weight, ConvolutionGeometry g) =>
        weight.dtype is ScalarType.Float32 or ScalarType.BFloat16
        && g.Groups == 1
        && weight.shape[2] * weight.shape[3] > 1;

    private static Tensor Direct(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry g) =>
        nn.functional.conv2d(input, weight, bias, g.Strides, g.Paddings, g.Dilations, g.Groups);

    private static Tensor DirectTransposed(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry g) =>
        nn.functional.conv_transpose2d(input, weight, bias, g.Strides, g.Paddings, g.OutputPaddings, g.Dilations, g.Groups);

    /// <summary>
    /// A kernel that covers the whole (unpadded) input yields one output pixel: a matrix product of
    /// the taps it touches with the flattened weight. oneDNN runs these as an inner product, which
    /// is wrong on the affected CPUs whatever the channel counts.
    /// </summary>
    private static Tensor WholeInput(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry g)
    {
        using var scope = NewDisposeScope();
        long kh = weight.shape[2], kw = weight.shape[3];
        long extentH = g.DilationH * (kh - 1) + 1, extentW = g.DilationW * (kw - 1) + 1;
        var taps = input.narrow(2, 0, extentH).narrow(3, 0, extentW);
        if (g.DilationH > 1) taps = taps.index_select(2, arange(0, extentH, g.DilationH, dtype: ScalarType.Int64));
        if (g.DilationW > 1) taps = taps.index_select(3, arange(0, extentW, g.DilationW, dtype: ScalarType.Int64));
        var output = bias is null
            ? nn.functional.linear(taps.flatten(1), weight.flatten(1))
            : nn.functional.linear(taps.flatten(1), weight.flatten(1), bias);
        return output.view(input.shape[0], weight.shape[0], 1, 1).MoveToOuterDisposeScope();
    }

    private static Tensor Padded(Tensor input, Tensor weight, Tensor? bias, long paddedIn, long paddedOut, bool transposed, ConvolutionGeometry g)
    {
        long inChannels = input.shape[1];
        long outChannels = transposed ? weight.shape[1] : weight.shape[0];
        if (paddedIn == inChannels && paddedOut == outChannels)
            return transposed ? DirectTransposed(input, weight, bias, g) : Direct(input, weight, bias, g);
        using var scope = NewDisposeScope();
        // F.pad lists (before, after) pairs from the last dimension backwards.
        var x = paddedIn == inChannels ? input : nn.functional.pad(input, [0, 0, 0, 0, 0, paddedIn - inChannels]);
        var w = transposed
            ? nn.functional.pad(weight, [0, 0, 0, 0, 0, paddedOut - outChannels, 0, paddedIn - inChannels])
            : nn.functional.pad(weight, [0, 0, 0, 0, 0, paddedIn - inChannels, 0, paddedOut - outChannels]);
        var b = bias is null || paddedOut == outChannels ? bias : nn.functional.pad(bias, [0, paddedOut - outChannels]);
        var y = transposed ? DirectTransposed(x, w, b, g) : Direct(x, w, b, g);
        if (paddedOut != outChannels) y = y.narrow(1, 0, outChannels).contiguous();
        return y.MoveToOuterDisposeScope();
    }

    private static long RoundUp(long value, long multiple) => (value + multiple - 1) / multiple * multiple;

    private static ConvolutionPath? ReadOverride()
    {
        var value = Environment.GetEnvironmentVariable("VLSM_CONVOLUTION");
        return value?.Trim().ToLowerInvariant() switch
        {
            null or "" or "auto" => null,
            "direct" => ConvolutionPath.Direct,
            "padded" => ConvolutionPath.ChannelPadded,
            _ => throw new VlsmException($"VLSM_CONVOLUTION={value} is not a convolution path; use direct, padded or auto (the default: the probe decides)."),
        };
    }
}

/// <summary>One convolution as a model called it: enough to repeat it with other data.</summary>
internal sealed record ConvolutionCall(long[] InputShape, long[] WeightShape, bool HasBias, ConvolutionGeometry Geometry, bool Transposed, ScalarType Dtype)
{
    /// <summary>Identity of the call's shape, for de-duplication.</summary>
    public string Key =>
        $"{(Transposed ? "transposed " : "")}conv in [{string.Join(",", InputShape)}] weight [{string.Join(",", WeightShape)}]{(HasBias ? " +bias" : "")} "
        + $"stride {Geometry.StrideH}x{Geometry.StrideW} pad {Geometry.PadH}x{Geometry.PadW} dilation {Geometry.DilationH}x{Geometry.DilationW} groups {Geometry.Groups}"
        + (Transposed ? $" output pad {Geometry.OutputPadH}x{Geometry.OutputPadW}" : "") + $" {Dtype}";
}

/// <summary>Stride, padding, dilation, output padding (transposed only) and groups of a 2-D convolution.</summary>
public sealed record ConvolutionGeometry(
    long StrideH = 1, long StrideW = 1,
    long PadH = 0, long PadW = 0,
    long DilationH = 1, long DilationW = 1,
    long Groups = 1,
    long OutputPadH = 0, long OutputPadW = 0)
{
    /// <summary>Square geometry, as most layers use.</summary>
    public static ConvolutionGeometry Square(long stride = 1, long padding = 0, long dilation = 1, long groups = 1, long outputPadding = 0) =>
        new(stride, stride, padding, padding, dilation, dilation, groups, outputPadding, outputPadding);

    public long[] Strides => [StrideH, StrideW];
    public long[] Paddings => [PadH, PadW];
    public long[] Dilations => [DilationH, DilationW];
    public long[] OutputPaddings => [OutputPadH, OutputPadW];

    /// <summary>Output height and width of a (non-transposed) convolution with this kernel.</summary>
    public (long Height, long Width) OutputSize(long height, long width, long kernelH, long kernelW) =>
        ((height + 2 * PadH - DilationH * (kernelH - 1) - 1) / StrideH + 1,
         (width + 2 * PadW - DilationW * (kernelW - 1) - 1) / StrideW + 1);
}
