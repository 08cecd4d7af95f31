using System.IO.Compression;
using Vlsm.IO;
using Vlsm.Models.Smp;

namespace Vlsm.Tests;

/// <summary>
/// smp weights in and out: medvlsm's Lightning checkpoints (<c>vlsm convert smp</c>), torchvision's
/// legacy ImageNet ResNet files (<c>vlsm init --encoder-weights</c>), checked bitwise against the
/// shared fixtures' model.safetensors.
/// </summary>
[Collection(GlobalRngCollection.Name)] // seeds libtorch's global generator and compares draws
public sealed class SmpWeightsTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-smp-weights-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Data(string name) => Path.Combine(Fixtures.RepoRoot, "tests", "Vlsm.Tests", "Data", name);

    public static IEnumerable<object[]> Folders() => new[]
    {
        "smp-unet-tiny", "smp-unet-tiny-basic", "smp-unetplusplus-tiny", "smp-unetplusplus-tiny-basic", "smp-deeplabv3plus-tiny", "smp-deeplabv3plus-tiny-basic",
    }.Select(f => new object[] { f });

    /// <summary>Every tensor of <paramref name="expected"/> (those <paramref name="keep"/> accepts) is in <paramref name="actual"/>, bitwise.</summary>
    private static void AssertSameTensors(string actual, string expected, Func<string, bool>? keep = null)
    {
        using var a = SafetensorsFile.Open(actual);
        using var e = SafetensorsFile.Open(expected);
        var names = e.Names.Where(keep ?? (_ => true)).ToList();
        Assert.NotEmpty(names);
        foreach (var name in names)
        {
            using var x = a.Load(name);
            using var y = e.Load(name);
            Assert.True(Bitwise.Equal(x, y), name);
        }
    }

    [Theory]
    [MemberData(nameof(Folders))]
    public void LightningCheckpointConvertsBitwiseToTheReferenceWeights(string fixture)
    {
        string dir = Path.Combine(Fixtures.Parity, fixture), outDir = Path.Combine(tmp, fixture);
        var r = SmpWeights.Convert(Path.Combine(dir, "model.pth"), null, outDir);
        Assert.Equal(SmpWeights.LightningPrefix, r.StrippedPrefix);
        using var expected = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        Assert.Equal(expected.Names.Count(), r.Tensors);
        AssertSameTensors(Path.Combine(outDir, "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        Assert.Equal(SmpLoader.ReadConfig(dir).ToJson(), SmpLoader.ReadConfig(outDir).ToJson());
    }

    /// <summary>A Lightning checkpoint as medvlsm writes it: smp-unet-tiny's storages under a data.pkl that also pickles a loss object, an optimizer partial, callbacks, a set.</summary>
    private string LightningCheckpoint()
    {
        string path = Path.Combine(tmp, "lightning.ckpt");
        using var source = ZipFile.OpenRead(Path.Combine(Fixtures.Parity, "smp-unet-tiny", "model.pth"));
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            zip.CreateEntryFromFile(Data("smp-lightning-data.pkl"), "archive/data.pkl");
            foreach (var entry in source.Entries.Where(e => e.FullName.Contains("/data/", StringComparison.Ordinal) || e.FullName.EndsWith("/byteorder", StringComparison.Ordinal)))
            {
                string name = "archive/" + entry.FullName[(entry.FullName.IndexOf('/') + 1)..];
                using var from = entry.Open();
                using var to = zip.CreateEntry(name).Open();
                from.CopyTo(to);
            }
        }
        return path;
    }

    [Fact]
    public void ForeignObjectsBesideTheStateDictAreRefusedByDefaultAndSkippedUnbuiltOnRequest()
    {
        string ckpt = LightningCheckpoint();
        var refused = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(ckpt));
        Assert.Contains("refused to load", refused.Message);
        Assert.Contains(ckpt, refused.Message);

        string outDir = Path.Combine(tmp, "from-lightning");
        var r = SmpWeights.Convert(ckpt, Path.Combine(Fixtures.Parity, "smp-unet-tiny", "config.json"), outDir);
        Assert.Equal(SmpWeights.LightningPrefix, r.StrippedPrefix);
        // medvlsm's pickled loss, optimizer factory and their helpers: named, never imported.
        Assert.Equal(["__builtin__.set", "_codecs.encode", "functools.partial", "src.losses.tuned_dice_loss.TunedDiceLoss", "torch.optim.adam.Adam"], r.SkippedObjects);
        AssertSameTensors(Path.Combine(outDir, "model.safetensors"), Path.Combine(Fixtures.Parity, "smp-unet-tiny", "model.safetensors"));
    }

    [Fact]
    public void LegacyTorchvisionResNetLoadsAsTheEncoderWithItsClassifierDropped()
    {
        string dir = Path.Combine(Fixtures.Parity, "smp-deeplabv3plus-tiny"), outDir = Path.Combine(tmp, "init");
        var r = SmpWeights.Initialize(SmpLoader.ReadConfig(dir), outDir, Data("resnet-tiny-legacy.pth"), seed: 3);
        Assert.Equal(["fc.weight", "fc.bias"], r.DroppedKeys);
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        int counters = reference.Names.Count(n => n.StartsWith(SmpModel.EncoderPrefix, StringComparison.Ordinal) && n.EndsWith("num_batches_tracked", StringComparison.Ordinal));
        Assert.True(counters > 0);
        Assert.Equal(counters, r.AddedStepCounters);
        AssertSameTensors(Path.Combine(outDir, "model.safetensors"), Path.Combine(dir, "model.safetensors"),
            n => n.StartsWith(SmpModel.EncoderPrefix, StringComparison.Ordinal) && !n.EndsWith("num_batches_tracked", StringComparison.Ordinal));
    }

    [Fact]
    public void ALegacyCheckpointReadsTheSameLenientlyAndIsNotATorchScriptArchive()
    {
        string legacy = Data("resnet-tiny-legacy.pth");
        var strict = TorchCheckpoint.ReadStateDict(legacy);
        var lenient = TorchCheckpoint.ReadStateDictBesideObjects(legacy, out var foreign);
        Assert.Empty(foreign);
        Assert.Equal(strict.Select(t => t.Name), lenient.Select(t => t.Name));
        Assert.Equal(strict.Select(t => t.Data), lenient.Select(t => t.Data));
        var e = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadTorchScript(legacy));
        Assert.Contains("resnet-tiny-legacy.pth", e.Message);
        Assert.Contains("not a TorchScript archive", e.Message);
    }

    [Fact]
    public void TheSameSeedGivesTheSameInitialWeightsAndAnotherSeedOthers()
    {
        var config = SmpLoader.ReadConfig(Path.Combine(Fixtures.Parity, "smp-unet-tiny-basic"));
        string a = Path.Combine(tmp, "a"), b = Path.Combine(tmp, "b"), c = Path.Combine(tmp, "c");
        SmpWeights.Initialize(config, a, null, seed: 5);
        SmpWeights.Initialize(config, b, null, seed: 5);
        SmpWeights.Initialize(config, c, null, seed: 6);
        AssertSameTensors(Path.Combine(a, "model.safetensors"), Path.Combine(b, "model.safetensors"));
        using var x = SafetensorsFile.Open(Path.Combine(a, "model.safetensors"));
        using var y = SafetensorsFile.Open(Path.Combine(c, "model.safetensors"));
        using var wx = x.Load("encoder.conv1.weight");
        using var wy = y.Load("encoder.conv1.weight");
        Assert.False(Bitwise.Equal(wx, wy));
    }

    [Fact]
    public void InitFromTheCommandLineWritesAFolderThatInfoReads()
    {
        string outDir = Path.Combine(tmp, "cli");
        var r = CliRunner.Run("init", "--config", Path.Combine(Fixtures.Parity, "smp-deeplabv3plus-tiny", "config.json"),
            "--encoder-weights", Data("resnet-tiny-legacy.pth"), "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("dropped fc.weight, fc.bias", r.Stdout);
        var info = CliRunner.Run("info", "--model", outDir);
        Assert.True(info.ExitCode == 0, info.Stdout + info.Stderr);

        var bad = CliRunner.Run("init", "--arch", "unet-resnet7", "--out", Path.Combine(tmp, "bad"));
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("unet-resnet7", bad.Stderr);
        Assert.False(Directory.Exists(Path.Combine(tmp, "bad")));
    }
}
