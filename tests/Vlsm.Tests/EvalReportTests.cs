using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Evaluation;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>Aggregation, files and per-image scoring of the evaluation, on hand-made values.</summary>
public sealed class EvalReportTests
{
    private static ImageScore Score(string dataset, int index, double dice, double iou, double? hd95, string key = "p1",
        double? diceNet = null, double? iouNet = null) =>
        new(new RecordId(dataset, "test", index, $"img{index}.png", $"mask{index}.png"), key, $"text {key}", dice, iou, hd95,
            diceNet ?? dice, iouNet ?? iou);

    private static EvaluationInfo Info(string prompt, params string[] datasets) =>
        new("/models/tiny", null, prompt, "test", 0.5f, 127, datasets);

    [Fact]
    public void SummaryIsMeanAndPopulationStdWithMissingHd95Counted()
    {
        var scores = new[]
        {
            Score("kvasir", 0, 1.0, 1.0, 2.0, diceNet: 0.9, iouNet: 0.8),
            Score("kvasir", 1, 0.5, 1.0 / 3, null, diceNet: 0.7, iouNet: 0.6),
            Score("kvasir", 2, 0.0, 0.0, 4.0, diceNet: 0.1, iouNet: 0.0),
            Score("kvasir", 3, 0.5, 1.0 / 3, null, diceNet: 0.5, iouNet: 0.2),
        };
        var s = ScoreSummary.Of(scores);

        Assert.Equal(4, s.N);
        Assert.Equal(0.5, s.Dice.Mean, 12);
        // Population std: deviations ±0.5, 0, 0 → sqrt(0.5 / 4), not sqrt(0.5 / 3).
        Assert.Equal(Math.Sqrt(0.125), s.Dice.Std, 12);
        Assert.Equal(5.0 / 12, s.IoU.Mean, 12);
        Assert.Equal(Math.Sqrt(((7.0 / 12) * (7.0 / 12) + 2 * (1.0 / 12) * (1.0 / 12) + (5.0 / 12) * (5.0 / 12)) / 4), s.IoU.Std, 12);
        Assert.Equal(3.0, s.Hd95!.Value.Mean, 12);
        Assert.Equal(1.0, s.Hd95!.Value.Std, 12);
        Assert.Equal(2, s.Hd95Missing);
        Assert.Equal(0.55, s.DiceNetwork.Mean, 12);
        Assert.Equal(0.4, s.IoUNetwork.Mean, 12);
        Assert.Equal(Math.Sqrt((0.35 * 0.35 + 0.15 * 0.15 + 0.45 * 0.45 + 0.05 * 0.05) / 4), s.DiceNetwork.Std, 12);
    }

    [Fact]
    public void Hd95MissingEverywhereIsNullInJson()
    {
        var s = ScoreSummary.Of([Score("a", 0, 1.0, 1.0, null), Score("a", 1, 0.0, 0.0, null)]);
        Assert.Null(s.Hd95);
        Assert.Equal(2, s.Hd95Missing);
        var json = s.ToJson();
        Assert.Null(json["hd95"]!["mean"]);
        Assert.Null(json["hd95"]!["std"]);
        Assert.Equal(2, json["hd95"]!["missing"]!.GetValue<int>());
    }

