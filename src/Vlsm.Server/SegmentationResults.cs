using System.Text.Json.Nodes;
using Vlsm.Data.Prompts;
using Vlsm.Imaging;
using Vlsm.Inference;

namespace Vlsm.Server;

/// <summary>What /v1/segment returns for one prompt, in each of its output forms.</summary>
internal static class SegmentationResults
{
    /// <summary>Prediction tint on the image: the one every command uses (<see cref="Vlsm.Imaging.Overlay.PredictionColor"/>).</summary>
    public static readonly (byte R, byte G, byte B) Tint = Vlsm.Imaging.Overlay.PredictionColor;

    public static GrayImage Mask(Prediction p, RgbImage image, float threshold) => p.MaskAt(image.Width, image.Height, threshold);

    /// <summary>
    /// Sigmoid probabilities as 8-bit gray (round(p * 255)) at the image's size, resized nearest as
    /// the mask is, so the page's re-thresholding lands on the server's mask up to the 1/255 steps.
    /// </summary>
    public static GrayImage Probabilities(Prediction p, RgbImage image)
    {
        var bytes = new byte[p.Probabilities.Length];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)Math.Clamp(MathF.Round(p.Probabilities[i] * 255f), 0, 255);
        return Resize.ResizeNearest(new GrayImage(p.Width, p.Height, bytes), image.Width, image.Height);
    }

    public static RgbImage Overlay(RgbImage image, GrayImage mask) => Vlsm.Imaging.Overlay.Prediction(image, mask);

    /// <summary>
    /// The mask as JSON: area, bounding box [x, y, width, height], COCO's uncompressed run-length
    /// encoding (column-major runs, starting with background), and the 4-connected components.
    /// </summary>
    public static JsonObject Json(string? prompt, float threshold, GrayImage mask)
    {
        int w = mask.Width, h = mask.Height;
        var binary = new BinaryMask(w, h);
        for (int i = 0; i < binary.Pixels.Length; i++) binary.Pixels[i] = mask.Pixels[i] > 127;
        var labels = ConnectedComponents.Label(binary);
        int area = labels.Components.Sum(c => c.PixelCount);
        return new JsonObject
        {
            ["prompt"] = prompt,
            ["threshold"] = threshold,
            ["width"] = w,
            ["height"] = h,
            ["area"] = area,
            ["bbox"] = area == 0 ? null : Box(labels.Components.Min(c => c.MinX), labels.Components.Min(c => c.MinY), labels.Components.Max(c => c.MaxX), labels.Components.Max(c => c.MaxY)),
            ["rle"] = new JsonObject { ["size"] = new JsonArray(h, w), ["counts"] = new JsonArray(Rle(binary.Pixels, w, h).Select(c => (JsonNode)c).ToArray()) },
            ["components"] = new JsonArray(labels.Components.Select(c => (JsonNode)new JsonObject
            {
                ["area"] = c.PixelCount,
                ["bbox"] = Box(c.MinX, c.MinY, c.MaxX, c.MaxY),
            }).ToArray()),
        };
    }

    private static JsonArray Box(int minX, int minY, int maxX, int maxY) => new(minX, minY, maxX - minX + 1, maxY - minY + 1);

    /// <summary>COCO's uncompressed RLE: run lengths in column-major order, the first run counting background (possibly 0).</summary>
    public static List<int> Rle(bool[] pixels, int width, int height)
    {
        var counts = new List<int>();
        bool current = false;
        int run = 0;
        for (int x = 0; x < width; x++)
        {
            for (int y = 0; y < height; y++)
            {
                bool v = pixels[y * width + x];
                if (v != current)
                {
                    counts.Add(run);
                    run = 0;
                    current = v;
                }
                run++;
            }
        }
        counts.Add(run);
        return counts;
    }
}
