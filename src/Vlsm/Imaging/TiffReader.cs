using System.Buffers.Binary;

namespace Vlsm.Imaging;

/// <summary>
/// A small reader for baseline TIFF, the format microscopes and many scanners write (Skia has no
/// TIFF codec): the first image of the file, in strips, uncompressed or PackBits, chunky samples,
/// grayscale (BlackIsZero or WhiteIsZero) or RGB, 8 or 16 bits per sample, unsigned, with any extra
/// samples (alpha) ignored and the Orientation tag honoured. 16-bit samples are scaled to 8 bits
/// (round(v / 257)), so the full range of a 16-bit scan stays visible. Anything else (LZW or
/// Deflate compression, tiles, planar samples, palettes, floats, BigTIFF) is refused by name.
/// </summary>
internal static class TiffReader
{
    /// <summary>Decoded pixels: one byte per pixel (gray) or four (RGBA, alpha 255), and the EXIF-style orientation (1..8).</summary>
    public sealed record Image(int Width, int Height, bool IsGray, byte[] Pixels, int Orientation);

    public static bool Matches(ReadOnlySpan<byte> file) =>
        file.Length >= 4 && ((file[0] == (byte)'I' && file[1] == (byte)'I' && file[2] == 42 && file[3] == 0)
                          || (file[0] == (byte)'M' && file[1] == (byte)'M' && file[2] == 0 && file[3] == 42)
                          || (file[0] == (byte)'I' && file[1] == (byte)'I' && file[2] == 43 && file[3] == 0)
                          || (file[0] == (byte)'M' && file[1] == (byte)'M' && file[2] == 0 && file[3] == 43));

    private const ushort ImageWidth = 256, ImageLength = 257, BitsPerSample = 258, Compression = 259, Photometric = 262,
        StripOffsets = 273, OrientationTag = 274, SamplesPerPixel = 277, RowsPerStrip = 278, StripByteCounts = 279,
        PlanarConfiguration = 284, Predictor = 317, TileWidth = 322, SampleFormat = 339;

