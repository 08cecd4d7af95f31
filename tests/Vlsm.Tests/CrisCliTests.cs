using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Tests;

/// <summary><c>vlsm convert cris</c>, <c>verify</c> and <c>info</c> on CRIS, run as a user runs them.</summary>
public sealed class CrisCliTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-cris-cli-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string CrisTiny => Path.Combine(Fixtures.Parity, "cris-tiny");

    private static void AssertOneLineError(CliResult r, params string[] expected)
    {
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.StartsWith("error: ", r.Stderr);
        foreach (var e in expected) Assert.Contains(e, r.Stderr);
    }

    [Fact]
    public void ConvertWritesTensorsBitwiseEqualToTheReferenceFolder()
    {
        string outDir = Path.Combine(tmp, "converted");
        var r = CliRunner.Run("convert", "cris", "--checkpoint", Path.Combine(CrisTiny, "cris-tiny.pth"), "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("302 tensors (module. prefix removed)", r.Stdout);

        using var converted = SafetensorsFile.Open(Path.Combine(outDir, "model.safetensors"));
        using var expected = SafetensorsFile.Open(Path.Combine(CrisTiny, "model.safetensors"));
        Assert.Equal(expected.Names.Order(StringComparer.Ordinal), converted.Names.Order(StringComparer.Ordinal));
        foreach (var name in expected.Names)
        {
            using var a = converted.Load(name);
            using var b = expected.Load(name);
            Assert.True(Bitwise.Equal(a, b), name);
        }
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(Path.Combine(CrisTiny, "config.json"))),
            JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))));
        foreach (var f in new[] { "vocab.json", "merges.txt" }) Assert.True(File.Exists(Path.Combine(outDir, f)), f);
        Assert.Equal(["converted"], Directory.GetFileSystemEntries(tmp).Select(Path.GetFileName)); // no staging folder left behind

        // The converted folder is a model folder: it reproduces the reference outputs.
        var v = CliRunner.Run("verify", "--model", outDir, "--reference", Path.Combine(CrisTiny, "reference.safetensors"), "--json");
        Assert.True(v.ExitCode == 0, v.Stdout + v.Stderr);
        Assert.True(JsonNode.Parse(v.Stdout)!["passed"]!.GetValue<bool>());
    }

    [Fact]
    public void MaliciousCheckpointIsRefusedNamingTheGlobalAndCreatesNothing()
    {
        string outDir = Path.Combine(tmp, "out");
        var r = CliRunner.Run("convert", "cris", "--checkpoint", Path.Combine(CrisTiny, "malicious.pth"), "--config", Path.Combine(CrisTiny, "config.json"), "--out", outDir);
        AssertOneLineError(r, "posix.system", "malicious.pth");
        Assert.False(Directory.Exists(outDir));
        Assert.Empty(Directory.GetFileSystemEntries(tmp));
    }

    [Fact]
    public void GarbageAndTruncatedCheckpointsGiveOneLineNamingTheFile()
    {
        File.Copy(Path.Combine(CrisTiny, "config.json"), Path.Combine(tmp, "config.json"));
        string garbage = Path.Combine(tmp, "garbage.pth");
        File.WriteAllText(garbage, "not a checkpoint");
        AssertOneLineError(CliRunner.Run("convert", "cris", "--checkpoint", garbage, "--out", Path.Combine(tmp, "a")), "garbage.pth");

        string truncated = Path.Combine(tmp, "truncated.pth");
        var bytes = File.ReadAllBytes(Path.Combine(CrisTiny, "cris-tiny.pth"));
        File.WriteAllBytes(truncated, bytes[..(bytes.Length - 1000)]);
        AssertOneLineError(CliRunner.Run("convert", "cris", "--checkpoint", truncated, "--out", Path.Combine(tmp, "b")), "truncated.pth");
        Assert.False(Directory.Exists(Path.Combine(tmp, "a")));
        Assert.False(Directory.Exists(Path.Combine(tmp, "b")));
    }

    [Fact]
    public void WithoutAConfigBesideTheCheckpointConvertAsksForConfig()
    {
        string lone = Path.Combine(tmp, "lone.pth");
        File.Copy(Path.Combine(CrisTiny, "cris-tiny.pth"), lone);
        AssertOneLineError(CliRunner.Run("convert", "cris", "--checkpoint", lone, "--out", Path.Combine(tmp, "x")), "--config", Path.Combine(tmp, "config.json"));
    }

    [Fact]
    public void ACheckpointOfAnotherArchitectureIsRefusedWithTheKeys()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(CrisTiny, "config.json")))!;
        config["cris"]!["num_layers"] = 3;
        string path = Path.Combine(tmp, "three-layers.json");
        File.WriteAllText(path, config.ToJsonString());
        var r = CliRunner.Run("convert", "cris", "--checkpoint", Path.Combine(CrisTiny, "cris-tiny.pth"), "--config", path, "--out", Path.Combine(tmp, "x"));
        // Refused from the checkpoint's keys before the model is built: config.json's field and the layers the weights hold.
        AssertOneLineError(r, "cris-tiny.pth", "cris.num_layers is 3", "holds 2 (decoder.layers.0 … decoder.layers.1)");
        Assert.False(Directory.Exists(Path.Combine(tmp, "x")));
    }

    [Fact]
    public void InfoArchCrisRn50ReportsTheReferenceCounts()
    {
        var r = CliRunner.Run("info", "--arch", "cris-rn50", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(146_849_122, json["total_parameters"]!.GetValue<long>());
        Assert.Equal(104_106_337, json["backbone_parameters"]!.GetValue<long>());
        Assert.Equal(24_142_336, json["neck_parameters"]!.GetValue<long>());
        Assert.Equal(12_631_552, json["decoder_parameters"]!.GetValue<long>());
        Assert.Equal(5_968_897, json["projector_parameters"]!.GetValue<long>());
        var cris = json["config"]!["cris"]!;
        Assert.Equal("[512,1024,1024]", cris["fpn_in"]!.ToJsonString());
        Assert.Equal("[256,512,1024]", cris["fpn_out"]!.ToJsonString());
        Assert.Equal(512, cris["vis_dim"]!.GetValue<int>());
        Assert.Equal(1024, cris["word_dim"]!.GetValue<int>());
        Assert.Equal(3, cris["num_layers"]!.GetValue<int>());
        Assert.Equal(8, cris["num_head"]!.GetValue<int>());
        Assert.Equal(2048, cris["dim_ffn"]!.GetValue<int>());
        Assert.Equal("[3,4,6,3]", json["config"]!["clip"]!["vision_layers"]!.ToJsonString());
    }

    [Fact]
    public void InfoModelOfACrisFolderCountsTheParts()
    {
        var r = CliRunner.Run("info", "--model", CrisTiny, "--mode", "decoder", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        long neck = json["neck_parameters"]!.GetValue<long>(), decoder = json["decoder_parameters"]!.GetValue<long>(), proj = json["projector_parameters"]!.GetValue<long>();
        Assert.Equal(5_266_202, json["total_parameters"]!.GetValue<long>());
        Assert.Equal(neck + decoder + proj, json["trainable_parameters"]!.GetValue<long>());
        Assert.Equal(5_266_202, json["backbone_parameters"]!.GetValue<long>() + neck + decoder + proj);

        var table = CliRunner.Run("info", "--model", CrisTiny);
        Assert.True(table.ExitCode == 0, table.Stderr);
        Assert.Contains("projector", table.Stdout);
        Assert.Contains("5,266,202", table.Stdout);

        AssertOneLineError(CliRunner.Run("info", "--model", CrisTiny, "--mode", "dense"), "CRIS trains in full or decoder mode");
    }

    public static IEnumerable<object[]> CrisFolders() => CrisParityTests.ModelFolders();

    [Theory]
    [MemberData(nameof(CrisFolders))]
    public void VerifyPassesOnEveryCrisParityFolder(string dir)
    {
        var r = CliRunner.Run("verify", "--model", dir, "--reference", Path.Combine(dir, "reference.safetensors"), "--json");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var tensors = JsonNode.Parse(r.Stdout)!["tensors"]!.AsObject();
        Assert.Equal(["logits", "text_state", "text_words", "vision_c3", "vision_c4", "vision_c5"], tensors.Select(kv => kv.Key).Order());
        foreach (var (name, t) in tensors) Assert.True(t!["max_abs_diff"]!.GetValue<double>() <= 1e-4, name);
    }
}
