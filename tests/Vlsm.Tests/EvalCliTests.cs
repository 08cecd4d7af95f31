using System.Globalization;
using System.Text.Json.Nodes;
using Vlsm.Models.ClipSeg;
using Vlsm.Data;
using Vlsm.Imaging;
using Vlsm.Inference;

namespace Vlsm.Tests;

/// <summary><c>vlsm eval</c> run as a user runs it, in a child process, with the tiny parity model.</summary>
public sealed class EvalCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-eval-cli-").FullName;
    private readonly List<DataTestSet> sets = [];

    public void Dispose()
    {
        foreach (var s in sets) s.Dispose();
        Directory.Delete(tmp, recursive: true);
    }

    private DataTestSet NewSet(string name)
    {
        var set = new DataTestSet(name);
        sets.Add(set);
        return set;
    }

    private string Out => Path.Combine(tmp, "out");

    /// <summary>The data rows of a Spectre table: cells of lines between vertical borders, header and rules left out.</summary>
    private static List<string[]> TableRows(string stdout, string firstHeader)
    {
        var rows = new List<string[]>();
        bool header = true;
        foreach (var line in stdout.Split('\n'))
        {
            var cells = line.Split('│', '|');
            if (cells.Length < 3) continue;
            var inner = cells[1..^1].Select(c => c.Trim()).ToArray();
            if (inner.All(c => c.Trim('-', ':').Length == 0)) continue; // Markdown's alignment row (stdout is piped)
            if (header)
            {
                if (inner[0] == firstHeader) header = false;
                continue;
            }
            rows.Add(inner);
        }
        return rows;
    }

    private static (double Mean, double Std) Stat(string cell)
    {
        var parts = cell.Split('±');
        return (double.Parse(parts[0], CultureInfo.InvariantCulture), double.Parse(parts[1].Split('(')[0], CultureInfo.InvariantCulture));
    }

    private static int Missing(string hd95Cell) => int.Parse(hd95Cell[(hd95Cell.LastIndexOf('(') + 1)..hd95Cell.LastIndexOf(')')], CultureInfo.InvariantCulture);

    /// <summary>The table row agrees with the summary object to the table's precision.</summary>
    private static void AssertRowMatches(string[] cells, int firstMetric, JsonNode summary)
    {
        Assert.Equal(summary["n"]!.GetValue<int>(), int.Parse(cells[firstMetric], CultureInfo.InvariantCulture));
        var dice = Stat(cells[firstMetric + 1]);
        Assert.Equal(summary["dice"]!["mean"]!.GetValue<double>(), dice.Mean, 0.00005);
        Assert.Equal(summary["dice"]!["std"]!.GetValue<double>(), dice.Std, 0.00005);
        var iou = Stat(cells[firstMetric + 2]);
        Assert.Equal(summary["iou"]!["mean"]!.GetValue<double>(), iou.Mean, 0.00005);
        Assert.Equal(summary["iou"]!["std"]!.GetValue<double>(), iou.Std, 0.00005);
        string hd = cells[firstMetric + 3];
        Assert.Equal(summary["hd95"]!["missing"]!.GetValue<int>(), Missing(hd));
        if (summary["hd95"]!["mean"] is { } mean)
        {
            var hd95 = Stat(hd);
            Assert.Equal(mean.GetValue<double>(), hd95.Mean, 0.005);
            Assert.Equal(summary["hd95"]!["std"]!.GetValue<double>(), hd95.Std, 0.005);
        }
        else
        {
            Assert.StartsWith("-", hd);
        }
    }

    private static List<string[]> Csv(string path)
    {
        // The test data has no quoted fields; RFC 4180 quoting is covered by EvalReportTests.
        var lines = File.ReadAllText(path).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        return lines.Select(l => l.Split(',')).ToList();
    }

    [Fact]
    public void PromptAllPrintsOneRowPerKeyThatAgreesWithSummaryJson()
    {
        var set = NewSet("kvasir");
        var records = EvalTestData.WriteSplit(set, "test", 5, withoutP2: 3);

        var r = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--prompt", "all", "--batch-size", "2", "--out", Out);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(Out, "summary.json")))!;
        var prompts = summary["prompts"]!.AsObject();
        Assert.Equal(["p0", "p1", "p2", "p3"], prompts.Select(p => p.Key));
        Assert.Equal([5, 5, 4, 5], prompts.Select(p => p.Value!["n"]!.GetValue<int>()));
        Assert.Equal("all", summary["prompt"]!.GetValue<string>());

        var rows = TableRows(r.Stdout, "prompt");
        Assert.Equal(["p0", "p1", "p2", "p3"], rows.Select(c => c[0]));
        foreach (var row in rows) AssertRowMatches(row, 1, prompts[row[0]]!);

        var csv = Csv(Path.Combine(Out, "per_image.csv"));
        Assert.Equal("dataset,split,index,img_name,mask_name,prompt_key,prompt,dice,iou,hd95,dice_net,iou_net,nsd,ones_dice_diff,zeros_dice_diff", string.Join(',', csv[0]));
        Assert.Equal(19, csv.Count - 1);
        Assert.DoesNotContain(csv, c => c[5] == "p2" && c[2] == "3");
        // p3 is a list: each record gets the text PromptChoice draws with seed 0, the same in every run.
        var dataset = MedvlsmDataset.Open(set.Root).Records("test");
        foreach (var row in csv.Skip(1).Where(c => c[5] == "p3"))
            Assert.Equal(PromptChoice.Key("p3").Choose(dataset[int.Parse(row[2], CultureInfo.InvariantCulture)], 0, 0), row[6]);
        // Record 2's mask is empty: its HD95 is missing (empty in the CSV) and counted in every key.
        Assert.All(csv.Skip(1).Where(c => c[2] == "2"), c => Assert.Equal("", c[9]));
        Assert.All(prompts, p => Assert.True(p.Value!["hd95"]!["missing"]!.GetValue<int>() >= 1));
    }

    [Fact]
    public void JsonPrintsOnlyTheSummaryToStdout()
    {
        var set = NewSet("kvasir");
        EvalTestData.WriteSplit(set, "test", 3);
        var r = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--prompt", "p1", "--json");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(3, json["n"]!.GetValue<int>());
        Assert.Equal("kvasir", json["dataset"]!.GetValue<string>());
        Assert.Equal("original", json["resolution"]!.GetValue<string>());
        Assert.NotNull(json["network"]!["dice"]!["mean"]);
        Assert.False(Directory.Exists(Out)); // no --out: print only
    }

    [Fact]
    public void TheLargestBatchSizeEvaluatesTheSplitAsOneBatchWithTheSameScores()
    {
        var set = NewSet("kvasir");
        EvalTestData.WriteSplit(set, "test", 3);
        var small = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--prompt", "p1", "--json", "--batch-size", "2");
        var largest = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--prompt", "p1", "--json", "--batch-size", int.MaxValue.ToString(CultureInfo.InvariantCulture));
        Assert.True(small.ExitCode == 0, small.Stdout + small.Stderr);
        Assert.True(largest.ExitCode == 0, largest.Stdout + largest.Stderr);
        Assert.Equal(3, JsonNode.Parse(largest.Stdout)!["n"]!.GetValue<int>());
        Assert.Equal(JsonNode.Parse(small.Stdout)!["network"]!["dice"]!.ToJsonString(), JsonNode.Parse(largest.Stdout)!["network"]!["dice"]!.ToJsonString());
    }

    [Fact]
    public void PooledDatasetsGetOneSummaryEachAndTheirMean()
    {
        var kvasir = NewSet("kvasir");
        var clinic = NewSet("clinic");
        EvalTestData.WriteSplit(kvasir, "test", 3);
        EvalTestData.WriteSplit(clinic, "test", 2, seed: 11);

        var r = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", kvasir.Root, "--data", clinic.Root, "--prompt", "p1", "--out", Out);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(Out, "summary.json")))!;
        var k = summary["datasets"]!["kvasir"]!;
        var c = summary["datasets"]!["clinic"]!;
        var mean = summary["mean"]!;
        Assert.Equal(3, k["n"]!.GetValue<int>());
        Assert.Equal(2, c["n"]!.GetValue<int>());
        Assert.Equal(5, mean["n"]!.GetValue<int>());
        double dk = k["dice"]!["mean"]!.GetValue<double>(), dc = c["dice"]!["mean"]!.GetValue<double>();
        Assert.Equal((dk + dc) / 2, mean["dice"]!["mean"]!.GetValue<double>(), 12);
        Assert.Equal(Math.Abs(dk - dc) / 2, mean["dice"]!["std"]!.GetValue<double>(), 12);
        Assert.Equal((k["iou"]!["mean"]!.GetValue<double>() + c["iou"]!["mean"]!.GetValue<double>()) / 2, mean["iou"]!["mean"]!.GetValue<double>(), 12);

        var rows = TableRows(r.Stdout, "dataset");
        Assert.Equal(["kvasir", "clinic", "mean"], rows.Select(row => row[0]));
        AssertRowMatches(rows[0], 1, k);
        AssertRowMatches(rows[1], 1, c);
        AssertRowMatches(rows[2], 1, mean);

        var csv = Csv(Path.Combine(Out, "per_image.csv"));
        Assert.Equal(["kvasir", "kvasir", "kvasir", "clinic", "clinic"], csv.Skip(1).Select(row => row[0]));
    }

    [Fact]
    public void SavedMasksAreNamedAfterMaskNameWithItsSubfolderAsPng()
    {
        var set = NewSet("camus");
        // CAMUS-style mask names with subfolders; one JPEG mask, saved as .png.
        EvalTestData.WriteSplit(set, "test", 3, maskName: i => i == 1 ? "mask_2/img1.jpg" : $"mask_1/img{i}.png");

        var r = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--prompt", "p1", "--out", Out, "--save-masks");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        var predictor = ClipSegPredictor.FromFolder(EvalTestData.Tiny);
        foreach (var (image, mask) in new[] { ("img0.png", "mask_1/img0.png"), ("img1.png", "mask_2/img1.png"), ("img2.png", "mask_1/img2.png") })
        {
            string path = Path.Combine(Out, "masks", mask);
            Assert.True(File.Exists(path), $"{path} missing; masks/ has {string.Join(", ", Directory.GetFiles(Path.Combine(Out, "masks"), "*", SearchOption.AllDirectories))}");
            var saved = ImageCodec.DecodeGray(path);
            var rgb = ImageCodec.DecodeRgb(set.ImagePath(image));
            Assert.Equal((EvalTestData.Width, EvalTestData.Height), (saved.Width, saved.Height));
            Assert.Equal(predictor.Predict([rgb], ["polyp"])[0].MaskAt(rgb.Width, rgb.Height, 0.5f).Pixels, saved.Pixels);
        }
        Assert.False(File.Exists(Path.Combine(Out, "masks", "mask_2", "img1.jpg")));
    }

    [Fact]
    public void OverlaysOneWritesTheBestAndWorstCaseByDice()
    {
        var set = NewSet("kvasir");
        EvalTestData.WriteSplit(set, "test", 4);

        var r = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--prompt", "p1", "--out", Out, "--overlays", "1");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        var rows = Csv(Path.Combine(Out, "per_image.csv")).Skip(1)
            .Select(c => (Name: Path.GetFileNameWithoutExtension(c[3]), Index: int.Parse(c[2], CultureInfo.InvariantCulture), Dice: double.Parse(c[7], CultureInfo.InvariantCulture)))
            .ToList();
        var best = rows.OrderByDescending(x => x.Dice).ThenBy(x => x.Index).First();
        var worst = rows.OrderBy(x => x.Dice).ThenBy(x => x.Index).First();
        var files = Directory.GetFiles(Path.Combine(Out, "overlays")).Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(new[] { $"best_01_{best.Name}.png", $"worst_01_{worst.Name}.png" }.Order(), files);
        // 64x48 images are enlarged 4x (to 256 wide) with a caption band below.
        const int k = 4;
        foreach (var f in files)
        {
            var overlay = ImageCodec.DecodeRgb(Path.Combine(Out, "overlays", f!));
            Assert.Equal(k * EvalTestData.Width, overlay.Width);
            Assert.InRange(overlay.Height, k * EvalTestData.Height + 3 * BitmapFont.CellHeight, k * EvalTestData.Height + 8 * BitmapFont.CellHeight);
        }
        // The ground truth's outline is drawn in Okabe–Ito yellow: the top-left corner of the record's rectangle.
        foreach (var (kind, x) in new[] { ("best", best), ("worst", worst) })
        {
            if (x.Index == 2) continue; // record 2's mask is empty: no outline
            var drawn = ImageCodec.DecodeRgb(Path.Combine(Out, "overlays", $"{kind}_01_{x.Name}.png"));
            int corner = 3 * (((6 + 2 * x.Index) * k + 1) * drawn.Width + (4 + 3 * x.Index) * k + 1);
            Assert.Equal(new byte[] { 240, 228, 66 }, drawn.Pixels[corner..(corner + 3)]);
        }
    }

    [Fact]
    public void RunWithoutBestCheckpointNamesTheFile()
    {
        var set = NewSet("kvasir");
        EvalTestData.WriteSplit(set, "test", 1);
        string run = Path.Combine(tmp, "run1");
        Directory.CreateDirectory(run);
        var r = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--run", run, "--data", set.Root);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(Path.Combine(run, "best.safetensors"), r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public void CorruptImageIsNamed()
    {
        var set = NewSet("kvasir");
        EvalTestData.WriteSplit(set, "test", 4);
        string bad = set.ImagePath("img2.png");
        File.WriteAllBytes(bad, File.ReadAllBytes(bad)[..40]);
        var r = CliRunner.Run("eval", "--model", EvalTestData.Tiny, "--data", set.Root, "--prompt", "p1", "--out", Out);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(bad, r.Stderr);
        Assert.Contains("record 2", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.False(File.Exists(Path.Combine(Out, "summary.json")));
    }
}