    /// <exception cref="InvalidDataException">The file is truncated or inconsistent, or uses a TIFF feature this reader does not read (the message names it).</exception>
    public static Image Decode(byte[] file, long maxPixels)
    {
        bool little = file[0] == (byte)'I';
        if (Read16(file, 2, little) == 43)
            throw new InvalidDataException("BigTIFF is not read; save the image as a baseline TIFF or PNG");
        var tags = ReadDirectory(file, little);

        uint Single(ushort tag, uint fallback) => tags.TryGetValue(tag, out var v) ? v[0] : fallback;
        uint Required(ushort tag, string name) =>
            tags.TryGetValue(tag, out var v) ? v[0] : throw new InvalidDataException($"the TIFF has no {name} tag ({tag})");

        long width = Required(ImageWidth, "ImageWidth"), height = Required(ImageLength, "ImageLength");
        if (width <= 0 || height <= 0 || width > int.MaxValue || height > int.MaxValue)
            throw new InvalidDataException($"the TIFF header gives an invalid size {width}x{height}");
        if (width * height > maxPixels)
            throw new InvalidDataException($"the TIFF is {width}x{height} pixels, more than the {maxPixels} vlsm accepts");
        if (tags.ContainsKey(TileWidth)) throw new InvalidDataException("tiled TIFF is not read; save it in strips (the default of most tools) or as PNG");
        uint compression = Single(Compression, 1);
        if (compression is not (1 or 32773))
        {
            string name = compression switch { 5 => "LZW", 7 => "JPEG", 8 or 32946 => "Deflate", 6 => "old-style JPEG", 2 or 3 or 4 => "CCITT fax", _ => $"compression {compression}" };
            throw new InvalidDataException($"{name}-compressed TIFF is not read (uncompressed and PackBits are); save it uncompressed or as PNG");
        }
        if (Single(Predictor, 1) != 1) throw new InvalidDataException("a TIFF differencing predictor is not read; save it uncompressed or as PNG");
        int samples = (int)Single(SamplesPerPixel, 1);
        if (samples is < 1 or > 8) throw new InvalidDataException($"SamplesPerPixel {samples} is not read");
        if (samples > 1 && Single(PlanarConfiguration, 1) != 1) throw new InvalidDataException("planar (separate-plane) TIFF is not read; save it with interleaved samples or as PNG");
        uint photometric = Required(Photometric, "PhotometricInterpretation");
        bool gray = photometric is 0 or 1;
        if (!gray && photometric != 2)
        {
            string name = photometric switch { 3 => "palette", 4 => "transparency mask", 5 => "CMYK", 6 => "YCbCr", 8 => "CIELab", _ => $"photometric {photometric}" };
            throw new InvalidDataException($"{name} TIFF is not read (grayscale and RGB are); save it as RGB or PNG");
        }
        int colour = gray ? 1 : 3;
        if (samples < colour) throw new InvalidDataException($"an RGB TIFF needs 3 samples per pixel, this one has {samples}");
        var bits = tags.TryGetValue(BitsPerSample, out var b) ? b : [1u];
        int depth = (int)bits[0];
        if (bits.Any(x => x != depth) || depth is not (8 or 16))
            throw new InvalidDataException($"{string.Join("/", bits)}-bit TIFF is not read (8- and 16-bit are)");
        if (tags.TryGetValue(SampleFormat, out var formats) && formats.Any(f => f != 1))
            throw new InvalidDataException(formats.Any(f => f == 3) ? "floating-point TIFF is not read; save it as 8- or 16-bit integers" : "signed-integer TIFF is not read; save it as unsigned 8- or 16-bit");

        int bytesPerSample = depth / 8;
        long rowBytes = width * samples * bytesPerSample;
        long rowsPerStrip = Math.Min(Single(RowsPerStrip, uint.MaxValue), height);
        if (rowsPerStrip <= 0) throw new InvalidDataException("RowsPerStrip is 0");
        var offsets = tags.TryGetValue(StripOffsets, out var o) ? o : throw new InvalidDataException("the TIFF has no StripOffsets tag (273)");
        var counts = tags.TryGetValue(StripByteCounts, out var c) ? c : null;
        long strips = (height + rowsPerStrip - 1) / rowsPerStrip;
        if (offsets.Length < strips || (counts is not null && counts.Length < strips))
            throw new InvalidDataException($"the TIFF lists {offsets.Length} strips, its size needs {strips}");

        long total = rowBytes * height;
        if (total > Array.MaxLength) throw new InvalidDataException($"the TIFF is too large to read ({total} bytes of samples)");
        var raw = new byte[total];
        long at = 0;
        for (long s = 0; s < strips; s++)
        {
            long expected = Math.Min(rowsPerStrip, height - s * rowsPerStrip) * rowBytes;
            long start = offsets[s];
            long count = counts is not null ? counts[s] : (compression == 1 ? expected : file.Length - start);
            if (start < 0 || start > file.Length || count < 0 || start + count > file.Length)
                throw new InvalidDataException($"strip {s} lies outside the file (offset {start}, {count} bytes, file {file.Length} bytes): the file is truncated");
            var source = file.AsSpan((int)start, (int)count);
            var target = raw.AsSpan((int)at, (int)expected);
            if (compression == 1)
            {
                if (source.Length < expected) throw new InvalidDataException($"strip {s} holds {source.Length} bytes, {expected} expected: the file is truncated");
                source[..(int)expected].CopyTo(target);
            }
            else
            {
                UnpackBits(source, target, s);
            }
            at += expected;
        }

        int orientation = (int)Single(OrientationTag, 1);
        if (orientation is < 1 or > 8) orientation = 1;
        int n = (int)(width * height);
        var pixels = new byte[gray ? n : (long)n * 4];
        for (int i = 0; i < n; i++)
        {
            long p = (long)i * samples * bytesPerSample;
            if (gray)
            {
                byte v = Sample(raw, p, depth, little);
                pixels[i] = photometric == 0 ? (byte)(255 - v) : v;
            }
            else
            {
                pixels[4L * i] = Sample(raw, p, depth, little);
                pixels[4L * i + 1] = Sample(raw, p + bytesPerSample, depth, little);
                pixels[4L * i + 2] = Sample(raw, p + 2 * bytesPerSample, depth, little);
                pixels[4L * i + 3] = 255;
            }
        }
        return new Image((int)width, (int)height, gray, pixels, orientation);
    }

