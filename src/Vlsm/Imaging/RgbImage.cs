namespace Vlsm.Imaging;

/// <summary>An 8-bit RGB image: <see cref="Pixels"/> holds R, G, B interleaved, row-major, top row first.</summary>
public sealed class RgbImage
{
    public int Width { get; }
    public int Height { get; }

    /// <summary>Length <c>Width * Height * 3</c>.</summary>
    public byte[] Pixels { get; }

    /// <summary>A black image.</summary>
    public RgbImage(int width, int height)
        : this(width, height, new byte[checked(ImageSize.Check(width, height) * 3)]) { }

    /// <summary>Wraps <paramref name="pixels"/> (not copied).</summary>
    public RgbImage(int width, int height, byte[] pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        long count = ImageSize.Check(width, height);
        if (pixels.LongLength != count * 3)
            throw new ArgumentException(
                $"An RGB image of {width}x{height} needs {count * 3} bytes; got {pixels.LongLength}.", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }
}

/// <summary>An 8-bit single-channel image (masks): one byte per pixel, row-major, top row first.</summary>
public sealed class GrayImage
{
    public int Width { get; }
    public int Height { get; }

    /// <summary>Length <c>Width * Height</c>.</summary>
    public byte[] Pixels { get; }

    /// <summary>An all-zero image.</summary>
    public GrayImage(int width, int height)
        : this(width, height, new byte[ImageSize.Check(width, height)]) { }

    /// <summary>Wraps <paramref name="pixels"/> (not copied).</summary>
    public GrayImage(int width, int height, byte[] pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        long count = ImageSize.Check(width, height);
        if (pixels.LongLength != count)
            throw new ArgumentException(
                $"A gray image of {width}x{height} needs {count} bytes; got {pixels.LongLength}.", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }
}

internal static class ImageSize
{
    /// <summary>Largest pixel count such that an RGBA buffer of it still fits in one .NET array.</summary>
    public const long MaxPixels = (long)int.MaxValue / 4;

    /// <summary>Validates positive dimensions whose RGBA buffer fits in an array; returns the pixel count.</summary>
    public static int Check(int width, int height)
    {
        if (width <= 0) throw new ArgumentOutOfRangeException(nameof(width), width, "Width must be positive.");
        if (height <= 0) throw new ArgumentOutOfRangeException(nameof(height), height, "Height must be positive.");
        long count = (long)width * height;
        if (count > MaxPixels)
            throw new ArgumentOutOfRangeException(nameof(width), $"An image of {width}x{height} is too large (at most {MaxPixels} pixels).");
        return (int)count;
    }
}
