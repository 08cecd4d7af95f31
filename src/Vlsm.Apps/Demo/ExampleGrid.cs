using SkiaSharp;
using Vlsm.Data;
using Vlsm.Imaging;
using Vlsm.Models.ClipSeg;
using Vlsm.Inference;
using Vlsm.IO;

namespace Vlsm.Apps.Demo;

/// <summary>
/// examples.png: test scenes with several objects, one row each: the image, then the
/// fine-tuned model's prediction (tinted) for the prompt of each object, captioned with the
/// prompt. A model that reads the text highlights a different object in each column.
/// </summary>
public static class ExampleGrid
{
    // Blue stands out on the red and pink tissue tones of the medical scenes.
    private static readonly (byte R, byte G, byte B) PredictionColor = (0, 120, 255);

    private const int Scale = 3, Rows = 4, Columns = 4, Caption = 30, Header = 26, Gap = 6;

    public static void Write(string path, string modelDir, string adapter, string methodName, string datasetRoot, string promptKey)
    {
        var dataset = MedvlsmDataset.Open(datasetRoot);
        var scenes = dataset.RequiredRecords("test")
            .GroupBy(r => r.Id.ImgName, StringComparer.Ordinal)
            .Where(g => g.Count() >= 2)
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .Take(Rows)
            .Select(g => g.ToList())
            .ToList();
        if (scenes.Count == 0) throw new VlsmException($"{datasetRoot}: no test image has two or more objects to show.");

        using var predictor = ClipSegPredictor.FromFolder(modelDir, adapter);
        var tiles = new List<(RgbImage Image, string Caption)[]>();
        foreach (var scene in scenes)
        {
            var (image, _) = scene[0].Decode();
            var prompts = scene.Select(r => r.Annotation.Prompts.TryGetValue(promptKey, out var p) && p.Count > 0 ? p[0] : "").ToList();
            var predictions = predictor.Predict(Enumerable.Repeat(image, prompts.Count).ToList(), prompts);
            var row = new List<(RgbImage, string)> { (image, "image") };
            for (int k = 0; k < prompts.Count && row.Count < Columns; k++)
            {
                var mask = predictions[k].MaskAt(image.Width, image.Height, 0.5f);
                row.Add((Overlay.Tint(image, mask, PredictionColor, 0.6f), prompts[k]));
            }
            tiles.Add(row.ToArray());
        }
        Draw(path, tiles, $"{methodName}: prediction (blue) for each object's prompt");
    }

    private static void Draw(string path, List<(RgbImage Image, string Caption)[]> rows, string title)
    {
        int tile = rows[0][0].Image.Width * Scale;
        int width = Columns * (tile + Gap) + Gap;
        int height = Header + rows.Count * (tile + Caption + Gap) + Gap;
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var font = new SKFont(SKTypeface.Default, 13);
        using var small = new SKFont(SKTypeface.Default, 10);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        canvas.DrawText(title, Gap, Header - 8, SKTextAlign.Left, font, ink);
        for (int r = 0; r < rows.Count; r++)
        {
            int y = Header + r * (tile + Caption + Gap);
            for (int c = 0; c < rows[r].Length; c++)
            {
                int x = Gap + c * (tile + Gap);
                using var bitmap = ToBitmap(rows[r][c].Image);
                canvas.DrawBitmap(bitmap, new SKRect(x, y, x + tile, y + tile), new SKPaint { IsAntialias = false });
                int line = 0;
                foreach (var text in Wrap(rows[r][c].Caption, 34).Take(2))
                    canvas.DrawText(text, x, y + tile + 11 + 11 * line++, SKTextAlign.Left, small, ink);
            }
        }
        using var snapshot = surface.Snapshot();
        using var png = snapshot.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, png.ToArray());
    }

    private static SKBitmap ToBitmap(RgbImage image)
    {
        var bitmap = new SKBitmap(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var rgba = new byte[image.Width * image.Height * 4];
        for (int i = 0, s = 0; i < image.Width * image.Height; i++, s += 3)
        {
            rgba[4 * i] = image.Pixels[s];
            rgba[4 * i + 1] = image.Pixels[s + 1];
            rgba[4 * i + 2] = image.Pixels[s + 2];
            rgba[4 * i + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }

    private static IEnumerable<string> Wrap(string text, int width)
    {
        var line = "";
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                yield return line;
                line = word;
            }
            else line = line.Length == 0 ? word : line + " " + word;
        }
        if (line.Length > 0) yield return line;
    }
}
