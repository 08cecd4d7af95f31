using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Data.Synthetic;
using Vlsm.IO;
using Vlsm.Models;

namespace Vlsm.Tests;

/// <summary>
/// One tiny training run (decoder mode, prompt key p2, on a writable copy of clipseg-tiny), shared by
/// the tests of what eval, predict and info take from a run folder, and of the base-weights fingerprint.
/// </summary>
public sealed class TinyRunFixture : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("vlsm-run-settings-").FullName;
    public string Base => Path.Combine(Root, "base");
    public string Data => Path.Combine(Root, "data");
    public string Run => Path.Combine(Root, "run");
    public string Best => Path.Combine(Run, "best.safetensors");

    /// <summary>Same shape as <see cref="Base"/>, other weights (one tensor changed).</summary>
    public string OtherBase => Path.Combine(Root, "other-base");

    public CliResult Training { get; }

    public TinyRunFixture()
    {
        CopyFolder(Path.Combine(Fixtures.Parity, "clipseg-tiny"), Base);
        CopyFolder(Base, OtherBase);
        string weights = Path.Combine(OtherBase, BaseWeights.WeightsFile);
        using (var file = SafetensorsFile.Open(weights))
        {
            var tensors = file.LoadAll();
            string first = file.Names.Order(StringComparer.Ordinal).First(n => SafetensorsDtypes.IsFloat(file.Entry(n).Dtype));
            using (var one = 0.01.ToScalar()) tensors[first].add_(one);
            file.Dispose();
            SafetensorsWriter.Save(weights, tensors.Select(kv => kv), new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var t in tensors.Values) t.Dispose();
        }
        SyntheticDataset.Generate(Data, new SynthOptions(12, 3, Size: 64, Style: SynthStyle.Medical), null);
        Training = CliRunner.Run("train", "--model", Base, "--data", Data, "--mode", "decoder", "--epochs", "1", "--batch-size", "8", "--prompt", "p2", "--out", Run);
    }

    public static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from))
        {
            string target = Path.Combine(to, Path.GetFileName(f));
            File.Copy(f, target);
            File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
    }

    public void Dispose()
    {
        foreach (var d in Directory.GetDirectories(Root, "*", SearchOption.AllDirectories))
            File.SetUnixFileMode(d, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.Delete(Root, recursive: true);
    }
}

