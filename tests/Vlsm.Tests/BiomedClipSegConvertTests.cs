using System.Text.Json.Nodes;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// <c>vlsm convert biomedclip</c> on the fixture's weights put in the distributed formats: BiomedCLIP's
/// open_clip folder (torch.save .bin or safetensors) with an HF CLIPSeg folder's decoder, a medvlsm
/// Lightning checkpoint (<c>net.</c> prefix), a random decoder; every converted folder checked.
/// </summary>
public sealed class BiomedClipSegConvertTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-biomed-convert-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny => Path.Combine(Fixtures.Parity, "biomedclipseg-tiny");

    private static JsonObject TinyConfig => JsonNode.Parse(File.ReadAllText(Path.Combine(Tiny, "config.json")))!.AsObject();

    private static Dictionary<string, Tensor> TinyWeights()
    {
        using var file = SafetensorsFile.Open(Path.Combine(Tiny, "model.safetensors"));
        return file.LoadAll();
    }

    /// <summary>An open_clip folder of the tiny towers: keys without biomedclip., BERT's position_ids buffer as transformers 4.27 saves it.</summary>
    private string OpenClipFolder(bool safetensors)
    {
        string dir = Path.Combine(tmp, safetensors ? "biomedclip-st" : "biomedclip");
        Directory.CreateDirectory(dir);
        var towers = TinyWeights().Where(kv => kv.Key.StartsWith("biomedclip.", StringComparison.Ordinal))
            .Select(kv => (kv.Key["biomedclip.".Length..], kv.Value)).ToList();
        towers.Add(("text.transformer.embeddings.position_ids", arange(512L).unsqueeze(0)));
        if (safetensors) SafetensorsWriter.Save(Path.Combine(dir, "open_clip_model.safetensors"), towers.Select(t => new KeyValuePair<string, Tensor>(t.Item1, t.Item2)), null);
        else TorchSaveWriter.Save(Path.Combine(dir, "open_clip_pytorch_model.bin"), towers);
        var openClip = new JsonObject
        {
            ["model_cfg"] = TinyConfig["open_clip"]!.DeepClone(),
            ["preprocess_cfg"] = new JsonObject { ["mean"] = TinyConfig["image"]!["mean"]!.DeepClone(), ["std"] = TinyConfig["image"]!["std"]!.DeepClone() },
        };
        File.WriteAllText(Path.Combine(dir, "open_clip_config.json"), openClip.ToJsonString());
        return dir;
    }

    /// <summary>An HF CLIPSeg folder whose decoder is the fixture's (its CLIP towers, which the converter ignores, left out but for one tensor).</summary>
    private string ClipSegFolder()
    {
        string dir = Path.Combine(tmp, "clipseg");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), TinyConfig["clipseg"]!.ToJsonString());
        var decoder = TinyWeights().Where(kv => kv.Key.StartsWith("decoder.", StringComparison.Ordinal)).ToList();
        decoder.Add(new("clip.logit_scale", tensor(2.6592f)));
        SafetensorsWriter.Save(Path.Combine(dir, "model.safetensors"), decoder, null);
        return dir;
    }

    private string ConfigFile()
    {
        string path = Path.Combine(tmp, "tiny-config.json");
        File.WriteAllText(path, TinyConfig.ToJsonString());
        return path;
    }

    private static void AssertSameWeightsAsTheFixture(string dir, bool decoderToo = true)
    {
        using var converted = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        using var expected = SafetensorsFile.Open(Path.Combine(Tiny, "model.safetensors"));
        Assert.Equal(expected.Names.Order(StringComparer.Ordinal), converted.Names.Order(StringComparer.Ordinal));
        foreach (var name in expected.Names.Where(n => decoderToo || !n.StartsWith("decoder.", StringComparison.Ordinal)))
        {
            using var a = converted.Load(name);
            using var b = expected.Load(name);
            Assert.True(Bitwise.Equal(a, b), name);
        }
        Assert.Equal(File.ReadAllBytes(Path.Combine(Tiny, "vocab.txt")), File.ReadAllBytes(Path.Combine(dir, "vocab.txt")));
    }

    private static void AssertVerifies(string dir)
    {
        var v = CliRunner.Run("verify", "--model", dir, "--reference", Path.Combine(Tiny, "reference.safetensors"), "--json");
        Assert.True(v.ExitCode == 0, v.Stdout + v.Stderr);
        Assert.True(JsonNode.Parse(v.Stdout)!["passed"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BiomedClipAsDistributedWithAClipSegDecoderGivesTheFixtureBitwise(bool safetensors)
    {
        string outDir = Path.Combine(tmp, "out");
        var r = CliRunner.Run("convert", "biomedclip", "--biomedclip", OpenClipFolder(safetensors), "--clipseg", ClipSegFolder(), "--config", ConfigFile(), "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("183 tensors", r.Stdout);
        AssertSameWeightsAsTheFixture(outDir);
        AssertVerifies(outDir);
        Assert.Equal("biomedclipseg", JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!["model_type"]!.GetValue<string>());
    }

    [Fact]
    public void AMedvlsmLightningCheckpointConverts()
    {
        string ckpt = Path.Combine(tmp, "best.ckpt");
        TorchSaveWriter.Save(ckpt, TinyWeights().Select(kv => ("net." + kv.Key, kv.Value)).ToList(), nestUnder: "state_dict");
        string outDir = Path.Combine(tmp, "from-ckpt");
        var r = CliRunner.Run("convert", "biomedclip", "--checkpoint", ckpt, "--config", ConfigFile(), "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        AssertSameWeightsAsTheFixture(outDir);
        AssertVerifies(outDir);
    }

    [Fact]
    public void WithoutADecoderSourceTheDecoderIsRandomAndFollowsTheSeed()
    {
        string towers = OpenClipFolder(false);
        string a = Path.Combine(tmp, "a"), b = Path.Combine(tmp, "b"), c = Path.Combine(tmp, "c");
        foreach (var (dir, seed) in new[] { (a, "1"), (b, "1"), (c, "2") })
        {
            var r = CliRunner.Run("convert", "biomedclip", "--biomedclip", towers, "--config", ConfigFile(), "--seed", seed, "--out", dir);
            Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
            Assert.Contains("decoder from random", r.Stdout);
        }
        AssertSameWeightsAsTheFixture(a, decoderToo: false);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(b, "model.safetensors")));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(c, "model.safetensors")));
        // HF's init: decoder Linear biases zero, LayerNorm weights one.
        using var file = SafetensorsFile.Open(Path.Combine(a, "model.safetensors"));
        using var bias = file.Load("decoder.layers.0.self_attn.q_proj.bias");
        Assert.Equal(0, bias.abs().max().item<float>());
        using var ln = file.Load("decoder.layers.0.layer_norm1.weight");
        Assert.Equal(1, ln.min().item<float>());
    }

    [Fact]
    public void RefusalsNameTheFaultAndWriteNothing()
    {
        string outDir = Path.Combine(tmp, "refused");
        // A checkpoint whose pickle runs a command.
        var m = CliRunner.Run("convert", "biomedclip", "--checkpoint", Path.Combine(Fixtures.Parity, "cris-tiny", "malicious.pth"), "--config", ConfigFile(), "--out", outDir);
        Assert.Equal(2, m.ExitCode);
        Assert.Contains("posix.system", m.Stderr);
        // A checkpoint missing a tower tensor.
        string ckpt = Path.Combine(tmp, "partial.ckpt");
        TorchSaveWriter.Save(ckpt, TinyWeights().Where(kv => kv.Key != "biomedclip.visual.trunk.pos_embed").Select(kv => ("net." + kv.Key, kv.Value)).ToList(), nestUnder: "state_dict");
        var p = CliRunner.Run("convert", "biomedclip", "--checkpoint", ckpt, "--config", ConfigFile(), "--out", outDir);
        Assert.Equal(2, p.ExitCode);
        Assert.Contains("biomedclip.visual.trunk.pos_embed", p.Stderr);
        // Real sizes (no --config) against the tiny towers: the first mis-shaped key is named.
        var s = CliRunner.Run("convert", "biomedclip", "--biomedclip", OpenClipFolder(false), "--out", outDir);
        Assert.Equal(2, s.ExitCode);
        Assert.Contains("timm_model_name", s.Stderr);
        // Neither source.
        var n = CliRunner.Run("convert", "biomedclip", "--out", outDir);
        Assert.Equal(2, n.ExitCode);
        Assert.Contains("--biomedclip DIR", n.Stderr);
        Assert.False(Directory.Exists(outDir));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(tmp), e => Path.GetFileName(e).StartsWith('.'));
    }
}