    [Fact]
    public void MeanOverDatasetsWeighsEachDatasetOnce()
    {
        // kvasir: 3 images, Dice mean 0.9; clinic: 1 image, Dice 0.5. Mean of means 0.7 (image mean would be 0.8).
        var report = EvaluationReport.Build(Info("p1", "kvasir", "clinic"),
        [
            Score("kvasir", 0, 0.9, 0.8, 1.0), Score("kvasir", 1, 0.8, 0.7, 3.0), Score("kvasir", 2, 1.0, 0.9, null),
            Score("clinic", 0, 0.5, 0.4, 6.0),
        ]);
        var p = Assert.Single(report.Prompts);
        Assert.Equal(["kvasir", "clinic"], p.Datasets.Select(d => d.Dataset));
        var mean = p.Mean!;
        Assert.Equal(4, mean.N);
        Assert.Equal(0.7, mean.Dice.Mean, 12);
        Assert.Equal(0.2, mean.Dice.Std, 12); // population std of {0.9, 0.5}
        Assert.Equal(0.6, mean.IoU.Mean, 12);
        Assert.Equal(4.0, mean.Hd95!.Value.Mean, 12); // mean of {2.0, 6.0}
        Assert.Equal(1, mean.Hd95Missing);

        var json = report.ToJson();
        Assert.Equal(3, json["datasets"]!["kvasir"]!["n"]!.GetValue<int>());
        Assert.Equal(0.9, json["datasets"]!["kvasir"]!["dice"]!["mean"]!.GetValue<double>(), 12);
        Assert.Equal(0.5, json["datasets"]!["clinic"]!["dice"]!["mean"]!.GetValue<double>(), 12);
        Assert.Equal(0.7, json["mean"]!["dice"]!["mean"]!.GetValue<double>(), 12);
        Assert.Null(json["dataset"]);
    }

    [Fact]
    public void SingleDatasetSummaryJsonHasTheDocumentedFields()
    {
        var report = EvaluationReport.Build(Info("p2", "kvasir"), [Score("kvasir", 0, 0.8, 0.6, 2.5, "p2")]);
        var json = JsonNode.Parse(report.ToJsonText())!;
        Assert.Equal(1, json["n"]!.GetValue<int>());
        Assert.Equal(0.8, json["dice"]!["mean"]!.GetValue<double>());
        Assert.Equal(0.0, json["dice"]!["std"]!.GetValue<double>());
        Assert.Equal(0.6, json["iou"]!["mean"]!.GetValue<double>());
        Assert.Equal(2.5, json["hd95"]!["mean"]!.GetValue<double>());
        Assert.Equal(0, json["hd95"]!["missing"]!.GetValue<int>());
        Assert.Equal(0.8, json["network"]!["dice"]!["mean"]!.GetValue<double>());
        Assert.Equal("original", json["resolution"]!.GetValue<string>());
        Assert.Equal(0.5, json["threshold"]!.GetValue<double>());
        Assert.Equal("/models/tiny", json["model"]!.GetValue<string>());
        Assert.Null(json["adapter"]);
        Assert.Equal("p2", json["prompt"]!.GetValue<string>());
        Assert.Equal("kvasir", json["dataset"]!.GetValue<string>());
        Assert.Equal("test", json["split"]!.GetValue<string>());
    }

    [Fact]
    public void AllPromptsGroupsByKeyInNumericOrderWithNPerKey()
    {
        var report = EvaluationReport.Build(Info(EvaluationOptions.AllPrompts, "kvasir"),
        [
            Score("kvasir", 0, 0.1, 0.1, null, "p10"), Score("kvasir", 1, 0.3, 0.2, null, "p2"),
            Score("kvasir", 0, 0.5, 0.4, null, "p2"), Score("kvasir", 0, 0.2, 0.1, null, "p0"),
        ]);
        Assert.Equal(["p0", "p2", "p10"], report.Prompts.Select(p => p.Prompt));
        Assert.Equal([1, 2, 1], report.Prompts.Select(p => p.Datasets[0].Summary.N));
        Assert.Equal(["p0", "p2", "p2", "p10"], report.Images.Select(i => i.PromptKey));
        Assert.Equal([0, 0, 1, 0], report.Images.Select(i => i.Record.Index));
        var json = report.ToJson();
        Assert.Equal(2, json["prompts"]!["p2"]!["n"]!.GetValue<int>());
        Assert.Equal(0.4, json["prompts"]!["p2"]!["dice"]!["mean"]!.GetValue<double>(), 12);
        Assert.Equal("all", json["prompt"]!.GetValue<string>());
    }

