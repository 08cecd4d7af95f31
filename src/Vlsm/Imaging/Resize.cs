using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Vlsm.Imaging;

/// <summary>Pillow's resampling filters, numbered as in <c>PIL.Image.Resampling</c> (and HF's <c>resample</c> field).</summary>
public enum ResampleFilter
{
    Nearest = 0,
    Lanczos = 1,
    Bilinear = 2,
    Bicubic = 3,
    Box = 4,
    Hamming = 5,
}

/// <summary>
/// Pillow-exact resizing of 8-bit images: <c>Image.resize((w, h), filter)</c>, which is what
/// HF image processors call.
/// </summary>
/// <remarks>
/// Reproduces libImaging/Resample.c (<c>ImagingResample</c>) for 8-bit images:
/// <list type="bullet">
/// <item>separable: a horizontal pass over only the source rows the vertical pass needs, rounded
/// to 8 bits, then a vertical pass; a pass is skipped when that dimension does not change;</item>
/// <item>per output pixel, <c>center = (i + 0.5) * scale</c> with <c>scale = in / out</c>; the
/// filter support is multiplied by <c>max(scale, 1)</c> (antialiasing when downscaling);
/// taps <c>xmin = (int)(center - support + 0.5)</c> to <c>(int)(center + support + 0.5)</c>
/// clamped to the image; weights <c>filter((x - center + 0.5) / max(scale, 1))</c> in double,
/// divided by their sum;</item>
/// <item>weights converted to fixed point with PRECISION_BITS = 22, rounded half away from zero;
/// each sum starts at <c>1 &lt;&lt; 21</c>, is shifted right by 22 and clipped to 0..255.</item>
/// </list>
/// Nearest neighbour reproduces <c>ImagingScaleAffine</c>: source coordinate
/// <c>(int)(scale/2 + i*scale)</c>, accumulated by repeated addition in double as Pillow does.
/// </remarks>
public static class Resize
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Pillow's <c>Image.resize((width, height), Image.BILINEAR)</c> on an RGB image.</summary>
    public static RgbImage ResizeBilinear(RgbImage src, int width, int height) =>
        Resample(src, width, height, ResampleFilter.Bilinear);

    /// <summary>Pillow's <c>Image.resize((width, height), filter)</c> on an RGB image.</summary>
    public static RgbImage Resample(RgbImage src, int width, int height, ResampleFilter filter)
    {
        ArgumentNullException.ThrowIfNull(src);
        ImageSize.Check(width, height);
        if (filter == ResampleFilter.Nearest) return ResizeNearest(src, width, height);
        var pixels = ResampleBytes(src.Pixels, src.Width, src.Height, 3, width, height, filter);
        return new RgbImage(width, height, pixels);
    }

    /// <summary>Pillow's <c>Image.resize((width, height), filter)</c> on a one-channel ("L") image.</summary>
    public static GrayImage Resample(GrayImage src, int width, int height, ResampleFilter filter)
    {
        ArgumentNullException.ThrowIfNull(src);
        ImageSize.Check(width, height);
        if (filter == ResampleFilter.Nearest) return ResizeNearest(src, width, height);
        var pixels = ResampleBytes(src.Pixels, src.Width, src.Height, 1, width, height, filter);
        return new GrayImage(width, height, pixels);
    }

    /// <summary>Pillow's <c>Image.resize((width, height), Image.NEAREST)</c> on a mask.</summary>
    public static GrayImage ResizeNearest(GrayImage src, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(src);
        ImageSize.Check(width, height);
        return new GrayImage(width, height, Nearest<byte>(src.Pixels, src.Width, src.Height, 1, width, height));
    }

    /// <summary>Pillow's <c>Image.resize((width, height), Image.NEAREST)</c> on an RGB image.</summary>
    public static RgbImage ResizeNearest(RgbImage src, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(src);
        ImageSize.Check(width, height);
        return new RgbImage(width, height, Nearest<byte>(src.Pixels, src.Width, src.Height, 3, width, height));
    }

    /// <summary>Nearest-neighbour resize of a row-major float map with Pillow's index mapping.</summary>
    public static float[] ResizeNearest(float[] src, int srcW, int srcH, int dstW, int dstH)
    {
        ArgumentNullException.ThrowIfNull(src);
        ImageSize.Check(srcW, srcH);
        ImageSize.Check(dstW, dstH);
        if (src.LongLength != (long)srcW * srcH)
            throw new ArgumentException($"A {srcW}x{srcH} map needs {(long)srcW * srcH} values; got {src.LongLength}.", nameof(src));
        return Nearest<float>(src, srcW, srcH, 1, dstW, dstH);
    }

    // ---------------------------------------------------------------- nearest

    /// <summary>
    /// Source index for each output index, as <c>ImagingScaleAffine</c> computes it:
    /// <c>xo = a/2</c>, then <c>xo += a</c> per pixel, <c>a = in/out</c>; index <c>(int)xo</c>.
    /// </summary>
    internal static int[] NearestIndices(int inSize, int outSize)
    {
        var table = new int[outSize];
        double a = (double)inSize / outSize;
        double xo = a * 0.5;
        for (int i = 0; i < outSize; i++)
        {
            int xin = xo < 0.0 ? -1 : (int)xo;
            // Pillow leaves pixels mapped outside the source at 0; with box = the whole image
            // (0 <= xo < inSize) that cannot happen, but clamp rather than index out of range.
            table[i] = Math.Clamp(xin, 0, inSize - 1);
            xo += a;
        }
        return table;
    }

    private static T[] Nearest<T>(T[] src, int srcW, int srcH, int channels, int dstW, int dstH)
    {
        var dst = new T[(long)dstW * dstH * channels];
        if (srcW == dstW && srcH == dstH)
        {
            Array.Copy(src, dst, dst.LongLength);
            return dst;
        }
        int[] xs = NearestIndices(srcW, dstW);
        int[] ys = NearestIndices(srcH, dstH);
        for (int y = 0; y < dstH; y++)
        {
            ReadOnlySpan<T> srcRow = src.AsSpan(ys[y] * srcW * channels, srcW * channels);
            Span<T> dstRow = dst.AsSpan(y * dstW * channels, dstW * channels);
            if (channels == 1)
            {
                for (int x = 0; x < dstW; x++) dstRow[x] = srcRow[xs[x]];
            }
            else
            {
                for (int x = 0, d = 0; x < dstW; x++)
                {
                    int s = xs[x] * channels;
                    for (int c = 0; c < channels; c++) dstRow[d++] = srcRow[s + c];
                }
            }
        }
        return dst;
    }

    // ---------------------------------------------------------------- convolution

    private static double Support(ResampleFilter filter) => filter switch
    {
        ResampleFilter.Box => 0.5,
        ResampleFilter.Bilinear => 1.0,
        ResampleFilter.Hamming => 1.0,
        ResampleFilter.Bicubic => 2.0,
        ResampleFilter.Lanczos => 3.0,
        _ => throw new ArgumentOutOfRangeException(nameof(filter), filter, "Unknown resampling filter."),
    };

    private static double Evaluate(ResampleFilter filter, double x)
    {
        switch (filter)
        {
            case ResampleFilter.Box:
                return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
            case ResampleFilter.Bilinear:
                if (x < 0.0) x = -x;
                return x < 1.0 ? 1.0 - x : 0.0;
            case ResampleFilter.Hamming:
                if (x < 0.0) x = -x;
                if (x == 0.0) return 1.0;
                if (x >= 1.0) return 0.0;
                x *= Math.PI;
                // Pillow writes the constants as floats (0.54f, 0.46f) and computes in double.
                return Math.Sin(x) / x * ((double)0.54f + (double)0.46f * Math.Cos(x));
            case ResampleFilter.Bicubic:
                const double a = -0.5;
                if (x < 0.0) x = -x;
                if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
                if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
                return 0.0;
            case ResampleFilter.Lanczos:
                return -3.0 <= x && x < 3.0 ? Sinc(x) * Sinc(x / 3) : 0.0;
            default:
                throw new ArgumentOutOfRangeException(nameof(filter), filter, "Unknown resampling filter.");
        }

        static double Sinc(double v)
        {
            if (v == 0.0) return 1.0;
            v *= Math.PI;
            return Math.Sin(v) / v;
        }
    }

    /// <summary>Fixed-point taps for one axis: output i reads <c>Count[i]</c> inputs from <c>Start[i]</c>
    /// with weights <c>Weights[i * KSize ..]</c>.</summary>
    internal sealed class Coefficients
    {
        public required int KSize { get; init; }
        public required int[] Start { get; init; }
        public required int[] Count { get; init; }
        public required int[] Weights { get; init; }
    }

    /// <summary><c>precompute_coeffs</c> + <c>normalize_coeffs_8bpc</c> for box (0, inSize).</summary>
    internal static Coefficients ComputeCoefficients(int inSize, int outSize, ResampleFilter filter)
    {
        double scale = (double)inSize / outSize;
        double filterScale = scale < 1.0 ? 1.0 : scale;
        double support = Support(filter) * filterScale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var start = new int[outSize];
        var count = new int[outSize];
        var weights = new int[(long)outSize * ksize];
        Span<double> k = ksize <= 256 ? stackalloc double[ksize] : new double[ksize];
        double ss = 1.0 / filterScale;
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            double ww = 0.0;
            for (int x = 0; x < xmax; x++)
            {
                double w = Evaluate(filter, (x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            Span<int> row = weights.AsSpan(xx * ksize, ksize);
            for (int x = 0; x < xmax; x++)
            {
                double w = ww != 0.0 ? k[x] / ww : k[x];
                row[x] = w < 0
                    ? (int)(-0.5 + w * (1 << PrecisionBits))
                    : (int)(0.5 + w * (1 << PrecisionBits));
            }
            start[xx] = xmin;
            count[xx] = Math.Max(xmax, 0);
        }
        return new Coefficients { KSize = ksize, Start = start, Count = count, Weights = weights };
    }

    private static byte Clip8(int v)
    {
        v >>= PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    /// <summary><c>ImagingResampleInner</c> for interleaved 8-bit pixels with the whole image as box.</summary>
    internal static byte[] ResampleBytes(byte[] src, int srcW, int srcH, int channels, int dstW, int dstH, ResampleFilter filter)
    {
        bool needHorizontal = dstW != srcW;
        bool needVertical = dstH != srcH;
        if (!needHorizontal && !needVertical) return (byte[])src.Clone();

        var vert = ComputeCoefficients(srcH, dstH, filter);
        // Source rows the vertical pass reads.
        int yFirst = vert.Start[0];
        int yLast = vert.Start[dstH - 1] + vert.Count[dstH - 1];

        byte[] rows = src;
        int rowsW = srcW, rowOffset = 0;
        if (needHorizontal)
        {
            var horiz = ComputeCoefficients(srcW, dstW, filter);
            rows = new byte[(long)(yLast - yFirst) * dstW * channels];
            HorizontalPass(src, srcW, channels, yFirst, yLast - yFirst, rows, dstW, horiz);
            rowsW = dstW;
            rowOffset = yFirst;
        }
        if (!needVertical) return rows;

        var dst = new byte[(long)dstW * dstH * channels];
        VerticalPass(rows, rowsW, channels, rowOffset, dst, dstH, vert);
        return dst;
    }

    private static unsafe void HorizontalPass(byte[] src, int srcW, int channels, int firstRow, int rowCount,
        byte[] dst, int dstW, Coefficients c)
    {
        int srcStride = srcW * channels, dstStride = dstW * channels, ksize = c.KSize;
        // Bounds are guaranteed by ComputeCoefficients (start + count <= srcW); pointers keep
        // this innermost loop free of range checks.
        fixed (byte* srcBase = src, dstBase = dst)
        fixed (int* weights = c.Weights, starts = c.Start, counts = c.Count)
        {
            for (int y = 0; y < rowCount; y++)
            {
                byte* inRow = srcBase + (long)(firstRow + y) * srcStride;
                byte* outPx = dstBase + (long)y * dstStride;
                if (channels == 3)
                {
                    for (int xx = 0; xx < dstW; xx++, outPx += 3)
                    {
                        int* k = weights + (long)xx * ksize;
                        int n = counts[xx];
                        byte* tap = inRow + starts[xx] * 3;
                        int s0 = 1 << (PrecisionBits - 1), s1 = s0, s2 = s0;
                        for (int x = 0; x < n; x++, tap += 3)
                        {
                            int w = k[x];
                            s0 += tap[0] * w;
                            s1 += tap[1] * w;
                            s2 += tap[2] * w;
                        }
                        outPx[0] = Clip8(s0);
                        outPx[1] = Clip8(s1);
                        outPx[2] = Clip8(s2);
                    }
                }
                else
                {
                    for (int xx = 0; xx < dstW; xx++)
                    {
                        int* k = weights + (long)xx * ksize;
                        int n = counts[xx];
                        byte* tap0 = inRow + starts[xx] * channels;
                        for (int ch = 0; ch < channels; ch++, outPx++)
                        {
                            int sum = 1 << (PrecisionBits - 1);
                            byte* tap = tap0 + ch;
                            for (int x = 0; x < n; x++, tap += channels) sum += *tap * k[x];
                            *outPx = Clip8(sum);
                        }
                    }
                }
            }
        }
    }

    private static void VerticalPass(byte[] src, int width, int channels, int rowOffset,
        byte[] dst, int dstH, Coefficients c)
    {
        int stride = width * channels;
        // Integer sums are exact, so accumulating tap by tap over a whole row gives the same
        // result as Pillow's per-pixel loop while reading memory sequentially.
        var acc = new int[stride];
        for (int yy = 0; yy < dstH; yy++)
        {
            ReadOnlySpan<int> k = c.Weights.AsSpan(yy * c.KSize, c.Count[yy]);
            int first = c.Start[yy] - rowOffset;
            acc.AsSpan().Fill(1 << (PrecisionBits - 1));
            for (int y = 0; y < k.Length; y++)
                MultiplyAdd(src.AsSpan((first + y) * stride, stride), k[y], acc);
            Span<byte> outRow = dst.AsSpan(yy * stride, stride);
            for (int i = 0; i < stride; i++) outRow[i] = Clip8(acc[i]);
        }
    }

    /// <summary><c>acc[i] += row[i] * w</c>.</summary>
    private static void MultiplyAdd(ReadOnlySpan<byte> row, int w, Span<int> acc)
    {
        int i = 0;
        if (Vector128.IsHardwareAccelerated && row.Length >= 16)
        {
            var wv = Vector128.Create(w);
            ref byte r0 = ref MemoryMarshal.GetReference(row);
            ref int a0 = ref MemoryMarshal.GetReference(acc);
            for (; i <= row.Length - 16; i += 16)
            {
                var bytes = Vector128.LoadUnsafe(ref r0, (nuint)i);
                var (lo16, hi16) = Vector128.Widen(bytes);
                var (q0, q1) = Vector128.Widen(lo16);
                var (q2, q3) = Vector128.Widen(hi16);
                ref int a = ref Unsafe.Add(ref a0, i);
                (Vector128.LoadUnsafe(ref a) + q0.AsInt32() * wv).StoreUnsafe(ref a);
                (Vector128.LoadUnsafe(ref a, 4) + q1.AsInt32() * wv).StoreUnsafe(ref a, 4);
                (Vector128.LoadUnsafe(ref a, 8) + q2.AsInt32() * wv).StoreUnsafe(ref a, 8);
                (Vector128.LoadUnsafe(ref a, 12) + q3.AsInt32() * wv).StoreUnsafe(ref a, 12);
            }
        }
        for (; i < row.Length; i++) acc[i] += row[i] * w;
    }
}
