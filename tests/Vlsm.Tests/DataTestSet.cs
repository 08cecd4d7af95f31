using SkiaSharp;
using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>Builds small medvlsm-layout datasets in a temporary folder for the data tests.</summary>
internal sealed class DataTestSet : IDisposable
{
    public string Root { get; }

    public DataTestSet(string name = "ds")
    {
        string parent = Directory.CreateTempSubdirectory("vlsm-data-").FullName;
        Root = Path.Combine(parent, name);
        Directory.CreateDirectory(Path.Combine(Root, "images"));
        Directory.CreateDirectory(Path.Combine(Root, "masks"));
        Directory.CreateDirectory(Path.Combine(Root, "anns"));
    }

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(Root)!, recursive: true);

    public string ImagePath(string name) => Path.Combine(Root, "images", name);
    public string MaskPath(string name) => Path.Combine(Root, "masks", name);

    /// <summary>A PNG image whose pixel (x, y) is (x*7+seed, y*5+seed, x+y) mod 256.</summary>
    public RgbImage WriteImage(string name, int w, int h, int seed = 0)
    {
        var px = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int p = 3 * (y * w + x);
                px[p] = (byte)(x * 7 + seed);
                px[p + 1] = (byte)(y * 5 + seed);
                px[p + 2] = (byte)(x + y);
            }
        }
        var image = new RgbImage(w, h, px);
        ImageCodec.SavePng(ImagePath(name), image);
        return image;
    }

    /// <summary>A PNG mask with the given values (row-major), or a left-half-white mask by default.</summary>
    public GrayImage WriteMask(string name, int w, int h, byte[]? values = null)
    {
        if (values is null)
        {
            values = new byte[w * h];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w / 2; x++) values[y * w + x] = 255;
        }
        var mask = new GrayImage(w, h, values);
        ImageCodec.SavePng(MaskPath(name), mask);
        return mask;
    }

    public static Dictionary<string, IReadOnlyList<string>> Prompts(params (string Key, string[] Values)[] prompts) =>
        prompts.ToDictionary(p => p.Key, p => (IReadOnlyList<string>)p.Values);

    public static Dictionary<string, IReadOnlyList<string>> StandardPrompts(string name) => Prompts(
        ("p0", [""]), ("p1", ["polyp"]), ("p2", [$"round polyp {name}"]), ("p3", ["a polyp at the top left", "a polyp at the left"]));

    public void WriteSplit(string split, params AnnotationRecord[] records) =>
        AnnotationFile.Write(Path.Combine(Root, "anns", split + ".json"), records);

    /// <summary><paramref name="count"/> records img{i}.png / img{i}.png (w×h) in <paramref name="split"/>.</summary>
    public AnnotationRecord[] WriteSimpleSplit(string split, int count, int w = 24, int h = 20, int firstSeed = 0)
    {
        var records = new AnnotationRecord[count];
        for (int i = 0; i < count; i++)
        {
            string name = $"{split}{i}.png";
            WriteImage(name, w, h, firstSeed + i);
            WriteMask(name, w, h);
            records[i] = new AnnotationRecord(name, name, StandardPrompts(name));
        }
        WriteSplit(split, records);
        return records;
    }

    public static void SaveJpeg(string path, GrayImage image, int quality = 75) => File.WriteAllBytes(path, JpegBytes(image, quality));

    public static byte[] JpegBytes(GrayImage image, int quality)
    {
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Gray8, SKAlphaType.Opaque);
        using var sk = SKImage.FromPixelCopy(info, image.Pixels, image.Width);
        using var data = sk.Encode(SKEncodedImageFormat.Jpeg, quality);
        return data.ToArray();
    }

    /// <summary>Inserts an EXIF APP1 segment (big-endian TIFF, one IFD entry: Orientation) after the JPEG's SOI.</summary>
    public static byte[] WithExifOrientation(byte[] jpeg, int orientation)
    {
        byte[] tiff =
        [
            (byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8,
            0, 1,
            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (byte)orientation, 0, 0,
            0, 0, 0, 0,
        ];
        byte[] payload = [.. "Exif\0\0"u8, .. tiff];
        int length = payload.Length + 2;
        byte[] app1 = [0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. payload];
        return [.. jpeg[..2], .. app1, .. jpeg[2..]];
    }
}
