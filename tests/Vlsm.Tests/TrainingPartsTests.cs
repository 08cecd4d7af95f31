using TorchSharp;
using Vlsm.Training;
using static TorchSharp.torch;

namespace Vlsm.Tests;

public class TrainingPartsTests
{
    [Theory]
    [InlineData(6, 3)]     // 18 weights: the vector loop and its scalar tail
    [InlineData(300, 301)] // 90,300 weights: the fused update split across threads in chunks
    public void AdamWMatchesTorchSharpsAdamW(int inputs, int outputs)
    {
        manual_seed(1);
        using var a = nn.Linear(inputs, outputs);
        using var b = nn.Linear(inputs, outputs);
        using (no_grad())
            foreach (var ((_, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters())) pb.copy_(pa);
        using var ours = new AdamW(a.named_parameters().Select(p => (p.name, p.parameter)), lr: 1e-2, weightDecay: 1e-3);
        using var theirs = optim.AdamW(b.parameters(), lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-3);
        for (int step = 0; step < 5; step++)
        {
            using var scope = NewDisposeScope();
            var x = randn(4, inputs);
            ours.ZeroGrad();
            a.forward(x).pow(2).sum().backward();
            ours.StepOnce();
            theirs.zero_grad();
            b.forward(x).pow(2).sum().backward();
            theirs.step();
        }
        foreach (var ((n, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.True((pa - pb).abs().max().item<float>() < 1e-6f, n);
    }

    [Fact]
    public void AdamWStateRestoresToTheSameTrajectory()
    {
        manual_seed(2);
        using var a = nn.Linear(4, 2);
        using var b = nn.Linear(4, 2);
        using (no_grad())
            foreach (var ((_, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters())) pb.copy_(pa);
        var xs = Enumerable.Range(0, 6).Select(_ => randn(3, 4)).ToList();
        using var first = new AdamW(a.named_parameters().Select(p => (p.name, p.parameter)), lr: 1e-2);
        foreach (var x in xs.Take(3)) { first.ZeroGrad(); a.forward(x).sum().backward(); first.StepOnce(); }
        using (no_grad())
            foreach (var ((_, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters())) pb.copy_(pa);
        using var resumed = new AdamW(b.named_parameters().Select(p => (p.name, p.parameter)), lr: 1e-2);
        resumed.Restore(first.Step, first.StateTensors().ToDictionary(kv => kv.Key, kv => kv.Value.clone()));
        foreach (var x in xs.Skip(3))
        {
            first.ZeroGrad(); a.forward(x).sum().backward(); first.StepOnce();
            resumed.ZeroGrad(); b.forward(x).sum().backward(); resumed.StepOnce();
        }
        foreach (var ((n, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.True(Bitwise.Equal(pa, pb), n);
    }

    [Fact]
    public void AdamWRestoresWhenAParameterNeverHadAGradient()
    {
        // Full mode: logit_scale and the unused projection never reach the loss, so they have no moments.
        manual_seed(3);
        using var used = nn.Linear(4, 2);
        using var unused = nn.Linear(4, 2);
        var named = used.named_parameters().Select(p => ("used." + p.name, p.parameter))
            .Concat(unused.named_parameters().Select(p => ("unused." + p.name, p.parameter))).ToList();
        using var first = new AdamW(named, lr: 1e-2);
        first.ZeroGrad();
        used.forward(randn(3, 4)).sum().backward();
        first.StepOnce();
        var saved = first.StateTensors().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        Assert.Equal(4, saved.Count); // weight and bias of `used`, two moments each
        using var resumed = new AdamW(named, lr: 1e-2);
        resumed.Restore(first.Step, saved);
        Assert.Equal(saved.Keys.Order(), resumed.StateTensors().Select(kv => kv.Key).Order());

        var foreign = new Dictionary<string, Tensor>(saved) { ["other.weight.exp_avg"] = zeros(2, 4), ["other.weight.exp_avg_sq"] = zeros(2, 4) };
        using var strict = new AdamW(named, lr: 1e-2);
        var e = Assert.Throws<VlsmException>(() => strict.Restore(1, foreign));
        Assert.Contains("\"other.weight\"", e.Message);
    }

    [Fact]
    public void PlateauReducesAfterPatienceBadEpochs()
    {
        var s = new ReduceLrOnPlateau(factor: 0.3, patience: 2, threshold: 1e-4);
        double lr = 1.0;
        lr = s.Step(1.0, lr);      // best 1.0
        lr = s.Step(0.99995, lr);  // not below 1.0*(1-1e-4)=0.9999: bad 1
        lr = s.Step(1.2, lr);      // bad 2
        Assert.Equal(1.0, lr);
        lr = s.Step(1.0, lr);      // bad 3 > patience 2: reduce
        Assert.Equal(0.3, lr, 12);
        lr = s.Step(0.5, lr);      // improvement
        Assert.Equal(0.3, lr, 12);
        Assert.Equal(0, s.BadEpochs);
    }

    [Fact]
    public void EarlyStoppingNeedsMoreThanMinDelta()
    {
        var e = new EarlyStopping(patience: 2, minDelta: 1e-4);
        Assert.True(e.Observe(0.5));
        Assert.False(e.Observe(0.50005)); // within min delta
        Assert.False(e.ShouldStop);
        Assert.False(e.Observe(0.4));
        Assert.True(e.ShouldStop);
        Assert.True(e.Observe(0.6));
        Assert.False(e.ShouldStop);
    }
}

public sealed class TrainConfigTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-config-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    [Fact]
    public void PresetsCarryThePapersModesAndRates()
    {
        var c = new TrainConfig();
        c.ApplyPreset("clipseg_shallow_adapter_vlc");
        Assert.Equal(("shallow", "vlc", 3e-4), (c.Mode, c.Parts, c.Lr));
        c.ApplyPreset("clipseg_dense_adapter_vl");
        Assert.Equal(("dense", "vl", 1e-3), (c.Mode, c.Parts, c.Lr));
        c.ApplyPreset("clipseg");
        Assert.Equal(("decoder", (string?)null, 1e-3), (c.Mode, c.Parts, c.Lr));
        c.ApplyPreset("clipseg_full");
        Assert.Equal(("full", 1e-5), (c.Mode, c.Lr));
        var e = Assert.Throws<VlsmException>(() => c.ApplyPreset("clipseg_huge"));
        Assert.Contains("clipseg_huge", e.Message);
    }

    [Fact]
    public void YamlRoundTripsEveryField()
    {
        var c = new TrainConfig { Model = "m", Data = new() { "a", "b" }, Seed = 7, BatchSize = 4, Prompt = "p3", MaskThreshold = "soft" };
        c.ApplyPreset("clipseg_dense_adapter_vlc");
        c.SetEpochs(5);
        string path = Path.Combine(tmp, "config.yaml");
        File.WriteAllText(path, c.ToYaml());
        var back = TrainConfig.FromYaml(path);
        Assert.Equal(c.ToYaml(), back.ToYaml());
        Assert.Equal(5, back.MaxEpochs);
        Assert.Equal(5, back.EffectiveMinEpochs); // min_epochs stays 10 in the file; the run applies min(10, 5)
    }

    [Theory]
    [InlineData("model: m\ndata: /data/kvasir\n", "line 2: data must be a list of texts (one \"- item\" line each), not \"/data/kvasir\".")]
    [InlineData("model: m\nlr: fast\n", "line 2: lr must be a number, not \"fast\".")]
    [InlineData("model: m\nimage_size: [1, 2]\n", "line 2: image_size must be a whole number (or empty), not a list.")]
    [InlineData("model:\n  a: 1\n", "line 1: model must be text, not a mapping.")]
    [InlineData("model: m\nbogus: 1\n", "line 2: \"bogus\" is not a config key; known: adapter_dim, augment, batch_size,")]
    [InlineData("model: [unclosed\n  - : :\n", "line 2: not valid YAML (While parsing a flow sequence, did not find expected ',' or ']').")]
    public void ConfigErrorsNameTheFileLineAndFieldInWords(string yaml, string says)
    {
        string path = Path.Combine(tmp, "bad.yaml");
        File.WriteAllText(path, yaml);
        var e = Assert.Throws<VlsmException>(() => TrainConfig.FromYaml(path));
        Assert.StartsWith($"{path} {says}", e.Message);
        Assert.DoesNotContain("System.", e.Message);
    }

    [Fact]
    public void OptionsOfTheWrongTypeNameTheirSourceAndKeyWithoutLines()
    {
        var e = Assert.Throws<VlsmException>(() => new TrainConfig().With(new Dictionary<string, object?> { ["lr"] = "fast" }, "sweep.yaml cell 3"));
        Assert.Equal("sweep.yaml cell 3: lr must be a number, not \"fast\".", e.Message);
    }

    [Fact]
    public void BadYamlNamesFileAndLine()
    {
        string path = Path.Combine(tmp, "bad.yaml");
        File.WriteAllText(path, "model: m\nbatch_size: lots\n");
        var e = Assert.Throws<VlsmException>(() => TrainConfig.FromYaml(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("line 2", e.Message);
    }

    [Fact]
    public void ValidateNamesTheField()
    {
        var c = new TrainConfig { Model = "m", Data = new() { "d" }, BatchSize = 0 };
        Assert.Contains("batch_size", Assert.Throws<VlsmException>(c.Validate).Message);
        c = new TrainConfig { Model = "m", Data = new() { "d" }, Precision = "fp8" };
        Assert.Contains("fp8", Assert.Throws<VlsmException>(c.Validate).Message);
    }
}
