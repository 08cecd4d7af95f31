using Vlsm.Data;

namespace Vlsm.Tests;

/// <summary><c>vlsm synth</c>, run as a user runs it.</summary>
public sealed class SynthCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-synth-cli-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    [Fact]
    public void SynthWritesTheLayoutAndReportsCounts()
    {
        string dir = Path.Combine(tmp, "data");
        var r = CliRunner.Run("synth", "--out", dir, "--n", "20", "--seed", "7", "--style", "medical");
        Assert.True(r.ExitCode == 0, r.Stderr);
        int records = new[] { "train", "val", "test" }.Sum(n => AnnotationFile.Read(Path.Combine(dir, "anns", n + ".json")).Count);
        Assert.Equal(20, Directory.GetFiles(Path.Combine(dir, "images"), "*.png").Length);
        Assert.Equal(records, Directory.GetFiles(Path.Combine(dir, "masks"), "*.png").Length);
        Assert.Contains($"wrote 20 images and {records} records (one per object) to {dir}", r.Stdout);
        Assert.Contains("train 14 images", r.Stdout);
        Assert.Contains("val 3 images", r.Stdout);
        Assert.Contains("test 3 images", r.Stdout);
    }

    [Fact]
    public void MinObjectsGivesEveryImageThatManyRecords()
    {
        string dir = Path.Combine(tmp, "three");
        var r = CliRunner.Run("synth", "--out", dir, "--n", "12", "--seed", "3", "--min-objects", "3");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var records = new[] { "train", "val", "test" }.SelectMany(n => AnnotationFile.Read(Path.Combine(dir, "anns", n + ".json"))).ToList();
        Assert.Equal(36, records.Count);
        Assert.All(records.GroupBy(x => x.ImgName), g => Assert.Equal(3, g.Count()));
    }

    [Theory]
    [InlineData("--style", "cartoon", "'cartoon'")]
    [InlineData("--n", "0", "--n must be at least 1")]
    [InlineData("--split", "0.5,0.5", "'0.5,0.5'")]
    [InlineData("--size", "8", "--size must be within")]
    [InlineData("--min-objects", "4", "--min-objects must be within 1..--max-objects (3), got 4")]
    public void BadOptionsGiveOneLineNamingTheValue(string option, string value, string expected)
    {
        var args = new List<string> { "synth", "--out", Path.Combine(tmp, "x"), "--n", "3", "--seed", "1" };
        int at = args.IndexOf(option);
        if (at >= 0) args[at + 1] = value;
        else args.AddRange([option, value]);
        var r = CliRunner.Run(args.ToArray());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(tmp, "x", "images")));
    }

    [Fact]
    public void SynthRefusesAFolderWithADataset()
    {
        string dir = Path.Combine(tmp, "twice");
        Assert.Equal(0, CliRunner.Run("synth", "--out", dir, "--n", "2", "--seed", "1", "--size", "32").ExitCode);
        var r = CliRunner.Run("synth", "--out", dir, "--n", "2", "--seed", "1", "--size", "32");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(Path.Combine(dir, "images"), r.Stderr);
    }
}
