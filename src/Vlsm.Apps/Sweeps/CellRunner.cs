using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.Evaluation;
using Vlsm.Inference;
using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Platform;
using Vlsm.Training;

namespace Vlsm.Apps.Sweeps;

/// <summary>A cell's state as cell.json records it.</summary>
public enum CellStatus { Pending, Running, Done, Failed }

/// <summary>cell.json: the cell's values, status, attempts, error, and what it measured.</summary>
public sealed record CellRecord
{
    public required int Index { get; init; }
    public required string Name { get; init; }
    public required Dictionary<string, JsonNode?> Values { get; init; }
    public CellStatus Status { get; init; }
    public int Attempts { get; init; }
    public string? Error { get; init; }
    public string? Host { get; init; }
    public int? Pid { get; init; }
    public string? SlurmJob { get; init; }
    public DateTimeOffset? Started { get; init; }
    public DateTimeOffset? Finished { get; init; }
    public double? Seconds { get; init; }
    public long? TrainableParameters { get; init; }
    public long? TotalParameters { get; init; }
    public int? Epochs { get; init; }
    public double? BestValDice { get; init; }

    /// <summary>A search's current rung: the epochs this cell trains to (instead of the spec's).</summary>
    public int? TargetEpochs { get; init; }

    /// <summary>Evaluated dataset name → its evaluation folder (relative to the cell).</summary>
    public Dictionary<string, string> Evaluations { get; init; } = [];

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}

/// <summary>
/// Runs one cell of a sweep in this process: trains (or resumes a killed training) and evaluates,
/// through the same library entry points as <c>vlsm train</c> and <c>vlsm eval</c>. A cell folder
/// holds <c>cell.json</c>, <c>run/</c> (a normal run folder) and <c>eval/DATASET/</c> (normal
/// evaluation outputs). An exclusive lock (<see cref="FolderLock"/>, on <c>.vlsm.lock</c>) keeps two
/// processes off one cell, and the run folder inside has its own; the operating system drops them when their holder dies.
/// </summary>
public static class CellRunner
{
    public const string RecordFile = "cell.json";

    public static string CellDir(string sweepDir, SweepCell cell) => Path.Combine(sweepDir, "cells", cell.Name);

