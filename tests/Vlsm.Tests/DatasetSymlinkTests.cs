using System.Text.Json.Nodes;
using Vlsm.Data;

namespace Vlsm.Tests;

/// <summary>
/// Issue #19's dataset weak cases: symbolic links that lead outside the dataset are refused unless
/// --follow-symlinks; data check fails a dataset without annotation files and warns on empty splits.
/// </summary>
public sealed class DatasetSymlinkTests : IDisposable
{
    private readonly DataTestSet set = new("linked");

    public void Dispose() => set.Dispose();

    /// <summary>A file outside the dataset (beside its folder) holding a copy of train0.png.</summary>
    private string Outside()
    {
        string outside = Path.Combine(Path.GetDirectoryName(set.Root)!, "elsewhere");
        Directory.CreateDirectory(outside);
        string file = Path.Combine(outside, "secret.png");
        File.Copy(set.ImagePath("train0.png"), file);
        return file;
    }

    [Fact]
    public void AFileLinkOutOfTheDatasetIsRefusedUnlessFollowed()
    {
        set.WriteSimpleSplit("train", 3);
        string target = Outside();
        File.Delete(set.ImagePath("train1.png"));
        File.CreateSymbolicLink(set.ImagePath("train1.png"), target);

        var e = Assert.Throws<VlsmException>(() => MedvlsmDataset.Open(set.Root, followSymlinks: false).Records("train"));
        Assert.Contains("record 1 (img_name \"train1.png\")", e.Message);
        Assert.Contains("symbolic link", e.Message);
        Assert.Contains(target, e.Message);
        Assert.Contains("--follow-symlinks", e.Message);

        var followed = MedvlsmDataset.Open(set.Root, followSymlinks: true).Records("train");
        Assert.Equal(3, followed.Count);
    }

    [Fact]
    public void AFolderLinkOutOfTheDatasetIsRefusedAndALinkWithinItIsNot()
    {
        set.WriteSimpleSplit("train", 2);
        // A link inside the dataset: images/alias.png -> images/train0.png.
        File.CreateSymbolicLink(set.ImagePath("alias.png"), set.ImagePath("train0.png"));
        set.WriteSplit("val", new AnnotationRecord("alias.png", "train0.png", DataTestSet.StandardPrompts("alias.png")));
        Assert.Single(MedvlsmDataset.Open(set.Root, followSymlinks: false).Records("val"));

        // images/ itself a link to a folder outside.
        string outside = Path.Combine(Path.GetDirectoryName(set.Root)!, "images-elsewhere");
        Directory.Move(Path.Combine(set.Root, "images"), outside);
        Directory.CreateSymbolicLink(Path.Combine(set.Root, "images"), outside);
        var e = Assert.Throws<VlsmException>(() => MedvlsmDataset.Open(set.Root, followSymlinks: false).Records("train"));
        Assert.Contains(Path.Combine(outside, "train0.png"), e.Message);
    }

    [Fact]
    public void DataCheckRefusesALinkToEtcPasswdAndFollowsItWhenAsked()
    {
        set.WriteSimpleSplit("train", 2);
        File.Delete(set.ImagePath("train1.png"));
        File.CreateSymbolicLink(set.ImagePath("train1.png"), "/etc/passwd");
        var r = CliRunner.Run("data", "check", "--data", set.Root, "--json");
        Assert.Equal(1, r.ExitCode);
        var issues = JsonNode.Parse(r.Stdout)!["issues"]!.AsArray();
        var issue = Assert.Single(issues);
        Assert.Equal("path_escape", issue!["kind"]!.GetValue<string>());
        Assert.Contains("/etc/passwd", issue["message"]!.GetValue<string>());

        // Followed, the link is read as an image: passwd is not one, and says so.
        var followed = CliRunner.Run("data", "check", "--data", set.Root, "--json", "--follow-symlinks");
        Assert.Equal(1, followed.ExitCode);
        Assert.DoesNotContain("path_escape", followed.Stdout);
        Assert.Contains("train1.png", followed.Stdout);
    }

