using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Models.San;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// The real SAN (configs/model/san.yaml) against the facts of shared/parity/san-tiny/real-architecture.json:
/// every state-dict key and shape, the parameter counts (total, requires_grad, receiving a gradient),
/// and the loader's handling of the reference's aliased CLIP copies and of configs it cannot run.
/// </summary>
public sealed class SanArchitectureTests : IDisposable
{
    private static readonly JsonNode Facts = JsonNode.Parse(File.ReadAllText(Path.Combine(SanParityTests.TinyFolder, "real-architecture.json")))!;
    private readonly string root = Directory.CreateTempSubdirectory("vlsm-san-arch-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static long Fact(string key) => Facts[key]!.GetValue<long>();

    [Fact]
    public void TheRealArchitectureHasTheReferenceKeysAndShapes()
    {
        using var model = new SanModel(SanConfig.VitB16);
        var ours = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var expected = new Dictionary<string, long[]>();
        foreach (var (prefix, group) in new[] { ("clip_model.", "clip_state_dict"), ("side_adapter_network.", "side_state_dict") })
            foreach (var (key, shape) in Facts[group]!.AsObject())
                expected[prefix + key] = shape!.AsArray().Select(n => n!.GetValue<long>()).ToArray();
        Assert.Equal(302 + 137, expected.Count);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(ours[key]), $"{key}: [{string.Join(", ", ours[key])}] vs [{string.Join(", ", shape)}]");
    }

    [Fact]
    public void InfoCountsEqualTheFactsFile()
    {
        var summary = SanFamily.Instance.Describe(ModelSource.BuiltIn(SanFamily.VitB16), FineTuneSpec.Create(FineTuneMode.Full));
        long Count(string key) => summary.Counts.Single(c => c.Key == key).Parameters;
        long Component(string key) => summary.Components.Single(c => c.Key == key).Parameters;
        var groups = Facts["groups"]!;
        Assert.Equal(Fact("total_parameters_unique"), summary.TotalParameters);
        Assert.Equal(Fact("requires_grad_true"), Count("reference_requires_grad"));
        Assert.Equal(Fact("receive_gradient"), Count("receives_gradient"));
        Assert.Equal(Fact("receive_gradient"), summary.TrainableParameters);
        Assert.Equal(8_370_354, Count("paper_trainable")); // "side_adapter_network + clip_model.visual.positional_embedding = 8370354"
        Assert.Contains("8370354", Facts["paper_8.4M_matches"]!.GetValue<string>());
        Assert.Equal(groups["clip_model.visual"]!.GetValue<long>(), Component("clip_visual"));
        Assert.Equal(groups["clip_model text tower (+logit_scale)"]!.GetValue<long>(), Component("clip_text"));
        Assert.Equal(groups["side.vit_model"]!.GetValue<long>(), Component("side_vit"));
        Assert.Equal(groups["side.fusion_layers (4)"]!.GetValue<long>(), Component("side_fusion"));
        Assert.Equal(groups["side.mask_decoder"]!.GetValue<long>(), Component("side_mask_decoder"));
        // The original flow adds what the reference leaves untrained, but the unused fusion layer.
        Assert.Equal(Fact("receive_gradient") + groups["side.mask_decoder.attn_mlp+bias_scaling"]!.GetValue<long>() + 768 * 197, Count("receives_gradient_original"));
    }

    /// <summary>A copy of san-tiny whose weights are <paramref name="edit"/>ed.</summary>
    private string Variant(string name, Action<Dictionary<string, Tensor>> edit)
    {
        string dir = Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.EnumerateFiles(SanParityTests.TinyFolder).Where(f => Path.GetFileName(f) != "model.safetensors"))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        using var file = SafetensorsFile.Open(Path.Combine(SanParityTests.TinyFolder, "model.safetensors"));
        var weights = file.LoadAll();
        edit(weights);
        SafetensorsWriter.Save(Path.Combine(dir, "model.safetensors"), weights, null);
        return dir;
    }

    [Fact]
    public void AliasedCopiesAreOptionalButMustEqualWhatTheyCopy()
    {
        using var scope = NewDisposeScope();
        string plain = Variant("no-aliases", w =>
        {
            foreach (var k in w.Keys.Where(SanLoader.IsAlias).ToList()) w.Remove(k);
        });
        using (var model = SanLoader.Load(plain))
        using (var reference = SafetensorsFile.Open(Path.Combine(SanParityTests.TinyFolder, "reference.safetensors")))
        {
            Assert.All(SanReferenceVerifier.Verify(model, reference), r => Assert.True(r.Within(1e-4), r.Name));
        }

        string edited = Variant("edited-alias", w => w["clip_rec_head.resblocks.1.mlp.c_fc.bias"] = w["clip_rec_head.resblocks.1.mlp.c_fc.bias"].add(1e-3));
        var e = Assert.Throws<VlsmException>(() => SanLoader.Load(edited).Dispose());
        Assert.Contains("\"clip_rec_head.resblocks.1.mlp.c_fc.bias\" differs from \"clip_model.visual.transformer.resblocks.5.mlp.c_fc.bias\"", e.Message);

        string stray = Variant("stray-alias", w => w["clip_visual_extractor.resblocks.4.ln_1.weight"] = w["clip_model.visual.transformer.resblocks.4.ln_1.weight"]);
        e = Assert.Throws<VlsmException>(() => SanLoader.Load(stray).Dispose());
        Assert.Contains("\"clip_visual_extractor.resblocks.4.ln_1.weight\"", e.Message);
        Assert.Contains("last_layer_idx 4", e.Message);
    }

    [Theory]
    [InlineData("asymetric_input", "false", "net.asymetric_input")]
    [InlineData("side_adapter_network.num_queries", "7", "sos_token_num 8 must equal net.side_adapter_network.num_queries 7")]
    [InlineData("clip_rec_head_cfg.cross_attn", "true", "net.clip_rec_head_cfg.cross_attn")]
    [InlineData("clip_rec_head_cfg.downsample_method", "\"median\"", "downsample_method \"median\"")]
    [InlineData("side_adapter_network.deep_supervision_idxs", "[9]", "deep_supervision_idxs [9]")]
    [InlineData("clip_visual_extractor_cfg.last_layer_idx", "\"four\"", "net.clip_visual_extractor_cfg.last_layer_idx must be an integer")]
    public void ConfigValuesSanCannotRunWithAreNamed(string path, string value, string expected)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(SanParityTests.TinyFolder, "config.json")))!;
        var parts = path.Split('.');
        var node = config["net"]!;
        foreach (var p in parts[..^1]) node = node[p]!;
        node[parts[^1]] = JsonNode.Parse(value);
        string dir = Path.Combine(root, "config-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var e = Assert.Throws<VlsmException>(() => SanLoader.ReadConfig(dir));
        Assert.Contains("config.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void TheConfigRoundTripsThroughItsJson()
    {
        var tiny = SanLoader.ReadConfig(SanParityTests.TinyFolder);
        foreach (var config in new[] { tiny, SanConfig.VitB16 })
        {
            var again = SanConfig.Parse(JsonNode.Parse(config.ToJson())!.AsObject());
            Assert.Equal(config.ToJson(), again.ToJson());
            Assert.Equal(config.Fingerprint, again.Fingerprint);
        }
        Assert.Equal(new[] { 0, 1, 2, 4 }, tiny.NeededClipFeatures.Order());
        Assert.Equal(8, tiny.DecodeIndex);
    }
}
