using System.Text.RegularExpressions;
using Vlsm.Imaging;

namespace Vlsm.Data;

/// <summary>
/// Training-time augmentation; off unless a field is set (the reference trains without any).
/// Probabilities are in [0, 1]; ranges are symmetric: rotation in ±<see cref="MaxRotationDegrees"/>,
/// scale in 1 ± <see cref="MaxScaleChange"/>, colour factors in 1 ± the given amount.
/// </summary>
public sealed record AugmentOptions
{
    public static AugmentOptions None { get; } = new();

    public double HorizontalFlipProbability { get; init; }
    public double VerticalFlipProbability { get; init; }
    public double MaxRotationDegrees { get; init; }
    public double MaxScaleChange { get; init; }
    public double Brightness { get; init; }
    public double Contrast { get; init; }
    public double Saturation { get; init; }

    /// <summary>
    /// Swap left/right (horizontal flip) and top/bottom (vertical flip) in the prompt so it stays
    /// true. Turn off for prompts that use these words as names: "left ventricle" is still the left
    /// ventricle in a mirrored ultrasound image (CAMUS).
    /// </summary>
    public bool SwapPositionWords { get; init; } = true;

    public bool IsEnabled =>
        HorizontalFlipProbability > 0 || VerticalFlipProbability > 0 || MaxRotationDegrees > 0 || MaxScaleChange > 0
        || Brightness > 0 || Contrast > 0 || Saturation > 0;

    /// <exception cref="VlsmException">A value is out of range (named, with the range).</exception>
    public void Validate()
    {
        Check(HorizontalFlipProbability, "horizontal flip probability", 0, 1);
        Check(VerticalFlipProbability, "vertical flip probability", 0, 1);
        Check(MaxRotationDegrees, "rotation (degrees)", 0, 180);
        Check(MaxScaleChange, "scale change", 0, 0.9);
        Check(Brightness, "brightness", 0, 1);
        Check(Contrast, "contrast", 0, 1);
        Check(Saturation, "saturation", 0, 1);

        static void Check(double value, string name, double min, double max)
        {
            if (!(value >= min && value <= max))
                throw new VlsmException($"Augmentation {name} must be within [{min}, {max}], got {value}.");
        }
    }
}

/// <summary>The random choices for one sample: drawn once, applied identically to image and mask.</summary>
public readonly record struct AugmentDraw(
    bool FlipHorizontal, bool FlipVertical, double RotationDegrees, double Scale,
    double Brightness, double Contrast, double Saturation)
{
    public static AugmentDraw Identity { get; } = new(false, false, 0, 1, 1, 1, 1);

    public bool MovesPixels => FlipHorizontal || FlipVertical || RotationDegrees != 0 || Scale != 1;
}

/// <summary>Flips, rotation, scaling and colour jitter applied to an image and its mask together.</summary>
public static partial class Augmentation
{
    /// <summary>
    /// Draws every parameter, in a fixed order and whether or not it is enabled, so turning one
    /// augmentation on does not change the draws of the others.
    /// </summary>
    public static AugmentDraw Draw(AugmentOptions options, ref StableRng rng)
    {
        ArgumentNullException.ThrowIfNull(options);
        bool h = rng.Chance(options.HorizontalFlipProbability);
        bool v = rng.Chance(options.VerticalFlipProbability);
        double rotation = Symmetric(ref rng, options.MaxRotationDegrees);
        double scale = 1 + Symmetric(ref rng, options.MaxScaleChange);
        double brightness = 1 + Symmetric(ref rng, options.Brightness);
        double contrast = 1 + Symmetric(ref rng, options.Contrast);
        double saturation = 1 + Symmetric(ref rng, options.Saturation);
        return new AugmentDraw(h, v, rotation, scale, brightness, contrast, saturation);

        static double Symmetric(ref StableRng rng, double amount)
        {
            double u = rng.NextDouble(-1, 1);
            return amount > 0 ? u * amount : 0;
        }
    }

