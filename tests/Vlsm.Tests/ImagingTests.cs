using System.Buffers.Binary;
using System.IO.Compression;
using CsCheck;
using SkiaSharp;
using Vlsm.Imaging;

namespace Vlsm.Tests;

public sealed class ImagingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "vlsm-imaging-" + Guid.NewGuid().ToString("N"));

    public ImagingTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>Writes the first half of <paramref name="bytes"/>: a file cut off inside its image data.</summary>
    private string WriteFirstHalf(string name, byte[] bytes) => Write(name, bytes[..(bytes.Length / 2)]);

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    // ============================================================== decoding

    [Fact]
    public void RgbPngRoundTripsExactly()
    {
        var image = Noise(37, 23, seed: 1);
        string path = Path.Combine(_dir, "rgb.png");
        ImageCodec.SavePng(path, image);
        var back = ImageCodec.DecodeRgb(path);
        Assert.Equal((37, 23), (back.Width, back.Height));
        Assert.Equal(image.Pixels, back.Pixels);
        // Written as an 8-bit RGB PNG (IHDR bit depth 8, colour type 2).
        var bytes = File.ReadAllBytes(path);
        Assert.Equal((8, 2), (bytes[24], bytes[25]));
    }

    [Fact]
    public void GrayPngRoundTripsAndExpandsToRgb()
    {
        var mask = new GrayImage(5, 3, [0, 1, 2, 127, 128, 200, 255, 3, 4, 5, 6, 7, 8, 9, 10]);
        string path = Path.Combine(_dir, "sub", "mask.png"); // the folder is created
        ImageCodec.SavePng(path, mask);
        Assert.Equal((8, 0), (File.ReadAllBytes(path)[24], File.ReadAllBytes(path)[25]));
        var gray = ImageCodec.DecodeGray(path);
        Assert.Equal(mask.Pixels, gray.Pixels);
        var rgb = ImageCodec.DecodeRgb(path);
        Assert.Equal(mask.Pixels.SelectMany(v => new[] { v, v, v }).ToArray(), rgb.Pixels);
    }

    [Fact]
    public void SavePngReplacesTheFileAndLeavesNoTemporaryFiles()
    {
        string path = Path.Combine(_dir, "out.png");
        File.WriteAllText(path, "old content");
        ImageCodec.SavePng(path, new GrayImage(2, 2, [1, 2, 3, 4]));
        Assert.Equal([1, 2, 3, 4], ImageCodec.DecodeGray(path).Pixels);
        Assert.Equal(["out.png"], Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void RgbaPngDropsAlphaWithoutPremultiplying()
    {
        // Pillow's convert("RGB") keeps the stored colour of transparent pixels.
        var png = Png.Encode(3, 1, 8, 6, [[10, 20, 30, 0, 40, 50, 60, 128, 250, 251, 252, 255]]);
        var rgb = ImageCodec.DecodeRgb(Write("rgba.png", png));
        Assert.Equal([10, 20, 30, 40, 50, 60, 250, 251, 252], rgb.Pixels);
        // convert("L"): (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, alpha ignored.
        // (10,20,30): 195950 + 769400 + 224130 + 32768 = 1222248 >> 16 = 18
        // (40,50,60): 783800 + 1923500 + 448260 + 32768 = 3188328 >> 16 = 48
        // (250,251,252): 4898750 + 9655970 + 1882692 + 32768 = 16470180 >> 16 = 251
        Assert.Equal([18, 48, 251], ImageCodec.DecodeGray(Write("rgba-mask.png", png)).Pixels);
    }

    [Fact]
    public void GrayAlphaPngUsesTheGrayChannel()
    {
        var png = Png.Encode(2, 1, 8, 4, [[100, 50, 200, 0]]);
        Assert.Equal([100, 100, 100, 200, 200, 200], ImageCodec.DecodeRgb(Write("la.png", png)).Pixels);
        Assert.Equal([100, 200], ImageCodec.DecodeGray(Write("la2.png", png)).Pixels);
    }

    [Fact]
    public void PalettePngWithTransparencyGivesPaletteColours()
    {
        byte[] palette = [10, 20, 30, 200, 150, 100, 0, 255, 0];
        var png = Png.Encode(3, 2, 8, 3, [[0, 1, 2], [2, 1, 0]], palette, trns: [255, 0]);
        var rgb = ImageCodec.DecodeRgb(Write("p.png", png));
        Assert.Equal([10, 20, 30, 200, 150, 100, 0, 255, 0, 0, 255, 0, 200, 150, 100, 10, 20, 30], rgb.Pixels);
        // p2l: L24 of the palette colour. (10,20,30) -> 18 (see above);
        // (200,150,100): 3919000 + 5770500 + 747100 + 32768 = 10469368 >> 16 = 159;
        // (0,255,0): 9809850 + 32768 = 9842618 >> 16 = 150.
        Assert.Equal([18, 159, 150, 150, 159, 18], ImageCodec.DecodeGray(Write("p2.png", png)).Pixels);
    }

    [Fact]
    public void LowBitDepthGrayIsScaledToEightBits()
    {
        // 1-bit: 0 -> 0, 1 -> 255 (Pillow's "1" -> "L"/"RGB" gives the same).
        var png = Png.Encode(8, 1, 1, 0, [[0b1010_0001]]);
        Assert.Equal([255, 0, 255, 0, 0, 0, 0, 255], ImageCodec.DecodeGray(Write("bit.png", png)).Pixels);
    }

    [Fact]
    public void SixteenBitGrayClipsTo255LikePillow()
    {
        // Pillow opens these as "I;16"; convert("L") and convert("RGB") clip each value to 255,
        // so label masks stored as 0, 1, 2 keep those values (the high byte would make them 0).
        ushort[] values = [0, 1, 2, 200, 255, 256, 0x1234, 0xFFFF];
        var row = values.SelectMany(v => new[] { (byte)(v >> 8), (byte)v }).ToArray();
        var png = Png.Encode(values.Length, 1, 16, 0, [row]);
        byte[] expected = [0, 1, 2, 200, 255, 255, 255, 255];
        Assert.Equal(expected, ImageCodec.DecodeGray(Write("g16.png", png)).Pixels);
        Assert.Equal(expected.SelectMany(v => new[] { v, v, v }).ToArray(), ImageCodec.DecodeRgb(Write("g16b.png", png)).Pixels);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SixteenBitGrayHandlesEveryRowFilterAndInterlacing(bool interlaced)
    {
        const int w = 11, h = 9;
        var rng = new Random(7);
        var values = new ushort[w * h];
        for (int i = 0; i < values.Length; i++) values[i] = (ushort)(rng.Next(4) == 0 ? rng.Next(65536) : rng.Next(256));
        var png = Png.EncodeGray16(w, h, values, interlaced);
        var gray = ImageCodec.DecodeGray(Write("g16f.png", png));
        Assert.Equal(values.Select(v => (byte)Math.Min((int)v, 255)).ToArray(), gray.Pixels);
    }

    [Fact]
    public void SixteenBitColourKeepsTheHighByteLikePillow()
    {
        // Pillow unpacks "RGB;16B" by taking the most significant byte: 0x01FF -> 1, 0x7FFF -> 127.
        ushort[] rgb = [0x01FF, 0x7FFF, 0xFEFF, 0x0180, 0x0080, 0xFF7F];
        var row = rgb.SelectMany(v => new[] { (byte)(v >> 8), (byte)v }).ToArray();
        var png = Png.Encode(2, 1, 16, 2, [row]);
        Assert.Equal([1, 127, 254, 1, 0, 255], ImageCodec.DecodeRgb(Write("rgb16.png", png)).Pixels);
    }

    [Fact]
    public void JpegDecodesCloseToTheSource()
    {
        var image = Smooth(32, 24);
        var path = Write("smooth.jpg", SkiaEncode(image, SKEncodedImageFormat.Jpeg, 100));
        var back = ImageCodec.DecodeRgb(path);
        Assert.Equal((32, 24), (back.Width, back.Height));
        Assert.True(MaxDiff(image.Pixels, back.Pixels) <= 6, $"max diff {MaxDiff(image.Pixels, back.Pixels)}");
    }

    [Fact]
    public void GrayJpegDecodesToOneChannel()
    {
        var gray = new byte[16 * 16];
        for (int i = 0; i < gray.Length; i++) gray[i] = (byte)(i < 128 ? 40 : 220);
        byte[] jpeg;
        using (var img = SKImage.FromPixelCopy(new SKImageInfo(16, 16, SKColorType.Gray8, SKAlphaType.Opaque), gray))
        using (var pixmap = img.PeekPixels())
        using (var data = pixmap.Encode(SKEncodedImageFormat.Jpeg, 100)!)
            jpeg = data.ToArray();
        var path = Write("gray.jpg", jpeg);
        var decoded = ImageCodec.DecodeGray(path);
        Assert.True(MaxDiff(gray, decoded.Pixels) <= 3);
        var rgb = ImageCodec.DecodeRgb(path);
        for (int i = 0; i < gray.Length; i++)
            Assert.True(rgb.Pixels[3 * i] == decoded.Pixels[i] && rgb.Pixels[3 * i + 2] == decoded.Pixels[i]);
    }

    [Fact]
    public void BmpAndWebpDecode()
    {
        var image = Noise(5, 3, seed: 3); // odd width: BMP rows are padded to 4 bytes
        Assert.Equal(image.Pixels, ImageCodec.DecodeRgb(Write("x.bmp", Bmp24(image))).Pixels);
        Assert.Equal(image.Pixels, ImageCodec.DecodeRgb(Write("x.webp", SkiaEncode(image, SKEncodedImageFormat.Webp, 100))).Pixels);
    }

    // TL red, TR green, BL blue, BR white, as Pillow's ImageOps.exif_transpose leaves them.
    [Theory]
    [InlineData(1, "RGBW")]
    [InlineData(2, "GRWB")] // mirror
    [InlineData(3, "WBGR")] // rotate 180
    [InlineData(4, "BWRG")] // flip top-bottom
    [InlineData(5, "RBGW")] // transpose
    [InlineData(6, "BRWG")] // rotate 90 clockwise
    [InlineData(7, "WGBR")] // transverse
    [InlineData(8, "GWRB")] // rotate 90 counter-clockwise
    public void ExifOrientationIsApplied(int orientation, string quadrants)
    {
        const int w = 32, h = 16;
        var image = new RgbImage(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var c = Colour((x < w / 2, y < h / 2) switch
                {
                    (true, true) => 'R',
                    (false, true) => 'G',
                    (true, false) => 'B',
                    _ => 'W',
                });
                image.Pixels[(y * w + x) * 3] = c.r;
                image.Pixels[(y * w + x) * 3 + 1] = c.g;
                image.Pixels[(y * w + x) * 3 + 2] = c.b;
            }
        var jpeg = WithExifOrientation(SkiaEncode(image, SKEncodedImageFormat.Jpeg, 100), orientation);
        var path = Write($"o{orientation}.jpg", jpeg);
        var rgb = ImageCodec.DecodeRgb(path);
        bool swapped = orientation >= 5;
        Assert.Equal(swapped ? (h, w) : (w, h), (rgb.Width, rgb.Height));
        int qw = rgb.Width / 2, qh = rgb.Height / 2;
        (int x, int y)[] centres = [(qw / 2, qh / 2), (qw + qw / 2, qh / 2), (qw / 2, qh + qh / 2), (qw + qw / 2, qh + qh / 2)];
        for (int q = 0; q < 4; q++)
        {
            var want = Colour(quadrants[q]);
            int o = (centres[q].y * rgb.Width + centres[q].x) * 3;
            Assert.True(
                Math.Abs(rgb.Pixels[o] - want.r) < 24 && Math.Abs(rgb.Pixels[o + 1] - want.g) < 24 && Math.Abs(rgb.Pixels[o + 2] - want.b) < 24,
                $"orientation {orientation}, quadrant {q}: got ({rgb.Pixels[o]},{rgb.Pixels[o + 1]},{rgb.Pixels[o + 2]}), want {quadrants[q]}");
        }
        var gray = ImageCodec.DecodeGray(path);
        Assert.Equal((rgb.Width, rgb.Height), (gray.Width, gray.Height));
        for (int i = 0; i < gray.Pixels.Length; i++)
            Assert.Equal(ImageCodec.Luma(rgb.Pixels[3 * i], rgb.Pixels[3 * i + 1], rgb.Pixels[3 * i + 2]), gray.Pixels[i]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(6)]
    [InlineData(7)]
    public void StripDecodingGivesTheWholeDecodesPixels(int orientation)
    {
        // Large colour JPEGs are read in strips of rows (#19: a 12000² RGBA buffer is 576 MB); the
        // result must be the whole decode's, byte for byte, with EXIF orientation applied to every strip.
        // (Skia reads PNGs whole, so for the PNG this checks that asking for strips changes nothing.)
        var noise = Noise(37, 23, seed: orientation);
        string jpeg = Write($"s{orientation}.jpg", WithExifOrientation(SkiaEncode(noise, SKEncodedImageFormat.Jpeg, 90), orientation));
        string png = Path.Combine(_dir, $"s{orientation}.png");
        ImageCodec.SavePng(png, noise);
        foreach (string path in new[] { jpeg, png })
        {
            var wholeRgb = ImageCodec.DecodeRgb(path);
            var wholeGray = ImageCodec.DecodeGray(path);
            using (ImageCodec.StripDecoding(aboveBytes: 0, rows: 5))
            {
                var rgb = ImageCodec.DecodeRgb(path);
                var gray = ImageCodec.DecodeGray(path);
                Assert.Equal((wholeRgb.Width, wholeRgb.Height), (rgb.Width, rgb.Height));
                Assert.Equal(wholeRgb.Pixels, rgb.Pixels);
                Assert.Equal(wholeGray.Pixels, gray.Pixels);
            }
        }
    }

    [Fact]
    public void TruncatedJpegReadInStripsNamesTheFile()
    {
        // A JPEG, since Skia reads only those in strips (a PNG would take the whole-image path of TruncatedPngNamesTheFile).
        string path = WriteFirstHalf("truncated.jpg", SkiaEncode(Noise(64, 64, seed: 2), SKEncodedImageFormat.Jpeg, 90));
        using (ImageCodec.StripDecoding(aboveBytes: 0, rows: 4))
        {
            var e = Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("truncated", e.Message);
        }
    }

    [Fact]
    public void PeekSizeReadsTheHeaderOnly()
    {
        string png = Path.Combine(_dir, "peek.png");
        ImageCodec.SavePng(png, Noise(37, 23, seed: 4));
        Assert.Equal((37, 23), ImageCodec.PeekSize(png));
        // A file cut right after the header still tells its size: nothing past it is read.
        Assert.Equal((37, 23), ImageCodec.PeekSize(Write("cut.png", File.ReadAllBytes(png)[..64])));
        Assert.Null(ImageCodec.PeekSize(Path.Combine(_dir, "missing.png")));
        Assert.Null(ImageCodec.PeekSize(Write("text.png", "not an image"u8.ToArray())));
    }

    [Fact]
    public void LargeImagesTakeTurnsAndSmallOnesNeverWait()
    {
        int side = (int)Math.Sqrt(LargeImages.Pixels) + 1;
        Assert.Null(LargeImages.Turn(side - 1, side - 1));
        var first = LargeImages.Turn(side, side);
        Assert.NotNull(first);
        var second = Task.Run(() => LargeImages.Turn(side, side));
        Assert.False(second.Wait(200), "a second large image started while the first held its turn");
        Assert.Null(LargeImages.Turn(100, 100)); // small images pass while a large one holds the turn
        first!.Dispose();
        first.Dispose(); // releasing twice releases once
        Assert.True(second.Wait(5000), "the second large image never got its turn");
        using (second.Result)
            Assert.False(Task.Run(() => LargeImages.Turn(side, side)?.Dispose()).Wait(200), "a double release let two large images in");
    }

    [Fact]
    public void LumaMatchesPillowRgb2l()
    {
        // L24 rounds half up in 16-bit fixed point; the weights sum to 65536, so grays are kept.
        for (int v = 0; v < 256; v++) Assert.Equal(v, ImageCodec.Luma((byte)v, (byte)v, (byte)v));
        Assert.Equal(76, ImageCodec.Luma(255, 0, 0));  // 4996725 + 32768 = 5029493 >> 16 = 76
        Assert.Equal(150, ImageCodec.Luma(0, 255, 0)); // 9809850 + 32768 = 9842618 >> 16 = 150
        Assert.Equal(29, ImageCodec.Luma(0, 0, 255));  // 1905105 + 32768 = 1937873 >> 16 = 29
        // (1,1,0): 19595 + 38470 + 32768 = 90833 >> 16 = 1, where the old R*299/1000 + ... form gives 0.
        Assert.Equal(1, ImageCodec.Luma(1, 1, 0));
    }

    // ============================================================== bad input

    [Fact]
    public void MissingFileNamesTheFile()
    {
        string path = Path.Combine(_dir, "nope.png");
        var e = Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("does not exist", e.Message);
        Assert.Throws<VlsmException>(() => ImageCodec.DecodeGray(path));
        Assert.Contains(_dir, Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(_dir)).Message);
    }

    [Fact]
    public void TruncatedPngNamesTheFile()
    {
        string full = Path.Combine(_dir, "full.png");
        ImageCodec.SavePng(full, Noise(64, 64, seed: 2));
        string path = WriteFirstHalf("truncated.png", File.ReadAllBytes(full));
        var e = Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Throws<VlsmException>(() => ImageCodec.DecodeGray(path));
    }

    [Fact]
    public void TruncatedSixteenBitPngNamesTheFile()
    {
        var values = Enumerable.Range(0, 64 * 64).Select(i => (ushort)(i * 7919)).ToArray();
        var png = Png.EncodeGray16(64, 64, values, interlaced: false);
        string path = Write("t16.png", png[..(png.Length * 2 / 3)]);
        var e = Assert.Throws<VlsmException>(() => ImageCodec.DecodeGray(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void RandomBytesNamedPngNameTheFile()
    {
        var bytes = new byte[1000];
        new Random(5).NextBytes(bytes);
        string path = Write("random.png", bytes);
        var e = Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("PNG", e.Message);
        string empty = Write("empty.png", []);
        Assert.Contains(empty, Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(empty)).Message);
    }

    [Fact]
    public void AnyBytesGiveAnImageOrAVlsmException()
    {
        var png = File.ReadAllBytes(SaveNoisePng("seed.png"));
        var jpeg = SkiaEncode(Noise(24, 16, seed: 9), SKEncodedImageFormat.Jpeg, 90);
        var gray16 = Png.EncodeGray16(9, 7, Enumerable.Range(0, 63).Select(i => (ushort)(i * 1000)).ToArray(), interlaced: true);
        var bmp = Bmp24(Noise(7, 5, seed: 4));
        byte[][] seeds = [png, jpeg, gray16, bmp];

        // Random bytes, and valid files truncated or with bytes overwritten.
        var gen = Gen.OneOf(
            Gen.Byte.Array[0, 600],
            Gen.Select(Gen.Int[0, seeds.Length - 1], Gen.Double[0, 1], (s, f) => seeds[s][..(int)(seeds[s].Length * f)]),
            Gen.Select(Gen.Int[0, seeds.Length - 1], Gen.Int[0, 100000].Array[1, 8], Gen.Byte.Array[8],
                (s, at, val) =>
                {
                    var b = (byte[])seeds[s].Clone();
                    for (int i = 0; i < at.Length; i++) b[at[i] % b.Length] = val[i];
                    return b;
                }));
        int n = 0;
        gen.Sample(bytes =>
        {
            string path = Path.Combine(_dir, $"fuzz{Interlocked.Increment(ref n)}.png");
            File.WriteAllBytes(path, bytes);
            try { ImageCodec.DecodeRgb(path); } catch (VlsmException) { }
            try { ImageCodec.DecodeGray(path); } catch (VlsmException) { }
        }, iter: 300, threads: 1);
    }

    // ============================================================== resizing

    [Fact]
    public void BilinearDownscaleMatchesPillowByHand()
    {
        // 4x1 -> 2x1. scale = 2, so the triangle's support becomes 2 and each weight is
        // filter((x - center + 0.5) / 2).
        // out 0: center 1.0, taps x = (int)(1-2+0.5)=0 .. (int)(1+2+0.5)=3 (exclusive):
        //   weights 0.75, 0.75, 0.25 -> /1.75 -> 3/7, 3/7, 1/7
        //   fixed point (x 2^22, +0.5, truncated): 1797559, 1797559, 599186
        //   (2^21 + 0*1797559 + 100*1797559 + 200*599186) >> 22 = 301690252 >> 22 = 71
        // out 1: center 3.0, taps 1..4: weights 0.25, 0.75, 0.75 -> 1/7, 3/7, 3/7
        //   (2^21 + 100*599186 + 200*1797559 + 255*1797559) >> 22 = 879905097 >> 22 = 209
        var src = Rgb(4, 1, [0, 100, 200, 255]);
        Assert.Equal([71, 71, 71, 209, 209, 209], Resize.ResizeBilinear(src, 2, 1).Pixels);

        // 3x1 -> 2x1. scale = support = 1.5.
        // out 0: center 0.75, taps (int)(-0.25)=0 .. (int)(2.75)=2: filter(-0.25/1.5)=5/6, filter(0.75/1.5)=1/2
        //   -> 0.625, 0.375 -> 2621440, 1572864; (2^21 + 10*2621440 + 50*1572864) >> 22 = 106954752 >> 22 = 25
        // out 1: center 2.25, taps 1..3: 1/2, 5/6 -> 0.375, 0.625;
        //   (2^21 + 50*1572864 + 201*2621440) >> 22 = 607649792 >> 22 = 144
        Assert.Equal([25, 25, 25, 144, 144, 144], Resize.ResizeBilinear(Rgb(3, 1, [10, 50, 201]), 2, 1).Pixels);
    }

    [Fact]
    public void BilinearUpscaleRoundsBetweenPassesLikePillow()
    {
        // 2x2 -> 4x4. scale = 0.5 (< 1, so support stays 1); centres 0.25, 0.75, 1.25, 1.75:
        //   out 0 = a, out 1 = 0.75a + 0.25b, out 2 = 0.25a + 0.75b, out 3 = b
        //   (edge outputs have one tap, renormalised to 1). Weights are exact in fixed point,
        //   so each pass rounds v to floor(v + 0.5).
        // Source [[0, 100], [200, 50]]. Horizontal pass first, rounded to bytes:
        //   row 0: 0, 25, 75, 100
        //   row 1: 200, 162.5 -> 163, 87.5 -> 88, 50
        // Vertical pass on those bytes:
        //   col 0: 0, 50, 150, 200
        //   col 1: 25, 0.75*25+0.25*163 = 59.5 -> 60, 0.25*25+0.75*163 = 128.5 -> 129, 163
        //   col 2: 75, 78.25 -> 78, 84.75 -> 85, 88
        //   col 3: 100, 87.5 -> 88, 62.5 -> 63, 50
        // (Without the intermediate rounding, col 1 row 2 would be 128.125 -> 128.)
        byte[] expected =
        [
            0, 25, 75, 100,
            50, 60, 78, 88,
            150, 129, 85, 63,
            200, 163, 88, 50,
        ];
        var src = new RgbImage(2, 2, [0, 1, 2, 100, 1, 2, 200, 1, 2, 50, 1, 2]);
        var output = Resize.ResizeBilinear(src, 4, 4);
        Assert.Equal(expected, Enumerable.Range(0, 16).Select(i => output.Pixels[3 * i]).ToArray());
        Assert.All(Enumerable.Range(0, 16), i => Assert.Equal((1, 2), (output.Pixels[3 * i + 1], output.Pixels[3 * i + 2])));
        // The same on a one-channel image.
        Assert.Equal(expected, Resize.Resample(new GrayImage(2, 2, [0, 100, 200, 50]), 4, 4, ResampleFilter.Bilinear).Pixels);
    }

    [Fact]
    public void SameSizeResizeIsACopy()
    {
        var image = Noise(7, 5, seed: 11);
        var same = Resize.ResizeBilinear(image, 7, 5);
        Assert.Equal(image.Pixels, same.Pixels);
        Assert.NotSame(image.Pixels, same.Pixels);
    }

    [Fact]
    public void ResamplingStaysWithinOneLevelOfExactArithmetic()
    {
        // Cross-check against a direct floating-point evaluation of the same separable filter
        // (no fixed point): the fixed-point result may differ by one level per pass at most.
        var rng = new Random(3);
        foreach (var filter in new[] { ResampleFilter.Bilinear, ResampleFilter.Box, ResampleFilter.Bicubic, ResampleFilter.Lanczos, ResampleFilter.Hamming })
        {
            for (int trial = 0; trial < 6; trial++)
            {
                int sw = rng.Next(1, 40), sh = rng.Next(1, 40), dw = rng.Next(1, 40), dh = rng.Next(1, 40);
                var src = Noise(sw, sh, seed: trial);
                var got = Resize.Resample(src, dw, dh, filter);
                var want = ReferenceResample(src, dw, dh, filter);
                Assert.True(MaxDiff(got.Pixels, want) <= 2, $"{filter} {sw}x{sh} -> {dw}x{dh}: max diff {MaxDiff(got.Pixels, want)}");
            }
        }
    }

    [Theory]
    [InlineData(ResampleFilter.Bilinear)]
    [InlineData(ResampleFilter.Lanczos)]
    public void WideImagesResampleEachRowAndColumnIndependently(ResampleFilter filter)
    {
        // The vertical pass is vectorised over whole rows; a one-pixel-wide image takes the
        // scalar path. Columns (and rows) must come out the same either way.
        var image = Noise(37, 29, seed: 13);
        var tall = Resize.Resample(image, 37, 11, filter);
        var wide = Resize.Resample(image, 13, 29, filter);
        for (int x = 0; x < 37; x++)
        {
            var column = new RgbImage(1, 29, Enumerable.Range(0, 29).SelectMany(y => image.Pixels.AsSpan((y * 37 + x) * 3, 3).ToArray()).ToArray());
            var resized = Resize.Resample(column, 1, 11, filter);
            for (int y = 0; y < 11; y++)
                Assert.Equal(resized.Pixels.AsSpan(y * 3, 3).ToArray(), tall.Pixels.AsSpan((y * 37 + x) * 3, 3).ToArray());
        }
        for (int y = 0; y < 29; y++)
        {
            var row = new RgbImage(37, 1, image.Pixels.AsSpan(y * 37 * 3, 37 * 3).ToArray());
            Assert.Equal(Resize.Resample(row, 13, 1, filter).Pixels, wide.Pixels.AsSpan(y * 13 * 3, 13 * 3).ToArray());
        }
    }

    [Fact]
    public void NearestUsesPillowsIndexMapping()
    {
        // ImagingScaleAffine: xo = a/2, then xo += a; index (int)xo, a = in/out.
        Assert.Equal([0, 2], Resize.NearestIndices(3, 2));          // 0.75, 2.25
        Assert.Equal([1, 3], Resize.NearestIndices(5, 2));          // 1.25, 3.75
        Assert.Equal([0, 0, 1, 1, 1], Resize.NearestIndices(2, 5)); // 0.2, 0.6, 1.0, 1.4, 1.8

        var mask = new GrayImage(3, 2, [1, 2, 3, 4, 5, 6]);
        // columns 3 -> 5: a = 0.6, xo = 0.3, 0.9, 1.5, 2.1, 2.7 -> 0, 0, 1, 2, 2
        // rows 2 -> 3: a = 2/3, xo = 1/3, 1/3 + 2/3 = 1.0 exactly, 1.67 -> 0, 1, 1
        Assert.Equal([1, 1, 2, 3, 3, 4, 4, 5, 6, 6, 4, 4, 5, 6, 6], Resize.ResizeNearest(mask, 5, 3).Pixels);
        // 3x2 -> 2x1: columns 0.75, 2.25 -> 0, 2; row a = 2, xo = 1.0 -> 1
        Assert.Equal([4, 6], Resize.ResizeNearest(mask, 2, 1).Pixels);
    }

    [Fact]
    public void NearestAgreesAcrossByteRgbAndFloat()
    {
        var rng = new Random(8);
        for (int trial = 0; trial < 20; trial++)
        {
            int sw = rng.Next(1, 30), sh = rng.Next(1, 30), dw = rng.Next(1, 60), dh = rng.Next(1, 60);
            var gray = new GrayImage(sw, sh);
            rng.NextBytes(gray.Pixels);
            var g = Resize.ResizeNearest(gray, dw, dh).Pixels;
            var f = Resize.ResizeNearest(gray.Pixels.Select(v => (float)v).ToArray(), sw, sh, dw, dh);
            Assert.Equal(g.Select(v => (float)v).ToArray(), f);
            var rgb = new RgbImage(sw, sh, gray.Pixels.SelectMany(v => new[] { v, (byte)(v ^ 0x55), (byte)~v }).ToArray());
            var r = Resize.ResizeNearest(rgb, dw, dh).Pixels;
            Assert.Equal(g, Enumerable.Range(0, g.Length).Select(i => r[3 * i]).ToArray());
            Assert.Equal(g.Select(v => (byte)~v).ToArray(), Enumerable.Range(0, g.Length).Select(i => r[3 * i + 2]).ToArray());
        }
    }

    // ============================================================== preprocessing

    [Fact]
    public void PreprocessorDefaultsAreClipsegs()
    {
        var d = ImagePreprocessor.Default;
        Assert.Equal((352, 352), (d.Width, d.Height));
        Assert.Equal([0.485f, 0.456f, 0.406f], d.Mean);
        Assert.Equal([0.229f, 0.224f, 0.225f], d.Std);
        Assert.Equal(ResampleFilter.Bilinear, d.Resample);
        Assert.Same(ImagePreprocessor.Default, ImagePreprocessor.FromFolder(_dir));
    }

    [Fact]
    public void PreprocessorReadsTheParityModelConfig()
    {
        var p = ImagePreprocessor.FromFolder(Path.Combine(Fixtures.Parity, "clipseg-tiny"));
        Assert.Equal((48, 48), (p.Width, p.Height));
        Assert.Equal(ResampleFilter.Bilinear, p.Resample);
        Assert.Equal(0.00392156862745098, p.RescaleFactor);
        Assert.Equal([0.485f, 0.456f, 0.406f], p.Mean);
    }

    [Fact]
    public void ToChwResizesThenNormalizesInFloat32ChannelFirst()
    {
        var p = ImagePreprocessor.FromFolder(Path.Combine(Fixtures.Parity, "clipseg-tiny"));
        var image = Noise(61, 37, seed: 5);
        var chw = p.ToChw(image);
        Assert.Equal(3 * 48 * 48, chw.Length);
        var resized = Resize.ResizeBilinear(image, 48, 48);
        float[] mean = [0.485f, 0.456f, 0.406f], std = [0.229f, 0.224f, 0.225f];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 48 * 48; i++)
            {
                float x = (float)(resized.Pixels[3 * i + c] * 0.00392156862745098);
                Assert.Equal((x - mean[c]) / std[c], chw[c * 48 * 48 + i]);
            }
        // Spot values: 255 in red -> (1 - 0.485) / 0.229 = 2.2489..., 0 in blue -> -0.406 / 0.225 = -1.8044...
        var solid = p.ToChw(new RgbImage(3, 3, Enumerable.Repeat(new byte[] { 255, 128, 0 }, 9).SelectMany(a => a).ToArray()));
        Assert.Equal(2.2489083f, solid[0], 5);
        Assert.Equal((128 / 255f - 0.456f) / 0.224f, solid[48 * 48], 5);
        Assert.Equal(-1.8044444f, solid[2 * 48 * 48], 5);
    }

    [Fact]
    public void ToChwBatchConcatenatesInOrder()
    {
        var p = ImagePreprocessor.Parse("""{"size": {"height": 20, "width": 30}}""", "test.json");
        Assert.Equal((30, 20), (p.Width, p.Height));
        var images = Enumerable.Range(0, 5).Select(i => Noise(10 + i * 7, 9 + i * 3, seed: 20 + i)).ToArray();
        var batch = p.ToChwBatch(images);
        Assert.Equal(images.SelectMany(p.ToChw).ToArray(), batch);
    }

    [Fact]
    public void PreprocessorAcceptsHfSizeForms()
    {
        var square = ImagePreprocessor.Parse("""{"size": 352, "feature_extractor_type": "ViTFeatureExtractor"}""", "a.json");
        Assert.Equal((352, 352), (square.Width, square.Height));
        Assert.True(square.DoRescale); // absent: HF's default

        var clip = ImagePreprocessor.Parse("""{"size": {"shortest_edge": 8}, "crop_size": {"height": 8, "width": 8}, "resample": 3}""", "b.json");
        Assert.Equal((8, 8, 8), (clip.Width, clip.Height, clip.ShortestEdge));
        // 20x10 -> shorter edge 8: 16x8, then center crop 8x8 at left = (16 - 8) // 2 = 4.
        var src = Noise(20, 10, seed: 6);
        var resized = Resize.Resample(src, 16, 8, ResampleFilter.Bicubic);
        var cropped = clip.Prepare(src);
        for (int y = 0; y < 8; y++)
            Assert.Equal(resized.Pixels.AsSpan((y * 16 + 4) * 3, 24).ToArray(), cropped.Pixels.AsSpan(y * 8 * 3, 24).ToArray());

        var raw = ImagePreprocessor.Parse("""{"do_rescale": false, "do_normalize": false, "do_resize": false, "size": {"height": 2, "width": 1}}""", "c.json");
        Assert.Equal([7, 8, 1, 2, 200, 250], raw.ToChw(new RgbImage(1, 2, [7, 1, 200, 8, 2, 250])));
        Assert.Throws<VlsmException>(() => raw.ToChw(new RgbImage(2, 2)));
    }

    [Theory]
    [InlineData("{not json", "valid JSON")]
    [InlineData("""{"image_mean": [0.5, 0.5]}""", "image_mean")]
    [InlineData("""{"image_std": [0.5, 0, 0.5]}""", "image_std")]
    [InlineData("""{"size": {"height": 48}}""", "size")]
    [InlineData("""{"size": "big"}""", "size")]
    [InlineData("""{"size": {"height": -1, "width": 4}}""", "size.height")]
    [InlineData("""{"do_resize": "yes"}""", "do_resize")]
    [InlineData("""{"rescale_factor": 0}""", "rescale_factor")]
    [InlineData("""{"resample": 9}""", "resample")]
    [InlineData("""{"size": {"shortest_edge": 224}, "do_center_crop": false}""", "shortest_edge")]
    [InlineData("[1, 2]", "object")]
    public void MalformedPreprocessorConfigNamesFileAndField(string json, string field)
    {
        string folder = Path.Combine(_dir, "model");
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, "preprocessor_config.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<VlsmException>(() => ImagePreprocessor.FromFolder(folder));
        Assert.Contains(path, e.Message);
        Assert.Contains(field, e.Message);
    }

    // ============================================================== overlay

    [Fact]
    public void TintBlendsOnlyWhereTheMaskIsSet()
    {
        var image = new RgbImage(3, 1, [100, 100, 100, 0, 0, 0, 255, 255, 255]);
        var mask = new GrayImage(3, 1, [127, 128, 255]);
        var tinted = Overlay.Tint(image, mask, (255, 0, 10), alpha: 0.5f);
        // pixel 0 untouched (127 is not > 127); pixel 1: round(0*0.5 + c*0.5) = 128 (127.5 up), 0, 5;
        // pixel 2: round(255*0.5 + c*0.5) = 255, 128 (127.5 up), 133 (132.5 up).
        Assert.Equal([100, 100, 100, 128, 0, 5, 255, 128, 133], tinted.Pixels);
        Assert.Equal([100, 100, 100, 0, 0, 0, 255, 255, 255], image.Pixels); // input unchanged
        Assert.Throws<ArgumentException>(() => Overlay.Tint(image, new GrayImage(1, 3), (1, 2, 3)));
    }

    // ============================================================== helpers

    private string SaveNoisePng(string name)
    {
        string path = Path.Combine(_dir, name);
        ImageCodec.SavePng(path, Noise(12, 9, seed: 12));
        return path;
    }

    private static RgbImage Rgb(int w, int h, byte[] gray) =>
        new(w, h, gray.SelectMany(v => new[] { v, v, v }).ToArray());

    private static RgbImage Noise(int w, int h, int seed)
    {
        var image = new RgbImage(w, h);
        new Random(seed).NextBytes(image.Pixels);
        return image;
    }

    private static RgbImage Smooth(int w, int h)
    {
        var image = new RgbImage(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int o = (y * w + x) * 3;
                image.Pixels[o] = (byte)(x * 255 / (w - 1));
                image.Pixels[o + 1] = (byte)(y * 255 / (h - 1));
                image.Pixels[o + 2] = 128;
            }
        return image;
    }

    private static (byte r, byte g, byte b) Colour(char c) => c switch
    {
        'R' => (255, 0, 0),
        'G' => (0, 255, 0),
        'B' => (0, 0, 255),
        _ => (255, 255, 255),
    };

    private static int MaxDiff(byte[] a, byte[] b)
    {
        Assert.Equal(a.Length, b.Length);
        int max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    private static byte[] SkiaEncode(RgbImage image, SKEncodedImageFormat format, int quality)
    {
        var rgba = new byte[image.Width * image.Height * 4];
        for (int i = 0; i < image.Width * image.Height; i++)
        {
            rgba[4 * i] = image.Pixels[3 * i];
            rgba[4 * i + 1] = image.Pixels[3 * i + 1];
            rgba[4 * i + 2] = image.Pixels[3 * i + 2];
            rgba[4 * i + 3] = 255;
        }
        using var img = SKImage.FromPixelCopy(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque), rgba);
        using var pixmap = img.PeekPixels();
        using var data = format == SKEncodedImageFormat.Webp
            ? pixmap.Encode(new SKWebpEncoderOptions(SKWebpEncoderCompression.Lossless, 100))!
            : pixmap.Encode(format, quality)!;
        return data.ToArray();
    }

    /// <summary>Inserts an EXIF APP1 segment (big-endian TIFF, one IFD entry: Orientation) after SOI.</summary>
    private static byte[] WithExifOrientation(byte[] jpeg, int orientation)
    {
        Assert.True(jpeg[0] == 0xFF && jpeg[1] == 0xD8);
        byte[] tiff =
        [
            (byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8, // header, IFD0 at offset 8
            0, 1,                                    // one entry
            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (byte)orientation, 0, 0, // Orientation, SHORT, count 1, value
            0, 0, 0, 0,                              // no next IFD
        ];
        byte[] payload = [.. "Exif\0\0"u8, .. tiff];
        int length = payload.Length + 2;
        byte[] app1 = [0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. payload];
        return [.. jpeg[..2], .. app1, .. jpeg[2..]];
    }

    /// <summary>A 24-bit bottom-up BMP, written by hand (Skia does not encode BMP).</summary>
    private static byte[] Bmp24(RgbImage image)
    {
        int stride = (image.Width * 3 + 3) & ~3;
        int size = 54 + stride * image.Height;
        var b = new byte[size];
        b[0] = (byte)'B';
        b[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(2), size);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(18), image.Width);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(22), image.Height);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(28), 24);
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
            {
                int s = (y * image.Width + x) * 3, d = 54 + (image.Height - 1 - y) * stride + x * 3;
                b[d] = image.Pixels[s + 2];
                b[d + 1] = image.Pixels[s + 1];
                b[d + 2] = image.Pixels[s];
            }
        return b;
    }

    /// <summary>Separable resampling in plain double arithmetic, rounding only at the end of each pass.</summary>
    private static byte[] ReferenceResample(RgbImage src, int dw, int dh, ResampleFilter filter)
    {
        double[] Pass(double[] input, int inW, int inH, bool horizontal, int outSize)
        {
            int inSize = horizontal ? inW : inH;
            if (inSize == outSize) return input;
            int outW = horizontal ? outSize : inW, outH = horizontal ? inH : outSize;
            var output = new double[outW * outH * 3];
            double scale = (double)inSize / outSize, fs = Math.Max(scale, 1), support = SupportOf(filter) * fs;
            for (int o = 0; o < outSize; o++)
            {
                double center = (o + 0.5) * scale;
                int lo = Math.Max(0, (int)(center - support + 0.5)), hi = Math.Min(inSize, (int)(center + support + 0.5));
                var w = Enumerable.Range(lo, hi - lo).Select(i => Kernel(filter, (i - center + 0.5) / fs)).ToArray();
                double sum = w.Sum();
                for (int other = 0; other < (horizontal ? inH : inW); other++)
                    for (int c = 0; c < 3; c++)
                    {
                        double acc = 0;
                        for (int i = lo; i < hi; i++)
                        {
                            int idx = horizontal ? (other * inW + i) : (i * inW + other);
                            acc += input[idx * 3 + c] * w[i - lo] / sum;
                        }
                        int outIdx = horizontal ? (other * outW + o) : (o * outW + other);
                        output[outIdx * 3 + c] = Math.Clamp(Math.Floor(acc + 0.5), 0, 255);
                    }
            }
            return output;
        }

        var h = Pass(src.Pixels.Select(v => (double)v).ToArray(), src.Width, src.Height, true, dw);
        var v = Pass(h, dw, src.Height, false, dh);
        return v.Select(x => (byte)x).ToArray();
    }

    private static double SupportOf(ResampleFilter f) => f switch
    {
        ResampleFilter.Box => 0.5,
        ResampleFilter.Bicubic => 2,
        ResampleFilter.Lanczos => 3,
        _ => 1,
    };

    private static double Kernel(ResampleFilter f, double x)
    {
        double Sinc(double t) => t == 0 ? 1 : Math.Sin(Math.PI * t) / (Math.PI * t);
        double ax = Math.Abs(x);
        return f switch
        {
            ResampleFilter.Box => x > -0.5 && x <= 0.5 ? 1 : 0,
            ResampleFilter.Bilinear => ax < 1 ? 1 - ax : 0,
            ResampleFilter.Hamming => ax >= 1 ? 0 : Sinc(ax) * (0.54 + 0.46 * Math.Cos(Math.PI * ax)),
            ResampleFilter.Bicubic => ax < 1 ? (1.5 * ax - 2.5) * ax * ax + 1 : ax < 2 ? ((-0.5 * ax + 2.5) * ax - 4) * ax + 2 : 0,
            ResampleFilter.Lanczos => x >= -3 && x < 3 ? Sinc(x) * Sinc(x / 3) : 0,
            _ => throw new ArgumentOutOfRangeException(nameof(f)),
        };
    }

    /// <summary>A minimal PNG writer, so tests can make every colour type and bit depth.</summary>
    private static class Png
    {
        public static byte[] Encode(int w, int h, int bitDepth, int colourType, byte[][] rows, byte[]? palette = null, byte[]? trns = null)
        {
            var raw = new MemoryStream();
            foreach (var row in rows)
            {
                raw.WriteByte(0);
                raw.Write(row);
            }
            return Assemble(w, h, bitDepth, colourType, 0, raw.ToArray(), palette, trns);
        }

        /// <summary>16-bit gray, rows filtered with types 0..4 in turn, optionally Adam7-interlaced.</summary>
        public static byte[] EncodeGray16(int w, int h, ushort[] values, bool interlaced)
        {
            (int x0, int y0, int dx, int dy)[] passes = interlaced
                ? [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
                : [(0, 0, 1, 1)];
            var raw = new MemoryStream();
            int rowNumber = 0;
            foreach (var (x0, y0, dx, dy) in passes)
            {
                int pw = w > x0 ? (w - x0 + dx - 1) / dx : 0, ph = h > y0 ? (h - y0 + dy - 1) / dy : 0;
                if (pw == 0 || ph == 0) continue;
                var prev = new byte[pw * 2];
                for (int r = 0; r < ph; r++)
                {
                    var line = new byte[pw * 2];
                    for (int i = 0; i < pw; i++)
                        BinaryPrimitives.WriteUInt16BigEndian(line.AsSpan(2 * i), values[(y0 + r * dy) * w + x0 + i * dx]);
                    int filter = rowNumber++ % 5;
                    raw.WriteByte((byte)filter);
                    for (int i = 0; i < line.Length; i++)
                    {
                        int a = i >= 2 ? line[i - 2] : 0, b = prev[i], c = i >= 2 ? prev[i - 2] : 0;
                        int predictor = filter switch
                        {
                            0 => 0,
                            1 => a,
                            2 => b,
                            3 => (a + b) / 2,
                            _ => Paeth(a, b, c),
                        };
                        raw.WriteByte((byte)(line[i] - predictor));
                    }
                    prev = line;
                }
            }
            return Assemble(w, h, 16, 0, interlaced ? 1 : 0, raw.ToArray(), null, null);

            static int Paeth(int a, int b, int c)
            {
                int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            }
        }

        private static byte[] Assemble(int w, int h, int bitDepth, int colourType, int interlace, byte[] raw, byte[]? palette, byte[]? trns)
        {
            var png = new MemoryStream();
            png.Write([137, 80, 78, 71, 13, 10, 26, 10]);
            var ihdr = new byte[13];
            BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
            BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
            ihdr[8] = (byte)bitDepth;
            ihdr[9] = (byte)colourType;
            ihdr[12] = (byte)interlace;
            Chunk(png, "IHDR", ihdr);
            if (palette is not null) Chunk(png, "PLTE", palette);
            if (trns is not null) Chunk(png, "tRNS", trns);
            var z = new MemoryStream();
            using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zs.Write(raw);
            Chunk(png, "IDAT", z.ToArray());
            Chunk(png, "IEND", []);
            return png.ToArray();
        }

        private static void Chunk(Stream s, string type, byte[] data)
        {
            Span<byte> len = stackalloc byte[4];
            BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
            s.Write(len);
            byte[] typed = [.. System.Text.Encoding.ASCII.GetBytes(type), .. data];
            s.Write(typed);
            uint crc = 0xFFFFFFFF;
            foreach (byte b in typed)
            {
                crc ^= b;
                for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
            BinaryPrimitives.WriteUInt32BigEndian(len, ~crc);
            s.Write(len);
        }
    }
}
