using System.Buffers.Binary;
using System.IO.Compression;

namespace Vlsm.Imaging;

/// <summary>
/// Reads 16-bit grayscale PNGs (colour type 0, bit depth 16) the way Pillow converts them to
/// 8 bits. Pillow opens them as mode "I;16" and both <c>convert("L")</c> and <c>convert("RGB")</c>
/// clip each sample to 255 (<c>I16L_L</c> / <c>I16_RGB</c> in libImaging/Convert.c), so small label
/// values (0, 1, 2...) survive. Skia instead keeps the high byte, which would turn such masks black,
/// hence this small reader. Every other PNG goes through Skia.
/// </summary>
internal static class PngGray16
{
    private static ReadOnlySpan<byte> Signature => [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>True when <paramref name="file"/> starts with a PNG header for a 16-bit grayscale image.</summary>
    public static bool Matches(ReadOnlySpan<byte> file) =>
        file.Length >= 33
        && file[..8].SequenceEqual(Signature)
        && file.Slice(12, 4).SequenceEqual("IHDR"u8)
        && file[24] == 16
        && file[25] == 0;

    /// <summary>
    /// The reason a PNG's IHDR size is impossible (PNG allows 1 to 2^31 − 1 pixels a side), or null
    /// when it is possible or the bytes are not a PNG with an IHDR. Decoders report such headers as
    /// a truncated file, which misleads.
    /// </summary>
    public static string? ImpossibleSize(ReadOnlySpan<byte> file)
    {
        if (file.Length < 24 || !file[..8].SequenceEqual(Signature) || !file.Slice(12, 4).SequenceEqual("IHDR"u8)) return null;
        uint width = BinaryPrimitives.ReadUInt32BigEndian(file[16..]), height = BinaryPrimitives.ReadUInt32BigEndian(file[20..]);
        const uint Max = int.MaxValue;
        if (width == 0 || height == 0 || width > Max || height > Max)
            return $"its PNG header declares {width}x{height} pixels; PNG sides must be 1 to {Max} pixels, so the header is corrupt";
        return null;
    }

    /// <summary>Decodes to one byte per pixel, each 16-bit sample clipped to 255.</summary>
    /// <exception cref="InvalidDataException">The file is truncated or malformed.</exception>
    public static byte[] Decode(ReadOnlySpan<byte> file, out int width, out int height)
    {
        if (!Matches(file)) throw new InvalidDataException("not a 16-bit grayscale PNG");
        width = BinaryPrimitives.ReadInt32BigEndian(file[16..]);
        height = BinaryPrimitives.ReadInt32BigEndian(file[20..]);
        if (width <= 0 || height <= 0 || (long)width * height > ImageSize.MaxPixels)
            throw new InvalidDataException($"unsupported image size {width}x{height}");
        byte interlace = file[28];
        if (file[26] != 0 || file[27] != 0 || interlace > 1)
            throw new InvalidDataException("unknown PNG compression, filter or interlace method");

        // Gather the IDAT payloads.
        var idat = new MemoryStream();
        int pos = 8;
        bool sawEnd = false;
        while (pos + 8 <= file.Length)
        {
            uint length = BinaryPrimitives.ReadUInt32BigEndian(file[pos..]);
            var type = file.Slice(pos + 4, 4);
            if (length > int.MaxValue || pos + 12L + length > file.Length)
                throw new InvalidDataException("the file is truncated (a PNG chunk runs past the end)");
            if (type.SequenceEqual("IDAT"u8)) idat.Write(file.Slice(pos + 8, (int)length));
            pos += 12 + (int)length;
            if (type.SequenceEqual("IEND"u8)) { sawEnd = true; break; }
        }
        if (idat.Length == 0)
            throw new InvalidDataException(sawEnd ? "the PNG has no image data" : "the file is truncated (no image data)");

        // Size of the filtered data for all passes.
        long expected = 0;
        foreach (var (pw, ph) in Passes(width, height, interlace))
            expected += (long)ph * (1 + 2L * pw);
        if (expected > int.MaxValue) throw new InvalidDataException("the image is too large");
        var raw = new byte[expected];
        idat.Position = 0;
        int got = 0;
        try
        {
            using var z = new ZLibStream(idat, CompressionMode.Decompress);
            while (got < raw.Length)
            {
                int n = z.Read(raw, got, raw.Length - got);
                if (n == 0) break;
                got += n;
            }
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"the compressed image data is corrupt ({e.Message})", e);
        }
        if (got < raw.Length) throw new InvalidDataException("the file is truncated (image data ends early)");

        var gray = new byte[(long)width * height];
        int offset = 0;
        int pass = 0;
        var prevBuffer = new byte[2L * width];
        foreach (var (pw, ph) in Passes(width, height, interlace))
        {
            var (x0, y0, dx, dy) = interlace == 0 ? (0, 0, 1, 1) : Adam7[pass];
            pass++;
            if (pw == 0 || ph == 0) continue;
            int stride = 2 * pw;
            var prev = prevBuffer.AsSpan(0, stride);
            prev.Clear();
            for (int r = 0; r < ph; r++)
            {
                byte filter = raw[offset];
                var row = raw.AsSpan(offset + 1, stride);
                Unfilter(filter, row, prev);
                int y = y0 + r * dy;
                int dst = y * width + x0;
                for (int i = 0; i < pw; i++, dst += dx)
                {
                    byte hi = row[2 * i], lo = row[2 * i + 1];
                    gray[dst] = hi != 0 ? (byte)255 : lo;
                }
                row.CopyTo(prev);
                offset += 1 + stride;
            }
        }
        return gray;
    }

    private static readonly (int X0, int Y0, int Dx, int Dy)[] Adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    private static IEnumerable<(int Width, int Height)> Passes(int width, int height, byte interlace)
    {
        if (interlace == 0)
        {
            yield return (width, height);
            yield break;
        }
        foreach (var (x0, y0, dx, dy) in Adam7)
            yield return (width > x0 ? (width - x0 + dx - 1) / dx : 0, height > y0 ? (height - y0 + dy - 1) / dy : 0);
    }

    private static void Unfilter(byte filter, Span<byte> row, ReadOnlySpan<byte> prev)
    {
        const int bpp = 2;
        switch (filter)
        {
            case 0:
                break;
            case 1:
                for (int i = bpp; i < row.Length; i++) row[i] += row[i - bpp];
                break;
            case 2:
                for (int i = 0; i < row.Length; i++) row[i] += prev[i];
                break;
            case 3:
                for (int i = 0; i < row.Length; i++)
                {
                    int left = i >= bpp ? row[i - bpp] : 0;
                    row[i] += (byte)((left + prev[i]) >> 1);
                }
                break;
            case 4:
                for (int i = 0; i < row.Length; i++)
                {
                    int a = i >= bpp ? row[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
                    int p = a + b - c;
                    int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                    row[i] += (byte)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
                }
                break;
            default:
                throw new InvalidDataException($"unknown PNG row filter {filter}");
        }
    }
}
