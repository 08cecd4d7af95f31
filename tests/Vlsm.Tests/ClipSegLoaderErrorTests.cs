using TorchSharp;
using Vlsm.IO;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Tests;

/// <summary>Bad model folders fail with messages that name the folder, file or key at fault.</summary>
public sealed class ClipSegLoaderErrorTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vlsm-loader-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string CopyTinyWith(Func<Dictionary<string, torch.Tensor>, Dictionary<string, torch.Tensor>> edit)
    {
        var src = Path.Combine(Fixtures.Parity, "clipseg-tiny");
        foreach (var f in new[] { "config.json", "vocab.json", "merges.txt", "preprocessor_config.json" })
            File.Copy(Path.Combine(src, f), Path.Combine(dir, f));
        using var file = SafetensorsFile.Open(Path.Combine(src, "model.safetensors"));
        var tensors = edit(file.LoadAll());
        SafetensorsWriter.Save(Path.Combine(dir, "model.safetensors"), tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return dir;
    }

    [Fact]
    public void MissingFolderIsNamed()
    {
        var missing = Path.Combine(dir, "no-such-model");
        var e = Assert.Throws<VlsmException>(() => ClipSegLoader.Load(missing));
        Assert.Contains(missing, e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void MissingKeyIsListed()
    {
        const string key = "decoder.film_mul.weight";
        var folder = CopyTinyWith(t => { t.Remove(key); return t; });
        var e = Assert.Throws<VlsmException>(() => ClipSegLoader.Load(folder));
        Assert.Contains(key, e.Message);
        Assert.Contains("missing", e.Message);
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void UnexpectedKeyIsListed()
    {
        var folder = CopyTinyWith(t => { t["decoder.extra.weight"] = torch.zeros(2); return t; });
        var e = Assert.Throws<VlsmException>(() => ClipSegLoader.Load(folder));
        Assert.Contains("decoder.extra.weight", e.Message);
        Assert.Contains("unexpected", e.Message);
    }

    [Fact]
    public void WrongShapeNamesKeyAndBothShapes()
    {
        const string key = "clip.text_projection.weight";
        var folder = CopyTinyWith(t => { t[key] = torch.zeros(16, 31); return t; });
        var e = Assert.Throws<VlsmException>(() => ClipSegLoader.Load(folder));
        Assert.Contains(key, e.Message);
        Assert.Contains("[16, 31]", e.Message);
        Assert.Contains("[16, 32]", e.Message);
    }

    [Fact]
    public void HalfPrecisionCheckpointLoadsIntoFloat32()
    {
        var folder = CopyTinyWith(t => t.ToDictionary(kv => kv.Key, kv => kv.Value.is_floating_point() ? kv.Value.to(torch.ScalarType.Float16) : kv.Value));
        using var model = ClipSegLoader.Load(folder);
        Assert.All(model.parameters(), p => Assert.Equal(torch.ScalarType.Float32, p.dtype));
    }

    [Fact]
    public void MalformedConfigNamesTheFile()
    {
        File.WriteAllText(Path.Combine(dir, "config.json"), "{\"model_type\": \"clipseg\", \"reduce_dim\": \"wide\"}");
        var e = Assert.Throws<VlsmException>(() => ClipSegLoader.Load(dir));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("reduce_dim", e.Message);
    }
}

public sealed class ClipSegSaveFolderTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vlsm-save-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void SavedFolderLoadsAndStillMatchesTheReference()
    {
        var src = Path.Combine(Fixtures.Parity, "clipseg-geometry");
        using var model = ClipSegLoader.Load(src);
        var outDir = Path.Combine(dir, "copy");
        ClipSegLoader.SaveFolder(model, outDir, src);
        foreach (var f in new[] { "config.json", "model.safetensors", "vocab.json", "merges.txt", "preprocessor_config.json" })
            Assert.True(File.Exists(Path.Combine(outDir, f)), f);

        using var again = ClipSegLoader.Load(outDir);
        Assert.Equal(model.Config.Fingerprint, again.Config.Fingerprint);
        using var reference = SafetensorsFile.Open(Path.Combine(src, "reference.safetensors"));
        var results = ReferenceVerifier.Verify(again, reference);
        Assert.All(results, r => Assert.True(r.Within(1e-4), $"{r.Name}: {r.MaxAbsDiff}"));
        foreach (var (name, p) in model.named_parameters())
            Assert.True(Bitwise.Equal(p, again.named_parameters().First(q => q.name == name).parameter), name);
    }
}
