using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>Small evaluation datasets: 64x48 images with rectangular masks, for the tiny parity model (48x48 input, 24x24 output).</summary>
internal static class EvalTestData
{
    public const int Width = 64, Height = 48;

    public static string Tiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");

    /// <summary>p0 empty, p1 and p2 strings, p3 a list of three texts.</summary>
    public static Dictionary<string, IReadOnlyList<string>> Prompts(bool withP2 = true)
    {
        var prompts = DataTestSet.Prompts(("p0", [""]), ("p1", ["polyp"]), ("p2", ["round pink polyp"]),
            ("p3", ["a polyp at the top left", "a polyp at the left", "a small polyp"]));
        if (!withP2) prompts.Remove("p2");
        return prompts;
    }

    /// <summary>A mask with a rectangle that differs per record; record 2's mask is empty (HD95 undefined).</summary>
    public static byte[] MaskValues(int i, int w = Width, int h = Height)
    {
        var values = new byte[w * h];
        if (i == 2) return values;
        int x0 = 4 + 3 * i, y0 = 6 + 2 * i, rw = 20 + 4 * i, rh = 14 + 3 * i;
        for (int y = y0; y < Math.Min(h, y0 + rh); y++)
            for (int x = x0; x < Math.Min(w, x0 + rw); x++) values[y * w + x] = 255;
        return values;
    }

    /// <summary>
    /// <paramref name="count"/> records img{i}.png in <paramref name="split"/>; record <paramref name="withoutP2"/> (if any) has no p2.
    /// <paramref name="maskName"/> names mask files (default: the image name).
    /// </summary>
    public static AnnotationRecord[] WriteSplit(DataTestSet set, string split, int count, int withoutP2 = -1,
        Func<int, string>? maskName = null, int seed = 0)
    {
        var records = new AnnotationRecord[count];
        for (int i = 0; i < count; i++)
        {
            string image = $"img{i}.png";
            string mask = maskName?.Invoke(i) ?? image;
            set.WriteImage(image, Width, Height, seed + 37 * i);
            var values = new GrayImage(Width, Height, MaskValues(i));
            if (mask.EndsWith(".jpg", StringComparison.Ordinal))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(set.MaskPath(mask))!);
                DataTestSet.SaveJpeg(set.MaskPath(mask), values, quality: 95);
            }
            else
            {
                set.WriteMask(mask, Width, Height, values.Pixels);
            }
            records[i] = new AnnotationRecord(image, mask, Prompts(withP2: i != withoutP2));
        }
        set.WriteSplit(split, records);
        return records;
    }
}
