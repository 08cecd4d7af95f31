using Vlsm.Data;
using Vlsm.Data.Synthetic;
using Vlsm.Imaging;
using Vlsm.Inference;
using Vlsm.Models;
using Vlsm.Models.Registry;
using Vlsm.Training;

namespace Vlsm.Tests;

/// <summary>
/// <c>train --image-size N</c> (config.yaml's <c>image_size</c>) in the library: what is recorded and
/// kept on resume, which sizes each family refuses and why, and that the models of the families that
/// take other sizes load batches and give logits at that size.
/// </summary>
[Collection(GlobalRngCollection.Name)] // opening models draws from libtorch's global generator
public sealed class ImageSizeTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-image-size-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny(string name) => Path.Combine(Fixtures.Parity, name);

    private string Out(string name) => Path.Combine(tmp, name);

    /// <summary>A new run of <paramref name="model"/> (in its family's first mode) at <paramref name="size"/>, refused before anything is written.</summary>
    private static VlsmException Refused(string model, int size)
    {
        string mode = FineTuneSpec.ModeName(ModelFamilies.ForFolder(Tiny(model)).Modes[0]);
        return Assert.Throws<VlsmException>(() => new TrainingRequest { Model = Tiny(model), Mode = mode, Data = ["d"], ImageSize = size, Out = Path.Combine(Path.GetTempPath(), "never-written") }.Prepare());
    }

    [Fact]
    public void TheSizeIsRecordedTheModelsOwnWhenNotGivenAndResumeKeepsIt()
    {
        // clipseg-tiny's preprocessor_config.json says 48x48.
        var (config, _, _) = new TrainingRequest { Model = Tiny("clipseg-tiny"), Data = ["d"], ImageSize = 64, Out = Out("a") }.Prepare();
        Assert.Equal(64, config.ImageSize);
        Assert.Contains("image_size: 64\n", config.ToYaml());
        Assert.Equal(64, TrainingPlan.Resolve(config).Model.Request.ImageSize);
        var (own, _, _) = new TrainingRequest { Model = Tiny("clipseg-tiny"), Data = ["d"], Out = Out("b") }.Prepare();
        Assert.Equal(48, own.ImageSize); // written back, so the run folder says what it trained at
        Assert.Null(TrainingPlan.Resolve(own).Model.Request.ImageSize); // ...and still runs the preprocessor as the folder has it

        var run = new RunFolder(Out("resumed"));
        Directory.CreateDirectory(run.Path);
        File.WriteAllText(run.ConfigFile, config.ToYaml());
        run.WriteState(new TrainingState { EpochsCompleted = 1 });
        Assert.Equal(64, new TrainingRequest { Resume = run.Path }.Prepare().Config.ImageSize);
        Assert.Equal(64, new TrainingRequest { Resume = run.Path, ImageSize = 64, Epochs = 300 }.Prepare().Config.ImageSize);
        var e = Assert.Throws<VlsmException>(() => new TrainingRequest { Resume = run.Path, ImageSize = 48 }.Prepare());
        Assert.Contains("image_size (64 in config.yaml, 48 asked)", e.Message);
        Assert.Contains("Only --epochs may change on resume", e.Message);

        // A config.yaml without the key (an older vlsm), or with it empty: the model's own size.
        File.WriteAllText(run.ConfigFile, string.Join('\n', config.ToYaml().Split('\n').Where(l => !l.StartsWith("image_size:", StringComparison.Ordinal))));
        Assert.Null(TrainConfig.FromYaml(run.ConfigFile).ImageSize);
        Assert.Equal(new InputSize(48, 48, Own: true), TrainingPlan.Resolve(new TrainingRequest { Resume = run.Path }.Prepare().Config).Model.Input);
        File.WriteAllText(run.ConfigFile, config.ToYaml().Replace("image_size: 64\n", "image_size: \n", StringComparison.Ordinal));
        Assert.Null(TrainConfig.FromYaml(run.ConfigFile).ImageSize);
    }

    [Fact]
    public void RefusedSizesNameTheValueTheRuleAndTheFix()
    {
        var e = Refused("clipseg-tiny", 50);
        Assert.Equal("image_size (--image-size) 50 is not a multiple of 8 (CLIPSeg's patch size): use 48 or 56, or leave --image-size out for the model's own 48.", e.Message);
        foreach (int absurd in new[] { 0, -8, 8, 4104, 100_000 })
        {
            e = Refused("clipseg-tiny", absurd);
            Assert.Equal($"image_size (--image-size) {absurd} is out of range: give a side of 16..4096 pixels that is a multiple of 8 (CLIPSeg's patch size), or leave --image-size out for the model's own 48.", e.Message);
        }

        e = Refused("biomedclipseg-tiny", 256);
        Assert.StartsWith("image_size (--image-size) 256: BiomedCLIPSeg models run only at their own input size, 224 for ", e.Message);
        Assert.Contains("14x14-patch position table", e.Message);
        Assert.EndsWith("leave --image-size out.", e.Message);

        e = Refused("cris-tiny", 80);
        Assert.Equal("image_size (--image-size) 80 is not a multiple of 32 (the stride of CRIS's deepest features): use 64 or 96, or leave --image-size out for the model's own 96.", e.Message);
        e = Refused("cris-tiny", 4096);
        Assert.Contains("4096 is out of range: give a side of 32..2048 pixels", e.Message);
        e = Refused("san-tiny", 48);
        Assert.Equal("image_size (--image-size) 48 is not a multiple of 32 (SAN's size_divisibility and side-network patch size): use 32 or 64, or leave --image-size out for the model's own 128.", e.Message);
        e = Refused("smp-unet-tiny", 80);
        Assert.Equal("image_size (--image-size) 80 is not a multiple of 32 (the encoder's output stride, which smp's Unet needs): use 64 or 96, or leave --image-size out for the model's own 256.", e.Message);
        e = Refused("smp-deeplabv3plus-tiny", 40);
        Assert.Contains("40 is not a multiple of 16 (the encoder's output stride, which smp's DeepLabV3Plus needs): use 32 or 48", e.Message);

        // The model's own size is always taken, whatever the rule (BiomedCLIPSeg's 224 included).
        var (config, _, _) = new TrainingRequest { Model = Tiny("biomedclipseg-tiny"), Data = ["d"], ImageSize = 224, Out = Out("own") }.Prepare();
        Assert.Equal(new InputSize(224, 224, Own: true), TrainingPlan.Resolve(config).Model.Input);

        // eval and predict check through the registry, with the same message.
        e = Assert.Throws<VlsmException>(() => new ModelReference(Tiny("clipseg-tiny"), null, null).Open(ComputePrecision.Fp32, new Dictionary<string, string>(), imageSize: 50).Dispose());
        Assert.StartsWith("image_size (--image-size) 50 is not a multiple of 8", e.Message);
    }

    public static TheoryData<string, int> TakeOtherSizes => new()
    {
        { "clipseg-tiny", 64 },
        { "cris-tiny", 64 },
        { "san-tiny", 64 },
        { "smp-unet-tiny", 64 },
        { "smp-unetplusplus-tiny", 96 },
        { "smp-deeplabv3plus-tiny", 48 },
    };

    [Theory]
    [MemberData(nameof(TakeOtherSizes))]
    public void AFamilyThatTakesOtherSizesPredictsAtThem(string model, int side)
    {
        string dir = Tiny(model);
        var family = ModelFamilies.ForFolder(dir);
        var image = new RgbImage(70, 70, Enumerable.Range(0, 70 * 70 * 3).Select(i => (byte)(i * 7 % 251)).ToArray());
        var prompts = family.TakesText ? new[] { "a round polyp" } : null;
        int ownInput, ownOutput;
        using (var own = ModelFamilies.OpenSegmenter(new ModelRequest { Directory = dir }))
        {
            ownInput = own.Preprocessor.Width;
            ownOutput = Assert.Single(own.Predict([image], prompts)).Width;
        }
        Assert.NotEqual(side, ownInput); // the fixture's own size is another
        using var segmenter = ModelFamilies.OpenSegmenter(new ModelRequest { Directory = dir, ImageSize = side });
        Assert.Equal((side, side), (segmenter.Preprocessor.Width, segmenter.Preprocessor.Height));
        var prediction = Assert.Single(segmenter.Predict([image], prompts));
        // The output follows the input: the input size, or a fixed fraction of it (clipseg-tiny's head gives half: patch 8, two x2 transposed convolutions).
        int output = side * ownOutput / ownInput;
        Assert.Equal((output, output), (prediction.Width, prediction.Height));
        Assert.All(prediction.Probabilities, p => Assert.InRange(p, 0f, 1f));
    }

    [Fact]
    public void TheTrainingPlansModelLoadsBatchesAndGivesLogitsAtTheRunsSize()
    {
        string data = Out("data");
        SyntheticDataset.Generate(data, new SynthOptions(8, 3, Size: 80, Style: SynthStyle.Medical), null);
        foreach (var (asked, expected) in new (int?, int)[] { (64, 64), (null, 48) })
        {
            var config = new TrainConfig { Model = Tiny("clipseg-tiny"), Data = [data], Mode = "decoder", Prompt = "p1", BatchSize = 4, ImageSize = asked };
            var plan = TrainingPlan.Resolve(config);
            var run = new RunFolder(Out($"run-{expected}"));
            using var session = new TrainingSession(plan, TrainingSession.Open(plan, run), run, new SilentObserver());
            Assert.Equal((expected, expected), (session.Model.Preprocessor.Width, session.Model.Preprocessor.Height));

            // The loaders the session builds: the model's preprocessor, the plan's batch size.
            var records = MedvlsmDataset.Open(data).RequiredRecords("train");
            var loader = new BatchLoader(records, new SampleLoader(session.Model.Preprocessor, new SampleOptions(), PromptChoice.Parse("p1")),
                new BatchLoaderOptions { BatchSize = plan.Optimization.BatchSize, Seed = 1 });
            var batch = loader.Epoch(0).First();
            Assert.Equal((expected, expected), (batch.Width, batch.Height));
            Assert.Equal(batch.Count * 3 * expected * expected, batch.Images.Length);
            using var scope = TorchSharp.torch.NewDisposeScope();
            var (logits, target) = session.Forward(batch);
            Assert.Equal(new long[] { batch.Count, expected / 2, expected / 2 }, logits.shape); // clipseg-tiny's head gives half its input
            Assert.Equal(logits.shape, target.shape);
        }
    }
}
