using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Apps.Demo;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary><c>vlsm demo --quick</c>, run as a user runs it (the full demo is measured by hand: see README).</summary>
public sealed class DemoCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-demo-cli-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static JsonObject WithoutTiming(JsonObject results)
    {
        var copy = (JsonObject)results.DeepClone();
        copy.Remove("timing");
        return copy;
    }

    [Fact]
    public void QuickDemoRunsEveryStepAndRepeatsFromTheCache()
    {
        string cache = Path.Combine(tmp, "cache"), first = Path.Combine(tmp, "first"), second = Path.Combine(tmp, "second");
        var r = CliRunner.Run("demo", "--quick", "--seed", "5", "--out", first, "--cache", cache);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(first, "results.json")))!.AsObject();
        Assert.Equal("quick", (string)results["recipe"]!);
        Assert.False((bool)results["timing"]!["pretrained_from_cache"]!);
        long total = (long)results["total_parameters"]!;
        var methods = results["methods"]!.AsArray().Select(m => m!.AsObject()).ToList();
        Assert.Equal(["decoder", "shallow VLC", "dense VL", "full"], methods.Select(m => (string)m["method"]!));
        foreach (var m in methods.Append(results["zero_shot"]!.AsObject()))
        {
            foreach (var key in new[] { "test_dice", "test_iou", "prompt_swap_dice" })
                Assert.InRange((double)m[key]!, 0.0, 1.0);
            Assert.True((int)m["swap_records"]! > 0);
        }
        Assert.Equal(total, (long)methods[3]["trainable_parameters"]!); // full trains everything
        foreach (var m in methods.Take(3))
            Assert.InRange((double)m["trainable_percent"]!, 0.01, 10.0);
        // The adapters' share is what the table claims: count / total.
        Assert.Equal(100.0 * (long)methods[2]["trainable_parameters"]! / total, (double)methods[2]["trainable_percent"]!, 3);

        using (var png = File.OpenRead(Path.Combine(first, "examples.png")))
            Assert.True(png.Length > 1000);
        var grid = ImageCodec.DecodeRgb(Path.Combine(first, "examples.png"));
        Assert.True(grid.Width > 4 * 64 && grid.Height > 64);
        Assert.Contains("swap Dice", r.Stdout);
        Assert.Contains("dense VL", r.Stdout);
        // Piped: plain stage and epoch lines with the whole demo's time left, and the README's Markdown table.
        Assert.Matches(@"== fine-tuning: dense VL \(\[6/8\], demo ETA \d+:\d\d\)", r.Stdout);
        Assert.Matches(@"epoch 1: train loss .*, demo ETA \d+:\d\d", r.Stdout);
        Assert.Contains("| method | trainable parameters | % of the model | epochs | wall time | test Dice | test IoU | prompt-swap Dice |", r.Stdout);
        Assert.Contains("|---|---:|---:|---:|---:|---:|---:|---:|", r.Stdout);
        Assert.Matches(@"\| dense VL \| 100,224 \| 1\.22 \| 1 \| \d+ s \| 0\.\d{3} \| 0\.\d{3} \| 0\.\d{3} \|", r.Stdout);

        // The swap split pairs each record's mask with another object's prompts from the same image.
        var test = AnnotationFile.Read(Path.Combine(first, "data", "medical", "anns", "test.json"));
        var swap = AnnotationFile.Read(Path.Combine(first, "data", "medical", "anns", DemoRunner.SwapSplit + ".json"));
        Assert.All(swap, s => Assert.Contains(test, t => t.ImgName == s.ImgName && t.MaskName != s.MaskName && t.Prompts["p4"][0] == s.Prompts["p4"][0]));

        // Same seed again: the pretrained model comes from the cache, and every number repeats.
        var again = CliRunner.Run("demo", "--quick", "--seed", "5", "--out", second, "--cache", cache);
        Assert.True(again.ExitCode == 0, again.Stdout + again.Stderr);
        var repeated = JsonNode.Parse(File.ReadAllText(Path.Combine(second, "results.json")))!.AsObject();
        Assert.True((bool)repeated["timing"]!["pretrained_from_cache"]!);
        Assert.Equal(WithoutTiming(results).ToJsonString(), WithoutTiming(repeated).ToJsonString());
        Assert.Contains("from the cache", again.Stdout);
    }

    [Fact]
    public void DemoRefusesAnOutFolderThatHoldsARun()
    {
        string outDir = Path.Combine(tmp, "used");
        Directory.CreateDirectory(Path.Combine(outDir, "runs"));
        var r = CliRunner.Run("demo", "--quick", "--out", outDir, "--cache", Path.Combine(tmp, "cache"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("already holds a demo run", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}
