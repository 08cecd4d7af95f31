using System.Text.Json.Nodes;

namespace Vlsm.Tests;

/// <summary>The built-in data passes the dataset checker, as a user would run the two commands.</summary>
public sealed class SynthThenCheckCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-synth-check-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    [Theory]
    [InlineData("natural")]
    [InlineData("medical")]
    public void SynthesisedDatasetPassesDataCheck(string style)
    {
        string dir = Path.Combine(tmp, style);
        var synth = CliRunner.Run("synth", "--out", dir, "--n", "40", "--seed", "4", "--style", style);
        Assert.True(synth.ExitCode == 0, synth.Stdout + synth.Stderr);

        var check = CliRunner.Run("data", "check", "--data", dir, "--json", "--prompt", "p6");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        var report = JsonNode.Parse(check.Stdout)!;
        Assert.True(report["ok"]!.GetValue<bool>());
        Assert.Equal(0, report["errors"]!.GetValue<int>());
        int total = 0;
        foreach (var split in new[] { "train", "val", "test" })
        {
            int written = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "anns", split + ".json")))!.AsArray().Count;
            Assert.True(written > 0, split);
            Assert.Equal(written, report["splits"]![split]!["records"]!.GetValue<int>());
            Assert.Equal(0, report["splits"]![split]!["unusable"]!.GetValue<int>());
            total += written;
        }
        Assert.Equal(total, report["records"]!.GetValue<int>());
    }
}
