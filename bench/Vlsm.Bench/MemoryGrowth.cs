using System.Globalization;
using Vlsm.Data.Synthetic;
using Vlsm.Training;

namespace Vlsm.Bench;

/// <summary>
/// Resident memory of a real training run (loader, feature cache, checkpoints) at step 20 and
/// step 200: the growth must stay under 5 %. Runs in a child process so nothing else is resident.
/// Uses the tiny parity model from ../shared (dense VL adapters are not possible on it; dense V
/// keeps gradients flowing through the vision tower every step).
/// </summary>
internal static class MemoryGrowth
{
    public const string ChildKey = "memory_growth";

    internal static string? TinyModel()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "..", "shared", "parity", "clipseg-tiny");
            if (File.Exists(Path.Combine(dir.FullName, "vlsm.sln")) && Directory.Exists(candidate)) return Path.GetFullPath(candidate);
        }
        return null;
    }

    public static double? Measure()
    {
        if (TinyModel() is null)
        {
            Console.WriteLine("memory growth: skipped (needs ../shared/parity/clipseg-tiny beside the checkout)");
            return null;
        }
        return double.Parse(Bench.RunSelf("--child", ChildKey).LastLine, CultureInfo.InvariantCulture);
    }

    public static string RunChild()
    {
        string root = Directory.CreateTempSubdirectory("vlsm-memory-").FullName;
        try
        {
            string data = Path.Combine(root, "data");
            SyntheticDataset.Generate(data, new SynthOptions(120, 3, Style: SynthStyle.Medical), null);
            var config = new TrainConfig { Model = TinyModel()!, Data = new() { data }, Mode = "dense", Parts = "v", AdapterDim = 16, Lr = 1e-3, BatchSize = 4, Prompt = "random" };
            config.SetEpochs(20);
            config.EarlyStoppingPatience = 1000;
            var observer = new RssObserver();
            new Trainer(config, new RunFolder(Path.Combine(root, "run")), observer).Run(false);
            return ((observer.At200 - observer.At20) * 100.0 / observer.At20).ToString("0.00", CultureInfo.InvariantCulture);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private sealed class RssObserver : ITrainingObserver
    {
        private int steps;
        public long At20 { get; private set; }
        public long At200 { get; private set; }

        public void StepCompleted(int epoch, int step, int stepsInEpoch, double loss, double lr, double imagesPerSecond)
        {
            steps++;
            if (steps == 20) At20 = Rss();
            if (steps == 200) At200 = Rss();
            // The curve goes to stderr so a growth can be located (steady creep, or steps at epoch ends).
            if (steps % 20 == 0) Console.Error.WriteLine($"rss step {steps} epoch {epoch}: {Rss() / 1024.0:0.0} MB (managed heap committed {GC.GetGCMemoryInfo().TotalCommittedBytes / 1048576.0:0.0} MB)");
        }

        private static long Rss() => PeakRss.ResidentKilobytesAfterGc();

        public void RunStarted(string description) { }
        public void EpochStarted(int epoch, int maxEpochs, int steps) { }
        public void EpochCompleted(EpochMetrics metrics, bool best) { }
        public void Message(string text) { }
    }
}
