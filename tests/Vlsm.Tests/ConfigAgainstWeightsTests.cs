using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Vlsm.Models.ClipSeg;
using Vlsm.Models.Cris;

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
}
