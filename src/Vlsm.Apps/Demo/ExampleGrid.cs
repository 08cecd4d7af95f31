using System.Globalization;
using Vlsm.Data;
using Vlsm.Evaluation;
using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Apps.Demo;

/// <summary>One column of examples.png: a method's name and its trained weights (null: the pretrained model as it is).</summary>
public sealed record ExampleMethod(string Name, string? Adapter);

/// <summary>
/// examples.png: every method side by side on the same test prompts. Each row is one object of a
/// test scene with two or more objects (two objects per scene, so neighbouring rows ask for
/// different objects of the same image): the image, its ground truth (outlined in yellow), then
/// each method's prediction (filled in blue, the ground truth outlined on top) with that panel's
/// Dice. A model that reads the text fills a different object in each row of a scene. Text is drawn
/// with <see cref="BitmapFont"/>, so the picture needs no system font and is the same on every machine.
/// </summary>
public static class ExampleGrid
{
    private const int Scale = 3, Gap = 6, Pad = 6, ObjectsPerScene = 2, MaxScenes = 3;
    private static readonly int Line = BitmapFont.CellHeight + 3;
    private static readonly (byte R, byte G, byte B) Paper = (255, 255, 255), Ink = (0, 0, 0);

    /// <summary>Columns before the methods: the image and its ground truth.</summary>
    public const int LeadingColumns = 2;

    /// <summary>Scale and layout, for tests: each panel is the image enlarged 3x; panels are 6 px apart.</summary>
    public static (int Scale, int Gap, int Pad) Layout => (Scale, Gap, Pad);

    /// <summary>Height of the title band above the first row, and of the caption band above each row.</summary>
    public static (int Title, int RowCaption, int PanelCaption) Bands => (2 * Line + Pad, Line, Line);

    public static void Write(string path, string modelDir, IReadOnlyList<ExampleMethod> methods, string datasetRoot, string promptKey, string title)
    {
        var dataset = MedvlsmDataset.Open(datasetRoot);
        var rows = dataset.RequiredRecords("test")
            .GroupBy(r => r.Id.ImgName, StringComparer.Ordinal)
            .Where(g => g.Count() >= 2)
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .Take(MaxScenes)
            .SelectMany(g => g.Take(ObjectsPerScene))
            .ToList();
        if (rows.Count == 0) throw new VlsmException($"{datasetRoot}: no test image has two or more objects to show.");

        var decoded = rows.Select(r => r.Decode()).ToList();
        var prompts = rows.Select(r => r.Annotation.Prompts.TryGetValue(promptKey, out var p) && p.Count > 0 ? p[0] : "").ToList();
        var truths = decoded.Select(d => Binary(d.Mask)).ToList();
        // predictions[method][row]
        var predictions = new List<GrayImage[]>();
        foreach (var method in methods)
        {
            using var predictor = ClipSegPredictor.FromFolder(modelDir, method.Adapter);
            var predicted = predictor.Predict(decoded.Select(d => d.Image).ToList(), prompts);
            predictions.Add(predicted.Select((p, i) => p.MaskAt(decoded[i].Image.Width, decoded[i].Image.Height, 0.5f)).ToArray());
        }
        ImageCodec.SavePng(path, Draw(title, methods, decoded.Select(d => d.Image).ToList(), truths, prompts, predictions));
    }

    private static GrayImage Binary(GrayImage mask) =>
        new(mask.Width, mask.Height, mask.Pixels.Select(v => v > 127 ? (byte)255 : (byte)0).ToArray());

    /// <summary>Dice of a 0/255 prediction against a 0/255 truth, as the evaluator computes it (1 when both are empty).</summary>
    public static double Dice(GrayImage prediction, GrayImage truth) =>
        SegmentationMetrics.Dice(prediction.Pixels.Select(v => v > 127).ToArray(), truth.Pixels.Select(v => v > 127).ToArray());

