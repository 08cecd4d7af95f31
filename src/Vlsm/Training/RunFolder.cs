using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Training;

/// <summary>One row of metrics.csv.</summary>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double ValLoss, double ValDice, double ValIoU, double Lr, double Seconds)
{
    public const string Header = "epoch,train_loss,val_loss,val_dice,val_iou,lr,seconds";

    private static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    public string ToCsv() => $"{Epoch},{F(TrainLoss)},{F(ValLoss)},{F(ValDice)},{F(ValIoU)},{F(Lr)},{Seconds.ToString("0.###", CultureInfo.InvariantCulture)}";

    public static EpochMetrics Parse(string line, string path, int lineNumber)
    {
        var f = line.Split(',');
        double D(int i) => double.Parse(f[i], NumberStyles.Float, CultureInfo.InvariantCulture);
        try
        {
            return new EpochMetrics(int.Parse(f[0], CultureInfo.InvariantCulture), D(1), D(2), D(3), D(4), D(5), D(6));
        }
        catch (Exception e) when (e is FormatException or IndexOutOfRangeException)
        {
            throw new VlsmException($"{path} line {lineNumber}: not a metrics row ({line}).", e);
        }
    }
}

/// <summary>Everything besides tensors needed to continue a run after its last completed epoch.</summary>
public sealed record TrainingState
{
    public int EpochsCompleted { get; init; }
    public string Checkpoint { get; init; } = "";
    public double Lr { get; init; }
    public double? PlateauBest { get; init; }
    public int PlateauBadEpochs { get; init; }
    public double? EarlyStoppingBest { get; init; }
    public int EarlyStoppingWait { get; init; }
    public int BestEpoch { get; init; } = -1;
    public long OptimizerStep { get; init; }
    public long GlobalStep { get; init; }
    public bool Finished { get; init; }
    public string? StopReason { get; init; }
    public double? StartValDice { get; init; }
}

/// <summary>
/// The files of a training run. Each epoch's checkpoint is written to its own folder first;
/// <c>state.json</c>, replaced atomically, then names it, so a run killed at any moment resumes
/// from a complete, consistent epoch.
/// </summary>
public sealed class RunFolder
{
    public RunFolder(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
    }

    public string Path { get; }
    public string ConfigFile => File("config.yaml");
    public string MetricsFile => File("metrics.csv");
    public string StateFile => File("state.json");
    public string BestFile => File("best.safetensors");
    public string LastFile => File("last.safetensors");
    public string CurvesFile => File("curves.png");
    public string CacheDir => File("feature-cache");
    public string TensorBoardDir => File("tensorboard");

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public bool HasState => System.IO.File.Exists(StateFile);

    public void WriteMetrics(IReadOnlyList<EpochMetrics> rows)
    {
        var sb = new StringBuilder(EpochMetrics.Header).Append('\n');
        foreach (var r in rows) sb.Append(r.ToCsv()).Append('\n');
        AtomicFile.WriteAllText(MetricsFile, sb.ToString());
    }

    public List<EpochMetrics> ReadMetrics()
    {
        if (!System.IO.File.Exists(MetricsFile)) return new List<EpochMetrics>();
        var lines = System.IO.File.ReadAllLines(MetricsFile);
        return lines.Skip(1).Where(l => l.Length > 0).Select((l, i) => EpochMetrics.Parse(l, MetricsFile, i + 2)).ToList();
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public void WriteState(TrainingState state) => AtomicFile.WriteAllText(StateFile, JsonSerializer.Serialize(state, Json));

    public TrainingState ReadState()
    {
        try
        {
            return JsonSerializer.Deserialize<TrainingState>(System.IO.File.ReadAllText(StateFile), Json)
                ?? throw new VlsmException($"{StateFile}: empty.");
        }
        catch (JsonException e)
        {
            throw new VlsmException($"{StateFile}: not a run state file ({e.Message}).", e);
        }
    }

    public string CheckpointDir(int epochsCompleted) => File(System.IO.Path.Combine("checkpoints", $"epoch-{epochsCompleted:D4}"));

    /// <summary>Removes checkpoint folders other than <paramref name="keep"/> (older epochs, or a half-written newer one).</summary>
    public void PruneCheckpoints(string keep)
    {
        string root = File("checkpoints");
        if (!Directory.Exists(root)) return;
        foreach (var dir in Directory.GetDirectories(root))
            if (System.IO.Path.GetFullPath(dir) != System.IO.Path.GetFullPath(keep))
                Directory.Delete(dir, recursive: true);
    }

    /// <summary>Losses and Dice per epoch, as a PNG (<see cref="Vlsm.Imaging.CurvesChart"/>), titled with the run folder's name.</summary>
    public void WriteCurves(IReadOnlyList<EpochMetrics> rows)
    {
        if (rows.Count == 0) return;
        // Epochs as the console and checkpoint names count them (1-based).
        var chart = Vlsm.Imaging.CurvesChart.Render($"{System.IO.Path.GetFileName(Path)}: loss and validation Dice per epoch", rows.Select(r => r.Epoch + 1).ToArray(),
            rows.Select(r => r.TrainLoss).ToArray(), rows.Select(r => r.ValLoss).ToArray(), rows.Select(r => r.ValDice).ToArray());
        Vlsm.Imaging.ImageCodec.SavePng(CurvesFile, chart);
    }
}

/// <summary>Continuing a finished run for more epochs.</summary>
public static class RunExtension
{
    /// <summary>
    /// Lets a run that stopped at its maximum epochs continue to <paramref name="maxEpochs"/>: its
    /// config.yaml takes the new maximum (as <c>--epochs</c> sets it) and its state is no longer
    /// finished, so the next resume trains on from the last epoch, as a run started with that
    /// maximum would have (until early stopping, which does not depend on the maximum). A run that
    /// stopped early, or has already trained that far, is left as it is.
    /// </summary>
    /// <returns>Whether the run will train more.</returns>
    public static bool Extend(RunFolder run, int maxEpochs)
    {
        if (!run.HasState) return false;
        var state = run.ReadState();
        if (state.EpochsCompleted >= maxEpochs) return false;
        if (state.Finished && state.StopReason?.StartsWith("early stopping", StringComparison.Ordinal) == true) return false;
        var config = TrainConfig.FromYaml(run.ConfigFile);
        config.SetEpochs(maxEpochs);
        Vlsm.IO.AtomicFile.WriteAllText(run.ConfigFile, config.ToYaml());
        run.WriteState(state with { Finished = false, StopReason = null });
        return true;
    }
}
