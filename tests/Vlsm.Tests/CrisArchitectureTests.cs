using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.IO;
using Vlsm.Models.Cris;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>CRIS's architecture: the benchmarks' parameter counts, the config rules, the padding masks.</summary>
public sealed class CrisArchitectureTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-cris-arch-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string CrisTiny => Path.Combine(Fixtures.Parity, "cris-tiny");

    [Fact]
    public void Rn50HasTheReferenceParameterCounts()
    {
        using var model = new CrisModel(CrisConfig.Rn50);
        var s = CrisSummary.Of(model);
        Assert.Equal(146_849_122, s.TotalParameters);
        Assert.Equal(104_106_337, s.BackboneParameters);
        Assert.Equal(24_142_336, s.NeckParameters);
        Assert.Equal(12_631_552, s.DecoderParameters);
        Assert.Equal(5_968_897, s.ProjectorParameters);
    }

    [Fact]
    public void StateDictKeysAreTheReferenceKeys()
    {
        using var model = new CrisModel(CrisLoader.ReadConfig(CrisTiny));
        using var file = SafetensorsFile.Open(Path.Combine(CrisTiny, "model.safetensors"));
        Assert.Equal(file.Names.Order(StringComparer.Ordinal), model.state_dict().Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void BackboneSizesAreReadOffTheWeights()
    {
        var clip = CrisLoader.ReadConfig(CrisTiny).Clip;
        Assert.Equal(64, clip.EmbedDim);
        Assert.Equal(64, clip.ImageResolution);
        Assert.Equal(new[] { 1, 1, 1, 1 }, clip.VisionLayers);
        Assert.Equal(16, clip.VisionWidth);
        Assert.Equal(77, clip.ContextLength);
        Assert.Equal(49408, clip.VocabSize);
        Assert.Equal(64, clip.TransformerWidth);
        Assert.Equal(1, clip.TransformerHeads);
        Assert.Equal(2, clip.TransformerLayers);
    }

    private string ConfigWith(Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(CrisTiny, "config.json")))!.AsObject();
        edit(json);
        string dir = Path.Combine(tmp, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        return Path.Combine(dir, "config.json");
    }

    [Theory]
    [InlineData("vis_dim", 48, "cris.fpn_out[1] 64 must equal cris.vis_dim 48")]
    [InlineData("word_dim", 32, "cris.word_dim 32 must equal clip.embed_dim 64")]
    [InlineData("num_head", 3, "cris.vis_dim 64 must be a multiple of 4 and of cris.num_head 3")]
    [InlineData("word_len", 78, "cris.word_len 78 must be within 1..clip.context_length (77)")]
    public void InconsistentSettingsAreNamed(string key, int value, string expected)
    {
        var path = ConfigWith(o => o["cris"]![key] = value);
        var e = Assert.Throws<VlsmException>(() => CrisConfig.FromFile(path));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Theory]
    [InlineData("\"x\"")]
    [InlineData("[64]")]
    public void AClipThatIsNotAnObjectIsNamed(string clip)
    {
        var path = ConfigWith(o => o["clip"] = JsonNode.Parse(clip));
        var e = Assert.Throws<VlsmException>(() => CrisConfig.FromFile(path));
        Assert.StartsWith($"{path}: clip must be an object of the CLIP backbone's sizes", e.Message);
        Assert.Contains($"not {clip}", e.Message);
        Assert.DoesNotContain("fpn_in", e.Message);
    }

    [Fact]
    public void AClipSizeTheWeightsContradictIsNamed()
    {
        var path = ConfigWith(o => o["clip"]!["transformer_layers"] = 3);
        var (config, hasClip) = CrisConfig.Read(path);
        Assert.True(hasClip);
        using var file = SafetensorsFile.Open(Path.Combine(CrisTiny, "model.safetensors"));
        var inferred = CrisClipConfig.InferFrom(file.Names, k => file.Entry(k).Shape);
        var e = Assert.Throws<VlsmException>(() => config.WithClipOf(inferred, hasClip, path));
        Assert.Contains("clip.transformer_layers is 3, but the weights have 2", e.Message);
    }

    [Fact]
    public void ThePaddingMaskIsTheReferencesOrTheRealPadding()
    {
        // "a polyp!" → start, a, polyp, ! (id 0), end, then padding with the end id.
        using var ids = tensor(new long[] { 49406, 320, 0, 49407, 49407, 49407 }, new long[] { 1, 6 });
        using var reference = CrisModel.PaddingMask(ids, CrisPadMask.Reference, ScalarType.Float32)!;
        using var fixedMask = CrisModel.PaddingMask(ids, CrisPadMask.Fixed, ScalarType.Float32)!;
        float inf = float.NegativeInfinity;
        Assert.Equal(new[] { 0f, 0f, inf, 0f, 0f, 0f }, reference.flatten().data<float>().ToArray());
        Assert.Equal(new[] { 0f, 0f, 0f, 0f, inf, inf }, fixedMask.flatten().data<float>().ToArray());
        using var unpadded = tensor(new long[] { 49406, 320, 49407 }, new long[] { 1, 3 });
        Assert.Null(CrisModel.PaddingMask(unpadded, CrisPadMask.Fixed, ScalarType.Float32));
    }

    [Fact]
    public void FixedPaddingChangesTheLogitsOfPaddedPrompts()
    {
        using var model = CrisLoader.Load(CrisTiny);
        using var reference = SafetensorsFile.Open(Path.Combine(CrisTiny, "reference.safetensors"));
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var ids = reference.Load("input_ids");
        var pixels = reference.Load("pixel_values");
        var quirk = model.Forward(pixels, ids);
        model.PadMask = CrisPadMask.Fixed;
        var fixedLogits = model.Forward(pixels, ids);
        Assert.True((quirk - fixedLogits).abs().max().item<float>() > 1e-3);
        Assert.True(fixedLogits.isfinite().all().item<bool>());
    }
}
