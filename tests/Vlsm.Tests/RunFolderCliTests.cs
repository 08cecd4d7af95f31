using System.Text.Json.Nodes;
using Vlsm.Data.Synthetic;

namespace Vlsm.Tests;

/// <summary>A training run folder is enough for eval and predict: its config.yaml names the model.</summary>
public sealed class RunFolderCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-run-cli-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");

    [Fact]
    public void EvalAndPredictTakeARunWithoutAModel()
    {
        string data = Path.Combine(tmp, "data");
        SyntheticDataset.Generate(data, new SynthOptions(12, 3, Size: 64, Style: SynthStyle.Medical), null);
        string run = Path.Combine(tmp, "run");
        var train = CliRunner.Run("train", "--model", Tiny, "--data", data, "--mode", "decoder", "--epochs", "1", "--batch-size", "8", "--prompt", "p1", "--out", run);
        Assert.True(train.ExitCode == 0, train.Stdout + train.Stderr);

        var withModel = CliRunner.Run("eval", "--model", Tiny, "--run", run, "--data", data, "--prompt", "p1", "--json");
        var withoutModel = CliRunner.Run("eval", "--run", run, "--data", data, "--prompt", "p1", "--json");
        Assert.True(withoutModel.ExitCode == 0, withoutModel.Stderr);
        var a = JsonNode.Parse(withModel.Stdout)!;
        var b = JsonNode.Parse(withoutModel.Stdout)!;
        Assert.Equal(a["dice"]!["mean"]!.GetValue<double>(), b["dice"]!["mean"]!.GetValue<double>());
        Assert.Equal(a["n"]!.GetValue<int>(), b["n"]!.GetValue<int>());
        Assert.Equal(Path.GetFullPath(Tiny), b["model"]!.GetValue<string>());

        string image = Directory.GetFiles(Path.Combine(data, "images")).Order(StringComparer.Ordinal).First();
        string stem = Path.GetFileNameWithoutExtension(image);
        var fromRun = CliRunner.Run("predict", "--run", run, "--prompt", "a round polyp", "--out", Path.Combine(tmp, "p1"), image);
        var fromFiles = CliRunner.Run("predict", "--model", Tiny, "--adapter", Path.Combine(run, "best.safetensors"), "--prompt", "a round polyp", "--out", Path.Combine(tmp, "p2"), image);
        Assert.True(fromRun.ExitCode == 0, fromRun.Stderr);
        Assert.True(fromFiles.ExitCode == 0, fromFiles.Stderr);
        Assert.Equal(File.ReadAllBytes(Path.Combine(tmp, "p2", stem + ".mask.png")), File.ReadAllBytes(Path.Combine(tmp, "p1", stem + ".mask.png")));
    }

    [Fact]
    public void WithoutAModelOrARunEvalSaysWhatToGive()
    {
        var r = CliRunner.Run("eval", "--data", tmp);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("give --model DIR", r.Stderr);
        Assert.Contains("--run RUN", r.Stderr);
    }
}