    [Fact]
    public void EvalRefusesALinkOutOfTheDatasetAndFollowsItWhenAsked()
    {
        set.WriteSimpleSplit("train", 1); // Outside() copies train0.png
        set.WriteSimpleSplit("test", 3);
        string target = Outside();
        File.Delete(set.ImagePath("test1.png"));
        File.CreateSymbolicLink(set.ImagePath("test1.png"), target);
        string model = Path.Combine(Fixtures.Parity, "clipseg-tiny");

        var refused = CliRunner.Run("eval", "--model", model, "--data", set.Root, "--split", "test");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("test1.png", refused.Stderr);
        Assert.Contains(target, refused.Stderr);
        Assert.Contains("--follow-symlinks", refused.Stderr);

        var followed = CliRunner.Run("eval", "--model", model, "--data", set.Root, "--split", "test", "--follow-symlinks");
        Assert.True(followed.ExitCode == 0, followed.Stdout + followed.Stderr);
        Assert.Contains("| 3 |", followed.Stdout); // all three records scored, the linked one included
    }

    [Fact]
    public void TrainRecordsFollowSymlinksSoResumeWithoutTheFlagReadsTheSameData()
    {
        set.WriteSimpleSplit("train", 3);
        set.WriteSimpleSplit("val", 2);
        string target = Outside();
        File.Delete(set.ImagePath("train1.png"));
        File.CreateSymbolicLink(set.ImagePath("train1.png"), target);
        string run = Path.Combine(Path.GetDirectoryName(set.Root)!, "run");
        string[] train = ["train", "--model", Path.Combine(Fixtures.Parity, "clipseg-tiny"), "--data", set.Root, "--mode", "decoder",
            "--batch-size", "2", "--prompt", "p1", "--out", run];

        var first = CliRunner.Run([.. train, "--epochs", "1", "--follow-symlinks"]);
        Assert.True(first.ExitCode == 0, first.Stdout + first.Stderr);
        Assert.Contains("follow_symlinks: true\n", File.ReadAllText(Path.Combine(run, "config.yaml")));

        // No flag on resume: the run's own setting opens the dataset, the link included.
        var resumed = CliRunner.Run("train", "--resume", run, "--epochs", "2");
        Assert.True(resumed.ExitCode == 0, resumed.Stdout + resumed.Stderr);
        Assert.Contains("3 train / 2 val records", resumed.Stdout);
        Assert.Contains("follow_symlinks: true\n", File.ReadAllText(Path.Combine(run, "config.yaml")));
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "metrics.csv")).Length); // header and two epochs

        // Without the flag the same training refuses the link: the resume above read it only by the run's setting.
        var refused = CliRunner.Run([.. train[..^1], Path.Combine(Path.GetDirectoryName(set.Root)!, "plain"), "--epochs", "1"]);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains(target, refused.Stderr);
        Assert.Contains("--follow-symlinks", refused.Stderr);
    }

    [Fact]
    public void DataCheckFailsADatasetWithoutAnnotationFiles()
    {
        set.WriteImage("a.png", 8, 8);
        Directory.Delete(Path.Combine(set.Root, "anns"));
        var r = CliRunner.Run("data", "check", "--data", set.Root);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no annotation file for any split", r.Stdout + r.Stderr);
        Assert.Contains("anns does not exist", r.Stdout + r.Stderr);
    }

    [Fact]
    public void DataCheckWarnsOnAnEmptySplit()
    {
        set.WriteSimpleSplit("train", 2);
        set.WriteSplit("val");
        var r = CliRunner.Run("data", "check", "--data", set.Root, "--json");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var issue = Assert.Single(JsonNode.Parse(r.Stdout)!["issues"]!.AsArray());
        Assert.Equal("empty_split", issue!["kind"]!.GetValue<string>());
        Assert.Equal("warning", issue["severity"]!.GetValue<string>());
        Assert.Contains("split \"val\" has no records", issue["message"]!.GetValue<string>());
    }
}
