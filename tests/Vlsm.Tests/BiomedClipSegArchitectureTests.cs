using System.Text.Json.Nodes;
using Vlsm.Models;
using Vlsm.Models.BiomedClipSeg;
using Vlsm.Models.Registry;

namespace Vlsm.Tests;

/// <summary>
/// The real BiomedCLIPSeg architecture against shared/parity/biomedclipseg-tiny/biomedclipseg-real-facts.json:
/// every key and shape, and the parameter counts <c>vlsm info --arch biomedclipseg</c> prints.
/// </summary>
public sealed class BiomedClipSegArchitectureTests
{
    private static JsonObject Facts => JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Parity, "biomedclipseg-tiny", "biomedclipseg-real-facts.json")))!.AsObject();

    [Fact]
    public void EveryRealKeyHasTheRealShape()
    {
        var facts = Facts;
        var shapes = facts.First(kv => kv.Key.StartsWith("real_state_dict_shapes", StringComparison.Ordinal)).Value!.AsObject();
        using var model = new BiomedClipSegModel(BiomedClipSegConfig.Real);
        var ours = model.state_dict();
        var expected = shapes.Where(kv => !BiomedClipSegLoader.IsIgnoredKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(n => n!.GetValue<long>()).ToArray());
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(ours[key].shape), $"{key}: [{string.Join(", ", ours[key].shape)}], facts say [{string.Join(", ", shape)}]");
    }

    [Fact]
    public void InfoPrintsTheFactsFilesCounts()
    {
        var counts = Facts["counts"]!["use_complex_transposed_convolution=true"]!;
        var r = CliRunner.Run("info", "--arch", "biomedclipseg", "--json");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var info = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("biomedclipseg", info["model_type"]!.GetValue<string>());
        Assert.Equal(counts["biomedclip_total"]!.GetValue<long>(), info["biomedclip_parameters"]!.GetValue<long>());
        Assert.Equal(counts["decoder_total"]!.GetValue<long>(), info["decoder_parameters"]!.GetValue<long>());
        Assert.Equal(counts["biomedclipseg_total"]!.GetValue<long>(), info["total_parameters"]!.GetValue<long>());
        Assert.Equal(195_902_721L, info["biomedclip_parameters"]!.GetValue<long>());
        Assert.Equal(197_029_730L, info["total_parameters"]!.GetValue<long>());

        // Both reference experiments train the decoder only.
        var d = CliRunner.Run("info", "--arch", "biomedclipseg", "--mode", "decoder", "--json");
        Assert.True(d.ExitCode == 0, d.Stdout + d.Stderr);
        Assert.Equal(counts["trainable (freeze_encoder=true)"]!.GetValue<long>(), JsonNode.Parse(d.Stdout)!["trainable_parameters"]!.GetValue<long>());
    }

    [Fact]
    public void TrainableCountsPerModeOfTheRealArchitecture()
    {
        var family = BiomedClipSegFamily.Instance;
        long Trainable(FineTuneSpec spec) => family.Describe(ModelSource.BuiltIn("biomedclipseg"), spec).TrainableParameters!.Value;
        // Adapter: 2·d·r + d + r parameters (fc1 and fc2 with biases). Adapter modes train the decoder too.
        static long Adapter(long d, long r) => 2 * d * r + d + r;
        Assert.Equal(1_127_009, Trainable(FineTuneSpec.Create(FineTuneMode.Decoder)));
        Assert.Equal(197_029_730 - 1 - 768 * 512, Trainable(FineTuneSpec.Create(FineTuneMode.Full)));
        Assert.Equal(1_127_009 + 3 * Adapter(768, 512) + Adapter(512, 256), Trainable(FineTuneSpec.Create(FineTuneMode.Shallow, "vc")));
        Assert.Equal(1_127_009 + 3 * Adapter(768, 512), Trainable(FineTuneSpec.Create(FineTuneMode.Shallow, "v")));
        // Dense: two adapters in each of ViT blocks and BERT layers 0..9.
        Assert.Equal(1_127_009 + 2 * 10 * Adapter(768, 64) * 2 + Adapter(512, 256), Trainable(FineTuneSpec.Create(FineTuneMode.Dense, "vlc")));
        var e = Assert.Throws<VlsmException>(() => Trainable(FineTuneSpec.Create(FineTuneMode.Shallow, "vl")));
        Assert.Contains("--parts v, c or vc", e.Message);
    }

    [Fact]
    public void TheFamilyIsRegisteredWithItsPresetsAndOptions()
    {
        Assert.Same(BiomedClipSegFamily.Instance, ModelFamilies.ForType("biomedclipseg"));
        Assert.Same(BiomedClipSegFamily.Instance, ModelFamilies.ForArchitecture("biomedclipseg"));
        foreach (var name in new[] { "biomed_clipseg", "biomed_clipseg_d" })
        {
            var (family, preset) = ModelFamilies.Preset(name);
            Assert.Same(BiomedClipSegFamily.Instance, family);
            Assert.Equal(FineTuneMode.Decoder, preset.Mode);
            Assert.Equal((2e-4, 1e-3, "dice-ce", "plateau", 0.1, 5, 1000), (preset.LearningRate, preset.WeightDecay, preset.Loss, preset.Scheduler, preset.PlateauFactor, preset.PlateauPatience, preset.MaxEpochs));
        }
        var e = Assert.Throws<VlsmException>(() => FamilyChecks.Options(BiomedClipSegFamily.Instance, new Dictionary<string, string> { [BiomedClipSegFamily.ExtractOption] = "hf" }));
        Assert.Contains("biomedclipseg_extract \"hf\" is not one of reference, fixed", e.Message);
    }
}