    private static RgbImage Draw(string title, IReadOnlyList<ExampleMethod> methods, List<RgbImage> images, List<GrayImage> truths,
        List<string> prompts, List<GrayImage[]> predictions)
    {
        int tile = images[0].Width * Scale, tileHeight = images[0].Height * Scale;
        int columns = LeadingColumns + methods.Count;
        int width = Pad + columns * (tile + Gap) - Gap + Pad;
        int rowHeight = Bands.RowCaption + tileHeight + Bands.PanelCaption + Gap;
        int height = Bands.Title + images.Count * rowHeight + Pad;
        var canvas = new RgbImage(width, height);
        Overlay.Fill(canvas, 0, 0, width, height, Paper);

        BitmapFont.Draw(canvas, title, Pad, Pad, Ink);
        Overlay.DrawLegend(canvas, Pad, Pad + Line, 1, "ground truth; each panel's Dice is against it", Ink);

        for (int r = 0; r < images.Count; r++)
        {
            int y = Bands.Title + r * rowHeight;
            BitmapFont.Draw(canvas, Clip("prompt: " + prompts[r], (width - 2 * Pad) / BitmapFont.CellWidth), Pad, y, Ink);
            int ty = y + Bands.RowCaption;
            for (int c = 0; c < columns; c++)
            {
                int x = Pad + c * (tile + Gap);
                RgbImage panel;
                string caption;
                if (c == 0)
                {
                    panel = images[r];
                    caption = "image";
                }
                else if (c == 1)
                {
                    panel = images[r];
                    caption = "ground truth";
                }
                else
                {
                    var predicted = predictions[c - LeadingColumns][r];
                    panel = Overlay.Prediction(images[r], predicted);
                    caption = $"{methods[c - LeadingColumns].Name}: Dice {Dice(predicted, truths[r]).ToString("0.00", CultureInfo.InvariantCulture)}";
                }
                Paste(canvas, panel, x, ty);
                if (c >= 1) DrawOutlineAt(canvas, truths[r], x, ty);
                BitmapFont.Draw(canvas, Clip(caption, tile / BitmapFont.CellWidth), x, ty + tileHeight + 2, Ink);
            }
        }
        return canvas;
    }

    private static string Clip(string text, int characters) =>
        text.Length <= characters ? text : text[..Math.Max(characters - 3, 0)] + "...";

    /// <summary>Copies <paramref name="image"/> enlarged <see cref="Scale"/> times (nearest) with its top-left at (x, y).</summary>
    private static void Paste(RgbImage canvas, RgbImage image, int x, int y)
    {
        for (int yy = 0; yy < image.Height * Scale; yy++)
            for (int xx = 0; xx < image.Width * Scale; xx++)
            {
                int s = 3 * ((yy / Scale) * image.Width + xx / Scale), d = 3 * ((y + yy) * canvas.Width + x + xx);
                canvas.Pixels[d] = image.Pixels[s];
                canvas.Pixels[d + 1] = image.Pixels[s + 1];
                canvas.Pixels[d + 2] = image.Pixels[s + 2];
            }
    }

    /// <summary>The truth's outline over the panel at (x, y): drawn on a copy of the panel region, then pasted back.</summary>
    private static void DrawOutlineAt(RgbImage canvas, GrayImage truth, int x, int y)
    {
        int w = truth.Width * Scale, h = truth.Height * Scale;
        var region = new RgbImage(w, h);
        for (int yy = 0; yy < h; yy++)
            Array.Copy(canvas.Pixels, 3 * ((y + yy) * canvas.Width + x), region.Pixels, 3 * yy * w, 3 * w);
        Overlay.DrawOutline(region, truth, Scale, Scale);
        for (int yy = 0; yy < h; yy++)
            Array.Copy(region.Pixels, 3 * yy * w, canvas.Pixels, 3 * ((y + yy) * canvas.Width + x), 3 * w);
    }
}
