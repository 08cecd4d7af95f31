using TorchSharp;
using Vlsm.IO;
using Vlsm.Models.San;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// <c>vlsm convert san</c>: from OpenAI's CLIP TorchScript archive (fp16, storages on cuda:0, the
/// three metadata entries open_clip drops) to a SAN with a freshly initialised side network, and from
/// a benchmark Lightning checkpoint (keys net.*, aliased copies, objects beside the state dict) to a
/// folder that reproduces san-tiny's reference outputs.
/// </summary>
[Collection(GlobalRngCollection.Name)] // seeds libtorch's global generator and compares draws
public sealed class SanConvertTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-san-convert-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny => SanParityTests.TinyFolder;
    private static string TinyConfig => Path.Combine(Tiny, "config.json");

    private static Dictionary<string, Tensor> TinyWeights()
    {
        using var file = SafetensorsFile.Open(Path.Combine(Tiny, "model.safetensors"));
        return file.LoadAll();
    }

    private static TorchTensor Stored(string name, Tensor t, ScalarType dtype)
    {
        using var converted = t.to(dtype).contiguous();
        return new TorchTensor(name, SafetensorsDtypes.FromScalarType(dtype)!.Value, t.shape, converted.bytes.ToArray());
    }

    /// <summary>san-tiny's CLIP as OpenAI distributes CLIP: a TorchScript archive of fp16 tensors saved on a GPU, with input_resolution, context_length and vocab_size.</summary>
    private string OpenAiArchive(Func<string, bool>? keep = null)
    {
        var clip = TinyWeights().Where(kv => kv.Key.StartsWith("clip_model.", StringComparison.Ordinal) && (keep?.Invoke(kv.Key) ?? true))
            .Select(kv => Stored(kv.Key["clip_model.".Length..], kv.Value, ScalarType.Float16)).ToList();
        clip.Add(new TorchTensor("input_resolution", SafetensorsDtype.I64, [], BitConverter.GetBytes(48L)));
        clip.Add(new TorchTensor("context_length", SafetensorsDtype.I64, [], BitConverter.GetBytes(77L)));
        clip.Add(new TorchTensor("vocab_size", SafetensorsDtype.I64, [], BitConverter.GetBytes(49408L)));
        string path = Path.Combine(tmp, $"clip-{Guid.NewGuid():N}.pt");
        TorchScriptArchive.Write(path, ScriptModuleNode.FromStateDict(clip, n => SanConverter.OpenAiMetadataKeys.Contains(n)), location: "cuda:0", archive: "ViT-B-16");
        return path;
    }

    [Fact]
    public void OpenAisClipArchiveBecomesASanToTrain()
    {
        using var scope = NewDisposeScope();
        string archive = OpenAiArchive();
        string a = Path.Combine(tmp, "a"), b = Path.Combine(tmp, "b"), c = Path.Combine(tmp, "c");
        var run = CliRunner.Run("convert", "san", "--clip", archive, "--config", TinyConfig, "--out", a);
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        Assert.Contains("left out input_resolution, context_length, vocab_size", run.Stdout);
        SanConverter.FromClip(archive, TinyConfig, b, 42);
        SanConverter.FromClip(archive, TinyConfig, c, 7);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(b, "model.safetensors")));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(c, "model.safetensors")));

        var tiny = TinyWeights();
        using var model = SanLoader.Load(a);
        var converted = model.state_dict();
        Assert.Equal(tiny.Keys.Where(k => !SanLoader.IsAlias(k)).Order(), converted.Keys.Order());
        foreach (var (name, t) in converted.Where(kv => kv.Key.StartsWith("clip_model.", StringComparison.Ordinal)))
        {
            Assert.Equal(ScalarType.Float32, t.dtype);
            Assert.True(Bitwise.Equal(tiny[name].to(ScalarType.Float16).to(ScalarType.Float32), t), $"{name}: not the archive's fp16 value widened");
        }
        // The side network is the reference's initialisation, not the fixture's weights: timm's Linear init, queries N(0, 0.02).
        Assert.False(Bitwise.Equal(tiny["side_adapter_network.query_embed"], converted["side_adapter_network.query_embed"]));
        Assert.Equal(0, converted["side_adapter_network.vit_model.blocks.0.attn.qkv.bias"].abs().max().item<float>());
        Assert.InRange(converted["side_adapter_network.vit_model.blocks.0.mlp.fc1.weight"].std().item<float>(), 0.015, 0.025);
        Assert.Equal(0, converted["side_adapter_network.fusion_layers.layer_0.input_proj.1.bias"].abs().max().item<float>());
        Assert.Equal(1, converted["side_adapter_network.fusion_layers.layer_0.input_proj.0.weight"].min().item<float>());
    }

    [Fact]
    public void AnArchiveThatDoesNotFitTheArchitectureIsRefusedNamingTheKey()
    {
        string missing = OpenAiArchive(k => k != "clip_model.visual.proj");
        string dir = Path.Combine(tmp, "refused");
        var e = Assert.Throws<VlsmException>(() => SanConverter.FromClip(missing, TinyConfig, dir, 1));
        Assert.Contains("visual.proj", e.Message);
        Assert.False(Directory.Exists(dir));

        // The benchmark's ViT-B/16 SAN does not fit a tiny CLIP: the blocks it lacks are named.
        e = Assert.Throws<VlsmException>(() => SanConverter.FromClip(OpenAiArchive(), null, dir, 1));
        Assert.Contains("keys do not match the model", e.Message);
        Assert.Contains("visual.transformer.resblocks.6.", e.Message);
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void ABenchmarkLightningCheckpointConvertsToTheReferenceModel()
    {
        var tiny = TinyWeights();
        string ckpt = Path.Combine(tmp, "san.ckpt");
        TorchScriptReaderTests.LightningCheckpoint(ckpt, tiny.Select(kv => Stored("net." + kv.Key, kv.Value, ScalarType.Float32)).ToList());
        string dir = Path.Combine(tmp, "from-ckpt");
        var run = CliRunner.Run("convert", "san", "--checkpoint", ckpt, "--config", TinyConfig, "--out", dir);
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        Assert.Contains("(net. prefix removed)", run.Stdout);
        Assert.Contains("80 aliased CLIP copies checked equal and left out", run.Stdout);
        Assert.Contains("monai.losses.dice.DiceCELoss", run.Stdout);

        var verify = CliRunner.Run("verify", "--model", dir, "--reference", Path.Combine(Tiny, "reference.safetensors"));
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);

        // A copy that disagrees with the tensor it aliases is refused by name.
        tiny["clip_visual_extractor.ln_pre.bias"] = tiny["clip_visual_extractor.ln_pre.bias"].add(1);
        string bad = Path.Combine(tmp, "bad.ckpt");
        TorchScriptReaderTests.LightningCheckpoint(bad, tiny.Select(kv => Stored("net." + kv.Key, kv.Value, ScalarType.Float32)).ToList());
        var refused = CliRunner.Run("convert", "san", "--checkpoint", bad, "--config", TinyConfig, "--out", Path.Combine(tmp, "bad"));
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("clip_visual_extractor.ln_pre.bias", refused.Stderr + refused.Stdout);
        Assert.False(Directory.Exists(Path.Combine(tmp, "bad")));
    }
}
