using System.Text.Json.Nodes;
using Vlsm.Data.Synthetic;
using Vlsm.IO;

namespace Vlsm.Tests;

/// <summary>One tiny run trained with <c>--image-size 64</c> (clipseg-tiny's own is 48) on 80-pixel images, shared by the CLI tests of what it records and what eval, predict, info and resume do with it.</summary>
public sealed class ImageSizeRunFixture : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("vlsm-image-size-run-").FullName;
    public string Base => Path.Combine(Fixtures.Parity, "clipseg-tiny");
    public string Data => Path.Combine(Root, "data");
    public string Run => Path.Combine(Root, "run");
    public string Best => Path.Combine(Run, "best.safetensors");
    public CliResult Training { get; }

    public ImageSizeRunFixture()
    {
        SyntheticDataset.Generate(Data, new SynthOptions(12, 3, Size: 80, Style: SynthStyle.Medical), null);
        Training = CliRunner.Run("train", "--model", Base, "--data", Data, "--mode", "decoder", "--epochs", "1", "--batch-size", "8", "--prompt", "p2", "--image-size", "64", "--out", Run);
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

public sealed class ImageSizeCliTests(ImageSizeRunFixture run) : IClassFixture<ImageSizeRunFixture>, IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-image-size-t-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private void Trained() => Assert.True(run.Training.ExitCode == 0, run.Training.Stdout + run.Training.Stderr);

    private static JsonNode Summary(CliResult r)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonNode.Parse(r.Stdout)!;
    }

    private static (double Dice, double NetworkDice) Dice(JsonNode summary) =>
        (summary["dice"]!["mean"]!.GetValue<double>(), summary["network"]!["dice"]!["mean"]!.GetValue<double>());

    [Fact]
    public void TheRunRecordsItsSizeAndEvalRunScoresAtIt()
    {
        Trained();
        Assert.Contains("image_size: 64\n", File.ReadAllText(Path.Combine(run.Run, "config.yaml")));

        var fromRun = CliRunner.Run("eval", "--run", run.Run, "--data", run.Data, "--split", "val", "--json");
        var summary = Summary(fromRun);
        Assert.Equal(64, summary["image_size"]!.GetValue<int>());
        Assert.Contains("image size 64 (run)", fromRun.Stderr);

        // The same numbers as giving the files, the prompt and the size by hand.
        var byHand = Summary(CliRunner.Run("eval", "--model", run.Base, "--adapter", run.Best, "--data", run.Data, "--split", "val", "--prompt", "p2", "--image-size", "64", "--json"));
        Assert.Equal(64, byHand["image_size"]!.GetValue<int>());
        Assert.Equal(Dice(byHand), Dice(summary));

        // Without the size, the weights are scored at the model's own 48 (other numbers); a flag wins over the run.
        var own = CliRunner.Run("eval", "--model", run.Base, "--adapter", run.Best, "--data", run.Data, "--split", "val", "--prompt", "p2", "--json");
        Assert.Equal(48, Summary(own)["image_size"]!.GetValue<int>());
        Assert.Contains("image size 48", own.Stderr);
        Assert.NotEqual(Dice(summary).NetworkDice, Dice(Summary(own)).NetworkDice);
        var overridden = CliRunner.Run("eval", "--run", run.Run, "--data", run.Data, "--split", "val", "--image-size", "48", "--json");
        Assert.Equal(Dice(Summary(own)), Dice(Summary(overridden)));
        Assert.DoesNotContain("image size 48 (run)", overridden.Stderr);
    }

    [Fact]
    public void PredictRunPredictsAtTheRunsSizeAndSaysSo()
    {
        Trained();
        string image = Directory.GetFiles(Path.Combine(run.Data, "images")).Order(StringComparer.Ordinal).First();
        string stem = Path.GetFileNameWithoutExtension(image);
        var r = CliRunner.Run("predict", "--run", run.Run, "--prompt", "a round polyp", "--probs", "--out", Path.Combine(tmp, "run"), image);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("image size 64 (run)", r.Stdout);
        // --probs writes the model's output: clipseg-tiny's head gives half its input, 32x32 at 64 (24x24 at its own 48).
        Assert.Equal(new long[] { 32, 32 }, Npy.ReadFloat32(Path.Combine(tmp, "run", stem + ".probs.npy")).shape);
        var own = CliRunner.Run("predict", "--model", run.Base, "--adapter", run.Best, "--prompt", "a round polyp", "--probs", "--out", Path.Combine(tmp, "own"), image);
        Assert.True(own.ExitCode == 0, own.Stderr);
        Assert.Contains("image size 48", own.Stdout);
        Assert.Equal(new long[] { 24, 24 }, Npy.ReadFloat32(Path.Combine(tmp, "own", stem + ".probs.npy")).shape);
    }

    [Fact]
    public void InfoRunShowsTheSize()
    {
        Trained();
        var json = CliRunner.Run("info", "--run", run.Run, "--json");
        Assert.True(json.ExitCode == 0, json.Stderr);
        Assert.Equal(64, JsonNode.Parse(json.Stdout)!["image_size"]!.GetValue<int>());
        var text = CliRunner.Run("info", "--run", run.Run);
        Assert.Matches(@"\n  image size +64\n", text.Stdout);
    }

    [Fact]
    public void ResumeWithAnotherSizeIsRefusedNamingIt()
    {
        Trained();
        string config = File.ReadAllText(Path.Combine(run.Run, "config.yaml"));
        var r = CliRunner.Run("train", "--resume", run.Run, "--image-size", "48");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("image_size (64 in config.yaml, 48 asked)", r.Stderr);
        Assert.Contains("Only --epochs may change on resume", r.Stderr);
        Assert.Equal(config, File.ReadAllText(Path.Combine(run.Run, "config.yaml")));
    }

    [Fact]
    public void TrainRefusesASizeTheModelCannotTakeNamingTheFix()
    {
        foreach (var (size, expected) in new[]
        {
            ("50", "image_size (--image-size) 50 is not a multiple of 8 (CLIPSeg's patch size): use 48 or 56, or leave --image-size out for the model's own 48."),
            ("0", "image_size (--image-size) 0 is out of range: give a side of 16..4096 pixels that is a multiple of 8 (CLIPSeg's patch size), or leave --image-size out for the model's own 48."),
            ("65536", "image_size (--image-size) 65536 is out of range: give a side of 16..4096 pixels"),
        })
        {
            string folder = Path.Combine(tmp, "refused-" + size);
            var r = CliRunner.Run("train", "--model", run.Base, "--data", run.Data, "--mode", "decoder", "--epochs", "1", "--image-size", size, "--out", folder);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains(expected, r.Stderr);
            Assert.False(Directory.Exists(folder), "a refused run leaves no folder");
        }
    }
}
