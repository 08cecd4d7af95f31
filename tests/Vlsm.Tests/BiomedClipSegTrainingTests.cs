using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Data.Synthetic;
using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Models.BiomedClipSeg;
using Vlsm.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>Synthetic data (one object per scene) shared by the BiomedCLIPSeg training tests.</summary>
public sealed class BiomedClipSegTrainingFixture : IDisposable
{
    public BiomedClipSegTrainingFixture()
    {
        Root = Directory.CreateTempSubdirectory("vlsm-biomed-training-").FullName;
        Data = Path.Combine(Root, "data");
        SyntheticDataset.Generate(Data, new SynthOptions(96, 1, Size: 64, Style: SynthStyle.Natural), null);
    }

    public string Root { get; }
    public string Data { get; }
    public static string Model => Path.Combine(Fixtures.Parity, "biomedclipseg-tiny");

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

/// <summary>
/// BiomedCLIPSeg through the common commands: both reference presets and a dense adapter mode raise
/// validation Dice over 3 epochs on synthetic data; train, eval and predict run from the command line;
/// the feature caches serve the frozen towers; bf16 towers stay close to fp32.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class BiomedClipSegTrainingTests(BiomedClipSegTrainingFixture fx, ITestOutputHelper output) : IClassFixture<BiomedClipSegTrainingFixture>
{
    private string NewDir(string name) => Path.Combine(fx.Root, name + "-" + Guid.NewGuid().ToString("N")[..8]);

    private TrainConfig Config(string? preset, string? mode = null, string? parts = null)
    {
        var c = new TrainConfig();
        if (preset is not null) c.ApplyPreset(preset);
        c.Model = BiomedClipSegTrainingFixture.Model;
        c.Data = [fx.Data];
        c.Prompt = "p1";
        c.BatchSize = 4;
        c.Seed = 3;
        if (mode is not null)
        {
            c.Mode = mode;
            c.Parts = parts;
            c.Lr = BiomedClipSegFamily.Instance.DefaultLearningRate(FineTuneSpec.ParseMode(mode));
            c.AdapterDim = 16;
            c.CondAdapterDim = 16;
        }
        c.SetEpochs(3);
        return c;
    }

    private IReadOnlyList<double> ValidationDice(TrainConfig config, string name)
    {
        var run = new RunFolder(NewDir(name));
        var result = new Trainer(config, run, new SilentObserver()).Run(false);
        var dice = run.ReadMetrics().Select(m => m.ValDice).ToList();
        output.WriteLine($"{name}: before {result.StartValDice:0.0000}, epochs {string.Join(" ", dice.Select(d => d.ToString("0.0000")))}");
        Assert.Equal(3, dice.Count);
        return dice;
    }

    [Theory]
    [InlineData("biomed_clipseg")]
    [InlineData("biomed_clipseg_d")]
    public void AReferencePresetRaisesValidationDiceOverThreeEpochs(string preset)
    {
        var config = Config(preset);
        Assert.Equal(("decoder", 2e-4, 1e-3, "dice-ce", 0.1, 5), (config.Mode, config.Lr, config.WeightDecay, config.Loss, config.PlateauFactor, config.PlateauPatience));
        var dice = ValidationDice(config, preset);
        Assert.True(dice[1] > dice[0] && dice[2] > dice[1], $"{preset}: validation Dice {string.Join(", ", dice)}");
    }

    [Fact]
    public void DenseAdaptersRaiseValidationDiceOverThreeEpochs()
    {
        var dice = ValidationDice(Config(null, "dense", "vlc"), "dense-vlc");
        Assert.True(dice[2] > dice[0], $"dense vlc: validation Dice {string.Join(", ", dice)}");
    }

    [Fact]
    public void TrainEvalAndPredictRunFromTheCommandLine()
    {
        string run = NewDir("cli");
        var train = CliRunner.Run("train", "--model", BiomedClipSegTrainingFixture.Model, "--data", fx.Data, "--preset", "biomed_clipseg", "--epochs", "1",
            "--batch-size", "8", "--prompt", "p1", "--biomedclipseg-extract", "fixed", "--out", run);
        Assert.True(train.ExitCode == 0, train.Stdout + train.Stderr);
        Assert.Contains("BiomedCLIPSeg decoder", train.Stdout);
        var yaml = File.ReadAllText(Path.Combine(run, "config.yaml"));
        Assert.Contains("loss: dice-ce", yaml);
        Assert.Contains("biomedclipseg_extract: fixed", yaml);
        using (var best = SafetensorsFile.Open(Path.Combine(run, "best.safetensors")))
        {
            Assert.Equal("vlsm-biomedclipseg", best.Metadata["format"]);
            Assert.Equal("decoder", best.Metadata["kind"]);
            Assert.All(best.Names, n => Assert.StartsWith("decoder.", n));
        }

        int testRecords = AnnotationFile.Read(Path.Combine(fx.Data, "anns", "test.json")).Count;
        var eval = CliRunner.Run("eval", "--run", run, "--data", fx.Data, "--json");
        Assert.True(eval.ExitCode == 0, eval.Stdout + eval.Stderr);
        var summary = JsonNode.Parse(eval.Stdout)!;
        Assert.Equal(testRecords, summary["n"]!.GetValue<int>());
        Assert.InRange(summary["dice"]!["mean"]!.GetValue<double>(), 0, 1);

        string preds = NewDir("preds");
        string image = Directory.GetFiles(Path.Combine(fx.Data, "images")).Order(StringComparer.Ordinal).First();
        var predict = CliRunner.Run("predict", "--run", run, "--prompt", "a red circle", "--probs", "--precision", "bf16", "--out", preds, image);
        Assert.True(predict.ExitCode == 0, predict.Stdout + predict.Stderr);
        string stem = Path.Combine(preds, Path.GetFileNameWithoutExtension(image));
        Assert.True(File.Exists(stem + ".mask.png"));
        var (shape, probs) = Npy.ReadFloat32(stem + ".probs.npy");
        Assert.Equal(new long[] { 224, 224 }, shape); // probabilities at the network's resolution
        Assert.All(probs, p => Assert.InRange(p, 0f, 1f));

        var wrong = CliRunner.Run("predict", "--run", run, "--prompt", "a red circle", "--cris-pad-mask", "fixed", "--out", preds, image);
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("--cris-pad-mask applies to CRIS models", wrong.Stderr);
    }

    [Fact]
    public void FrozenTowersAreServedFromTheCacheAndEqualWhatTheyCompute()
    {
        var request = new ModelRequest { Directory = BiomedClipSegTrainingFixture.Model };
        var setup = new TrainingSetup { Spec = FineTuneSpec.Create(FineTuneMode.Decoder), CacheDirectory = NewDir("cache") };
        using var cached = (BiomedClipSegTraining)BiomedClipSegFamily.Instance.OpenTrainable(request, setup);
        using var direct = (BiomedClipSegTraining)BiomedClipSegFamily.Instance.OpenTrainable(request, setup with { FeatureCache = false });
        manual_seed(4);
        using var pixels = randn(2, 3, 224, 224);
        var batch = new ModelBatch(pixels, ["a red circle", "one polyp"], ["k0", "k1"]);
        using var _ = no_grad();
        using var first = cached.Forward(batch);
        using var second = cached.Forward(batch);
        using var uncached = direct.Forward(batch);
        // The second pass takes both images and both prompts from the caches.
        Assert.Equal(4, cached.CacheHits);
        Assert.True(Bitwise.Equal(first, second));
        double diff = first.sub(uncached).abs().max().item<float>();
        output.WriteLine($"cached vs computed: {diff:g3}");
        Assert.True(diff <= 1e-5, $"cached features change the logits by {diff}");
    }

    [Fact]
    public void Bf16TowersStayCloseToFp32()
    {
        manual_seed(6);
        using var pixels = randn(2, 3, 224, 224);
        Tensor Logits(ComputePrecision precision)
        {
            using var segmenter = BiomedClipSegFamily.Instance.OpenSegmenter(new ModelRequest { Directory = BiomedClipSegTrainingFixture.Model, Precision = precision });
            using var _ = inference_mode();
            using var features = segmenter.EncodeImages(pixels);
            return segmenter.Decode(features, ["a red circle", "one medium round polyp"]);
        }
        using var fp32 = Logits(ComputePrecision.Fp32);
        using var bf16 = Logits(ComputePrecision.Bf16);
        double diff = fp32.sub(bf16).abs().max().item<float>(), scale = fp32.abs().max().item<float>();
        output.WriteLine($"bf16 vs fp32: max |diff| {diff:g3} on logits up to {scale:g3}");
        Assert.Equal(ScalarType.Float32, bf16.dtype);
        Assert.True(diff > 0, "bf16 gave bit-identical logits: the towers did not run in bf16");
        Assert.True(diff < 0.05 * scale, $"bf16 moved the logits by {diff} (scale {scale})");
    }
}
