using System.Diagnostics;
using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Bench;

/// <summary>Data-loader throughput: decoded, resized and normalised samples per second at the CLIPSeg input size.</summary>
public static class LoaderBench
{
    /// <summary>
    /// Builds a temporary medvlsm dataset of <paramref name="count"/> 512×512 images and masks
    /// (half PNG, half JPEG, smooth random content so the codecs do realistic work), then runs one
    /// epoch through <see cref="BatchLoader"/> at batch 32 and 352×352 and returns images per second.
    /// </summary>
    public static double ImagesPerSecond(int count, int workers, int batchSize = 32)
    {
        string root = Directory.CreateTempSubdirectory("vlsm-loader-bench-").FullName;
        try
        {
            var records = MakeDataset(root, count);
            var loader = new SampleLoader(ImagePreprocessor.Default, new SampleOptions(), PromptChoice.Parse("p1"));
            var options = new BatchLoaderOptions { BatchSize = batchSize, Workers = workers, Seed = 1 };
            var batches = new BatchLoader(records, loader, options);
            foreach (var _ in batches.Epoch(0).Take(1)) { } // warm-up: codec and resampler first-call costs
            var clock = Stopwatch.StartNew();
            int loaded = 0;
            foreach (var batch in batches.Epoch(1)) loaded += batch.Count;
            return loaded / clock.Elapsed.TotalSeconds;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static IReadOnlyList<DatasetRecord> MakeDataset(string root, int count)
    {
        Directory.CreateDirectory(Path.Combine(root, "images"));
        Directory.CreateDirectory(Path.Combine(root, "masks"));
        var rng = new Random(7);
        var annotations = new List<AnnotationRecord>();
        const int size = 512;
        for (int i = 0; i < count; i++)
        {
            var rgb = new byte[size * size * 3];
            var gray = new byte[size * size];
            // Random blobs over a random gradient: compressible like photographs, unlike pure noise.
            int cx = rng.Next(size), cy = rng.Next(size), r = rng.Next(40, 160);
            byte[] tint = [(byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)];
            for (int y = 0; y < size; y++)
            {
                for (int x = 0; x < size; x++)
                {
                    int p = y * size + x;
                    bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
                    rgb[3 * p] = (byte)(inside ? tint[0] : x / 2);
                    rgb[3 * p + 1] = (byte)(inside ? tint[1] : y / 2);
                    rgb[3 * p + 2] = (byte)((x + y + rng.Next(16)) / 4);
                    gray[p] = inside ? (byte)255 : (byte)0;
                }
            }
            string ext = i % 2 == 0 ? "png" : "jpg";
            string name = $"{i:D5}.{ext}";
            Save(Path.Combine(root, "images", name), new RgbImage(size, size, rgb), ext);
            Save(Path.Combine(root, "masks", name), new GrayImage(size, size, gray), ext);
            annotations.Add(new AnnotationRecord(name, name, new Dictionary<string, IReadOnlyList<string>> { ["p0"] = [""], ["p1"] = ["blob"] }));
        }
        AnnotationFile.Write(Path.Combine(root, "anns", "train.json"), annotations);
        return MedvlsmDataset.Open(root).Records("train");
    }

    private static void Save(string path, RgbImage image, string ext)
    {
        if (ext == "png") ImageCodec.SavePng(path, image);
        else SaveJpeg(path, image.Width, image.Height, image.Pixels, SkiaSharp.SKColorType.Rgba8888, 4);
    }

    private static void Save(string path, GrayImage image, string ext)
    {
        if (ext == "png") ImageCodec.SavePng(path, image);
        else SaveJpeg(path, image.Width, image.Height, image.Pixels, SkiaSharp.SKColorType.Gray8, 1);
    }

    /// <summary>JPEG at quality 90 through Skia (vlsm itself only writes PNG).</summary>
    private static void SaveJpeg(string path, int w, int h, byte[] pixels, SkiaSharp.SKColorType type, int bytesPerPixel)
    {
        byte[] buffer = pixels;
        if (bytesPerPixel == 4)
        {
            buffer = new byte[w * h * 4];
            for (int i = 0; i < w * h; i++)
            {
                buffer[4 * i] = pixels[3 * i];
                buffer[4 * i + 1] = pixels[3 * i + 1];
                buffer[4 * i + 2] = pixels[3 * i + 2];
                buffer[4 * i + 3] = 255;
            }
        }
        var info = new SkiaSharp.SKImageInfo(w, h, type, SkiaSharp.SKAlphaType.Opaque);
        using var image = SkiaSharp.SKImage.FromPixelCopy(info, buffer, w * bytesPerPixel);
        using var data = image.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 90);
        Vlsm.IO.AtomicFile.WriteAllBytes(path, data.AsSpan());
    }
}