    /// <summary>
    /// Applies <paramref name="draw"/>: flips, then rotation and scaling about the centre (image
    /// bilinear, mask nearest so it keeps its values; uncovered corners become 0), then colour
    /// jitter on the image only. Returns new images; the inputs are not changed.
    /// </summary>
    public static (RgbImage Image, GrayImage Mask) Apply(RgbImage image, GrayImage mask, AugmentDraw draw)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(mask);
        if (image.Width != mask.Width || image.Height != mask.Height)
            throw new ArgumentException($"Image {image.Width}x{image.Height} and mask {mask.Width}x{mask.Height} differ in size.", nameof(mask));
        int w = image.Width, h = image.Height;
        byte[] rgb = (byte[])image.Pixels.Clone(), gray = (byte[])mask.Pixels.Clone();
        if (draw.FlipHorizontal)
        {
            FlipHorizontal(rgb, w, h, 3);
            FlipHorizontal(gray, w, h, 1);
        }
        if (draw.FlipVertical)
        {
            FlipVertical(rgb, w, h, 3);
            FlipVertical(gray, w, h, 1);
        }
        if (draw.RotationDegrees != 0 || draw.Scale != 1)
            (rgb, gray) = RotateScale(rgb, gray, w, h, draw.RotationDegrees, draw.Scale);
        if (draw.Brightness != 1 || draw.Contrast != 1 || draw.Saturation != 1)
            ColorJitter(rgb, draw.Brightness, draw.Contrast, draw.Saturation);
        return (new RgbImage(w, h, rgb), new GrayImage(w, h, gray));
    }

    private static void FlipHorizontal(byte[] px, int w, int h, int channels)
    {
        for (int y = 0; y < h; y++)
        {
            int row = y * w * channels;
            for (int a = 0, b = w - 1; a < b; a++, b--)
            {
                for (int c = 0; c < channels; c++)
                    (px[row + a * channels + c], px[row + b * channels + c]) = (px[row + b * channels + c], px[row + a * channels + c]);
            }
        }
    }

    private static void FlipVertical(byte[] px, int w, int h, int channels)
    {
        int stride = w * channels;
        var tmp = new byte[stride];
        for (int a = 0, b = h - 1; a < b; a++, b--)
        {
            px.AsSpan(a * stride, stride).CopyTo(tmp);
            px.AsSpan(b * stride, stride).CopyTo(px.AsSpan(a * stride, stride));
            tmp.CopyTo(px.AsSpan(b * stride, stride));
        }
    }

    /// <summary>
    /// Output pixel centre (x+½, y+½) reads the source at the inverse rotation and scaling about
    /// the image centre; positive degrees turn the content counter-clockwise, as on screen.
    /// </summary>
    private static (byte[] Rgb, byte[] Gray) RotateScale(byte[] rgb, byte[] gray, int w, int h, double degrees, double scale)
    {
        var outRgb = new byte[rgb.Length];
        var outGray = new byte[gray.Length];
        double theta = degrees * Math.PI / 180;
        // Exact values at multiples of 90° keep quarter turns pixel-exact.
        double cos = RoundTiny(Math.Cos(theta)), sin = RoundTiny(Math.Sin(theta));
        double cx = w / 2.0, cy = h / 2.0;
        for (int y = 0; y < h; y++)
        {
            double v = y + 0.5 - cy;
            for (int x = 0; x < w; x++)
            {
                double u = x + 0.5 - cx;
                // Inverse of "rotate counter-clockwise by theta (y down), then scale".
                double sx = (cos * u - sin * v) / scale + cx;
                double sy = (sin * u + cos * v) / scale + cy;
                int o = y * w + x;
                int nx = (int)Math.Floor(sx), ny = (int)Math.Floor(sy);
                if (nx >= 0 && nx < w && ny >= 0 && ny < h) outGray[o] = gray[ny * w + nx];
                SampleBilinear(rgb, w, h, sx - 0.5, sy - 0.5, outRgb.AsSpan(o * 3, 3));
            }
        }
        return (outRgb, outGray);

        static double RoundTiny(double value) => Math.Abs(value) < 1e-12 ? 0 : Math.Abs(Math.Abs(value) - 1) < 1e-12 ? Math.Sign(value) : value;
    }

    private static void SampleBilinear(byte[] rgb, int w, int h, double fx, double fy, Span<byte> output)
    {
        int x0 = (int)Math.Floor(fx), y0 = (int)Math.Floor(fy);
        double ax = fx - x0, ay = fy - y0;
        Span<double> sum = stackalloc double[3];
        for (int dy = 0; dy < 2; dy++)
        {
            int yy = y0 + dy;
            double wy = dy == 0 ? 1 - ay : ay;
            if (yy < 0 || yy >= h || wy == 0) continue;
            for (int dx = 0; dx < 2; dx++)
            {
                int xx = x0 + dx;
                double wx = dx == 0 ? 1 - ax : ax;
                if (xx < 0 || xx >= w || wx == 0) continue;
                int s = (yy * w + xx) * 3;
                double weight = wx * wy;
                sum[0] += weight * rgb[s];
                sum[1] += weight * rgb[s + 1];
                sum[2] += weight * rgb[s + 2];
            }
        }
        for (int c = 0; c < 3; c++) output[c] = ToByte(sum[c]);
    }

    /// <summary>Brightness (scale), contrast (blend with the mean grey) and saturation (blend with each pixel's grey), in that order.</summary>
    private static void ColorJitter(byte[] rgb, double brightness, double contrast, double saturation)
    {
        int n = rgb.Length / 3;
        var work = new double[rgb.Length];
        double meanGray = 0;
        for (int i = 0; i < rgb.Length; i++) work[i] = Math.Clamp(rgb[i] * brightness, 0, 255);
        for (int i = 0; i < n; i++) meanGray += Luma(work, i);
        meanGray /= Math.Max(n, 1);
        for (int i = 0; i < rgb.Length; i++) work[i] = Math.Clamp(meanGray + (work[i] - meanGray) * contrast, 0, 255);
        for (int i = 0; i < n; i++)
        {
            double g = Luma(work, i);
            for (int c = 0; c < 3; c++) rgb[3 * i + c] = ToByte(g + (work[3 * i + c] - g) * saturation);
        }

        static double Luma(double[] px, int i) => 0.299 * px[3 * i] + 0.587 * px[3 * i + 1] + 0.114 * px[3 * i + 2];
    }

    private static byte ToByte(double value) => (byte)Math.Clamp(Math.Round(value, MidpointRounding.AwayFromZero), 0, 255);

    [GeneratedRegex(@"\b(left|right|top|bottom)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex PositionWord();

    /// <summary>
    /// The prompt as it reads after the flips: left↔right for a horizontal flip, top↔bottom for a
    /// vertical one; whole words only ("leftmost" stays), keeping the case (Left → Right, TOP → BOTTOM).
    /// </summary>
    public static string SwapPositionWords(string prompt, bool horizontal, bool vertical)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (!horizontal && !vertical) return prompt;
        return PositionWord().Replace(prompt, m =>
        {
            string word = m.Value;
            string? swapped = word.ToLowerInvariant() switch
            {
                "left" when horizontal => "right",
                "right" when horizontal => "left",
                "top" when vertical => "bottom",
                "bottom" when vertical => "top",
                _ => null,
            };
            return swapped is null ? word : MatchCase(word, swapped);
        });

        static string MatchCase(string original, string replacement)
        {
            if (original.All(c => !char.IsLetter(c) || char.IsUpper(c)) && original.Length > 1) return replacement.ToUpperInvariant();
            if (char.IsUpper(original[0])) return char.ToUpperInvariant(replacement[0]) + replacement[1..];
            return replacement;
        }
    }
}
