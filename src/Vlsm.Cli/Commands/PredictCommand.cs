using System.CommandLine;
using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.IO;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Cli.Commands;

internal static class PredictCommand
{
    private static readonly string[] ImageExtensions = { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    public static Command Build()
    {
        var model = new Option<string>("--model") { Description = "Model folder: HF CLIPSeg, or CRIS (config.json with a \"cris\" object).", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "What to segment, e.g. \"small pink polyp at the top left\".", Required = true };
        var threshold = new Option<float>("--threshold") { Description = "Sigmoid threshold for the mask.", DefaultValueFactory = _ => 0.5f };
        var probs = new Option<bool>("--probs") { Description = "Also write <name>.probs.npy (float32 sigmoid at model resolution)." };
        var outDir = new Option<string>("--out") { Description = "Output folder.", Required = true };
        var batch = new Option<int>("--batch-size") { Description = "Images per forward pass.", DefaultValueFactory = _ => 8 };
        var adapter = new Option<string?>("--adapter") { Description = "Adapter or checkpoint file (safetensors) from vlsm train or the Python reference." };
        var padMask = ModelOptions.CrisPadMask();
        var precision = PrecisionOption.Create();
        var inputs = new Argument<string[]>("IMAGE") { Description = "Image files or folders of images.", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("predict", "Segment images with a text prompt; writes <name>.mask.png and <name>.overlay.png.")
            { model, prompt, threshold, probs, outDir, batch, adapter, padMask, precision, inputs };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            float thr = parse.GetValue(threshold);
            int batchSize = parse.GetValue(batch);
            if (batchSize < 1) throw new VlsmException($"--batch-size must be at least 1, got {batchSize}.");
            if (thr is < 0 or > 1) throw new VlsmException($"--threshold must be within [0, 1], got {thr}.");
            var towerDtype = TowerPrecision.Parse(parse.GetValue(precision)!);
            var files = CollectImages(parse.GetValue(inputs)!);
            string text = parse.GetValue(prompt)!;
            string dir = parse.GetValue(outDir)!;
            bool writeProbs = parse.GetValue(probs);
            var predictor = Segmenters.FromFolder(parse.GetValue(model)!, parse.GetValue(adapter), Segmenters.ParsePadMask(parse.GetValue(padMask)), towerDtype);
            Directory.CreateDirectory(dir);
            int failed = 0;
            ProgressReporter.Run("predict", files.Count, advance =>
            {
                foreach (var chunk in files.Chunk(batchSize))
                {
                    var images = new List<(string Path, RgbImage Image)>();
                    foreach (var f in chunk)
                    {
                        try
                        {
                            images.Add((f, ImageCodec.DecodeRgb(f)));
                        }
                        catch (VlsmException e)
                        {
                            Console.Error.WriteLine($"error: {e.Message}");
                            failed++;
                        }
                    }
                    var predictions = predictor.Predict(images.Select(i => i.Image).ToList(), images.Select(_ => text).ToList());
                    for (int i = 0; i < images.Count; i++)
                    {
                        var (path, image) = images[i];
                        string stem = Path.Combine(dir, Path.GetFileNameWithoutExtension(path));
                        var mask = predictions[i].MaskAt(image.Width, image.Height, thr);
                        ImageCodec.SavePng(stem + ".mask.png", mask);
                        ImageCodec.SavePng(stem + ".overlay.png", Overlay.Tint(image, mask, (255, 64, 32)));
                        if (writeProbs)
                        {
                            var p = predictions[i];
                            using var t = TorchSharp.torch.tensor(p.Probabilities, new long[] { p.Height, p.Width });
                            Npy.Save(stem + ".probs.npy", t);
                        }
                    }
                    advance(chunk.Length);
                }
            });
            Console.WriteLine($"wrote {files.Count - failed} prediction(s) to {dir}" + (failed > 0 ? $"; {failed} image(s) could not be read" : ""));
            return failed > 0 ? 2 : 0;
        }));
        return cmd;
    }

    private static List<string> CollectImages(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
            {
                var found = Directory.EnumerateFiles(input)
                    .Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal).ToList();
                if (found.Count == 0) throw new VlsmException($"{input}: folder has no images ({string.Join(", ", ImageExtensions)}).");
                files.AddRange(found);
            }
            else if (File.Exists(input))
            {
                files.Add(input);
            }
            else
            {
                throw new VlsmException($"{input}: no such image file or folder.");
            }
        }
        var clash = files.GroupBy(f => Path.GetFileNameWithoutExtension(f)).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
            throw new VlsmException($"{string.Join(" and ", clash.Take(2))} would both write {clash.Key}.mask.png; predict them into separate --out folders.");
        return files;
    }
}
