using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Vlsm.Apps.Demo;
using Vlsm.Data.Synthetic;
using Vlsm.IO;

namespace Vlsm.Tests;

/// <summary>Files and printed output other tools read: results.json's text and keys, Markdown tables and progress on stderr when piped.</summary>
public sealed partial class OutputFormatTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-formats-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    [Theory]
    [InlineData("shallow VLC", "shallow_vlc")]
    [InlineData("dense VL", "dense_vl")]
    [InlineData("decoder", "decoder")]
    [InlineData("  Full (100%) run ", "full_100_run")]
    public void SnakeKeysFromLabels(string label, string expected) => Assert.Equal(expected, JsonText.SnakeKey(label));

    [GeneratedRegex("^[a-z0-9]+(_[a-z0-9]+)*$")]
    private static partial Regex SnakeCase();

    private static IEnumerable<string> Keys(JsonNode? node) => node switch
    {
        JsonObject o => o.SelectMany(kv => Keys(kv.Value).Prepend(kv.Key)),
        JsonArray a => a.SelectMany(Keys),
        _ => [],
    };

    [Fact]
    public void DemoResultsJsonIsPlainUtf8WithSnakeCaseKeys()
    {
        var scores = new DemoScores(0.9, 0.8, 0.1, 10, 5);
        var results = new DemoResults("full", 1, "CLIPSeg, 4 vision + 4 text layers, ünïcode <b>", 8_182_146, "p4", false, 127.3, 0.957, 25, scores,
            [new DemoMethodResult("shallow VLC", "shallow", "vlc", 58_464, 0.71, 25, 25, 19.2, scores),
             new DemoMethodResult("dense VL", "dense", "vl", 100_224, 1.22, 25, 24, 47.4, scores)], "examples.png");
        string text = results.ToJsonText();
        Assert.Contains("\"model\": \"CLIPSeg, 4 vision + 4 text layers, ünïcode <b>\"", text);
        Assert.DoesNotContain("\\u", text);
        var json = JsonNode.Parse(text)!;
        var keys = Keys(json).ToList();
        Assert.All(keys, k => Assert.Matches(SnakeCase(), k));
        Assert.Equal(19.2, (double)json["timing"]!["shallow_vlc_seconds"]!);
        Assert.Equal(47.4, (double)json["timing"]!["dense_vl_seconds"]!);
    }

    /// <summary><c>data check</c> piped: a Markdown table on stdout, the progress lines on stderr only.</summary>
    [Fact]
    public void DataCheckPipedPrintsMarkdownAndProgressOnStderr()
    {
        string data = Path.Combine(tmp, "data");
        SyntheticDataset.Generate(data, new SynthOptions(12, 3, Size: 32));
        var r = CliRunner.Run("data", "check", "--data", data);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var lines = r.Stdout.Split('\n');
        int header = Array.IndexOf(lines, "| split | records | unusable | annotation file |");
        Assert.True(header >= 0, r.Stdout);
        Assert.Equal("|---|---:|---:|---|", lines[header + 1]);
        Assert.Matches(@"^\| train \| \d+ \| 0 \| anns/train\.json \|$", lines[header + 2]);
        Assert.DoesNotContain("│", r.Stdout);
        Assert.DoesNotContain("decoding images and masks", r.Stdout);
        Assert.Contains("decoding images and masks: ", r.Stderr);
    }
}
