namespace Vlsm.Imaging;

/// <summary>
/// Draws predicted masks over images for visual checks, in one pair of colours for every command
/// (predict, eval, serve, the demo): the prediction filled in Okabe–Ito blue (#0072B2) and the
/// ground truth outlined in Okabe–Ito yellow (#F0E442). Blue is the hue furthest from the pink,
/// red and orange of tissue, polyps and skin, so the fill shows on all of them; yellow is the
/// brightest of the palette and sits on the blue–yellow axis that the common red–green colour
/// deficiencies (protanopia, deuteranopia) keep, so fill and outline stay apart for those readers too.
/// </summary>
public static class Overlay
{
    /// <summary>Prediction fill: Okabe–Ito blue #0072B2.</summary>
    public static readonly (byte R, byte G, byte B) PredictionColor = (0, 114, 178);

    /// <summary>Ground-truth outline: Okabe–Ito yellow #F0E442.</summary>
    public static readonly (byte R, byte G, byte B) TruthColor = (240, 228, 66);

    /// <summary>Opacity of the prediction fill.</summary>
    public const float PredictionAlpha = 0.55f;

    /// <summary>Caption band: background and text.</summary>
    public static readonly (byte R, byte G, byte B) BandColor = (32, 32, 32), TextColor = (255, 255, 255);

    /// <summary>The image with the prediction filled in <see cref="PredictionColor"/>, at the image's size (no caption).</summary>
    public static RgbImage Prediction(RgbImage image, GrayImage prediction) => Tint(image, prediction, PredictionColor, PredictionAlpha);

    /// <summary>Pictures narrower than this are enlarged by a whole factor, so the caption has room.</summary>
    public const int MinCaptionedWidth = 256;

