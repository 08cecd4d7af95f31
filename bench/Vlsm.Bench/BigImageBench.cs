using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Evaluation;
using Vlsm.Imaging;
using Vlsm.Inference;

namespace Vlsm.Bench;

/// <summary>
/// Peak resident memory of predict and eval on very large images (issue #19: 12000x12000 reached
/// 4.9 GB in predict and 6.0 GB for one record in eval; the target is under 3 GB at any batch size).
/// Each measurement runs in a child process of its own (VmHWM is per process), with the tiny parity
/// model so the figure is the images' cost, at batch 1 and at batch 3 over three images or records.
/// </summary>
internal static class BigImageBench
{
    public const string ChildKey = "bigimage";

    /// <summary>Runs every case in a child and adds <c>bigimage_*_peak_rss_mb</c> and seconds to <paramref name="extra"/>.</summary>
    public static void Measure(JsonObject extra, bool quick)
    {
        string model = MemoryGrowth.TinyModel() ?? throw new ArgumentException("--only bigimage needs ../shared/parity/clipseg-tiny beside the checkout.");
        int side = quick ? 3000 : 12000;
        string root = Directory.CreateTempSubdirectory("vlsm-bigimage-").FullName;
        try
        {
            var watch = Stopwatch.StartNew();
            string data = MakeDataset(root, side, 3);
            Console.Error.WriteLine($"bigimage: 3 images of {side}x{side} written in {watch.Elapsed.TotalSeconds:0} s");
            extra["bigimage_side"] = side;
            foreach (var (command, batch) in new[] { ("predict", 1), ("predict", 3), ("eval", 1), ("eval", 3) })
            {
                var (peak, seconds) = Child(command, model, data, batch);
                extra[$"bigimage_{command}_b{batch}_peak_rss_mb"] = peak;
                extra[$"bigimage_{command}_b{batch}_seconds"] = Math.Round(seconds, 1);
                Console.Error.WriteLine($"bigimage: {command} batch {batch}: peak RSS {peak} MiB, {seconds:0.0} s");
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A medvlsm dataset of <paramref name="count"/> smooth side x side images (a disc on a gradient, so the PNGs are small) and their masks, all in the test split.</summary>
    private static string MakeDataset(string root, int side, int count)
    {
        string data = Path.Combine(root, "data");
        Directory.CreateDirectory(Path.Combine(data, "images"));
        Directory.CreateDirectory(Path.Combine(data, "masks"));
        Directory.CreateDirectory(Path.Combine(data, "anns"));
        var records = new List<AnnotationRecord>();
        for (int n = 0; n < count; n++)
        {
            var rgb = new byte[(long)side * side * 3];
            var mask = new byte[(long)side * side];
            double cx = side * (0.3 + 0.2 * n), cy = side * 0.5, r = side * 0.2;
            Parallel.For(0, side, y =>
            {
                for (int x = 0; x < side; x++)
                {
                    long i = (long)y * side + x;
                    bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
                    rgb[3 * i] = (byte)(inside ? 200 : 60 + 100L * x / side);
                    rgb[3 * i + 1] = (byte)(inside ? 80 : 60 + 100L * y / side);
                    rgb[3 * i + 2] = 90;
                    mask[i] = inside ? (byte)255 : (byte)0;
                }
            });
            string name = $"big{n}.png";
            ImageCodec.SavePng(Path.Combine(data, "images", name), new RgbImage(side, side, rgb));
            ImageCodec.SavePng(Path.Combine(data, "masks", name), new GrayImage(side, side, mask));
            records.Add(new AnnotationRecord(name, name, new Dictionary<string, IReadOnlyList<string>> { ["p1"] = ["a red disc"] }));
        }
        AnnotationFile.Write(Path.Combine(data, "anns", "test.json"), records);
        return data;
    }

    private static (long PeakMb, double Seconds) Child(string command, string model, string data, int batch)
    {
        var (exit, output, result) = Bench.RunSelf("--child", ChildKey, "--command", command, "--model", model, "--data", data, "--batch", batch.ToString(CultureInfo.InvariantCulture));
        if (exit != 0) throw new InvalidOperationException($"bigimage child ({command}, batch {batch}) failed with exit code {exit}: {output}");
        var o = JsonNode.Parse(result)!;
        return (o["peak_rss_mb"]!.GetValue<long>(), o["seconds"]!.GetValue<double>());
    }

    /// <summary>The child: one predict or eval over the dataset, as the CLI runs it; prints its peak RSS.</summary>
    public static string RunChild(string command, string model, string data, int batch)
    {
        var watch = Stopwatch.StartNew();
        string output = Directory.CreateTempSubdirectory("vlsm-bigimage-out-").FullName;
        try
        {
            using var segmenter = new ModelReference(model, null, null).Open(Models.ComputePrecision.Fp32, new Dictionary<string, string>());
            if (command == "predict")
            {
                var job = PredictionJob.Plan(segmenter, [Path.Combine(data, "images")],
                    new PredictionOptions { OutputDirectory = output, Prompts = ["a red disc"], BatchSize = batch, WriteProbabilities = true, ProbabilitiesSize = ProbabilitiesSize.Original });
                var report = job.Run();
                if (report.Written != 3) throw new InvalidOperationException($"predict wrote {report.Written} of 3: {string.Join("; ", report.Failures)}");
            }
            else
            {
                var evaluator = Evaluator.Plan(segmenter, PooledDataset.Open([data]),
                    new EvaluationOptions { Prompt = "p1", BatchSize = batch, MasksDirectory = Path.Combine(output, "masks") }, model, null);
                var report = evaluator.Run();
                if (report.Images.Count != 3) throw new InvalidOperationException($"eval scored {report.Images.Count} of 3 records.");
            }
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
        return new JsonObject { ["peak_rss_mb"] = PeakRss.Megabytes(), ["seconds"] = watch.Elapsed.TotalSeconds }.ToJsonString();
    }
}
