using System.Globalization;
using Vlsm.Training;

namespace Vlsm.Tests;

/// <summary>Train config values are range-checked by key (issue 19), and metrics.csv's numbers are ones other tools read (issue 20).</summary>
public sealed class TrainConfigChecksTests
{
    private static string Tiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");

    private static TrainConfig Valid() => new() { Model = Tiny, Data = ["/nowhere/data"] };

    public static TheoryData<string, Action<TrainConfig>, string> OutOfRange => new()
    {
        { "beta1 1.5", c => c.Beta1 = 1.5, "beta1 must be in [0, 1), got 1.5" },
        { "beta1 1", c => c.Beta1 = 1, "beta1 must be in [0, 1), got 1" },
        { "beta2 -0.1", c => c.Beta2 = -0.1, "beta2 must be in [0, 1), got -0.1" },
        { "plateau_factor 5", c => c.PlateauFactor = 5, "plateau_factor must be in (0, 1)" },
        { "plateau_factor 0", c => c.PlateauFactor = 0, "plateau_factor must be in (0, 1)" },
        { "feature_cache_memory_mb -1", c => c.FeatureCacheMemoryMb = -1, "feature_cache_memory_mb must be at least 0" },
        { "eps 0", c => c.Eps = 0, "eps must be positive" },
        { "eps NaN", c => c.Eps = double.NaN, "eps must be positive" },
        { "early_stopping_patience -1", c => c.EarlyStoppingPatience = -1, "early_stopping_patience must be at least 0" },
        { "plateau_patience -2", c => c.PlateauPatience = -2, "plateau_patience must be at least 0" },
        { "plateau_threshold -1", c => c.PlateauThreshold = -1, "plateau_threshold must be in [0, inf)" },
        { "early_stopping_min_delta inf", c => c.EarlyStoppingMinDelta = double.PositiveInfinity, "early_stopping_min_delta must be in [0, inf)" },
        { "weight_decay NaN", c => c.WeightDecay = double.NaN, "weight_decay (--weight-decay) must be in [0, inf)" },
        { "grad_clip inf", c => c.GradClip = double.PositiveInfinity, "grad_clip must be a positive number" },
        { "min_epochs -1", c => c.MinEpochs = -1, "min_epochs must be at least 0" },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void EachValueOutOfRangeIsRefusedByKeyAndRange(string name, Action<TrainConfig> set, string says)
    {
        var config = Valid();
        config.Validate(); // the valid config passes (it reads the model's config.json, not the data)
        set(config);
        var e = Assert.Throws<VlsmException>(() => config.Validate());
        Assert.True(e.Message.Contains(says, StringComparison.Ordinal), $"{name}: {e.Message}");
    }

    [Fact]
    public void MinEpochsAboveTheMaximumIsCappedNotRefused()
    {
        var config = Valid();
        config.SetEpochs(3);
        Assert.Equal(10, config.MinEpochs);
        Assert.Equal(3, config.Validate().Schedule.MinEpochs);
        config.SetEpochs(30);
        Assert.Equal(10, config.Validate().Schedule.MinEpochs);
    }

    [Theory]
    [InlineData(0.3 * 3e-4, "9e-05")]
    [InlineData(1e-3, "0.001")]
    [InlineData(0.1 + 0.2, "0.3")]
    [InlineData(0.6931471824645996, "0.6931471824646")]
    [InlineData(1.5e20, "1.5e+20")]
    [InlineData(1e-100, "1e-100")]
    [InlineData(0.0, "0")]
    [InlineData(double.NaN, "nan")]
    public void MetricsNumbersAreWrittenAsPythonsPercent15G(double value, string text)
    {
        Assert.Equal(text, EpochMetrics.Number(value));
        if (double.IsFinite(value))
            Assert.Equal(double.Parse(value.ToString("G15", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture), double.Parse(text, CultureInfo.InvariantCulture));
    }

    [Fact]
    public void MetricsRowsNumberEpochsFromOneAndReadOldFilesFromZero()
    {
        var row = new EpochMetrics(0, 0.5, 0.25, 0.75, 0.6, 0.3 * 3e-4, 1.25);
        Assert.Equal("1,0.5,0.25,0.75,0.6,9e-05,1.25", row.ToCsv());
        Assert.Equal(row with { Lr = 9e-05 }, EpochMetrics.Parse(row.ToCsv(), "m", 2));
        Assert.Equal(0, EpochMetrics.Parse("0,0.5,0.25,0.75,0.6,8.999999999999999E-05,1.25", "m", 2, zeroBased: true).Epoch);
    }

    [Fact]
    public void AnOlderStateFileIsRenumberedFromOne()
    {
        string dir = Directory.CreateTempSubdirectory("vlsm-state-").FullName;
        try
        {
            var run = new RunFolder(dir);
            File.WriteAllText(run.StateFile, """{"epochs_completed": 3, "checkpoint": "checkpoints/epoch-0003", "lr": 0.001, "best_epoch": 1}""");
            File.WriteAllText(run.MetricsFile, "epoch,train_loss,val_loss,val_dice,val_iou,lr,seconds\n0,1,1,0.1,0.1,0.001,1\n1,1,1,0.2,0.1,0.001,1\n2,1,1,0.1,0.1,0.001,1\n");
            var state = run.ReadState();
            Assert.Equal((2, 2), (state.BestEpoch, state.Version));
            Assert.Equal([0, 1, 2], run.ReadMetrics().Select(r => r.Epoch));
            run.WriteMetrics(run.ReadMetrics());
            Assert.StartsWith("1,", File.ReadAllLines(run.MetricsFile)[1]);
            Assert.Equal([0, 1, 2], run.ReadMetrics().Select(r => r.Epoch));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
