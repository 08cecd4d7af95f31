using System.Globalization;
using System.Text.Json.Nodes;
using Vlsm.Data.Synthetic;
using Vlsm.Evaluation;

namespace Vlsm.Tests;

/// <summary>Normalised surface Dice, medvlsm's Dice differences, and <c>vlsm score</c> on mask files.</summary>
public sealed class ScoreTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-score-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    /// <summary>A 6x6 mask with a 3x3 block whose top-left corner is at (x0, 0).</summary>
    private static bool[] Block(int x0)
    {
        var m = new bool[36];
        for (int y = 0; y < 3; y++)
            for (int x = x0; x < x0 + 3; x++) m[y * 6 + x] = true;
        return m;
    }

    [Fact]
    public void SurfaceDiceCountsEdgePixelsWithinTheTolerance()
    {
        // A block and the same block one pixel to the right: each has 8 edge pixels; half of each
        // set lies on the other's edge (distance 0), the rest one pixel from it.
        Assert.Equal(0.5, SegmentationMetrics.SurfaceDice(Block(0), Block(1), 6, 6, 0)!.Value, 12);
        Assert.Equal(1.0, SegmentationMetrics.SurfaceDice(Block(0), Block(1), 6, 6, 1)!.Value, 12);
        Assert.Equal(1.0, SegmentationMetrics.SurfaceDice(Block(2), Block(2), 6, 6, 0)!.Value, 12);
        // Side by side: the facing edges are one pixel apart, the rest further; nothing within half a pixel.
        Assert.Equal(0.0, SegmentationMetrics.SurfaceDice(Block(0), Block(3), 6, 6, 0.5)!.Value, 12);
        Assert.Equal(0.0, SegmentationMetrics.SurfaceDice(Block(0), new bool[36], 6, 6, 2)!.Value, 12);
        Assert.Null(SegmentationMetrics.SurfaceDice(new bool[36], new bool[36], 6, 6, 2));
    }

    [Fact]
    public void DiceDifferencesAreOverTheTrivialPredictions()
    {
        bool[] truth = [true, true, false, false];
        var (ones, zeros) = SegmentationMetrics.TrivialDiceDifferences(truth, truth);
        Assert.Equal(1 - 4.0 / 6, ones, 12); // all-ones Dice: 2*2 / (2 + 4)
        Assert.Equal(1.0, zeros, 12);
        var (emptyOnes, emptyZeros) = SegmentationMetrics.TrivialDiceDifferences(new bool[4], new bool[4]);
        Assert.Equal(1.0, emptyOnes, 12); // Dice 1 (both empty) minus 0
        Assert.Equal(0.0, emptyZeros, 12); // an empty prediction is as good as the trivial one
    }

    [Fact]
    public void ScoringEvalsSavedMasksReproducesEvalExactly()
    {
        string data = Path.Combine(tmp, "data");
        SyntheticDataset.Generate(data, new SynthOptions(8, 3, Size: 64, Style: SynthStyle.Medical), null);
        string evalOut = Path.Combine(tmp, "eval");
        var eval = CliRunner.Run("eval", "--model", Path.Combine(Fixtures.Parity, "clipseg-tiny"), "--data", data, "--prompt", "p1", "--out", evalOut, "--save-masks", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        string scoreOut = Path.Combine(tmp, "score");
        var score = CliRunner.Run("score", "--pred", Path.Combine(evalOut, "masks"), "--data", data, "--out", scoreOut, "--json");
        Assert.True(score.ExitCode == 0, score.Stderr);

        var a = JsonNode.Parse(eval.Stdout)!;
        var b = JsonNode.Parse(score.Stdout)!;
        foreach (var metric in new[] { "dice", "iou", "hd95", "nsd", "ones_dice_diff", "zeros_dice_diff" })
        {
            Assert.Equal(a[metric]!["mean"]?.GetValue<double>(), b[metric]!["mean"]?.GetValue<double>());
            Assert.Equal(a[metric]!["std"]?.GetValue<double>(), b[metric]!["std"]?.GetValue<double>());
        }
        Assert.Equal(a["hd95"]!["missing"]!.GetValue<int>(), b["hd95"]!["missing"]!.GetValue<int>());
        Assert.Null(b["network"]); // mask files have no network resolution
        Assert.Equal(Path.Combine(evalOut, "masks"), b["predictions"]!.GetValue<string>());

        // Per image, too: the same rows of Dice, IoU and HD95.
        static Dictionary<string, string[]> Rows(string csv) => File.ReadAllLines(csv).Skip(1)
            .Select(l => l.Split(',')).ToDictionary(f => f[2], f => new[] { f[7], f[8], f[9], f[12] });
        var evalRows = Rows(Path.Combine(evalOut, EvaluationReport.PerImageFile));
        var scoreRows = Rows(Path.Combine(scoreOut, EvaluationReport.PerImageFile));
        Assert.Equal(evalRows.Keys.Order(), scoreRows.Keys.Order());
        foreach (var (index, row) in evalRows) Assert.Equal(row, scoreRows[index]);
        Assert.Contains(evalRows.Values, r => double.Parse(r[0], CultureInfo.InvariantCulture) is > 0 and < 1);
    }

    [Fact]
    public void AFolderWhereSummaryJsonGoesLeavesNoPerImageCsvWithoutIt()
    {
        string data = Path.Combine(tmp, "data3");
        SyntheticDataset.Generate(data, new SynthOptions(6, 3, Size: 48, Style: SynthStyle.Medical), null);
        string output = Path.Combine(tmp, "blocked");
        string summary = Path.Combine(output, EvaluationReport.SummaryFile);
        Directory.CreateDirectory(summary);

        var r = CliRunner.Run("score", "--pred", Path.Combine(data, "masks"), "--data", data, "--out", output);

        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"error: {summary} is a folder, so summary.json cannot be written there and nothing was written; remove that folder", r.Stderr);
        Assert.Equal([summary], Directory.GetFileSystemEntries(output));
    }

    [Fact]
    public void AMissingOrMisSizedPredictionIsNamed()
    {
        string data = Path.Combine(tmp, "data2");
        SyntheticDataset.Generate(data, new SynthOptions(12, 3, Size: 64, Style: SynthStyle.Medical), null);
        string preds = Path.Combine(tmp, "preds");
        Directory.CreateDirectory(preds);
        var r = CliRunner.Run("score", "--pred", preds, "--data", data);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("have no prediction in", r.Stderr);
        Assert.Contains("test.json", r.Stderr);

        var records = Vlsm.Data.MedvlsmDataset.Open(data).RequiredRecords("test");
        foreach (var record in records)
            Vlsm.Imaging.ImageCodec.SavePng(Path.Combine(preds, Path.ChangeExtension(record.Id.MaskName, ".png")), new Vlsm.Imaging.GrayImage(10, 10));
        r = CliRunner.Run("score", "--pred", preds, "--data", data);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("is 10x10 but the mask", r.Stderr);
    }
}
