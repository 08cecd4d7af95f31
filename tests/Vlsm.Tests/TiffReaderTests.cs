using System.Buffers.Binary;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>Baseline TIFF (8- and 16-bit, gray and RGB, uncompressed and PackBits, strips), written here byte by byte.</summary>
public sealed class TiffReaderTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-tiff-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    /// <summary>A TIFF writer for tests: samples as given (8 or 16 bits), chunky, in strips of <paramref name="rowsPerStrip"/> rows.</summary>
    internal static byte[] Tiff(int width, int height, int samples, int bits, ushort[] values, bool bigEndian = false, bool packBits = false,
        int rowsPerStrip = 0, int photometric = -1, int orientation = 1, IReadOnlyList<(ushort Tag, ushort Type, uint Value)>? extra = null)
    {
        if (rowsPerStrip <= 0) rowsPerStrip = height;
        if (photometric < 0) photometric = samples >= 3 ? 2 : 1;
        int bytesPerSample = bits / 8, rowBytes = width * samples * bytesPerSample;
        var strips = new List<byte[]>();
        for (int y0 = 0; y0 < height; y0 += rowsPerStrip)
        {
            int rows = Math.Min(rowsPerStrip, height - y0);
            var raw = new byte[rows * rowBytes];
            for (int i = 0; i < rows * width * samples; i++)
            {
                ushort v = values[y0 * width * samples + i];
                if (bits == 8) raw[i] = (byte)v;
                else if (bigEndian) BinaryPrimitives.WriteUInt16BigEndian(raw.AsSpan(2 * i), v);
                else BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(2 * i), v);
            }
            strips.Add(packBits ? PackBits(raw) : raw);
        }
        var o = new List<byte>();
        void U16(int v) { var b = new byte[2]; if (bigEndian) BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)v); else BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v); o.AddRange(b); }
        void U32(long v) { var b = new byte[4]; if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, (uint)v); else BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)v); o.AddRange(b); }
        o.AddRange(bigEndian ? "MM"u8.ToArray() : "II"u8.ToArray());
        U16(42);
        U32(0); // IFD offset, patched below
        // Data first: strips, then the bits-per-sample array, then the strip tables.
        var offsets = new List<long>();
        foreach (var s in strips) { offsets.Add(o.Count); o.AddRange(s); if (o.Count % 2 == 1) o.Add(0); }
        long bitsAt = o.Count;
        for (int i = 0; i < samples; i++) U16(bits);
        long offsetsAt = o.Count;
        foreach (var off in offsets) U32(off);
        long countsAt = o.Count;
        foreach (var s in strips) U32(s.Length);
        long ifd = o.Count;
        var entries = new List<(ushort Tag, ushort Type, uint Count, uint Value)>
        {
            (256, 4, 1, (uint)width), (257, 4, 1, (uint)height),
            (258, 3, (uint)samples, samples == 1 ? (uint)bits : (samples == 2 ? (uint)(bigEndian ? bits << 16 | bits : bits | bits << 16) : (uint)bitsAt)),
            (259, 3, 1, packBits ? 32773u : 1u), (262, 3, 1, (uint)photometric),
            (273, 4, (uint)strips.Count, strips.Count == 1 ? (uint)offsets[0] : (uint)offsetsAt),
            (274, 3, 1, (uint)orientation), (277, 3, 1, (uint)samples), (278, 4, 1, (uint)rowsPerStrip),
            (279, 4, (uint)strips.Count, strips.Count == 1 ? (uint)strips[0].Length : (uint)countsAt),
        };
        foreach (var (tag, type, value) in extra ?? []) entries.Add((tag, type, 1, value));
        entries.Sort((a, b) => a.Tag.CompareTo(b.Tag));
        U16(entries.Count);
        foreach (var (tag, type, count, value) in entries)
        {
            U16(tag);
            U16(type);
            U32(count);
            if (type == 3 && count == 1) { U16((int)value); U16(0); } // a SHORT sits left-justified in the value field
            else U32(value);
        }
        U32(0);
        var bytes = o.ToArray();
        if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), (uint)ifd);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), (uint)ifd);
        return bytes;
    }

    /// <summary>PackBits with real runs (repeats of 3+ bytes) and literals.</summary>
    private static byte[] PackBits(byte[] raw)
    {
        var o = new List<byte>();
        int i = 0;
        while (i < raw.Length)
        {
            int run = 1;
            while (i + run < raw.Length && run < 128 && raw[i + run] == raw[i]) run++;
            if (run >= 3)
            {
                o.Add((byte)(sbyte)(1 - run));
                o.Add(raw[i]);
                i += run;
                continue;
            }
            int start = i, n = 0;
            while (i < raw.Length && n < 128 && !(i + 2 < raw.Length && raw[i] == raw[i + 1] && raw[i] == raw[i + 2])) { i++; n++; }
            o.Add((byte)(n - 1));
            o.AddRange(raw.AsSpan(start, n).ToArray());
        }
        return o.ToArray();
    }

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(tmp, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static ushort[] Values(int count, int max, int seed)
    {
        var rng = new Random(seed);
        var v = new ushort[count];
        for (int i = 0; i < count; i++) v[i] = (ushort)rng.Next(max + 1);
        // Runs, so PackBits has repeats to encode.
        for (int i = 0; i < Math.Min(count, 40); i++) v[i] = v[0];
        return v;
    }

    [Theory]
    [InlineData(false, false, 0)]
    [InlineData(true, false, 0)]
    [InlineData(false, true, 3)]
    [InlineData(true, true, 2)]
    public void EightBitRgbReadsAsStored(bool bigEndian, bool packBits, int rowsPerStrip)
    {
        const int w = 13, h = 7;
        var values = Values(w * h * 3, 255, 1);
        var image = ImageCodec.DecodeRgb(Write("rgb8.tif", Tiff(w, h, 3, 8, values, bigEndian, packBits, rowsPerStrip)));
        Assert.Equal((w, h), (image.Width, image.Height));
        Assert.Equal(values.Select(v => (byte)v).ToArray(), image.Pixels);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void SixteenBitGrayAndRgbAreScaledTo8Bits(bool bigEndian, bool packBits)
    {
        const int w = 9, h = 5;
        var gray = Values(w * h, 65535, 2);
        gray[1] = 0;
        gray[2] = 65535;
        gray[3] = 128; // rounds to 0; 129 would round to 1 (v/257 = 0.50195...)
        var g = ImageCodec.DecodeGray(Write("g16.tif", Tiff(w, h, 1, 16, gray, bigEndian, packBits, rowsPerStrip: 2)));
        Assert.Equal(gray.Select(v => (byte)Math.Round(v / 257.0, MidpointRounding.AwayFromZero)).ToArray(), g.Pixels);
        Assert.Equal(0, g.Pixels[1]);
        Assert.Equal(255, g.Pixels[2]);

        var rgb = Values(w * h * 3, 65535, 3);
        var c = ImageCodec.DecodeRgb(Write("rgb16.tif", Tiff(w, h, 3, 16, rgb, bigEndian, packBits)));
        Assert.Equal(rgb.Select(v => (byte)Math.Round(v / 257.0, MidpointRounding.AwayFromZero)).ToArray(), c.Pixels);
    }

    [Fact]
    public void GrayIsSpreadToRgbWhiteIsZeroIsInvertedAndOrientationIsHonoured()
    {
        const int w = 4, h = 3;
        var values = Enumerable.Range(0, w * h).Select(i => (ushort)(i * 20)).ToArray();
        var rgb = ImageCodec.DecodeRgb(Write("g8.tif", Tiff(w, h, 1, 8, values)));
        for (int i = 0; i < w * h; i++) Assert.Equal(new[] { (byte)values[i], (byte)values[i], (byte)values[i] }, rgb.Pixels[(3 * i)..(3 * i + 3)]);

        var inverted = ImageCodec.DecodeGray(Write("wiz.tif", Tiff(w, h, 1, 8, values, photometric: 0)));
        Assert.Equal(values.Select(v => (byte)(255 - v)).ToArray(), inverted.Pixels);

        var rotated = ImageCodec.DecodeGray(Write("rot.tif", Tiff(w, h, 1, 8, values, orientation: 3))); // 180 degrees
        Assert.Equal(values.Reverse().Select(v => (byte)v).ToArray(), rotated.Pixels);
    }

    [Fact]
    public void RgbWithAlphaIgnoresTheAlphaSample()
    {
        const int w = 5, h = 4;
        var values = Values(w * h * 4, 255, 4);
        var image = ImageCodec.DecodeRgb(Write("rgba.tif", Tiff(w, h, 4, 8, values, extra: [(338, 3, 2)])));
        var expected = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++) for (int k = 0; k < 3; k++) expected[3 * i + k] = (byte)values[4 * i + k];
        Assert.Equal(expected, image.Pixels);
    }

    [Theory]
    [InlineData(259, 5u, "LZW")]
    [InlineData(259, 8u, "Deflate")]
    [InlineData(322, 16u, "tiled")]
    [InlineData(339, 3u, "floating-point")]
    [InlineData(284, 2u, "planar")]
    public void UnsupportedTiffIsRefusedByName(ushort tag, uint value, string named)
    {
        const int w = 4, h = 4;
        var bytes = Tiff(w, h, 3, 8, Values(w * h * 3, 255, 5), extra: tag == 259 ? null : [(tag, 3, value)]);
        if (tag == 259) bytes = PatchShort(bytes, 259, (ushort)value);
        string path = Write("bad.tif", bytes);
        var e = Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void PaletteAndTruncatedTiffAreRefused()
    {
        var palette = Write("pal.tif", Tiff(4, 4, 1, 8, Values(16, 255, 6), photometric: 3));
        Assert.Contains("palette", Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(palette)).Message);
        var whole = Tiff(16, 16, 3, 8, Values(16 * 16 * 3, 255, 7));
        var truncated = Write("cut.tif", whole[..400]);
        Assert.Contains("truncated", Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(truncated)).Message);
    }

    /// <summary>Sets a SHORT tag's value in the first IFD.</summary>
    private static byte[] PatchShort(byte[] tiff, ushort tag, ushort value)
    {
        int ifd = (int)BinaryPrimitives.ReadUInt32LittleEndian(tiff.AsSpan(4));
        int n = BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(ifd));
        for (int e = 0; e < n; e++)
        {
            int at = ifd + 2 + 12 * e;
            if (BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(at)) == tag) BinaryPrimitives.WriteUInt16LittleEndian(tiff.AsSpan(at + 8), value);
        }
        return tiff;
    }
}
