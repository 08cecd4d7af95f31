using Vlsm.Data.Synthetic;

namespace Vlsm.Tests;

/// <summary>train --san-gradients: written to the run's config.yaml, and refused for another family's model.</summary>
public sealed class SanCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-san-cli-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private string Data()
    {
        string data = Path.Combine(tmp, "data");
        SyntheticDataset.Generate(data, new SynthOptions(8, 3, Size: 64, Style: SynthStyle.Medical), null);
        return data;
    }

    [Fact]
    public void TheOriginalGradientFlowIsRecordedInTheRun()
    {
        string run = Path.Combine(tmp, "run");
        var train = CliRunner.Run("train", "--model", SanParityTests.TinyFolder, "--data", Data(), "--mode", "full", "--san-gradients", "original",
            "--epochs", "1", "--batch-size", "4", "--prompt", "p1", "--out", run);
        Assert.True(train.ExitCode == 0, train.Stdout + train.Stderr);
        Assert.Contains("san_gradients: original", File.ReadAllText(Path.Combine(run, "config.yaml")));
    }

    [Fact]
    public void SanGradientsIsRefusedForClipSeg()
    {
        var train = CliRunner.Run("train", "--model", Path.Combine(Fixtures.Parity, "clipseg-tiny"), "--data", Data(), "--mode", "decoder",
            "--san-gradients", "original", "--epochs", "1", "--out", Path.Combine(tmp, "refused"));
        Assert.Equal(2, train.ExitCode);
        Assert.Contains("--san-gradients applies to SAN models", train.Stderr);
        Assert.False(Directory.Exists(Path.Combine(tmp, "refused")));
    }

    [Fact]
    public void AnUnknownFlowIsNamed()
    {
        var train = CliRunner.Run("train", "--model", SanParityTests.TinyFolder, "--data", Data(), "--mode", "full",
            "--san-gradients", "all", "--epochs", "1", "--out", Path.Combine(tmp, "unknown"));
        Assert.Equal(2, train.ExitCode);
        Assert.Contains("san_gradients \"all\" is not one of reference, original", train.Stderr);
    }
}