    [Fact]
    public void CsvQuotesAsRfc4180AndLeavesMissingHd95Empty()
    {
        var id = new RecordId("camus", "test", 7, "patient, \"one\".png", "mask_1/p1.png");
        var report = EvaluationReport.Build(Info("literal", "camus"),
            [new ImageScore(id, "", "heart, left\nventricle", 0.25, 1.0 / 3, null, 0.5, 0.75)]);
        var csv = report.ToCsv();
        Assert.Equal(
            "dataset,split,index,img_name,mask_name,prompt_key,prompt,dice,iou,hd95,dice_net,iou_net,nsd,ones_dice_diff,zeros_dice_diff\r\n"
            + "camus,test,7,\"patient, \"\"one\"\".png\",mask_1/p1.png,,\"heart, left\nventricle\",0.25,0.3333333333333333,,0.5,0.75,,,\r\n",
            csv);
    }

    [Fact]
    public void WriteCreatesBothFilesAtomically()
    {
        string dir = Directory.CreateTempSubdirectory("vlsm-eval-report-").FullName;
        try
        {
            var report = EvaluationReport.Build(Info("p1", "kvasir"), [Score("kvasir", 0, 0.8, 0.6, 2.5)]);
            report.Write(dir);
            Assert.Equal(report.ToCsv(), File.ReadAllText(Path.Combine(dir, EvaluationReport.PerImageFile)));
            Assert.Equal(0.8, JsonNode.Parse(File.ReadAllText(Path.Combine(dir, EvaluationReport.SummaryFile)))!["dice"]!["mean"]!.GetValue<double>());
            Assert.Equal([EvaluationReport.PerImageFile, EvaluationReport.SummaryFile], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void OriginalAndNetworkResolutionAreScoredOnTheirOwnGrids()
    {
        // Model output 2x2: only the top-left cell is foreground.
        var prediction = new GrayImage(2, 2, [255, 0, 0, 0]);
        // Loader mask at the 4x4 network input: the top-left 2x2 block plus (2, 0).
        float[] network =
        [
            1, 1, 1, 0,
            1, 1, 0, 0,
            0, 0, 0, 0,
            0, 0, 0, 0,
        ];
        // Mask file 6x6: a 3x2 block above the threshold; (0, 2) is 100, below the mask threshold 127.
        var original = new byte[36];
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++) original[y * 6 + x] = 200;
        original[2 * 6] = 100;

        var m = PredictionScorer.Score(prediction, network, 4, 4, new GrayImage(6, 6, original), 127, out var atOriginal);

        // Network: the prediction becomes the top-left 2x2 block: |P| 4, |G| 5, overlap 4.
        Assert.Equal(8.0 / 9, m.DiceNetwork, 12);
        Assert.Equal(4.0 / 5, m.IoUNetwork, 12);
        // Original: the prediction becomes the top-left 3x3 block: |P| 9, |G| 6, overlap 6.
        Assert.Equal(12.0 / 15, m.Dice, 12);
        Assert.Equal(6.0 / 9, m.IoU, 12);
        // Directed 95th percentiles: prediction edges → truth 1 (three pixels of row 2 at distance 1),
        // truth → prediction edges 0.75 (the truth pixel at the prediction's centre is 1 from its edge).
        Assert.Equal(1.0, m.Hd95!.Value, 12);
        var expected = new byte[36];
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 3; x++) expected[y * 6 + x] = 255;
        Assert.Equal(expected, atOriginal.Pixels);
    }

    [Fact]
    public void EmptyMasksFollowTheDiceConventionsAndLeaveHd95Undefined()
    {
        var empty = new GrayImage(2, 2);
        var m = PredictionScorer.Score(empty, new float[4], 2, 2, new GrayImage(4, 4), 127, out _);
        Assert.Equal((1.0, 1.0, 1.0, 1.0), (m.Dice, m.IoU, m.DiceNetwork, m.IoUNetwork));
        Assert.Null(m.Hd95);

        var full = new GrayImage(2, 2, [255, 255, 255, 255]);
        var f = PredictionScorer.Score(full, new float[4], 2, 2, new GrayImage(4, 4), 127, out _);
        Assert.Equal((0.0, 0.0, 0.0, 0.0), (f.Dice, f.IoU, f.DiceNetwork, f.IoUNetwork));
        Assert.Null(f.Hd95);
    }
}
