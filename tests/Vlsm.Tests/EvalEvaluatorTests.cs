using TorchSharp;
using Vlsm.Models.ClipSeg;
using Vlsm.Data;
using Vlsm.Evaluation;
using Vlsm.Imaging;
using Vlsm.Inference;

namespace Vlsm.Tests;

/// <summary>The evaluator in process, against the predictor it must agree with.</summary>
public sealed class EvalEvaluatorTests : IDisposable
{
    private readonly DataTestSet set = new("kvasir");
    private readonly string outDir = Directory.CreateTempSubdirectory("vlsm-eval-out-").FullName;

    public void Dispose()
    {
        set.Dispose();
        Directory.Delete(outDir, recursive: true);
    }

    [Fact]
    public void EveryKeyAgreesWithThePredictor()
    {
        // Batches of 2: record 3 lacks p2, so the second batch runs p2 on a subset of its vision features.
        var records = EvalTestData.WriteSplit(set, "test", 5, withoutP2: 3);
        var predictor = ClipSegPredictor.FromFolder(EvalTestData.Tiny);
        var options = new EvaluationOptions
        {
            Prompt = EvaluationOptions.AllPrompts, BatchSize = 2, Workers = 2, MasksDirectory = Path.Combine(outDir, "masks"),
        };
        var evaluator = Evaluator.Plan(predictor, PooledDataset.Open([set.Root]), options, "tiny", null);
        Assert.Equal(["p0", "p1", "p2", "p3"], evaluator.PromptKeys);
        Assert.Equal(5, evaluator.Images);

        int progressed = 0;
        var report = evaluator.Run(n => progressed += n);

        Assert.Equal(5, progressed);
        Assert.Equal(5 + 5 + 4 + 5, report.Images.Count);
        Assert.Equal([5, 5, 4, 5], report.Prompts.Select(p => p.Datasets.Single().Summary.N));
        var dataset = MedvlsmDataset.Open(set.Root).Records("test");
        var images = report.Images.Select(s => ImageCodec.DecodeRgb(dataset[s.Record.Index].ImagePath)).ToArray();
        var expected = predictor.Predict(images, report.Images.Select(s => s.Prompt).ToArray());
        for (int i = 0; i < report.Images.Count; i++)
        {
            var score = report.Images[i];
            var record = dataset[score.Record.Index];
            string expectedText = PromptChoice.Key(score.PromptKey).Choose(record, seed: 0, epoch: 0);
            Assert.Equal(expectedText, score.Prompt);

            var expectedMask = expected[i].MaskAt(images[i].Width, images[i].Height, 0.5f);
            var saved = ImageCodec.DecodeGray(Path.Combine(outDir, "masks", score.PromptKey, record.Id.MaskName));
            Assert.Equal(expectedMask.Pixels, saved.Pixels);

            var truth = ImageCodec.DecodeGray(record.MaskPath).Pixels.Select(v => v > 127).ToArray();
            var predicted = expectedMask.Pixels.Select(v => v > 127).ToArray();
            Assert.Equal(SegmentationMetrics.Dice(predicted, truth), score.Dice, 12);
            Assert.Equal(SegmentationMetrics.IoU(predicted, truth), score.IoU, 12);
            Assert.Equal(SegmentationMetrics.Hd95(predicted, truth, images[i].Width, images[i].Height), score.Hd95);
        }
        Assert.Contains(report.Images, s => s.Hd95 is null); // record 2's empty mask
        // The list-valued key gives each record one of its texts, not always the first.
        Assert.True(report.Images.Where(s => s.PromptKey == "p3").Select(s => s.Prompt).Distinct().Count() > 1);
    }

    [Fact]
    public void LiveTensorCountIsTheSameAfterAnotherRun()
    {
        EvalTestData.WriteSplit(set, "test", 5);
        var predictor = ClipSegPredictor.FromFolder(EvalTestData.Tiny);
        var evaluator = Evaluator.Plan(predictor, PooledDataset.Open([set.Root]), new EvaluationOptions { Prompt = "p1", BatchSize = 2 }, "tiny", null);
        var first = evaluator.Run(); // creates the model's caches (position embeddings for the input size)
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var second = evaluator.Run();
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.Equal(before, after);
        Assert.Equal(first.Images.Select(s => s.Dice), second.Images.Select(s => s.Dice));
    }

    [Fact]
    public void RecordWithoutTheKeyIsNamedBeforeAnyImageIsRead()
    {
        EvalTestData.WriteSplit(set, "test", 4, withoutP2: 1);
        var predictor = ClipSegPredictor.FromFolder(EvalTestData.Tiny);
        var e = Assert.Throws<VlsmException>(() =>
            Evaluator.Plan(predictor, PooledDataset.Open([set.Root]), new EvaluationOptions { Prompt = "p2" }, "tiny", null));
        Assert.Contains(Path.Combine(set.Root, "anns", "test.json"), e.Message);
        Assert.Contains("record 1", e.Message);
        Assert.Contains("\"p2\"", e.Message);
        Assert.Contains("--prompt all", e.Message);
    }

    [Fact]
    public void LiteralTextHasNoKeyAndIsUsedForEveryRecord()
    {
        EvalTestData.WriteSplit(set, "test", 3);
        var predictor = ClipSegPredictor.FromFolder(EvalTestData.Tiny);
        var report = Evaluator.Plan(predictor, PooledDataset.Open([set.Root]), new EvaluationOptions { Prompt = "a pink polyp" }, "tiny", null).Run();
        Assert.All(report.Images, s => Assert.Equal(("", "a pink polyp"), (s.PromptKey, s.Prompt)));
        Assert.Equal("a pink polyp", report.Prompts.Single().Prompt);
    }

    [Fact]
    public void MaskFileNamesKeepSubfoldersAndBecomePng()
    {
        Assert.Equal("mask_1/patient0001.png", Evaluator.MaskFileName("mask_1/patient0001.jpg"));
        Assert.Equal("a.png", Evaluator.MaskFileName("a.png"));
        Assert.Equal("sub/b.png", Evaluator.MaskFileName("sub\\b"));
    }
}
