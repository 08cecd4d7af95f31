using Vlsm.Imaging;

namespace Vlsm.Data.Prompts;

/// <summary>A colour word and the sRGB value it stands for.</summary>
public sealed record NamedColor(string Name, byte R, byte G, byte B);

/// <summary>
/// Names the colour of a masked region without a VQA model: the per-channel median RGB of the
/// image inside the mask, mapped to the nearest palette colour in CIELAB (ΔE*76, D65). The median
/// ignores specular highlights and dark crevices that would drag a mean; Lab distance follows
/// perceived difference far better than RGB distance (pink vs. white vs. tan).
/// The palette holds the colour words medvlsm's BLIP answers use most (white, yellow, brown,
/// pink, orange, tan, red, black, gray, blue, green, purple) plus dark red for dark lesions.
/// </summary>
public static class ColorNamer
{
    public static readonly IReadOnlyList<NamedColor> Palette =
    [
        new("red", 220, 35, 35),
        new("dark red", 130, 20, 25),
        new("orange", 240, 140, 40),
        new("yellow", 240, 215, 50),
        new("green", 50, 160, 60),
        new("blue", 40, 90, 210),
        new("purple", 130, 60, 160),
        new("pink", 235, 150, 170),
        new("brown", 125, 80, 45),
        new("tan", 210, 180, 140),
        new("white", 240, 240, 240),
        new("gray", 128, 128, 128),
        new("black", 25, 25, 25),
    ];

    private static readonly (double L, double A, double B)[] PaletteLab =
        Palette.Select(c => ToLab(c.R, c.G, c.B)).ToArray();

    /// <summary>The palette entry named <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No such colour.</exception>
    public static NamedColor Get(string name) =>
        Palette.FirstOrDefault(c => c.Name == name)
        ?? throw new ArgumentException($"'{name}' is not a palette colour; use one of {string.Join(", ", Palette.Select(c => c.Name))}.", nameof(name));

    /// <summary>The palette colour nearest to an sRGB value (0–255 per channel) in CIELAB; the first on ties.</summary>
    public static NamedColor Nearest(double r, double g, double b)
    {
        var lab = ToLab(r, g, b);
        int best = 0;
        double bestDistance = double.PositiveInfinity;
        for (int i = 0; i < PaletteLab.Length; i++)
        {
            double d = Square(lab.L - PaletteLab[i].L) + Square(lab.A - PaletteLab[i].A) + Square(lab.B - PaletteLab[i].B);
            if (d < bestDistance) { bestDistance = d; best = i; }
        }
        return Palette[best];
    }

    /// <summary>Colour word of the region: the nearest palette colour to its median RGB; null for an empty mask.</summary>
    public static string? Name(RgbImage image, BinaryMask mask) =>
        MedianColor(image, mask) is { } m ? Nearest(m.R, m.G, m.B).Name : null;

    /// <summary>
    /// Per-channel median of the image inside the mask (the mean of the two middle values for an
    /// even count, as numpy's median); null for an empty mask.
    /// </summary>
    /// <exception cref="VlsmException">Image and mask sizes differ.</exception>
    public static (double R, double G, double B)? MedianColor(RgbImage image, BinaryMask mask)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(mask);
        if (image.Width != mask.Width || image.Height != mask.Height)
            throw new VlsmException($"image is {image.Width}x{image.Height} but its mask is {mask.Width}x{mask.Height}; they must be the same size.");
        // Histograms: linear time and exact for 8-bit values.
        var histograms = new int[3, 256];
        int count = 0;
        byte[] px = image.Pixels;
        for (int i = 0; i < mask.Pixels.Length; i++)
        {
            if (!mask.Pixels[i]) continue;
            count++;
            histograms[0, px[3 * i]]++;
            histograms[1, px[3 * i + 1]]++;
            histograms[2, px[3 * i + 2]]++;
        }
        if (count == 0) return null;
        double Median(int channel)
        {
            // 0-based ranks of the middle value(s).
            int low = (count - 1) / 2, high = count / 2;
            int seen = 0, lowValue = -1;
            for (int v = 0; v < 256; v++)
            {
                seen += histograms[channel, v];
                if (lowValue < 0 && seen > low) lowValue = v;
                if (seen > high) return (lowValue + v) / 2.0;
            }
            throw new InvalidOperationException("unreachable: the histogram holds count values");
        }
        return (Median(0), Median(1), Median(2));
    }

    /// <summary>sRGB (0–255) to CIELAB under D65.</summary>
    public static (double L, double A, double B) ToLab(double r, double g, double b)
    {
        static double Linear(double c)
        {
            c /= 255;
            return c <= 0.04045 ? c / 12.92 : Math.Pow((c + 0.055) / 1.055, 2.4);
        }
        double rl = Linear(r), gl = Linear(g), bl = Linear(b);
        double x = (0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl) / 0.95047;
        double y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl;
        double z = (0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl) / 1.08883;
        static double F(double t) => t > 216.0 / 24389 ? Math.Cbrt(t) : (24389.0 / 27 * t + 16) / 116;
        double fx = F(x), fy = F(y), fz = F(z);
        return (116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz));
    }

    private static double Square(double v) => v * v;
}
