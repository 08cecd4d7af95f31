using Vlsm.Imaging;

namespace Vlsm.Data.Prompts;

/// <summary>A foreground/background mask: one bool per pixel, row-major, top row first.</summary>
public sealed class BinaryMask
{
    /// <summary>
    /// medvlsm binarises with <c>mask &gt; 127.5</c>; on 8-bit values that is <c>&gt;= 128</c>,
    /// so JPEG-compressed masks (values near 0 and 255) split the same way.
    /// </summary>
    public const byte ForegroundFrom = 128;

    public int Width { get; }
    public int Height { get; }

    /// <summary>Length <c>Width * Height</c>; index <c>y * Width + x</c>.</summary>
    public bool[] Pixels { get; }

    /// <summary>An all-background mask.</summary>
    public BinaryMask(int width, int height)
        : this(width, height, new bool[ImageSize.Check(width, height)]) { }

    /// <summary>Wraps <paramref name="pixels"/> (not copied).</summary>
    public BinaryMask(int width, int height, bool[] pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        long count = ImageSize.Check(width, height);
        if (pixels.LongLength != count)
            throw new ArgumentException($"A {width}x{height} mask needs {count} pixels; got {pixels.LongLength}.", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    public bool this[int x, int y]
    {
        get => Pixels[y * Width + x];
        set => Pixels[y * Width + x] = value;
    }

    /// <summary>Number of foreground pixels.</summary>
    public int Count
    {
        get
        {
            int n = 0;
            foreach (bool p in Pixels) if (p) n++;
            return n;
        }
    }

    public bool IsEmpty => Array.IndexOf(Pixels, true) < 0;

    /// <summary>Foreground where the gray value is above 127.5, as medvlsm reads masks.</summary>
    public static BinaryMask FromGray(GrayImage mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        var pixels = new bool[mask.Pixels.Length];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = mask.Pixels[i] >= ForegroundFrom;
        return new BinaryMask(mask.Width, mask.Height, pixels);
    }

    /// <summary>Builds a mask from rows of text, <c>#</c> (or <c>1</c>) for foreground; handy for tests and docs.</summary>
    public static BinaryMask Parse(params string[] rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Length == 0 || rows[0].Length == 0) throw new ArgumentException("A mask needs at least one non-empty row.", nameof(rows));
        int w = rows[0].Length;
        var mask = new BinaryMask(w, rows.Length);
        for (int y = 0; y < rows.Length; y++)
        {
            if (rows[y].Length != w) throw new ArgumentException($"Row {y} has {rows[y].Length} characters; row 0 has {w}.", nameof(rows));
            for (int x = 0; x < w; x++) mask[x, y] = rows[y][x] is '#' or '1';
        }
        return mask;
    }

    /// <summary>The mask as a 0/255 gray image, the way medvlsm datasets store masks.</summary>
    public GrayImage ToGray()
    {
        var gray = new byte[Pixels.Length];
        for (int i = 0; i < gray.Length; i++) gray[i] = Pixels[i] ? (byte)255 : (byte)0;
        return new GrayImage(Width, Height, gray);
    }
}