    /// <summary>One sample as 8 bits: 8-bit as stored, 16-bit scaled by 255/65535 and rounded.</summary>
    private static byte Sample(byte[] raw, long at, int depth, bool little)
    {
        if (depth == 8) return raw[at];
        int v = little ? raw[at] | (raw[at + 1] << 8) : (raw[at] << 8) | raw[at + 1];
        return (byte)((v + 128) / 257);
    }

    /// <summary>PackBits (Apple's run-length scheme, TIFF compression 32773) into exactly <paramref name="target"/>'s length.</summary>
    private static void UnpackBits(ReadOnlySpan<byte> source, Span<byte> target, long strip)
    {
        int i = 0, o = 0;
        while (o < target.Length)
        {
            if (i >= source.Length) throw new InvalidDataException($"PackBits strip {strip} ends after {o} of {target.Length} bytes: the file is truncated");
            sbyte header = (sbyte)source[i++];
            if (header >= 0)
            {
                int literal = header + 1;
                if (i + literal > source.Length || o + literal > target.Length)
                    throw new InvalidDataException($"PackBits strip {strip} is corrupt (a literal run overruns the strip)");
                source.Slice(i, literal).CopyTo(target[o..]);
                i += literal;
                o += literal;
            }
            else if (header != -128)
            {
                int repeat = 1 - header;
                if (i >= source.Length || o + repeat > target.Length)
                    throw new InvalidDataException($"PackBits strip {strip} is corrupt (a repeated run overruns the strip)");
                target.Slice(o, repeat).Fill(source[i++]);
                o += repeat;
            }
        }
    }

    /// <summary>The first image file directory's tags: SHORT, LONG and BYTE values (the baseline tags use no other types).</summary>
    private static Dictionary<ushort, uint[]> ReadDirectory(byte[] file, bool little)
    {
        if (file.Length < 8) throw new InvalidDataException("the TIFF header is truncated");
        long ifd = Read32(file, 4, little);
        if (ifd < 8 || ifd + 2 > file.Length) throw new InvalidDataException($"the first image directory (offset {ifd}) lies outside the file: the file is truncated");
        int entries = Read16(file, (int)ifd, little);
        if (ifd + 2 + 12L * entries > file.Length) throw new InvalidDataException("the image directory is truncated");
        var tags = new Dictionary<ushort, uint[]>();
        for (int e = 0; e < entries; e++)
        {
            int at = (int)(ifd + 2 + 12 * e);
            ushort tag = Read16(file, at, little), type = Read16(file, at + 2, little);
            long count = Read32(file, at + 4, little);
            int size = type switch { 1 or 2 or 6 or 7 => 1, 3 or 8 => 2, 4 or 9 => 4, _ => 0 };
            if (size == 0 || count <= 0 || count > 1 << 24) continue; // rationals, doubles, ASCII beyond a byte: not needed here
            long bytes = count * size;
            long valueAt = bytes <= 4 ? at + 8 : Read32(file, at + 8, little);
            if (valueAt < 0 || valueAt + bytes > file.Length)
                throw new InvalidDataException($"tag {tag}'s values lie outside the file: the file is truncated");
            var values = new uint[count];
            for (long k = 0; k < count; k++)
            {
                int p = (int)(valueAt + k * size);
                values[k] = size switch { 1 => file[p], 2 => Read16(file, p, little), _ => Read32(file, p, little) };
            }
            tags[tag] = values;
        }
        return tags;
    }

    private static ushort Read16(byte[] f, int at, bool little) =>
        little ? BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(at, 2)) : BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(at, 2));

    private static uint Read32(byte[] f, int at, bool little) =>
        little ? BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(at, 4)) : BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(at, 4));
}