    public static CellRecord? Read(string cellDir)
    {
        string path = Path.Combine(cellDir, RecordFile);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<CellRecord>(File.ReadAllText(path), CellRecord.Json);
        }
        catch (JsonException e)
        {
            throw new VlsmException($"{path}: not a cell record ({e.Message}); delete it to run the cell again.", e);
        }
    }

    internal static void Write(string cellDir, CellRecord record) =>
        AtomicFile.WriteAllText(Path.Combine(cellDir, RecordFile), JsonSerializer.Serialize(record, CellRecord.Json) + "\n");

    /// <summary>Takes the cell's lock (<see cref="FolderLock"/>, recording this process's PID), or null when another live process holds it.</summary>
    public static FolderLock? TryLock(string cellDir) => FolderLock.TryAcquire(cellDir, "sweep cell");

    /// <summary>Whether a live process holds the cell's lock now.</summary>
    public static bool IsLocked(string cellDir) => Directory.Exists(cellDir) && FolderLock.IsHeld(cellDir);

    /// <summary>
    /// Runs the cell unless it is done or another process runs it. Returns its record; a failure is
    /// recorded in it (status failed, the error's message), never thrown, so a sweep goes on.
    /// </summary>
    public static CellRecord Run(SweepSpec spec, string sweepDir, SweepCell cell, ITrainingObserver observer, CancellationToken cancellation = default)
    {
        string dir = CellDir(sweepDir, cell);
        using var held = TryLock(dir);
        var previous = Read(dir);
        if (held is null) return previous ?? NewRecord(cell) with { Status = CellStatus.Running };
        if (previous?.Status == CellStatus.Done) return previous;

        var clock = Stopwatch.StartNew();
        var record = (previous ?? NewRecord(cell)) with
        {
            Status = CellStatus.Running,
            Attempts = (previous?.Attempts ?? 0) + 1,
            Error = null,
            Host = Environment.MachineName,
            Pid = Environment.ProcessId,
            SlurmJob = SlurmJobId(),
            Started = DateTimeOffset.UtcNow,
            Finished = null,
        };
        Write(dir, record);
        try
        {
            record = Execute(spec, dir, cell, record, observer, cancellation);
            record = record with { Status = CellStatus.Done, Finished = DateTimeOffset.UtcNow, Seconds = Math.Round(clock.Elapsed.TotalSeconds, 3) };
        }
        catch (OperationCanceledException)
        {
            record = record with { Status = CellStatus.Pending, Error = "interrupted; it resumes when the sweep runs again" };
            Write(dir, record);
            throw;
        }
        catch (Exception e) when (e is VlsmException or IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or ExternalException)
        {
            record = record with { Status = CellStatus.Failed, Error = e.Message, Finished = DateTimeOffset.UtcNow, Seconds = Math.Round(clock.Elapsed.TotalSeconds, 3) };
        }
        Write(dir, record);
        return record;
    }

    internal static CellRecord NewRecord(SweepCell cell) => new()
    {
        Index = cell.Index,
        Name = cell.Name,
        Values = cell.Values.ToDictionary(v => v.Key, v => ToJson(v.Value)),
        Status = CellStatus.Pending,
    };

    internal static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        IReadOnlyDictionary<string, object?> bundle => new JsonObject(bundle.Select(kv => KeyValuePair.Create(kv.Key, ToJson(kv.Value)))),
        IReadOnlyList<object?> list => new JsonArray(list.Select(ToJson).ToArray()),
        _ => JsonValue.Create(value.ToString()),
    };

    private static string? SlurmJobId()
    {
        string? job = Environment.GetEnvironmentVariable("SLURM_ARRAY_JOB_ID") ?? Environment.GetEnvironmentVariable("SLURM_JOB_ID");
        string? task = Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID");
        return job is null ? null : task is null ? job : $"{job}_{task}";
    }

    /// <summary>The cell's train options: the spec's fixed ones, then its grid values (other than the model).</summary>
    public static TrainConfig Config(SweepSpec spec, SweepCell cell, int? epochs = null)
    {
        var options = new Dictionary<string, object?>(spec.Train, StringComparer.Ordinal);
        foreach (var (key, value) in cell.Values)
        {
            if (value is IReadOnlyDictionary<string, object?> bundle)
            {
                foreach (var (k, v) in bundle)
                    if (k != "name") options[k] = v;
            }
            else if (key is not ("model" or "trial"))
            {
                options[key] = value;
            }
        }
        if (epochs is { } e) options["epochs"] = e.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (cell["model"] is string model) options["model"] = model;
        options.TryAdd("model", spec.Model);
        if (options.TryGetValue("data", out var data) && data is string single) options["data"] = new List<object?> { single };
        return new TrainConfig().With(options, $"{spec.Path} cell {cell.Name}");
    }

    private static CellRecord Execute(SweepSpec spec, string dir, SweepCell cell, CellRecord record, ITrainingObserver observer, CancellationToken cancellation)
    {
        var config = Config(spec, cell, record.TargetEpochs);
        if (ComputePrecisions.Parse(config.Precision) == ComputePrecision.Bf16
            && Bf16Speed.SlowNote($"Set precision: fp32 in {spec.Path} unless the sweep needs bf16's numbers.") is { } slow)
            observer.Message(slow);
        string prompt = spec.Eval.Prompt ?? config.Prompt;
        var evaluations = new Dictionary<string, string>(StringComparer.Ordinal);
        if (spec.Mode == SweepMode.Eval)
        {
            using var segmenter = new ModelReference(config.Model, null, null).Open(ComputePrecisions.Parse(config.Precision), config.FamilyOptions(), imageSize: config.ImageSize);
            foreach (var roots in EvaluationData(spec, config))
                evaluations[Name(roots)] = Evaluate(segmenter, dir, roots, config.FollowSymlinks, spec, prompt, config.Model, null, cancellation);
            return record with { Evaluations = evaluations, TrainableParameters = 0 };
        }

        var run = new RunFolder(Path.Combine(dir, "run"));
        bool resume = run.HasState;
        if (!resume && Directory.Exists(run.Path)) Directory.Delete(run.Path, recursive: true); // a start killed before its first epoch
        var result = new Trainer(config, run, observer).Run(resume, cancellation);
        var reference = ModelReference.Resolve(null, null, run.Path);
        using (var segmenter = reference.Open(ComputePrecisions.Parse(config.Precision), new Dictionary<string, string>()))
        {
            foreach (var roots in EvaluationData(spec, config))
                evaluations[Name(roots)] = Evaluate(segmenter, dir, roots, config.FollowSymlinks, spec, prompt, reference.ModelDirectory, reference.Weights, cancellation);
        }
        return record with
        {
            Evaluations = evaluations,
            TrainableParameters = result.TrainableParameters,
            TotalParameters = result.TotalParameters,
            Epochs = result.EpochsCompleted,
            BestValDice = result.BestValDice,
        };
    }

    /// <summary>The datasets a cell is tested on: its own (train, eval) or eval.data (cross).</summary>
    private static IEnumerable<IReadOnlyList<string>> EvaluationData(SweepSpec spec, TrainConfig config)
    {
        if (spec.Mode != SweepMode.Cross) return [config.Data];
        return spec.Eval.Data.Select(d => d is IReadOnlyList<object?> pooled ? pooled.Select(p => p!.ToString()!).ToList() : new List<string> { d!.ToString()! });
    }

    private static string Name(IReadOnlyList<string> roots) => string.Join("+", roots.Select(r => Path.GetFileName(r.TrimEnd('/'))));

    private static string Evaluate(ISegmenter segmenter, string cellDir, IReadOnlyList<string> roots, bool followSymlinks, SweepSpec spec, string prompt, string model, string? weights, CancellationToken cancellation)
    {
        string relative = Path.Combine("eval", SweepSpec.CellName([("data", roots.Count == 1 ? roots[0] : roots.Cast<object?>().ToList())]).Replace("data=", ""));
        string output = Path.Combine(cellDir, relative);
        var options = new EvaluationOptions { Split = spec.Eval.Split, Prompt = prompt, Threshold = spec.Eval.Threshold };
        var evaluator = Evaluator.Plan(segmenter, PooledDataset.Open(roots, followSymlinks), options, Path.GetFullPath(model), weights is null ? null : Path.GetFullPath(weights));
        var report = evaluator.Run(cancellation: cancellation);
        Directory.CreateDirectory(output);
        report.Write(output);
        return relative;
    }
}