    /// <summary>
    /// A picture that explains itself: the image (enlarged by a whole factor, nearest neighbour,
    /// when narrower than <see cref="MinCaptionedWidth"/>) with the prediction filled in blue and,
    /// when given, the ground truth outlined in yellow; below it a dark band with the prompt (wrapped,
    /// at most three lines), "Dice 0.912  IoU 0.838" when given, and a legend: a blue swatch
    /// "prediction" and, with a ground truth, a yellow square outline "ground truth".
    /// </summary>
    /// <param name="prediction">0/255 mask at the image's size.</param>
    /// <param name="truth">0/255 mask at the image's size, or null.</param>
    /// <param name="prompt">The prompt text (null for an image-only model).</param>
    public static RgbImage Captioned(RgbImage image, GrayImage prediction, GrayImage? truth, string? prompt, double? dice = null, double? iou = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        var tinted = Prediction(image, prediction);
        int k = image.Width >= MinCaptionedWidth ? 1 : Math.Min(8, (MinCaptionedWidth + image.Width - 1) / image.Width);
        int width = image.Width * k, height = image.Height * k;
        int ts = width >= 640 ? 2 : 1; // text scale
        int line = BitmapFont.CellHeight * ts + 2 * ts, pad = 3 * ts;
        int columns = Math.Max(8, (width - 2 * pad) / (BitmapFont.CellWidth * ts));

        var lines = new List<string>();
        if (prompt is not null)
        {
            var wrapped = WrapText(prompt.Length == 0 ? "(empty prompt)" : "prompt: " + prompt, columns).ToList();
            if (wrapped.Count > 3) wrapped = [.. wrapped.Take(2), wrapped[2][..Math.Min(wrapped[2].Length, columns - 3)] + "..."];
            lines.AddRange(wrapped);
        }
        if (dice is not null || iou is not null)
            lines.Add(string.Join("  ", new[] { dice is { } d ? $"Dice {Fixed(d)}" : null, iou is { } j ? $"IoU {Fixed(j)}" : null }.OfType<string>()));
        int band = pad + (lines.Count + 1) * line + pad;

        var output = new RgbImage(width, height + band);
        var px = output.Pixels;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int s = 3 * ((y / k) * image.Width + x / k), d = 3 * (y * width + x);
                px[d] = tinted.Pixels[s];
                px[d + 1] = tinted.Pixels[s + 1];
                px[d + 2] = tinted.Pixels[s + 2];
            }
        if (truth is not null) DrawOutline(output, truth, k, Math.Max(k, width / 250));
        Fill(output, 0, height, width, band, BandColor);
        int ty = height + pad;
        foreach (var text in lines)
        {
            BitmapFont.Draw(output, text, pad, ty, TextColor, ts);
            ty += line;
        }
        DrawLegend(output, pad, ty, ts, truth is not null ? "ground truth" : null, TextColor);
        return output;
    }

    /// <summary>
    /// The legend, one text line high at (<paramref name="x"/>, <paramref name="y"/>): a swatch of the
    /// fill as it looks over mid grey, "prediction", and with <paramref name="truthLabel"/> a grey
    /// square outlined as the truth is, followed by that label.
    /// </summary>
    public static void DrawLegend(RgbImage image, int x, int y, int scale, string? truthLabel, (byte R, byte G, byte B) ink)
    {
        ArgumentNullException.ThrowIfNull(image);
        int box = BitmapFont.CellHeight * scale, t = 2 * scale;
        Fill(image, x, y, box, box, Blend((128, 128, 128), PredictionColor, PredictionAlpha));
        x += box + 3 * scale;
        BitmapFont.Draw(image, "prediction", x, y, ink, scale);
        x += BitmapFont.Measure("prediction", scale) + 2 * BitmapFont.CellWidth * scale;
        if (truthLabel is null) return;
        Fill(image, x, y, box, box, TruthColor);
        Fill(image, x + t, y + t, box - 2 * t, box - 2 * t, (128, 128, 128));
        x += box + 3 * scale;
        BitmapFont.Draw(image, truthLabel, x, y, ink, scale);
    }

    private static string Fixed(double v) => double.IsNaN(v) ? "-" : v.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary><paramref name="over"/> at opacity <paramref name="alpha"/> on <paramref name="under"/>, rounded as <see cref="Tint"/> rounds.</summary>
    public static (byte R, byte G, byte B) Blend((byte R, byte G, byte B) under, (byte R, byte G, byte B) over, float alpha)
    {
        return (Mix(under.R, over.R, alpha), Mix(under.G, over.G, alpha), Mix(under.B, over.B, alpha));
    }

    /// <summary>One channel of <paramref name="over"/> at opacity <paramref name="alpha"/> on <paramref name="under"/>: the rounding every blend here uses.</summary>
    private static byte Mix(int under, int over, float alpha) =>
        (byte)Math.Clamp(MathF.Round(under * (1f - alpha) + over * alpha, MidpointRounding.AwayFromZero), 0f, 255f);

    /// <summary>Fills the rectangle (clipped to the image).</summary>
    public static void Fill(RgbImage image, int x, int y, int w, int h, (byte R, byte G, byte B) color)
    {
        ArgumentNullException.ThrowIfNull(image);
        for (int yy = Math.Max(y, 0); yy < Math.Min(y + h, image.Height); yy++)
            for (int xx = Math.Max(x, 0); xx < Math.Min(x + w, image.Width); xx++)
            {
                int s = 3 * (yy * image.Width + xx);
                image.Pixels[s] = color.R;
                image.Pixels[s + 1] = color.G;
                image.Pixels[s + 2] = color.B;
            }
    }

    /// <summary>
    /// Outlines <paramref name="truth"/> (drawn at <paramref name="scale"/> times its size) in
    /// <see cref="TruthColor"/>: every foreground pixel with a 4-neighbour outside the mask (or at the
    /// border) becomes a square of side max(<paramref name="scale"/>, <paramref name="thickness"/>) centred on its scaled pixel.
    /// </summary>
    public static void DrawOutline(RgbImage image, GrayImage truth, int scale, int thickness)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(truth);
        int w = truth.Width, h = truth.Height, side = Math.Max(scale, thickness), shift = (side - scale) / 2;
        bool On(int x, int y) => x >= 0 && y >= 0 && x < w && y < h && truth.Pixels[y * w + x] > 127;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (On(x, y) && !(On(x - 1, y) && On(x + 1, y) && On(x, y - 1) && On(x, y + 1)))
                    Fill(image, x * scale - shift, y * scale - shift, side, side, TruthColor);
    }

    /// <summary>Lines of at most <paramref name="width"/> characters, broken at spaces where possible.</summary>
    public static IEnumerable<string> WrapText(string text, int width)
    {
        var line = "";
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            for (var w = word; w.Length > 0;)
            {
                if (line.Length > 0 && line.Length + 1 + w.Length > width)
                {
                    yield return line;
                    line = "";
                }
                int take = Math.Min(w.Length, width - (line.Length > 0 ? line.Length + 1 : 0));
                line = line.Length == 0 ? w[..take] : line + " " + w[..take];
                w = w[take..];
            }
        }
        if (line.Length > 0) yield return line;
    }

    /// <summary>
    /// A copy of <paramref name="image"/> with <paramref name="color"/> blended in at opacity
    /// <paramref name="alpha"/> wherever <paramref name="mask"/> is above 127; other pixels are unchanged.
    /// Each channel becomes <c>round(v * (1 - alpha) + c * alpha)</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The mask and image sizes differ.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="alpha"/> is not in [0, 1].</exception>
    public static RgbImage Tint(RgbImage image, GrayImage mask, (byte r, byte g, byte b) color, float alpha = 0.45f)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(mask);
        if (image.Width != mask.Width || image.Height != mask.Height)
            throw new ArgumentException(
                $"The mask is {mask.Width}x{mask.Height} but the image is {image.Width}x{image.Height}; resize the mask to the image first.",
                nameof(mask));
        if (!(alpha >= 0f && alpha <= 1f))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "Alpha must be between 0 and 1.");

        // One lookup table per channel: blended value for each source byte.
        Span<byte> lut = stackalloc byte[3 * 256];
        ReadOnlySpan<byte> c = [color.r, color.g, color.b];
        for (int ch = 0; ch < 3; ch++)
            for (int v = 0; v < 256; v++)
                lut[ch * 256 + v] = Mix(v, c[ch], alpha);

        var output = (byte[])image.Pixels.Clone();
        ReadOnlySpan<byte> m = mask.Pixels;
        Span<byte> px = output;
        for (int i = 0, s = 0; i < m.Length; i++, s += 3)
        {
            if (m[i] <= 127) continue;
            px[s] = lut[px[s]];
            px[s + 1] = lut[256 + px[s + 1]];
            px[s + 2] = lut[512 + px[s + 2]];
        }
        return new RgbImage(image.Width, image.Height, output);
    }
}
