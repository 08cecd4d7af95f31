using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Training;

/// <summary>
/// One row of metrics.csv. <see cref="Epoch"/> is the epoch's zero-based index, as the training
/// loop counts; every file and the console number epochs from 1 (metrics.csv's <c>epoch</c> column,
/// state.json's <c>best_epoch</c>, checkpoint folders, TensorBoard steps).
/// </summary>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double ValLoss, double ValDice, double ValIoU, double Lr, double Seconds)
{
    public const string Header = "epoch,train_loss,val_loss,val_dice,val_iou,lr,seconds";

    /// <summary>
    /// A number as Python's <c>%.15g</c> writes it (15 significant digits, trailing zeros dropped,
    /// lowercase exponent): <c>9e-05</c> rather than <c>8.999999999999999E-05</c>; pandas, numpy and
    /// spreadsheets read it as a number.
    /// </summary>
    public static string Number(double v)
    {
        if (double.IsNaN(v)) return "nan";
        if (double.IsInfinity(v)) return v > 0 ? "inf" : "-inf";
        string text = v.ToString("G15", CultureInfo.InvariantCulture);
        int e = text.IndexOf('E');
        if (e < 0) return text;
        // .NET writes E-05 / E+15; Python writes e-05 / e+15 (at least two exponent digits).
        string mantissa = text[..e];
        char sign = text[e + 1];
        string digits = text[(e + 2)..].TrimStart('0');
        return $"{mantissa}e{sign}{digits.PadLeft(2, '0')}";
    }

    public string ToCsv() => $"{Epoch + 1},{Number(TrainLoss)},{Number(ValLoss)},{Number(ValDice)},{Number(ValIoU)},{Number(Lr)},{Seconds.ToString("0.###", CultureInfo.InvariantCulture)}";

    /// <summary>Reads a row (its epoch column numbered from 1, or from 0 when <paramref name="zeroBased"/>: metrics.csv of vlsm before state version 2).</summary>
    public static EpochMetrics Parse(string line, string path, int lineNumber, bool zeroBased = false)
    {
        var f = line.Split(',');
        double D(int i) => double.Parse(f[i], NumberStyles.Float, CultureInfo.InvariantCulture);
        try
        {
            return new EpochMetrics(int.Parse(f[0], CultureInfo.InvariantCulture) - (zeroBased ? 0 : 1), D(1), D(2), D(3), D(4), D(5), D(6));
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
    /// <summary>2: epochs numbered from 1 (best_epoch, metrics.csv) and the metrics rows kept here. A file without it is version 1 (numbered from 0), converted when read.</summary>
    public const int CurrentVersion = 2;

    /// <summary>The file format; 1 when absent (state.json of an older vlsm).</summary>
    public int Version { get; init; } = 1;
    public int EpochsCompleted { get; init; }
    public string Checkpoint { get; init; } = "";
    public double Lr { get; init; }
    public double? PlateauBest { get; init; }
    public int PlateauBadEpochs { get; init; }
    public double? EarlyStoppingBest { get; init; }
    public int EarlyStoppingWait { get; init; }
    /// <summary>The epoch (numbered from 1) whose weights best.safetensors holds; 0 before any.</summary>
    public int BestEpoch { get; init; }
    public long OptimizerStep { get; init; }
    public long GlobalStep { get; init; }
    public bool Finished { get; init; }
    public string? StopReason { get; init; }
    public double? StartValDice { get; init; }

    /// <summary>metrics.csv's rows up to this epoch (its lines, without the header), so a lost or cut metrics.csv is rebuilt on resume.</summary>
    public IReadOnlyList<string>? Metrics { get; init; }
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

    /// <summary>metrics.csv's rows (empty when there is none); a file whose first row is epoch 0 is read as numbered from 0 (an older vlsm's).</summary>
    public List<EpochMetrics> ReadMetrics()
    {
        if (!System.IO.File.Exists(MetricsFile)) return new List<EpochMetrics>();
        var lines = System.IO.File.ReadAllLines(MetricsFile).Skip(1).Where(l => l.Length > 0).ToList();
        bool zeroBased = lines.Count > 0 && lines[0].StartsWith("0,", StringComparison.Ordinal);
        return lines.Select((l, i) => EpochMetrics.Parse(l, MetricsFile, i + 2, zeroBased)).ToList();
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Writes state.json atomically, as the current version.</summary>
    public void WriteState(TrainingState state) => AtomicFile.WriteAllText(StateFile, JsonSerializer.Serialize(state with { Version = TrainingState.CurrentVersion }, Json));

    /// <summary>Reads state.json; an older version's zero-based best epoch is renumbered from 1.</summary>
    public TrainingState ReadState()
    {
        try
        {
            var state = JsonSerializer.Deserialize<TrainingState>(System.IO.File.ReadAllText(StateFile), Json)
                ?? throw new VlsmException($"{StateFile}: empty.");
            if (state.Version > TrainingState.CurrentVersion)
                throw new VlsmException($"{StateFile}: state version {state.Version} is from a newer vlsm (this one reads up to {TrainingState.CurrentVersion}); resume it with that vlsm.");
            if (state.Version < 2) state = state with { Version = TrainingState.CurrentVersion, BestEpoch = state.BestEpoch + 1 };
            CheckState(state);
            return state;
        }
        catch (JsonException e)
        {
            throw new VlsmException($"{StateFile}: not a run state file ({e.Message}).", e);
        }
    }

    private const string StateFix = "it is written by vlsm train; restore it from a copy, or start a new run";

    /// <summary>Refuses counts no run writes: a negative epoch count, or a best epoch past the last one.</summary>
    private void CheckState(TrainingState state)
    {
        if (state.EpochsCompleted < 0)
            throw new VlsmException($"{StateFile}: epochs_completed is {state.EpochsCompleted}; it counts completed epochs, so it is at least 0 ({StateFix}).");
        if (state.BestEpoch < 0 || state.BestEpoch > state.EpochsCompleted)
            throw new VlsmException($"{StateFile}: best_epoch is {state.BestEpoch}, but the run completed {state.EpochsCompleted} epochs ({StateFix}).");
    }

    /// <summary>
    /// The checkpoint folder <paramref name="state"/> names, refused unless it is in this run's
    /// checkpoints folder: resume loads it, then deletes every other checkpoint folder.
    /// </summary>
    public string CheckpointOf(TrainingState state)
    {
        string checkpoints = System.IO.Path.TrimEndingDirectorySeparator(CheckpointsFolder) + System.IO.Path.DirectorySeparatorChar;
        string checkpoint = System.IO.Path.GetFullPath(File(state.Checkpoint));
        if (!checkpoint.StartsWith(checkpoints, StringComparison.Ordinal))
            throw new VlsmException($"{StateFile}: checkpoint \"{state.Checkpoint}\" is not a folder in {checkpoints} (such as {System.IO.Path.GetRelativePath(Path, CheckpointDir(state.EpochsCompleted))}); {StateFix}.");
        return checkpoint;
    }

    /// <summary>Where every epoch's checkpoint folder goes.</summary>
    private string CheckpointsFolder => File("checkpoints");

    public string CheckpointDir(int epochsCompleted) => System.IO.Path.Combine(CheckpointsFolder, $"epoch-{epochsCompleted:D4}");

    /// <summary>Removes checkpoint folders other than <paramref name="keep"/> (older epochs, or a half-written newer one).</summary>
    public void PruneCheckpoints(string keep)
    {
        string root = CheckpointsFolder;
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
    /// Whether a run in <paramref name="state"/> trains on under <paramref name="schedule"/>: it has not
    /// reached the maximum, and neither stopped early nor would have stopped early after its last
    /// epoch with these bounds (a run whose minimum was capped at its old maximum may have met the
    /// early-stopping condition there, which a run started with the larger maximum would also have met later or not at all).
    /// </summary>
    public static bool CanContinue(TrainingState state, ScheduleSection schedule)
    {
        if (state.EpochsCompleted >= schedule.MaxEpochs) return false;
        if (!state.Finished) return true;
        if (state.StopReason?.StartsWith("early stopping", StringComparison.Ordinal) == true) return false;
        return !(state.EpochsCompleted >= schedule.MinEpochs && state.EarlyStoppingWait >= schedule.EarlyStoppingPatience);
    }

    /// <summary>
    /// Lets a run continue to <paramref name="maxEpochs"/>: its config.yaml takes the new maximum (as
    /// <c>--epochs</c> sets it) and, when <see cref="CanContinue"/>, its state is no longer finished, so
    /// the next resume trains on from the last epoch exactly as a run started with that maximum would
    /// have (neither the learning-rate schedule, ReduceLROnPlateau, nor early stopping depends on the
    /// maximum; the minimum applied is min(min_epochs, max_epochs) either way). A run that stopped
    /// early, or has already trained that far, is left as it is.
    /// </summary>
    /// <returns>Whether the run will train more.</returns>
    public static bool Extend(RunFolder run, int maxEpochs)
    {
        if (!run.HasState) return false;
        var state = run.ReadState();
        if (state.EpochsCompleted >= maxEpochs) return false;
        var config = TrainConfig.FromYaml(run.ConfigFile);
        config.SetEpochs(maxEpochs);
        if (!CanContinue(state, ScheduleSection.Of(config))) return false;
        Vlsm.IO.AtomicFile.WriteAllText(run.ConfigFile, config.ToYaml());
        if (state.Finished) run.WriteState(state with { Finished = false, StopReason = null });
        return true;
    }
}
