namespace Vlsm.Imaging;

/// <summary>Draws predicted masks over images for visual checks.</summary>
public static class Overlay
{
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
                lut[ch * 256 + v] = (byte)Math.Clamp(MathF.Round(v * (1f - alpha) + c[ch] * alpha, MidpointRounding.AwayFromZero), 0f, 255f);

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
