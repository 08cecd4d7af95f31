using TorchSharp;
using Vlsm.Data;
using Vlsm.Data.Synthetic;
using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Models.Registry;
using Vlsm.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>Synthetic data at 64 px shared by the conformance tests.</summary>
public sealed class ConformanceFixture : IDisposable
{
    public ConformanceFixture()
    {
        Root = Directory.CreateTempSubdirectory("vlsm-conformance-").FullName;
        Data = Path.Combine(Root, "data");
        SyntheticDataset.Generate(Data, new SynthOptions(16, 3, Size: 64, Style: SynthStyle.Natural), null);
    }

    public string Root { get; }
    public string Data { get; }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

/// <summary>
/// What every registered model family must do, run for each family in <see cref="ModelFamilies.All"/>
/// with no family-specific code, in the manner of HF's ModelTesterMixin: parity on every fixture
/// folder of the family, a round trip of its trained-weights file, strict-load refusals that name the
/// key, trainable-parameter counts that agree per mode, a training step that lowers the loss on a
/// fixed batch, and a killed-then-resumed run equal to an uninterrupted one.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class FamilyConformanceTests : IClassFixture<ConformanceFixture>
{
    private readonly ConformanceFixture fx;
    private readonly ITestOutputHelper output;

    public FamilyConformanceTests(ConformanceFixture fx, ITestOutputHelper output)
    {
        this.fx = fx;
        this.output = output;
    }

    public static IEnumerable<object[]> Families() => ModelFamilies.All.Select(f => new object[] { f.ModelType });

    /// <summary>Fixture folders of a family: every parity folder (shared and $VLSM_PARITY_DIR) whose config.json names it.</summary>
    private static List<string> FixtureFolders(IModelFamily family) => Fixtures.ParityFoldersOf(family).Select(o => (string)o[0]).ToList();

    private static string SmallestFixture(IModelFamily family) =>
        FixtureFolders(family).OrderBy(d => new DirectoryInfo(d).EnumerateFiles().Sum(f => f.Length)).First();

    private string NewDir(string name) => Path.Combine(fx.Root, name + "-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>
    /// Small adapters where the mode has them. Shallow adapters leave out the language part: on a tiny
    /// fixture the text width may differ from the projection width that shallow L adds into.
    /// </summary>
    private static FineTuneSpec Spec(FineTuneMode mode) => mode switch
    {
        FineTuneMode.Shallow => FineTuneSpec.Create(mode, Parts(mode), adapterDim: 8, condAdapterDim: 8),
        FineTuneMode.Dense => FineTuneSpec.Create(mode, Parts(mode), adapterDim: 8, condAdapterDim: 8),
        _ => FineTuneSpec.Create(mode),
    };

    private static string? Parts(FineTuneMode mode) => mode switch
    {
        FineTuneMode.Shallow => "vc",
        FineTuneMode.Dense => "vlc",
        _ => null,
    };

    private TrainConfig Config(IModelFamily family, FineTuneMode mode, int epochs)
    {
        var c = new TrainConfig
        {
            Model = SmallestFixture(family), Data = [fx.Data], Mode = FineTuneSpec.ModeName(mode), Lr = family.DefaultLearningRate(mode),
            BatchSize = 8, Seed = 3, Prompt = family.TakesText ? "p1" : PromptChoice.RandomSpec,
        };
        if (mode is FineTuneMode.Shallow or FineTuneMode.Dense)
        {
            c.Parts = Parts(mode);
            c.AdapterDim = 8;
            c.CondAdapterDim = 8;
        }
        c.SetEpochs(epochs);
        return c;
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void EveryFixtureFolderMatchesItsReference(string modelType)
    {
        var family = ModelFamilies.ForType(modelType);
        var folders = FixtureFolders(family);
        Assert.NotEmpty(folders);
        foreach (var dir in folders)
        {
            var results = family.Verify(dir, Path.Combine(dir, "reference.safetensors"), null);
            Assert.NotEmpty(results);
            foreach (var r in results)
            {
                output.WriteLine($"{Path.GetFileName(dir)} {r.Name}: {r.MaxAbsDiff:g3}");
                Assert.True(r.Within(1e-4), $"{dir}: {r.Name}: {r.Problem ?? r.MaxAbsDiff.ToString("g3")}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void TrainedWeightsRoundTripInEveryMode(string modelType)
    {
        var family = ModelFamilies.ForType(modelType);
        string dir = SmallestFixture(family);
        foreach (var mode in family.Modes)
        {
            string file = Path.Combine(NewDir("weights"), "trained.safetensors");
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            var setup = new TrainingSetup { Spec = Spec(mode), CacheDirectory = NewDir("cache"), FeatureCache = false };
            Dictionary<string, Tensor> saved;
            manual_seed(1);
            using (var a = family.OpenTrainable(new ModelRequest { Directory = dir }, setup))
            {
                // Move every trained tensor away from its initial value, so loading cannot pass by accident.
                using (no_grad())
                    foreach (var (_, parameter) in a.TrainableNamed()) parameter.add_(rand_like(parameter).sub_(0.5).mul_(0.01));
                a.Save(file, null);
                saved = a.TrainableNamed().ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
            }
            manual_seed(2);
            using (var b = family.OpenTrainable(new ModelRequest { Directory = dir }, setup))
            {
                b.LoadInto(file);
                var loaded = b.TrainableNamed().ToDictionary(p => p.Name, p => p.Parameter);
                Assert.Equal(saved.Keys.Order(), loaded.Keys.Order());
                foreach (var (name, tensor) in saved)
                    Assert.True(Bitwise.Equal(tensor, loaded[name]), $"{modelType} {mode}: {name} differs after the round trip");
            }
            // The file is also what prediction applies: it loads and gives finite logits.
            using var segmenter = family.OpenSegmenter(new ModelRequest { Directory = dir, Weights = file });
            using var _ = inference_mode();
            var p = segmenter.Preprocessor;
            using var features = segmenter.EncodeImages(randn(1, 3, p.Height, p.Width));
            using var logits = segmenter.Decode(features, family.TakesText ? ["a red circle"] : null);
            Assert.True(logits.isfinite().all().item<bool>(), $"{modelType} {mode}: logits not finite");
            foreach (var t in saved.Values) t.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void StrictLoadingNamesTheKeyAtFault(string modelType)
    {
        var family = ModelFamilies.ForType(modelType);
        string source = SmallestFixture(family);
        Dictionary<string, Tensor> weights;
        using (var file = SafetensorsFile.Open(Path.Combine(source, "model.safetensors"))) weights = file.LoadAll();
        string victim = weights.Keys.Where(k => k.EndsWith(".weight", StringComparison.Ordinal) && weights[k].dim() >= 2).Order(StringComparer.Ordinal).First();

        void Refused(string what, Dictionary<string, Tensor> tensors, string expected)
        {
            string dir = NewDir(what);
            Directory.CreateDirectory(dir);
            foreach (var f in Directory.EnumerateFiles(source).Where(f => Path.GetFileName(f) != "model.safetensors"))
                File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            SafetensorsWriter.Save(Path.Combine(dir, "model.safetensors"), tensors, null);
            var e = Assert.Throws<VlsmException>(() => family.OpenSegmenter(new ModelRequest { Directory = dir }).Dispose());
            output.WriteLine($"{what}: {e.Message}");
            Assert.Contains(expected, e.Message);
        }

        Refused("missing", weights.Where(kv => kv.Key != victim).ToDictionary(), victim);
        Refused("unexpected", new Dictionary<string, Tensor>(weights) { ["decoder.not_a_parameter"] = zeros(3) }, "decoder.not_a_parameter");
        var reshaped = new Dictionary<string, Tensor>(weights) { [victim] = zeros(weights[victim].shape[0] + 1, weights[victim].numel() / weights[victim].shape[0]) };
        Refused("shape", reshaped, victim);
        foreach (var t in weights.Values) t.Dispose();
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void TrainableCountsAgreeInEveryMode(string modelType)
    {
        var family = ModelFamilies.ForType(modelType);
        string dir = SmallestFixture(family);
        var counts = new Dictionary<FineTuneMode, long>();
        foreach (var mode in family.Modes)
        {
            var spec = Spec(mode);
            var summary = family.Describe(ModelSource.Folder(dir), spec);
            using var model = family.OpenTrainable(new ModelRequest { Directory = dir }, new TrainingSetup { Spec = spec, CacheDirectory = NewDir("cache"), FeatureCache = false });
            long named = model.TrainableNamed().Sum(p => p.Parameter.numel());
            output.WriteLine($"{modelType} {spec}: {summary.TrainableParameters:N0} of {summary.TotalParameters:N0}");
            Assert.Equal(summary.TrainableParameters, model.TrainableParameterCount);
            Assert.Equal(model.TrainableParameterCount, named);
            Assert.Equal(summary.TotalParameters, model.TotalParameterCount);
            Assert.InRange(named, 1, summary.TotalParameters);
            Assert.Equal(summary.TotalParameters, summary.Components.Sum(c => c.Parameters));
            counts[mode] = named;
        }
        if (counts.TryGetValue(FineTuneMode.Decoder, out var decoder) && counts.TryGetValue(FineTuneMode.Full, out var full))
            Assert.True(decoder < full, $"decoder {decoder} vs full {full}");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void ATrainingStepLowersTheLossOnAFixedBatch(string modelType)
    {
        var family = ModelFamilies.ForType(modelType);
        var config = Config(family, family.Modes[0], 1);
        config.Lr = 1e-4;
        var plan = TrainingPlan.Resolve(config);
        var run = new RunFolder(NewDir("step"));
        using var session = new TrainingSession(plan, TrainingSession.Open(plan, run), run, new SilentObserver());
        var records = MedvlsmDataset.Open(fx.Data).RequiredRecords("train");
        var loader = new BatchLoader(records, new SampleLoader(session.Model.Preprocessor, new SampleOptions(), PromptChoice.Parse("p1")),
            new BatchLoaderOptions { BatchSize = 8, Shuffle = false });
        var batch = loader.Epoch(0).First();
        session.Model.SetTraining(true);

        double LossNow()
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            manual_seed(9); // the same dropout masks each time
            var (logits, target) = session.Forward(batch);
            return session.Loss.Compute(logits, target).item<float>();
        }

        double before = LossNow();
        manual_seed(9);
        session.TrainStep(batch);
        double after = LossNow();
        output.WriteLine($"{modelType} {FineTuneSpec.ModeName(family.Modes[0])}: loss {before:0.000000} -> {after:0.000000}");
        Assert.True(after < before, $"{modelType}: loss {before} before one step, {after} after");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void AKilledAndResumedRunEndsLikeAnUninterruptedOne(string modelType)
    {
        var family = ModelFamilies.ForType(modelType);
        var straight = new RunFolder(NewDir("straight"));
        new Trainer(Config(family, family.Modes[0], 2), straight, new SilentObserver()).Run(false);

        var interrupted = new RunFolder(NewDir("interrupted"));
        using (var cts = new CancellationTokenSource())
            Assert.ThrowsAny<OperationCanceledException>(() => new Trainer(Config(family, family.Modes[0], 2), interrupted, new CancelAfterEpoch(cts)).Run(false, cts.Token));
        Assert.Single(interrupted.ReadMetrics());
        new Trainer(Config(family, family.Modes[0], 2), interrupted, new SilentObserver()).Run(resume: true);

        static string[] WithoutSeconds(RunFolder r) => File.ReadAllLines(r.MetricsFile).Select(l => string.Join(',', l.Split(',')[..^1])).ToArray();
        Assert.Equal(WithoutSeconds(straight), WithoutSeconds(interrupted));
        Assert.Equal(File.ReadAllBytes(straight.BestFile), File.ReadAllBytes(interrupted.BestFile));
        Assert.Equal(File.ReadAllBytes(straight.LastFile), File.ReadAllBytes(interrupted.LastFile));
    }

    private sealed class CancelAfterEpoch(CancellationTokenSource cts) : ITrainingObserver
    {
        public void RunStarted(string description) { }
        public void EpochStarted(int epoch, int maxEpochs, int steps) { }
        public void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond) { }
        public void EpochCompleted(EpochMetrics metrics, bool best) => cts.Cancel();
        public void Message(string text) { }
    }
}
