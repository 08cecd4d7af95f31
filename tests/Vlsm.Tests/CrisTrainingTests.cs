using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.Data;
using Vlsm.Data.Synthetic;
using Vlsm.IO;
using Vlsm.Models.Cris;
using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>A tiny CRIS (the parity weights at 64 px) and a small synthetic dataset, shared by the CRIS training tests.</summary>
public sealed class CrisTrainingFixture : IDisposable
{
    public CrisTrainingFixture()
    {
        Root = Directory.CreateTempSubdirectory("vlsm-cris-training-").FullName;
        Model = Path.Combine(Root, "cris-64");
        Directory.CreateDirectory(Model);
        var tiny = Path.Combine(Fixtures.Parity, "cris-tiny");
        foreach (var f in new[] { "model.safetensors", "vocab.json", "merges.txt" }) File.Copy(Path.Combine(tiny, f), Path.Combine(Model, f));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(tiny, "config.json")))!;
        config["cris"]!["img_size"] = 64;
        File.WriteAllText(Path.Combine(Model, "config.json"), config.ToJsonString());
        Data = Path.Combine(Root, "data");
        SyntheticDataset.Generate(Data, new SynthOptions(16, 3, Size: 64, Style: SynthStyle.Natural), null);
    }

    public string Root { get; }
    public string Model { get; }
    public string Data { get; }

    public TrainConfig Config(string mode, int epochs = 1)
    {
        var c = new TrainConfig { Model = Model, Data = new() { Data }, Mode = mode, Lr = 1e-3, BatchSize = 8, Prompt = "p1", Seed = 5 };
        c.SetEpochs(epochs);
        return c;
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

[Collection(GlobalRngCollection.Name)]
public sealed class CrisTrainingTests : IClassFixture<CrisTrainingFixture>
{
    private readonly CrisTrainingFixture fx;

    public CrisTrainingTests(CrisTrainingFixture fx) => this.fx = fx;

    private string NewDir(string name) => Path.Combine(fx.Root, name + "-" + Guid.NewGuid().ToString("N")[..8]);

    [Fact]
    public void TrainEvalAndPredictRunEndToEndFromTheCommandLine()
    {
        string run = NewDir("run");
        var train = CliRunner.Run("train", "--model", fx.Model, "--data", fx.Data, "--preset", "cris", "--epochs", "2", "--batch-size", "8", "--prompt", "p1", "--out", run);
        Assert.True(train.ExitCode == 0, train.Stdout + train.Stderr);
        Assert.Contains("CRIS full on data", train.Stdout);
        Assert.Contains("5,266,201 trainable parameters (100.00 %)", train.Stdout); // all but CLIP's unused logit_scale
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "metrics.csv")).Length);
        var yaml = File.ReadAllText(Path.Combine(run, "config.yaml"));
        Assert.Contains("mode: full", yaml);
        Assert.Contains("lr: 0.0001", yaml);
        Assert.Contains("cris_pad_mask: reference", yaml);
        using (var best = SafetensorsFile.Open(Path.Combine(run, "best.safetensors")))
        {
            Assert.Equal("full", best.Metadata["kind"]);
            Assert.Equal(301, best.Names.Count); // the state dict but logit_scale, BatchNorm statistics included
        }

        int testRecords = AnnotationFile.Read(Path.Combine(fx.Data, "anns", "test.json")).Count;
        var eval = CliRunner.Run("eval", "--model", fx.Model, "--run", run, "--data", fx.Data, "--threshold", "0.35", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stdout + eval.Stderr);
        var summary = JsonNode.Parse(eval.Stdout)!;
        Assert.Equal(testRecords, summary["n"]!.GetValue<int>());
        Assert.Equal(0.35, summary["threshold"]!.GetValue<double>(), 6);
        double dice = summary["dice"]!["mean"]!.GetValue<double>();
        Assert.InRange(dice, 0, 1);

        // The threshold reaches CRIS's probabilities: above every probability nothing is predicted.
        var none = JsonNode.Parse(CliRunner.Run("eval", "--model", fx.Model, "--run", run, "--data", fx.Data, "--threshold", "1", "--json").Stdout)!;
        Assert.Equal(0.0, none["dice"]!["mean"]!.GetValue<double>());
        Assert.Equal(testRecords, none["hd95"]!["missing"]!.GetValue<int>());

        string preds = NewDir("preds");
        string image = Directory.GetFiles(Path.Combine(fx.Data, "images")).Order(StringComparer.Ordinal).First();
        var predict = CliRunner.Run("predict", "--model", fx.Model, "--adapter", Path.Combine(run, "best.safetensors"), "--prompt", "a red circle",
            "--cris-pad-mask", "fixed", "--probs", "--out", preds, image);
        Assert.True(predict.ExitCode == 0, predict.Stdout + predict.Stderr);
        string stem = Path.Combine(preds, Path.GetFileNameWithoutExtension(image));
        Assert.True(File.Exists(stem + ".mask.png"));
        var (shape, probs) = Npy.ReadFloat32(stem + ".probs.npy");
        Assert.Equal(new long[] { 64, 64 }, shape);
        Assert.All(probs, p => Assert.InRange(p, 0f, 1f));
    }

    [Fact]
    public void DecoderModeLeavesTheBackboneAsItWasAndFullModeTrainsIt()
    {
        using var before = CrisLoader.Load(fx.Model);
        var start = before.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());

        var decoderRun = new RunFolder(NewDir("decoder"));
        new Trainer(fx.Config("decoder"), decoderRun, new SilentObserver()).Run(resume: false);
        using var decoded = CrisLoader.Load(fx.Model);
        var decoderMode = CrisCheckpointFile.Apply(decoded, decoderRun.BestFile);
        Assert.Equal(Vlsm.Models.FineTuneMode.Decoder, decoderMode);
        using (var file = SafetensorsFile.Open(decoderRun.BestFile))
            Assert.All(file.Names, n => Assert.True(CrisModel.HeadPrefixes.Any(p => n.StartsWith(p)), n));
        var afterDecoder = decoded.state_dict();
        Assert.All(start.Where(kv => kv.Key.StartsWith("backbone.")), kv => Assert.True(Bitwise.Equal(kv.Value, afterDecoder[kv.Key]), kv.Key));
        Assert.False(Bitwise.Equal(start["neck.txt_proj.0.weight"], afterDecoder["neck.txt_proj.0.weight"]));
        Assert.False(Bitwise.Equal(start["neck.aggr.1.running_mean"], afterDecoder["neck.aggr.1.running_mean"]));

        var fullRun = new RunFolder(NewDir("full"));
        new Trainer(fx.Config("full"), fullRun, new SilentObserver()).Run(resume: false);
        using var full = CrisLoader.Load(fx.Model);
        Assert.Equal(Vlsm.Models.FineTuneMode.Full, CrisCheckpointFile.Apply(full, fullRun.BestFile));
        var afterFull = full.state_dict();
        Assert.False(Bitwise.Equal(start["backbone.visual.conv1.weight"], afterFull["backbone.visual.conv1.weight"]));
        Assert.False(Bitwise.Equal(start["backbone.visual.bn1.running_var"], afterFull["backbone.visual.bn1.running_var"]));
        Assert.True(afterFull["backbone.visual.bn1.num_batches_tracked"].item<long>() > start["backbone.visual.bn1.num_batches_tracked"].item<long>());
        foreach (var t in start.Values) t.Dispose();
    }

    [Fact]
    public void DecoderModeFeatureCacheGivesTheSameLossesAsRecomputing()
    {
        // Same weights, same batches: the loss from cached backbone outputs (filled in epoch 0, hit
        // in epoch 1) against the loss from running the backbone on the batch.
        var config = fx.Config("decoder");
        using var cached = Session(config, "cached");
        config.FeatureCache = false;
        using var direct = Session(config, "direct");
        cached.Model.SetTraining(false);
        direct.Model.SetTraining(false);
        var records = MedvlsmDataset.Open(fx.Data).RequiredRecords("train");
        var loader = new BatchLoader(records, new SampleLoader(cached.Model.Preprocessor, new SampleOptions(), PromptChoice.Parse("random")),
            new BatchLoaderOptions { BatchSize = 8, Seed = 3 });
        var loss = new DiceBceLoss();
        int compared = 0;
        for (int epoch = 0; epoch < 2; epoch++)
        {
            foreach (var batch in loader.Epoch(epoch))
            {
                using var scope = NewDisposeScope();
                using var _ = inference_mode();
                var (l1, t1) = cached.Forward(batch);
                var (l2, t2) = direct.Forward(batch);
                double a = loss.Compute(l1, t1).item<float>();
                double b = loss.Compute(l2, t2).item<float>();
                Assert.True(Math.Abs(a - b) < 1e-5, $"epoch {epoch}: cached {a} vs recomputed {b}");
                compared++;
            }
        }
        Assert.Equal(2 * loader.BatchCount, compared);
        long hits = ((CrisTraining)cached.Model).CacheHits;
        Assert.True(hits >= records.Count, $"the second epoch should hit the cache ({hits} hits)");
        Assert.Equal(0, ((CrisTraining)direct.Model).CacheHits);
    }

    private TrainingSession Session(TrainConfig config, string name)
    {
        var plan = TrainingPlan.Resolve(config);
        var run = new RunFolder(NewDir(name));
        return new TrainingSession(plan, TrainingSession.Open(plan, run), run, new SilentObserver());
    }

    /// <summary>Cancels the run once an epoch is complete, as a killed process would stop.</summary>
    private sealed class StopAfterFirstEpoch(CancellationTokenSource cts) : ITrainingObserver
    {
        public void RunStarted(string description) { }
        public void EpochStarted(int epoch, int maxEpochs, int steps) { }
        public void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond) { }
        public void EpochCompleted(EpochMetrics metrics, bool best) => cts.Cancel();
        public void Message(string text) { }
    }

    [Fact]
    public void ThreeEpochsOfFullTrainingStayFiniteAndLowerTheLoss()
    {
        // The neck's CoordConv (66 input channels here) gave NaN and order-1 errors on CPUs with
        // oneDNN's convolution bug until it went through the safe convolution path.
        var run = new RunFolder(NewDir("finite"));
        new Trainer(fx.Config("full", 3), run, new SilentObserver()).Run(false);
        var rows = run.ReadMetrics();
        Assert.Equal(3, rows.Count);
        foreach (var r in rows)
            Assert.True(double.IsFinite(r.TrainLoss) && double.IsFinite(r.ValLoss) && double.IsFinite(r.ValDice), $"epoch {r.Epoch}: {r.ToCsv()}");
        Assert.True(rows[^1].TrainLoss < rows[0].TrainLoss, string.Join(" | ", rows.Select(r => r.ToCsv())));
    }

    [Fact]
    public void AResumedFullRunEndsLikeAnUninterruptedOne()
    {
        // Full mode: dropout in the decoder, BatchNorm statistics everywhere, AdamW state.
        var straight = new RunFolder(NewDir("straight"));
        new Trainer(fx.Config("full", 3), straight, new SilentObserver()).Run(false);

        var interrupted = new RunFolder(NewDir("interrupted"));
        using (var cts = new CancellationTokenSource())
            Assert.ThrowsAny<OperationCanceledException>(() => new Trainer(fx.Config("full", 3), interrupted, new StopAfterFirstEpoch(cts)).Run(false, cts.Token));
        Assert.Single(interrupted.ReadMetrics());
        new Trainer(fx.Config("full", 3), interrupted, new SilentObserver()).Run(resume: true);

        static string[] WithoutSeconds(RunFolder r) => File.ReadAllLines(r.MetricsFile).Select(l => string.Join(',', l.Split(',')[..^1])).ToArray();
        Assert.Equal(WithoutSeconds(straight), WithoutSeconds(interrupted));
        Assert.Equal(File.ReadAllBytes(straight.BestFile), File.ReadAllBytes(interrupted.BestFile));
        Assert.Equal(File.ReadAllBytes(straight.LastFile), File.ReadAllBytes(interrupted.LastFile));
    }

    [Theory]
    [InlineData("dense", "fp32", "CRIS trains in full or decoder mode")]
    [InlineData("shallow", "fp32", "CRIS trains in full or decoder mode")]
    [InlineData("full", "bf16", "CRIS trains in fp32")]
    public void UnsupportedSettingsAreRefusedBeforeTraining(string mode, string precision, string expected)
    {
        var config = fx.Config(mode);
        config.Precision = precision;
        var run = new RunFolder(NewDir("refused"));
        var e = Assert.Throws<VlsmException>(() => new Trainer(config, run, new SilentObserver()).Run(false));
        Assert.Contains(expected, e.Message);
        Assert.False(Directory.Exists(run.Path));
    }

    [Fact]
    public void CrisPadMaskIsRefusedForClipSeg()
    {
        var r = CliRunner.Run("predict", "--model", Path.Combine(Fixtures.Parity, "clipseg-tiny"), "--prompt", "a polyp", "--cris-pad-mask", "fixed",
            "--out", NewDir("x"), Directory.GetFiles(Path.Combine(fx.Data, "images"))[0]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--cris-pad-mask applies to CRIS models", r.Stderr);
    }

    [Fact]
    public void AOneSampleTrainingBatchUsesTheRunningStatisticsOfTheTextGate()
    {
        using var model = CrisLoader.Load(fx.Model);
        model.train();
        using var scope = NewDisposeScope();
        var logits = model.Forward(randn(1, 3, 64, 64), full(1, 77, CrisModel.EndId, dtype: ScalarType.Int64));
        Assert.Equal(new long[] { 1, 64, 64 }, logits.shape);
        Assert.True(logits.isfinite().all().item<bool>());
    }
}
