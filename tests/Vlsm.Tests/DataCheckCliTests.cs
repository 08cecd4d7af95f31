using System.Text.Json.Nodes;

namespace Vlsm.Tests;

/// <summary><c>vlsm data check</c> run as a user runs it, in a child process.</summary>
public sealed class DataCheckCliTests : IDisposable
{
    private readonly DataTestSet set = new("polyps");

    public void Dispose() => set.Dispose();

    private void WriteCleanDataset()
    {
        set.WriteSimpleSplit("train", 6, 20, 16);
        set.WriteSimpleSplit("val", 2, 20, 16, firstSeed: 50);
        set.WriteSimpleSplit("test", 3, 20, 16, firstSeed: 80);
    }

    [Fact]
    public void CleanDatasetPassesWithTheRightCounts()
    {
        WriteCleanDataset();
        var r = CliRunner.Run("data", "check", "--data", set.Root, "--json", "--prompt", "p3");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.True(json["ok"]!.GetValue<bool>());
        Assert.Equal("polyps", json["dataset"]!.GetValue<string>());
        Assert.Equal(11, json["records"]!.GetValue<int>());
        Assert.Equal(6, json["splits"]!["train"]!["records"]!.GetValue<int>());
        Assert.Equal(2, json["splits"]!["val"]!["records"]!.GetValue<int>());
        Assert.Equal(3, json["splits"]!["test"]!["records"]!.GetValue<int>());
        Assert.Empty(json["issues"]!.AsArray());

        var table = CliRunner.Run("data", "check", "--data", set.Root);
        Assert.True(table.ExitCode == 0, table.Stdout + table.Stderr);
        Assert.Contains("ok", table.Stdout);
        Assert.Contains("train", table.Stdout);
    }

    [Fact]
    public void CorruptImageIsNamedAndExitsOne()
    {
        WriteCleanDataset();
        string bad = set.ImagePath("train3.png");
        File.WriteAllBytes(bad, File.ReadAllBytes(bad)[..40]); // truncated inside the image data
        var r = CliRunner.Run("data", "check", "--data", set.Root);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(bad, r.Stdout);
        Assert.Contains("1 of 11 records unusable", r.Stdout);
        Assert.DoesNotContain("   at ", r.Stdout + r.Stderr);
    }

    [Fact]
    public void TruncatedAnnotationJsonIsNamedAndExitsOne()
    {
        WriteCleanDataset();
        string ann = Path.Combine(set.Root, "anns", "val.json");
        string text = File.ReadAllText(ann);
        File.WriteAllText(ann, text[..(text.Length / 2)]);
        var r = CliRunner.Run("data", "check", "--data", set.Root, "--json");
        Assert.Equal(1, r.ExitCode);
        var issue = JsonNode.Parse(r.Stdout)!["issues"]!.AsArray().Single()!;
        Assert.Equal("annotation_file", issue["kind"]!.GetValue<string>());
        Assert.Equal(ann, issue["file"]!.GetValue<string>());

        var plain = CliRunner.Run("data", "check", "--data", set.Root);
        Assert.Equal(1, plain.ExitCode);
        Assert.Contains(ann, plain.Stdout);
        Assert.Contains("not valid JSON", plain.Stdout);
    }

    [Fact]
    public void AFolderWhereASplitFileGoesIsAnErrorNamingIt()
    {
        WriteCleanDataset();
        string ann = Path.Combine(set.Root, "anns", "test.json");
        File.Delete(ann);
        Directory.CreateDirectory(ann);
        var r = CliRunner.Run("data", "check", "--data", set.Root);
        Assert.Equal(1, r.ExitCode);
        string line = r.Stdout.Split('\n').Single(l => l.StartsWith("error:"));
        Assert.Contains($"{ann} is a folder, not the annotation file of split \"test\"", line);
        Assert.Contains("remove it", line);
        Assert.DoesNotContain("   at ", r.Stdout + r.Stderr);
    }

    [Fact]
    public void SizeMismatchNamesBothFilesAndExitsOne()
    {
        WriteCleanDataset();
        set.WriteMask("test1.png", 10, 8);
        var r = CliRunner.Run("data", "check", "--data", set.Root);
        Assert.Equal(1, r.ExitCode);
        string line = r.Stdout.Split('\n').Single(l => l.StartsWith("error:"));
        Assert.Contains(set.ImagePath("test1.png"), line);
        Assert.Contains(set.MaskPath("test1.png"), line);
        Assert.Contains("20x16", line);
        Assert.Contains("10x8", line);
    }

    [Fact]
    public void WarningsAloneExitZeroAndMissingPromptKeyExitsOne()
    {
        WriteCleanDataset();
        set.WriteMask("val0.png", 20, 16, new byte[20 * 16]); // empty mask: a warning
        var r = CliRunner.Run("data", "check", "--data", set.Root, "--prompt", "p9");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("\"p9\"", r.Stdout);
        Assert.Contains("warning: empty_mask", r.Stdout);

        var warningsOnly = CliRunner.Run("data", "check", "--data", set.Root, "--prompt", "random");
        Assert.True(warningsOnly.ExitCode == 0, warningsOnly.Stdout + warningsOnly.Stderr);
    }

    [Fact]
    public void MissingFolderIsAOneLineError()
    {
        string missing = Path.Combine(set.Root, "nope");
        var r = CliRunner.Run("data", "check", "--data", missing);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(missing, r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}
