using Vlsm.Inference;
using Vlsm.Models;
using Vlsm.Training;

namespace Vlsm.Tests;

/// <summary>The merge and resume rules of <c>vlsm train</c> and of run folders used by eval and predict, in the library.</summary>
public sealed class TrainingRequestTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-request-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string ClipSegTiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");
    private static string CrisTiny => Path.Combine(Fixtures.Parity, "cris-tiny");

    private string Out(string name) => Path.Combine(tmp, name);

    [Fact]
    public void ModeDropsThePresetAndTakesTheFamilysLearningRate()
    {
        var (config, _, resume) = new TrainingRequest { Model = ClipSegTiny, Data = ["d"], Preset = "clipseg_dense_adapter_vlc", Mode = "decoder", Out = Out("a") }.Prepare();
        Assert.False(resume);
        Assert.Null(config.Preset);
        Assert.Null(config.Parts);
        Assert.Equal(("decoder", 1e-3), (config.Mode, config.Lr));

        (config, _, _) = new TrainingRequest { Model = CrisTiny, Data = ["d"], Mode = "full", Out = Out("b") }.Prepare();
        Assert.Equal(1e-4, config.Lr); // CRIS trains in full at VLSM-Adapter's 1e-4, not CLIPSeg's 1e-5

        (config, _, _) = new TrainingRequest { Model = CrisTiny, Data = ["d"], Mode = "full", Lr = 3e-5, Out = Out("c") }.Prepare();
        Assert.Equal(3e-5, config.Lr); // --lr wins over the mode's default
    }

    [Fact]
    public void FlagsOverrideTheConfigFileAndThePreset()
    {
        var file = Path.Combine(tmp, "config.yaml");
        File.WriteAllText(file, new TrainConfig { Model = ClipSegTiny, Data = ["x"], BatchSize = 4, Seed = 9 }.ToYaml());
        var (config, run, _) = new TrainingRequest { ConfigFile = file, Preset = "clipseg_shallow_adapter_vlc", BatchSize = 2, Data = ["y"], Out = Out("run") }.Prepare();
        Assert.Equal((2, 9), (config.BatchSize, config.Seed));
        Assert.Equal([Path.GetFullPath("y")], config.Data); // stored absolute, as given
        Assert.Equal(["y"], config.DataAsGiven);
        Assert.Equal(("shallow", "vlc", 3e-4), (config.Mode, config.Parts, config.Lr));
        Assert.Equal(Out("run"), run.Path);
    }

    [Fact]
    public void ANewRunNeedsAnEmptyOut()
    {
        var e = Assert.Throws<VlsmException>(() => new TrainingRequest { Model = ClipSegTiny, Data = ["d"] }.Prepare());
        Assert.Contains("--out RUN is required", e.Message);
        var taken = new RunFolder(Out("taken"));
        Directory.CreateDirectory(taken.Path);
        taken.WriteState(new TrainingState { EpochsCompleted = 1 });
        e = Assert.Throws<VlsmException>(() => new TrainingRequest { Model = ClipSegTiny, Data = ["d"], Out = taken.Path }.Prepare());
        Assert.Contains("already holds a run", e.Message);
        Assert.Contains($"--resume {taken.Path}", e.Message);
    }

    [Fact]
    public void ResumeTakesTheRunsOwnConfig()
    {
        var run = new RunFolder(Out("resumable"));
        var e = Assert.Throws<VlsmException>(() => new TrainingRequest { Resume = run.Path }.Prepare());
        Assert.Contains("nothing to resume", e.Message);
        Directory.CreateDirectory(run.Path);
        File.WriteAllText(run.ConfigFile, new TrainConfig { Model = ClipSegTiny, Data = [Out("d")], BatchSize = 5 }.ToYaml());
        run.WriteState(new TrainingState { EpochsCompleted = 1 });
        var (config, resumed, resume) = new TrainingRequest { Resume = run.Path, BatchSize = 5 }.Prepare();
        Assert.True(resume);
        Assert.Equal(run.Path, resumed.Path);
        Assert.Equal(5, config.BatchSize);
        e = Assert.Throws<VlsmException>(() => new TrainingRequest { Resume = run.Path, BatchSize = 64, Lr = 0.5 }.Prepare());
        Assert.Contains("batch_size (5 in config.yaml, 64 asked)", e.Message);
        Assert.Contains("lr (0.001 in config.yaml, 0.5 asked)", e.Message);
        Assert.Contains("Only --epochs may change on resume", e.Message);
    }

    [Fact]
    public void FollowSymlinksIsRecordedAndResumeKeepsIt()
    {
        var (config, _, _) = new TrainingRequest { Model = ClipSegTiny, Data = ["d"], FollowSymlinks = true, Out = Out("linked") }.Prepare();
        Assert.True(config.FollowSymlinks);
        Assert.Contains("follow_symlinks: true\n", config.ToYaml());
        Assert.True(TrainingPlan.Resolve(config).Data.FollowSymlinks);

        // Resumed without the flag, the run keeps its recorded true.
        var run = new RunFolder(Out("resumed"));
        Directory.CreateDirectory(run.Path);
        File.WriteAllText(run.ConfigFile, config.ToYaml());
        run.WriteState(new TrainingState { EpochsCompleted = 1 });
        Assert.True(new TrainingRequest { Resume = run.Path }.Prepare().Config.FollowSymlinks);

        // A config.yaml of an older vlsm has no key: false, and asking for true on resume changes the run's config, refused by name.
        File.WriteAllText(run.ConfigFile, string.Join('\n', config.ToYaml().Split('\n').Where(l => !l.StartsWith("follow_symlinks:", StringComparison.Ordinal))));
        Assert.False(TrainConfig.FromYaml(run.ConfigFile).FollowSymlinks);
        Assert.False(new TrainingRequest { Resume = run.Path }.Prepare().Config.FollowSymlinks);
        var e = Assert.Throws<VlsmException>(() => new TrainingRequest { Resume = run.Path, FollowSymlinks = true }.Prepare());
        Assert.Contains("follow_symlinks (false in config.yaml, true asked)", e.Message);
    }

    [Fact]
    public void FamilyMismatchesAreRefusedByName()
    {
        var e = Assert.Throws<VlsmException>(() => new TrainingRequest { Model = CrisTiny, Data = ["d"], Preset = "clipseg", Out = Out("p") }.Prepare());
        Assert.Contains("preset clipseg is a CLIPSeg experiment", e.Message);
        Assert.Contains("is a CRIS model", e.Message);
        e = Assert.Throws<VlsmException>(() => new TrainingRequest
        {
            Model = ClipSegTiny, Data = ["d"], Out = Out("o"), FamilyOptions = new Dictionary<string, string> { ["cris_pad_mask"] = "fixed" },
        }.Prepare());
        Assert.Contains("--cris-pad-mask applies to CRIS models", e.Message);
        e = Assert.Throws<VlsmException>(() => new TrainingRequest { Model = CrisTiny, Data = ["d"], Mode = "shallow", Out = Out("m") }.Prepare());
        Assert.Contains("CRIS trains in full or decoder mode", e.Message);
    }

    [Fact]
    public void APlanIsTyped()
    {
        var (config, _, _) = new TrainingRequest { Model = CrisTiny, Data = ["d"], Preset = "cris_decoder", Prompt = "p2", MaskThreshold = "soft", Loss = "dice-bce", Out = Out("t") }.Prepare();
        var plan = TrainingPlan.Resolve(config);
        Assert.Equal("cris", plan.Model.Family.ModelType);
        Assert.Equal(FineTuneMode.Decoder, plan.Model.Spec.Mode);
        Assert.Equal("reference", plan.Model.Options["cris_pad_mask"]);
        Assert.Equal(Vlsm.Data.MaskMode.Soft, plan.Data.MaskMode);
        Assert.Equal("p2", plan.Data.Prompt!.Value);
        Assert.Equal("dice-bce", plan.Loss.Name);
        Assert.Equal(ComputePrecision.Fp32, plan.Model.Precision);
    }

    [Fact]
    public void ARunFolderNamesItsModelAndFamilyOptions()
    {
        string run = Out("cris-run");
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, "config.yaml"), new TrainConfig { Model = CrisTiny, Data = ["d"], CrisPadMask = "fixed" }.ToYaml());
        var e = Assert.Throws<VlsmException>(() => ModelReference.Resolve(null, null, run));
        Assert.Contains("best.safetensors not found", e.Message);
        File.WriteAllBytes(Path.Combine(run, "best.safetensors"), []);

        var reference = ModelReference.Resolve(null, null, run);
        Assert.Equal(CrisTiny, reference.ModelDirectory);
        Assert.Equal(Path.Combine(run, "best.safetensors"), reference.Weights);
        Assert.Equal("fixed", reference.Request(ComputePrecision.Fp32, new Dictionary<string, string>()).Options["cris_pad_mask"]);
        // A flag given on the command line wins over the run's value.
        Assert.Equal("reference", reference.Request(ComputePrecision.Fp32, new Dictionary<string, string> { ["cris_pad_mask"] = "reference" }).Options["cris_pad_mask"]);
        // --model names another base model for the same weights.
        Assert.Equal(ClipSegTiny, ModelReference.Resolve(ClipSegTiny, null, run).ModelDirectory);

        e = Assert.Throws<VlsmException>(() => ModelReference.Resolve(null, null, null));
        Assert.Contains("give --model DIR", e.Message);
        e = Assert.Throws<VlsmException>(() => ModelReference.Resolve(null, "a.safetensors", run));
        Assert.Contains("give --adapter or --run, not both", e.Message);
    }
}
