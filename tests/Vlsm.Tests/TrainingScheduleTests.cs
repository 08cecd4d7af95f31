using Vlsm.Data.Synthetic;
using Vlsm.Training;

namespace Vlsm.Tests;

/// <summary>Recipe values a preset or config can set beyond VLSM-Adapter's: a constant learning rate, other losses.</summary>
[Collection(GlobalRngCollection.Name)]
public sealed class TrainingScheduleTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-schedule-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private TrainConfig Config(string scheduler)
    {
        string data = Path.Combine(tmp, "data");
        if (!Directory.Exists(data)) SyntheticDataset.Generate(data, new SynthOptions(10, 3, Size: 64, Style: SynthStyle.Medical), null);
        var c = new TrainConfig
        {
            Model = Path.Combine(Fixtures.Parity, "clipseg-tiny"), Data = [data], Mode = "decoder", Lr = 1e-3, BatchSize = 8, Prompt = "p1",
            Scheduler = scheduler, PlateauFactor = 0.1, PlateauPatience = 0, PlateauThreshold = 10, // every epoch counts as no improvement
        };
        c.SetEpochs(3);
        return c;
    }

    [Fact]
    public void PlateauLowersTheRateAndNoneKeepsIt()
    {
        var plateau = new RunFolder(Path.Combine(tmp, "plateau"));
        new Trainer(Config("plateau"), plateau, new SilentObserver()).Run(false);
        Assert.Equal([1e-3, 1e-4, 1e-5], plateau.ReadMetrics().Select(r => Math.Round(r.Lr, 12)).ToArray());

        var constant = new RunFolder(Path.Combine(tmp, "none"));
        new Trainer(Config("none"), constant, new SilentObserver()).Run(false);
        Assert.All(constant.ReadMetrics(), r => Assert.Equal(1e-3, r.Lr));
        Assert.Contains("scheduler: none", File.ReadAllText(constant.ConfigFile));
    }

    [Fact]
    public void UnknownSchedulersAndLossesAreRefusedByName()
    {
        var c = Config("cosine");
        Assert.Contains("scheduler \"cosine\"", Assert.Throws<VlsmException>(() => c.Validate()).Message);
        c = Config("none");
        c.Loss = "focal";
        var e = Assert.Throws<VlsmException>(() => c.Validate());
        Assert.Contains("loss \"focal\" is not one of", e.Message);
        Assert.Contains("reference", e.Message);
    }
}
