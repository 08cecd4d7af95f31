using System.Text.Json.Nodes;

namespace Vlsm.Tests;

/// <summary>The foundation commands, run as a user runs them.</summary>
public sealed class CliFoundationTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-cli-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");

    [Fact]
    public void InfoArchReportsTheReferenceCounts()
    {
        var r = CliRunner.Run("info", "--arch", "clipseg-rd64-refined", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(150_747_746, json["total_parameters"]!.GetValue<long>());
        Assert.Equal(1_127_009, json["decoder_parameters"]!.GetValue<long>());
    }

    [Fact]
    public void InfoModelPrintsATable()
    {
        var r = CliRunner.Run("info", "--model", Tiny);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("decoder", r.Stdout);
        Assert.Contains("total", r.Stdout);
    }

    [Theory]
    [InlineData("clipseg-tiny")]
    [InlineData("clipseg-geometry")]
    [InlineData("clipseg-adapter-base")]
    public void VerifyPassesOnEachParityFolder(string name)
    {
        var dir = Path.Combine(Fixtures.Parity, name);
        var r = CliRunner.Run("verify", "--model", dir, "--reference", Path.Combine(dir, "reference.safetensors"), "--json");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.True(json["passed"]!.GetValue<bool>());
        Assert.True(json["tensors"]!["logits"]!["max_abs_diff"]!.GetValue<double>() <= 1e-4);
    }

    [Fact]
    public void VerifyFailsWhenToleranceIsImpossible()
    {
        // 0 allows no difference at all; the float32 forward pass differs from the reference by ~1e-6 (a negative tolerance is refused: #19).
        var r = CliRunner.Run("verify", "--model", Tiny, "--reference", Path.Combine(Tiny, "reference.safetensors"), "--tolerance", "0");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("FAILED", r.Stdout);
    }

    [Fact]
    public void TokenizePrintsOneJsonLinePerText()
    {
        var input = Path.Combine(tmp, "prompts.jsonl");
        File.WriteAllText(input, "\"a small polyp\"\n\"skin melanoma.\"\n");
        var r = CliRunner.Run("tokenize", "--model", Tiny, "--input", input, "a polyp");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        var first = JsonNode.Parse(lines[0])!;
        Assert.Equal("a polyp", first["text"]!.GetValue<string>());
        var ids = first["ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
        Assert.Equal(Vlsm.Text.ClipTokenizer.FromFolder(Tiny).Encode("a polyp"), ids);
        Assert.Equal(49406, ids[0]);
        Assert.Equal(49407, ids[^1]);
        Assert.Equal("a small polyp", JsonNode.Parse(lines[1])!["text"]!.GetValue<string>());
    }

    [Fact]
    public void TokenizeBadInputLineNamesFileAndLine()
    {
        var input = Path.Combine(tmp, "bad.jsonl");
        File.WriteAllText(input, "\"fine\"\nnot json\n");
        var r = CliRunner.Run("tokenize", "--model", Tiny, "--input", input);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{input} line 2", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    [Fact]
    public void MissingModelFolderIsOneLineNamingIt()
    {
        var missing = Path.Combine(tmp, "nowhere");
        var r = CliRunner.Run("verify", "--model", missing, "--reference", Path.Combine(Tiny, "reference.safetensors"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(missing, r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void VerboseAddsTheStackTrace()
    {
        var missing = Path.Combine(tmp, "nowhere");
        var r = CliRunner.Run("info", "--model", missing, "--verbose");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("   at ", r.Stderr);
    }

    [Fact]
    public void EveryCommandHasHelp()
    {
        foreach (var command in new[] { "predict", "verify", "tokenize", "info" })
        {
            var r = CliRunner.Run(command, "--help");
            Assert.True(r.ExitCode == 0, command + ": " + r.Stderr);
            Assert.Contains("--model", r.Stdout);
        }
    }
}