public sealed class RunSettingsCliTests(TinyRunFixture run) : IClassFixture<TinyRunFixture>, IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-run-settings-t-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private void Trained() => Assert.True(run.Training.ExitCode == 0, run.Training.Stdout + run.Training.Stderr);

    private static double Dice(CliResult r) => JsonNode.Parse(r.Stdout)!["dice"]!["mean"]!.GetValue<double>();

    [Fact]
    public void TrainingInBf16WhereBf16IsSlowSaysSoAndTrains()
    {
        Trained();
        string bf16Run = Path.Combine(tmp, "bf16");
        var r = CliRunner.Run("train", "--model", run.Base, "--data", run.Data, "--mode", "decoder", "--epochs", "1", "--batch-size", "8", "--prompt", "p2", "--precision", "bf16", "--out", bf16Run);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.True(File.Exists(Path.Combine(bf16Run, "best.safetensors")));
        // The note (rates, and the fix) where bf16 products run on libtorch's reference kernel (AVX2-only CPUs), and only there; never in fp32.
        const string note = "note: bf16 is slow on this CPU";
        Assert.DoesNotContain(note, run.Training.Stdout + run.Training.Stderr);
        Assert.Equal(Vlsm.Platform.Bf16Speed.IsSlow, r.Stderr.Contains(note, StringComparison.Ordinal));
        if (Vlsm.Platform.Bf16Speed.IsSlow) Assert.Contains("Use --precision fp32", r.Stderr);
    }

    [Fact]
    public void EvalRunUsesThePromptTheRunTrainedOnAndSaysSo()
    {
        Trained();
        var fromRun = CliRunner.Run("eval", "--run", run.Run, "--data", run.Data, "--split", "val", "--json");
        Assert.True(fromRun.ExitCode == 0, fromRun.Stderr);
        var summary = JsonNode.Parse(fromRun.Stdout)!;
        Assert.Equal("p2", summary["prompt"]!.GetValue<string>());
        Assert.Contains("prompt p2 (run)", fromRun.Stderr);
        Assert.Contains(Path.Combine(run.Run, "config.yaml"), fromRun.Stderr);

        // The same numbers as naming the key and the files by hand; a flag still wins over the run.
        var byHand = CliRunner.Run("eval", "--model", run.Base, "--adapter", run.Best, "--data", run.Data, "--split", "val", "--prompt", "p2", "--json");
        Assert.True(byHand.ExitCode == 0, byHand.Stderr);
        Assert.Equal(Dice(byHand), Dice(fromRun));
        var overridden = CliRunner.Run("eval", "--run", run.Run, "--data", run.Data, "--split", "val", "--prompt", "p1", "--json");
        Assert.Equal("p1", JsonNode.Parse(overridden.Stdout)!["prompt"]!.GetValue<string>());
        Assert.Contains("prompt p1,", overridden.Stderr);
    }

    [Fact]
    public void ARunThatRecordsAThresholdAndMaskThresholdIsEvaluatedWithThem()
    {
        Trained();
        string copy = Path.Combine(tmp, "run-copy");
        Directory.CreateDirectory(copy);
        File.Copy(run.Best, Path.Combine(copy, "best.safetensors"));
        var config = File.ReadAllLines(Path.Combine(run.Run, "config.yaml")).Where(l => !l.StartsWith("mask_threshold:")).ToList();
        config.Add("mask_threshold: 100");
        config.Add("threshold: 0.75");
        File.WriteAllLines(Path.Combine(copy, "config.yaml"), config);
        var r = CliRunner.Run("eval", "--run", copy, "--data", run.Data, "--split", "val", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var summary = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(0.75, summary["threshold"]!.GetValue<double>(), 6);
        Assert.Contains("threshold 0.75 (run)", r.Stderr);
        Assert.Contains("mask threshold 100 (run)", r.Stderr);
        var flags = CliRunner.Run("eval", "--run", copy, "--data", run.Data, "--split", "val", "--threshold", "0.5", "--mask-threshold", "127", "--json");
        Assert.Contains("threshold 0.5,", flags.Stderr);
        Assert.Contains("mask threshold 127,", flags.Stderr);
    }

    [Fact]
    public void PredictRunNeedsATextWhenTheRunTrainedOnAKey()
    {
        Trained();
        string image = Directory.GetFiles(Path.Combine(run.Data, "images")).Order(StringComparer.Ordinal).First();
        var r = CliRunner.Run("predict", "--run", run.Run, "--out", Path.Combine(tmp, "p"), image);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("prompt key p2", r.Stderr);
        Assert.DoesNotContain("no such image", r.Stderr);

        var ok = CliRunner.Run("predict", "--run", run.Run, "--prompt", "a round polyp", "--out", Path.Combine(tmp, "p"), image);
        Assert.True(ok.ExitCode == 0, ok.Stderr);
        Assert.Contains("prompt \"a round polyp\"", ok.Stdout);
        Assert.Contains(run.Best, ok.Stdout);
    }

    [Fact]
    public void TheRunRecordsTheBaseWeightsFingerprintAndCachesItBesideTheModel()
    {
        Trained();
        string expected = BaseWeights.Fingerprint(run.Base)!;
        Assert.StartsWith("sha256:", expected);
        Assert.Equal(71, expected.Length);
        using (var best = SafetensorsFile.Open(run.Best)) Assert.Equal(expected, BaseWeights.Recorded(best));
        var cache = JsonNode.Parse(File.ReadAllText(Path.Combine(run.Base, BaseWeights.CacheFile)))!;
        Assert.Equal(expected, cache[BaseWeights.MetadataKey]!.GetValue<string>());
        Assert.Equal(new FileInfo(Path.Combine(run.Base, BaseWeights.WeightsFile)).Length, cache["size"]!.GetValue<long>());
        Assert.NotEqual(expected, BaseWeights.Fingerprint(run.OtherBase));

        var info = CliRunner.Run("info", "--run", run.Run, "--json");
        Assert.True(info.ExitCode == 0, info.Stderr);
        var o = JsonNode.Parse(info.Stdout)!;
        Assert.Equal("CLIPSeg", o["family"]!.GetValue<string>());
        Assert.Equal("decoder", o["mode"]!.GetValue<string>());
        Assert.Equal("p2", o["prompt"]!.GetValue<string>());
        Assert.Equal(1, o["epochs_completed"]!.GetValue<int>());
        Assert.Equal(expected, o["base_weights"]!.GetValue<string>());
        Assert.True(o["base_weights_match"]!.GetValue<bool>());
        var metrics = File.ReadAllLines(Path.Combine(run.Run, "metrics.csv"));
        int column = Array.IndexOf(metrics[0].Split(','), "val_dice");
        Assert.Equal(double.Parse(metrics[1].Split(',')[column], System.Globalization.CultureInfo.InvariantCulture), o["best_val_dice"]!.GetValue<double>());

        var adapterInfo = CliRunner.Run("info", "--adapter", run.Best);
        Assert.True(adapterInfo.ExitCode == 0, adapterInfo.Stderr);
        Assert.Contains(expected, adapterInfo.Stdout);
        Assert.Contains("CLIPSeg", adapterInfo.Stdout);
    }

    [Fact]
    public void AnotherBaseOfTheSameShapeIsRefusedUnlessAllowed()
    {
        Trained();
        string image = Directory.GetFiles(Path.Combine(run.Data, "images")).Order(StringComparer.Ordinal).First();
        string mine = BaseWeights.Short(BaseWeights.Fingerprint(run.Base)!), other = BaseWeights.Short(BaseWeights.Fingerprint(run.OtherBase)!);
        foreach (var args in new[]
        {
            new[] { "eval", "--model", run.OtherBase, "--adapter", run.Best, "--data", run.Data, "--prompt", "p2" },
            new[] { "eval", "--model", run.OtherBase, "--run", run.Run, "--data", run.Data },
            new[] { "predict", "--model", run.OtherBase, "--adapter", run.Best, "--prompt", "polyp", "--out", Path.Combine(tmp, "o"), image },
        })
        {
            var refused = CliRunner.Run(args);
            Assert.True(refused.ExitCode == 2, string.Join(' ', args) + "\n" + refused.Stdout + refused.Stderr);
            Assert.Contains(mine, refused.Stderr);
            Assert.Contains(other, refused.Stderr);
            Assert.Contains(run.OtherBase, refused.Stderr);
            Assert.Contains("--allow-other-base", refused.Stderr);
        }
        var allowed = CliRunner.Run("predict", "--model", run.OtherBase, "--adapter", run.Best, "--prompt", "polyp", "--allow-other-base", "--out", Path.Combine(tmp, "o"), image);
        Assert.True(allowed.ExitCode == 0, allowed.Stderr);
        Assert.Contains("applied anyway", allowed.Stderr);
        var same = CliRunner.Run("predict", "--model", run.Base, "--adapter", run.Best, "--prompt", "polyp", "--out", Path.Combine(tmp, "o2"), image);
        Assert.True(same.ExitCode == 0, same.Stderr);
        Assert.DoesNotContain("note:", same.Stderr);
    }

    [Fact]
    public void WeightsWithoutAFingerprintLoadWithANote()
    {
        Trained();
        string old = Path.Combine(tmp, "old.safetensors");
        using (var file = SafetensorsFile.Open(run.Best))
        {
            var tensors = file.LoadAll();
            var metadata = file.Metadata.Where(kv => kv.Key != BaseWeights.MetadataKey).ToDictionary();
            SafetensorsWriter.Save(old, tensors.Select(kv => kv), metadata);
            foreach (var t in tensors.Values) t.Dispose();
        }
        string image = Directory.GetFiles(Path.Combine(run.Data, "images")).Order(StringComparer.Ordinal).First();
        var r = CliRunner.Run("predict", "--model", run.OtherBase, "--adapter", old, "--prompt", "polyp", "--out", Path.Combine(tmp, "o"), image);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var notes = r.Stderr.Split('\n').Where(l => l.StartsWith("note:")).ToArray();
        Assert.Single(notes);
        Assert.Contains("records no base-weights fingerprint", notes[0]);
    }

    [Fact]
    public void TheFingerprintCacheIsKeyedBySizeAndTimeAndSkippedInAReadOnlyFolder()
    {
        string dir = Path.Combine(tmp, "model");
        TinyRunFixture.CopyFolder(Path.Combine(Fixtures.Parity, "clipseg-tiny"), dir);
        string weights = Path.Combine(dir, BaseWeights.WeightsFile), cache = Path.Combine(dir, BaseWeights.CacheFile);
        string real = BaseWeights.Fingerprint(dir)!;
        Assert.True(File.Exists(cache));
        Assert.Equal(real, BaseWeights.Compute(weights));

        // A changed weights file (new mtime) is hashed again, never served from a stale cache.
        var bytes = File.ReadAllBytes(weights);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(weights, bytes);
        File.SetLastWriteTimeUtc(weights, DateTime.UtcNow.AddMinutes(1));
        string changed = BaseWeights.Fingerprint(dir)!;
        Assert.NotEqual(real, changed);
        Assert.Equal(changed, JsonNode.Parse(File.ReadAllText(cache))![BaseWeights.MetadataKey]!.GetValue<string>());

        string readOnly = Path.Combine(tmp, "read-only");
        TinyRunFixture.CopyFolder(Path.Combine(Fixtures.Parity, "clipseg-tiny"), readOnly);
        File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        try
        {
            Assert.Equal(real, BaseWeights.Fingerprint(readOnly));
            Assert.False(File.Exists(Path.Combine(readOnly, BaseWeights.CacheFile)));
        }
        finally
        {
            File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }
}
