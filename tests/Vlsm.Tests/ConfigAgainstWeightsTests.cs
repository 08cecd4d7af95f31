using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Vlsm.Models.ClipSeg;
using Vlsm.Models.Cris;
using Vlsm.Models.Smp;

namespace Vlsm.Tests;

/// <summary>
/// Issue #19, bad 4: sizes from config.json, vocab.json and verify references are checked against
/// the weights before libtorch allocates anything, so a wrong or absurd value is one line naming the
/// field (it was libtorch's "can't allocate" with native frames, or seconds and gigabytes of building).
/// </summary>
public sealed class ConfigAgainstWeightsTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-config-weights-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string ClipSegTiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");
    private static string CrisTiny => Path.Combine(Fixtures.Parity, "cris-tiny");

    /// <summary>A copy of <paramref name="source"/> whose <paramref name="file"/> (JSON) <paramref name="edit"/> changed.</summary>
    private string Copy(string source, string name, string file, Action<JsonObject> edit)
    {
        string dir = Path.Combine(tmp, name);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, file)))!.AsObject();
        edit(json);
        File.WriteAllText(Path.Combine(dir, file), json.ToJsonString());
        return dir;
    }

    private static void OneLineError(CliResult r, params string[] expected)
    {
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        foreach (var e in expected) Assert.Contains(e, r.Stderr);
    }

    [Fact]
    public void AnAbsurdSizeInInfoIsOneLineNamingTheField()
    {
        string dir = Copy(ClipSegTiny, "absurd", "config.json", c => c["vision_config"]!["intermediate_size"] = 2_000_000_000);
        OneLineError(CliRunner.Run("info", "--model", dir), "\"intermediate_size\" is 2000000000", "config.json");
    }

    [Fact]
    public void APlausibleWrongSizeIsRefusedFromTheHeaderBeforeBuilding()
    {
        string dir = Copy(ClipSegTiny, "wrong", "config.json", c => c["vision_config"]!["intermediate_size"] = 200);
        var e = Assert.Throws<VlsmException>(() => ClipSegLoader.ReadConfig(dir));
        Assert.Contains("config.json: vision_config.intermediate_size is 200, but", e.Message);
        Assert.Contains("\"clip.vision_model.encoder.layers.0.mlp.fc1.weight\" of shape [96, 48] where the config gives [200, 48]", e.Message);

        string layers = Copy(ClipSegTiny, "layers", "config.json", c => c["text_config"]!["num_hidden_layers"] = 6);
        var l = Assert.Throws<VlsmException>(() => ClipSegLoader.ReadConfig(layers));
        Assert.Contains("text_config.num_hidden_layers is 6, but", l.Message);
        Assert.Contains("holds 2 (clip.text_model.encoder.layers.0", l.Message);
    }

    [Fact]
    public void BiomedClipSegSizesAreCheckedAgainstTheHeaderToo()
    {
        string dir = Copy(Path.Combine(Fixtures.Parity, "biomedclipseg-tiny"), "biomed", "config.json", c => c["hf_text_config"]!["intermediate_size"] = 128);
        var e = Assert.Throws<VlsmException>(() => Vlsm.Models.BiomedClipSeg.BiomedClipSegLoader.ReadConfig(dir));
        Assert.Contains("hf_text_config.intermediate_size is 128, but", e.Message);
        Assert.Contains("of shape [64, 16] where the config gives [128, 16]", e.Message);
    }

    [Fact]
    public void SanSizesAreCheckedAgainstTheHeaderToo()
    {
        string dir = Copy(Path.Combine(Fixtures.Parity, "san-tiny"), "san", "config.json", c => c["net"]!["side_adapter_network"]!["vit_model"]!["depth"] = 12);
        var e = Assert.Throws<VlsmException>(() => Vlsm.Models.San.SanLoader.ReadConfig(dir));
        Assert.Contains("net.side_adapter_network.vit_model.depth is 12, but", e.Message);
        Assert.Contains("holds 8 (side_adapter_network.vit_model.blocks.0", e.Message);
    }

    private static string Smp(string name) => Path.Combine(Fixtures.Parity, name);

    /// <summary>A copy of an smp fixture with config.json edited, and the load's refusal (before anything is built: the message says so).</summary>
    private VlsmException SmpRefusal(string fixture, string name, Action<JsonObject> edit)
    {
        string dir = Copy(Smp(fixture), name, "config.json", edit);
        var e = Assert.Throws<VlsmException>(() => SmpLoader.Load(dir));
        Assert.Contains("Nothing was built.", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        return e;
    }

    [Fact]
    public void SmpSizesAreCheckedAgainstTheHeaderBeforeBuilding()
    {
        var classes = SmpRefusal("smp-unet-tiny", "smp-classes", c => c["classes"] = 3);
        Assert.Contains(Path.Combine(tmp, "smp-classes", "config.json") + ": classes is 3, but " + Path.Combine(tmp, "smp-classes", "model.safetensors"), classes.Message);
        Assert.Contains("\"segmentation_head.0.weight\" of shape [1, 8, 3, 3] where the config gives [3, 8, 3, 3]", classes.Message);

        var depth = SmpRefusal("smp-unet-tiny", "smp-depth", c => c["encoder"]!["layers"] = new JsonArray(1, 1, 3, 1));
        Assert.Contains("encoder.layers[2] is 3, but", depth.Message);
        Assert.Contains("holds 2 (encoder.layer3.0 … encoder.layer3.1)", depth.Message);

        var width = SmpRefusal("smp-unetplusplus-tiny", "smp-width", c => c["decoder_channels"]![3] = 14);
        Assert.Contains("decoder_channels[3] is 14, but", width.Message);
        Assert.Contains("\"decoder.blocks.x_0_3.conv2.0.weight\" of shape [12, 12, 3, 3] where the config gives [14, 14, 3, 3]", width.Message);

        var aspp = SmpRefusal("smp-deeplabv3plus-tiny", "smp-aspp", c => c["decoder_channels"] = 32);
        Assert.Contains("decoder_channels is 32, but", aspp.Message);
        Assert.Contains("\"decoder.aspp.0.convs.0.0.weight\" of shape [24, 64, 1, 1] where the config gives [32, 64, 1, 1]", aspp.Message);

        var block = SmpRefusal("smp-unet-tiny", "smp-block", c =>
        {
            var encoder = c["encoder"]!.AsObject();
            encoder["block"] = "basic";
            encoder.Remove("expansion");
            encoder.Remove("out_channels");
        });
        Assert.Contains("encoder.block is basic, but", block.Message);
        Assert.Contains("holds \"encoder.layer1.0.conv3.weight\"", block.Message);

        // UNet++ weights under a UNet config: the UNet's decoder blocks are not there.
        var architecture = SmpRefusal("smp-unetplusplus-tiny", "smp-architecture", c => c["model_type"] = "unet");
        Assert.Contains("decoder_channels[0] gives \"decoder.blocks.0.conv2.0.weight\" of shape [40, 40, 3, 3], which", architecture.Message);
        Assert.Contains("the weights are not those of Unet (model_type unet)", architecture.Message);
    }

    [Fact]
    public void AnAbsurdSmpWidthFailsFastInOneLineAndTheUntouchedFixturesLoad()
    {
        // 10^6 channels: building would ask libtorch for terabytes; the header refuses it first.
        string dir = Copy(Smp("smp-unet-tiny"), "smp-absurd", "config.json", c => c["decoder_channels"]![0] = 1_000_000);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<VlsmException>(() => SmpLoader.Load(dir));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.Contains("decoder_channels[0] is 1000000, but", e.Message);
        Assert.Contains("\"decoder.blocks.0.conv2.0.weight\" of shape [40, 40, 3, 3] where the config gives [1000000, 1000000, 3, 3]", e.Message);
        OneLineError(CliRunner.Run("info", "--model", dir), Path.Combine(dir, "config.json") + ": decoder_channels[0] is 1000000", "model.safetensors");

        // Beyond any plausible size, a list's integer is refused as config.json's scalars are, before the header is read.
        string huge = Copy(Smp("smp-unet-tiny"), "smp-huge", "config.json", c => c["encoder"]!["layers"]![2] = 2_000_000_000);
        var h = Assert.Throws<VlsmException>(() => SmpLoader.Load(huge));
        Assert.Contains("config.json: encoder.layers is 2000000000; no size, count or id of a model this large is plausible", h.Message);

        foreach (var fixture in new[] { "smp-unet-tiny", "smp-unetplusplus-tiny", "smp-deeplabv3plus-tiny", "smp-unet-tiny-basic" })
        {
            using var model = SmpLoader.Load(Smp(fixture));
            Assert.Equal(SmpLoader.ReadConfig(Smp(fixture)).Fingerprint, model.Config.Fingerprint);
        }
    }

    [Fact]
    public void SmpWeightsOfAnotherDtypeKindAreRefusedBeforeBuilding()
    {
        string dir = Copy(Smp("smp-unet-tiny"), "smp-dtype", "config.json", _ => { });
        string weights = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        int headerLength = (int)BinaryPrimitives.ReadInt64LittleEndian(bytes);
        string header = System.Text.Encoding.UTF8.GetString(bytes, 8, headerLength);
        const string stored = "\"segmentation_head.0.weight\":{\"dtype\":\"F32\"";
        Assert.Contains(stored, header);
        var patched = System.Text.Encoding.UTF8.GetBytes(header.Replace(stored, stored.Replace("F32", "I32"), StringComparison.Ordinal)); // same length: offsets hold
        patched.CopyTo(bytes, 8);
        File.WriteAllBytes(weights, bytes);
        var e = Assert.Throws<VlsmException>(() => SmpLoader.Load(dir));
        Assert.Contains($"{weights}: tensor \"segmentation_head.0.weight\" is stored as I32, but an smp model's is a floating-point weight", e.Message);
        Assert.Contains("Nothing was built.", e.Message);
    }

    [Fact]
    public void SmpConvertChecksTheConfigBeforeBuilding()
    {
        string config = Path.Combine(Copy(Smp("smp-unet-tiny"), "smp-convert", "config.json", c => c["classes"] = 2), "config.json");
        string output = Path.Combine(tmp, "converted");
        var e = Assert.Throws<VlsmException>(() => SmpWeights.Convert(Path.Combine(Smp("smp-unet-tiny"), "model.pth"), config, output));
        Assert.Contains($"{config}: classes is 2, but", e.Message);
        Assert.Contains("\"segmentation_head.0.weight\" of shape [1, 8, 3, 3] where the config gives [2, 8, 3, 3]", e.Message);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void AMissingVisionConfigBlamesConfigJson()
    {
        string dir = Copy(ClipSegTiny, "no-vision", "config.json", c => c.Remove("vision_config"));
        var r = CliRunner.Run("info", "--model", dir);
        OneLineError(r, Path.Combine(dir, "config.json") + ": vision_config.hidden_size is 768 (absent from the file, so the default)");
    }

    [Fact]
    public void CrisConvertChecksDimFfnBeforeBuilding()
    {
        string config = Path.Combine(Copy(CrisTiny, "cris-absurd", "config.json", c => c["cris"]!["dim_ffn"] = 2_000_000_000), "config.json");
        var checkpoint = Path.Combine(CrisTiny, "cris-tiny.pth");
        var absurd = Assert.Throws<VlsmException>(() => CrisConverter.Convert(checkpoint, config, Path.Combine(tmp, "out1")));
        Assert.Contains("cris.dim_ffn is 2000000000", absurd.Message);

        string wrong = Path.Combine(Copy(CrisTiny, "cris-wrong", "config.json", c => c["cris"]!["dim_ffn"] = 256), "config.json");
        var e = Assert.Throws<VlsmException>(() => CrisConverter.Convert(checkpoint, wrong, Path.Combine(tmp, "out2")));
        Assert.Contains("cris.dim_ffn is 256, but", e.Message);
        Assert.Contains("\"decoder.layers.0.ffn.0.weight\" of shape [128, 64]", e.Message);
        Assert.False(Directory.Exists(Path.Combine(tmp, "out2")));
    }

    [Fact]
    public void ACrisImageSizeThatCannotRunIsRefused()
    {
        string config = Path.Combine(Copy(CrisTiny, "cris-huge", "config.json", c => c["cris"]!["img_size"] = 100_000), "config.json");
        var e = Assert.Throws<VlsmException>(() => CrisConverter.Convert(Path.Combine(CrisTiny, "cris-tiny.pth"), config, Path.Combine(tmp, "out")));
        Assert.Contains($"cris.img_size 100000 must be within {CrisConfig.MinImgSize}..{CrisConfig.MaxImgSize}", e.Message);
    }

    [Fact]
    public void AVocabularyIdPastTheEmbeddingIsRefusedAtTokenizerLoad()
    {
        string dir = Copy(ClipSegTiny, "vocab", "vocab.json", v => v["a</w>"] = 1_000_000_000);
        var e = Assert.Throws<VlsmException>(() => ClipSegPredictor.FromFolder(dir));
        Assert.Contains("token \"a</w>\" has id 1000000000, but the model has 49408 token embeddings (text_config.vocab_size)", e.Message);

        string negative = Copy(ClipSegTiny, "vocab-negative", "vocab.json", v => v["a</w>"] = -5);
        var n = Assert.Throws<VlsmException>(() => Vlsm.Text.ClipTokenizer.FromFolder(negative));
        Assert.Contains("negative id -5", n.Message);
    }

    [Theory]
    [InlineData(1_000_000_000L)]
    [InlineData(-5L)]
    public void VerifyRefusesTokenIdsOutsideTheEmbedding(long id)
    {
        var bytes = File.ReadAllBytes(Path.Combine(ClipSegTiny, "reference.safetensors"));
        using (var reference = Vlsm.IO.SafetensorsFile.Open(Path.Combine(ClipSegTiny, "reference.safetensors")))
        {
            var entry = reference.Entry("input_ids");
            long headerEnd = 8 + BinaryPrimitives.ReadInt64LittleEndian(bytes);
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan((int)(headerEnd + entry.Begin)), id);
        }
        string path = Path.Combine(tmp, $"ref{id}.safetensors");
        File.WriteAllBytes(path, bytes);
        var r = CliRunner.Run("verify", "--model", ClipSegTiny, "--reference", path);
        OneLineError(r, $"input_ids holds the token id {id}, but the model has token ids 0..49407 (text_config.vocab_size)");
    }

    [Theory]
    [InlineData("flat", "attention_mask is [26] but input_ids is [2, 13]; the mask must have input_ids' shape")]
    [InlineData("one-row", "attention_mask is [1, 26] but input_ids is [2, 13]; the mask must have input_ids' shape")]
    [InlineData("f64", "attention_mask is F64; the mask must be integers")]
    [InlineData("pixels", "pixel_values must be (batch, 3, height, width); got (2, 12, 12, 12). The reference's inputs were not made for this model")]
    public void VerifyRefusesInputsThatDoNotFitNamingTheReference(string kind, string expected)
    {
        string path = Path.Combine(tmp, $"mask-{kind}.safetensors");
        using (var scope = TorchSharp.torch.NewDisposeScope())
        {
            Dictionary<string, TorchSharp.torch.Tensor> tensors;
            using (var reference = Vlsm.IO.SafetensorsFile.Open(Path.Combine(ClipSegTiny, "reference.safetensors"))) tensors = reference.LoadAll();
            Assert.Equal([2L, 13L], tensors["input_ids"].shape); // the shapes the messages above name
            var mask = tensors.TryGetValue("attention_mask", out var m) ? m : TorchSharp.torch.ones_like(tensors["input_ids"]);
            if (kind == "pixels") tensors["pixel_values"] = TorchSharp.torch.zeros(2, 12, 12, 12);
            else tensors["attention_mask"] = kind switch
            {
                "flat" => mask.reshape(26),
                "one-row" => mask.reshape(1, 26),
                _ => mask.to(TorchSharp.torch.ScalarType.Float64),
            };
            Vlsm.IO.SafetensorsWriter.Save(path, tensors);
        }
        var r = CliRunner.Run("verify", "--model", ClipSegTiny, "--reference", path);
        OneLineError(r, $"{path}: {expected}");
    }
}
