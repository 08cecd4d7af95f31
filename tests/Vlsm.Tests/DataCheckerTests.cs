using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>The dataset checker as a library; <see cref="DataCheckCliTests"/> runs it as a user does.</summary>
public sealed class DataCheckerTests : IDisposable
{
    private readonly DataTestSet set = new();

    public void Dispose() => set.Dispose();

    private static AnnotationRecord Rec(string img, string mask) => new(img, mask, DataTestSet.StandardPrompts(img));

    private DatasetCheckReport Check(string? prompt = null) =>
        DatasetChecker.Plan(set.Root, new DatasetCheckOptions { Prompt = prompt is null ? null : PromptChoice.Parse(prompt), Workers = 2 }).Run();

    [Fact]
    public void CleanDatasetHasCountsAndNoIssues()
    {
        set.WriteSimpleSplit("train", 5);
        set.WriteSimpleSplit("val", 2);
        var report = Check("p3");
        Assert.True(report.Ok);
        Assert.Empty(report.Issues);
        Assert.Equal([("train", 5, true), ("val", 2, true), ("test", 0, false)], report.Splits.Select(s => (s.Split, s.Records, s.HasFile)));
        Assert.Equal(7, report.Records);
    }

    [Fact]
    public void EveryKindOfProblemIsFoundAndOnlyErrorsMakeRecordsUnusable()
    {
        set.WriteImage("ok.png", 8, 8);
        set.WriteMask("ok.png", 8, 8);
        set.WriteImage("big.png", 8, 8);
        set.WriteMask("small.png", 4, 4);
        File.WriteAllBytes(set.ImagePath("corrupt.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3, 4]);
        File.WriteAllBytes(set.ImagePath("empty.png"), []);
        set.WriteImage("blank.png", 8, 8);
        set.WriteMask("blank.png", 8, 8, new byte[64]);
        set.WriteImage("grey.png", 8, 8);
        set.WriteMask("grey.png", 8, 8, Enumerable.Repeat((byte)200, 64).ToArray());
        set.WriteImage("shared.png", 8, 8);
        set.WriteMask("shared.png", 8, 8);
        set.WriteImage("nop3.png", 8, 8);
        set.WriteMask("nop3.png", 8, 8);
        var noP3 = new AnnotationRecord("nop3.png", "nop3.png", DataTestSet.Prompts(("p0", [""]), ("p1", ["x"])));
        set.WriteSplit("train",
            Rec("ok.png", "ok.png"),            // 0 fine
            Rec("big.png", "small.png"),        // 1 size mismatch
            Rec("corrupt.png", "ok.png"),       // 2 unreadable
            Rec("empty.png", "ok.png"),         // 3 empty file
            Rec("gone.png", "ok.png"),          // 4 missing
            Rec("../ok.png", "ok.png"),         // 5 escapes
            noP3,                               // 6 lacks p3
            Rec("blank.png", "blank.png"),      // 7 empty mask (warning)
            Rec("grey.png", "grey.png"),        // 8 non-binary (warning)
            Rec("ok.png", "ok.png"),            // 9 duplicate of 0 (warning)
            Rec("shared.png", "shared.png"));   // 10 also in test (warning)
        set.WriteSplit("test", Rec("shared.png", "shared.png"));

        var report = Check("p3");

        Assert.False(report.Ok);
        var train = report.Splits.Single(s => s.Split == "train");
        Assert.Equal((11, 6), (train.Records, train.UnusableRecords));
        (string Kind, int? Index)[] errors = [.. report.Errors.Select(i => (i.Kind, i.Index)).Order()];
        Assert.Equal(
            [.. new (string, int?)[]
            {
                (IssueKind.SizeMismatch, 1), (IssueKind.UnreadableFile, 2), (IssueKind.EmptyFile, 3),
                (IssueKind.MissingFile, 4), (IssueKind.PathEscape, 5), (IssueKind.MissingPrompt, 6),
            }.Order()],
            errors);
        (string Kind, int? Index)[] warnings = [.. report.Warnings.Select(i => (i.Kind, i.Index)).Order()];
        Assert.Equal(
            [.. new (string, int?)[]
            {
                (IssueKind.EmptyMask, 7), (IssueKind.NonBinaryMask, 8), (IssueKind.DuplicateRecord, 9), (IssueKind.SharedImage, 0),
            }.Order()],
            warnings);

        var mismatch = report.Errors.Single(i => i.Kind == IssueKind.SizeMismatch);
        Assert.Contains(set.ImagePath("big.png"), mismatch.Message);
        Assert.Contains(set.MaskPath("small.png"), mismatch.Message);
        Assert.Equal(set.ImagePath("corrupt.png"), report.Errors.Single(i => i.Kind == IssueKind.UnreadableFile).File);
        var shared = report.Warnings.Single(i => i.Kind == IssueKind.SharedImage);
        Assert.Equal("train+test", shared.Split);
        Assert.Contains(set.ImagePath("shared.png"), shared.Message);

        var json = report.ToJson();
        Assert.False(json["ok"]!.GetValue<bool>());
        Assert.Equal(6, json["unusable_records"]!.GetValue<int>());
        Assert.Equal(11, json["splits"]!["train"]!["records"]!.GetValue<int>());
        Assert.Equal(10, json["issues"]!.AsArray().Count);
    }

    [Fact]
    public void BrokenAnnotationFileOrYamlIsReportedNotThrown()
    {
        set.WriteSimpleSplit("train", 2);
        File.WriteAllText(Path.Combine(set.Root, "anns", "val.json"), """[{"img_name": "a.png", "mask_na""");
        var report = Check();
        var issue = Assert.Single(report.Errors);
        Assert.Equal(IssueKind.AnnotationFile, issue.Kind);
        Assert.Equal(Path.Combine(set.Root, "anns", "val.json"), issue.File);
        Assert.Contains(Path.Combine(set.Root, "anns", "val.json"), issue.Message);

        File.WriteAllText(Path.Combine(set.Root, "dataset.yaml"), "imagez: x\n");
        var yaml = Assert.Single(Check().Errors);
        Assert.Equal(IssueKind.DatasetConfig, yaml.Kind);
        Assert.Contains("imagez", yaml.Message);
    }

    [Fact]
    public void JpegMasksAreFlaggedNonBinaryAndEachFileIsDecodedOnce()
    {
        var values = new byte[32 * 32];
        for (int i = 0; i < 512; i++) values[i] = 255;
        set.WriteImage("a.png", 32, 32);
        DataTestSet.SaveJpeg(set.MaskPath("a.jpg"), new GrayImage(32, 32, values), 40);
        set.WriteSplit("train", Rec("a.png", "a.jpg"));
        set.WriteSplit("val", Rec("a.png", "a.jpg"));
        var checker = DatasetChecker.Plan(set.Root, new DatasetCheckOptions());
        Assert.Equal(2, checker.FilesToDecode);
        int progress = 0;
        var report = checker.Run(n => progress += n);
        Assert.Equal(2, progress);
        Assert.True(report.Ok);
        Assert.Equal(2, report.Warnings.Count(i => i.Kind == IssueKind.NonBinaryMask));
        Assert.Single(report.Warnings, i => i.Kind == IssueKind.SharedImage);
    }
}
