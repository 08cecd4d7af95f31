using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.Data;
using Vlsm.IO;
using Vlsm.Training;

namespace Vlsm.Apps.Sweeps;

/// <summary>What the sweep runner reports while it works.</summary>
public interface ISweepObserver
{
    void CellStarted(SweepCell cell, int position, int count);
    void CellFinished(CellRecord record);
    ITrainingObserver Training { get; }
}

/// <summary>A cell's state for <c>vlsm sweep status</c>: its record's status, or running when a live process holds its lock, and why.</summary>
public sealed record CellState(SweepCell Cell, CellStatus Status, string? Reason, CellRecord? Record);

/// <summary>Cells and image passes a sweep still needs, and a time estimate from the cells already done.</summary>
public sealed record SweepCost(int Cells, int Remaining, long ImagePasses, double? EstimatedSeconds);

/// <summary>How a cell runs in its own process: the program and the arguments before <c>sweep cell</c>'s own.</summary>
public sealed record CellCommand(string Program, IReadOnlyList<string> Prefix);

/// <summary>
/// A planned sweep in its folder: <c>sweep.json</c> (the resolved spec: every path absolute, every
/// value fixed), <c>cells/NAME/</c> per cell. Idempotent: running it again skips finished cells and
/// resumes killed ones from their last epoch; a failed cell is recorded and the others go on.
/// </summary>
public sealed class Sweep
{
    public const string PlanFile = "sweep.json";

    private Sweep(SweepSpec spec, string dir, IReadOnlyList<SweepCell> cells)
    {
        Spec = spec;
        Dir = dir;
        Cells = cells;
    }

    public SweepSpec Spec { get; }
    public string Dir { get; }
    public IReadOnlyList<SweepCell> Cells { get; }

    /// <summary>Plans <paramref name="spec"/> in <paramref name="dir"/>; a folder planned before must hold the same sweep.</summary>
    /// <exception cref="VlsmException">The folder holds another sweep, or a cell's options do not make a valid training.</exception>
    public static Sweep Plan(SweepSpec spec, string dir)
    {
        var cells = ExpandSearch(spec);
        foreach (var cell in cells) Check(spec, cell);
        string path = Path.Combine(dir, PlanFile);
        var json = spec.ToJson();
        if (File.Exists(path))
        {
            var existing = JsonNode.Parse(File.ReadAllText(path))!;
            if (!JsonNode.DeepEquals(existing, json))
                throw new VlsmException($"{dir} holds another sweep ({existing["name"]}, planned from {existing["path"]}); its spec differs from {spec.Path}. Give another --out, or delete the folder to start over.");
        }
        else
        {
            Directory.CreateDirectory(dir);
            AtomicFile.WriteAllText(path, json.ToJsonString(JsonText.Indented) + "\n");
        }
        return new Sweep(spec, Path.GetFullPath(dir), cells);
    }

    /// <summary>The sweep planned in <paramref name="dir"/>.</summary>
    public static Sweep Open(string dir)
    {
        string path = Path.Combine(dir, PlanFile);
        if (!File.Exists(path)) throw new VlsmException($"{dir}: no {PlanFile}; give the --out folder of a sweep.");
        SweepSpec spec;
        try
        {
            spec = SweepSpec.FromJson(JsonNode.Parse(File.ReadAllText(path))!.AsObject());
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new VlsmException($"{path}: not a sweep plan ({e.Message}).", e);
        }
        return new Sweep(spec, Path.GetFullPath(dir), ExpandSearch(spec));
    }

    /// <summary>The grid's cells; with a search, each grid cell times its trials (a trial axis and the drawn options).</summary>
    private static IReadOnlyList<SweepCell> ExpandSearch(SweepSpec spec)
    {
        var grid = spec.Cells();
        if (spec.Search is not { } search) return grid;
        var cells = new List<SweepCell>();
        foreach (var g in grid)
        {
            for (int t = 0; t < search.Trials; t++)
            {
                var values = g.Values.Concat([("trial", (object?)t.ToString(CultureInfo.InvariantCulture))])
                    .Concat(search.Draw(t).Select(d => (d.Key, (object?)d.Value))).ToList();
                var named = g.Values.Concat([("trial", (object?)t.ToString(CultureInfo.InvariantCulture))]).ToList();
                cells.Add(new SweepCell(cells.Count, SweepSpec.CellName(named), values));
            }
        }
        return cells;
    }

    /// <summary>Resolves a cell's train options up front, so a typo fails the plan, not the third cell an hour in.</summary>
    private static void Check(SweepSpec spec, SweepCell cell)
    {
        var config = CellRunner.Config(spec, cell);
        if (spec.Mode != SweepMode.Eval) TrainingPlan.Resolve(config);
    }

    public string CellDir(SweepCell cell) => CellRunner.CellDir(Dir, cell);

    public SweepCell Cell(int index) => index >= 0 && index < Cells.Count
        ? Cells[index]
        : throw new VlsmException($"cell index {index} is outside this sweep's 0..{Cells.Count - 1}.");

    /// <summary>Every cell's state, from its record and whether a live process holds its lock.</summary>
    public IReadOnlyList<CellState> Status(IReadOnlyDictionary<int, string>? schedulerStates = null)
    {
        var states = new List<CellState>();
        foreach (var cell in Cells)
        {
            string dir = CellDir(cell);
            var record = CellRunner.Read(dir);
            bool locked = CellRunner.IsLocked(dir);
            string? scheduler = schedulerStates is not null && schedulerStates.TryGetValue(cell.Index, out var s) ? s : null;
            var (status, reason) = (record?.Status, locked) switch
            {
                (_, true) => (CellStatus.Running, $"on {record?.Host} (pid {record?.Pid}{(record?.SlurmJob is { } job ? $", Slurm {job}" : "")}), attempt {record?.Attempts}"),
                (CellStatus.Done, _) => (CellStatus.Done, $"{record!.Seconds:0.#} s" + (record.BestValDice is { } d ? $", best val Dice {d:0.0000}" : "")),
                (CellStatus.Failed, _) => (CellStatus.Failed, record!.Error),
                (CellStatus.Running, _) => (scheduler is not null ? CellStatus.Running : CellStatus.Pending,
                    scheduler ?? $"stopped during attempt {record!.Attempts} (its process is gone); it resumes from its last epoch"),
                _ => (scheduler is { } sched && sched.StartsWith("RUNNING", StringComparison.Ordinal) ? CellStatus.Running : CellStatus.Pending,
                    scheduler ?? record?.Error ?? "not started"),
            };
            states.Add(new CellState(cell, status, reason, record));
        }
        return states;
    }

    /// <summary>Cells left and the image passes they need (records × epochs), with seconds per pass measured on finished cells.</summary>
    public SweepCost Estimate()
    {
        long total = 0;
        int remaining = 0;
        double measuredSeconds = 0;
        long measuredPasses = 0;
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var state in Status())
        {
            var config = CellRunner.Config(Spec, state.Cell);
            string key = string.Join("|", config.Data);
            if (!counts.TryGetValue(key, out long records))
            {
                var data = PooledDataset.Open(config.Data, config.FollowSymlinks);
                records = Spec.Mode == SweepMode.Eval
                    ? data.Records(Spec.Eval.Split).Count
                    : data.Records(config.TrainSplit).Count + data.Records(config.ValSplit).Count;
                counts[key] = records;
            }
            long passes = Spec.Mode == SweepMode.Eval ? records : records * (Spec.Search?.MaxEpochs ?? config.MaxEpochs);
            if (state.Status == CellStatus.Done && state.Record?.Seconds is { } seconds)
            {
                measuredSeconds += seconds;
                measuredPasses += Spec.Mode == SweepMode.Eval ? records : records * (state.Record.Epochs ?? config.MaxEpochs);
                continue;
            }
            total += passes;
            remaining++;
        }
        double? estimate = measuredPasses > 0 ? total * measuredSeconds / measuredPasses : null;
        return new SweepCost(Cells.Count, remaining, total, estimate);
    }

    /// <summary>
    /// Runs every cell not done: one after another in this process, or <paramref name="workers"/> at
    /// a time in child processes (<paramref name="command"/>) sharing <paramref name="threads"/> threads.
    /// With a search, rung by rung.
    /// </summary>
    public IReadOnlyList<CellState> RunLocal(int workers, int threads, CellCommand? command, ISweepObserver observer, CancellationToken cancellation = default)
    {
        if (workers < 1) throw new VlsmException($"--workers must be at least 1, got {workers}.");
        if (Spec.Search is not null)
        {
            new SearchRunner(this).Run(cells => RunCells(cells, workers, threads, command, observer, cancellation));
        }
        else
        {
            RunCells(Cells, workers, threads, command, observer, cancellation);
        }
        return Status();
    }

    internal void RunCells(IReadOnlyList<SweepCell> cells, int workers, int threads, CellCommand? command, ISweepObserver observer, CancellationToken cancellation)
    {
        var todo = cells.Where(c => CellRunner.Read(CellDir(c))?.Status != CellStatus.Done).ToList();
        if (workers == 1 || command is null)
        {
            for (int i = 0; i < todo.Count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                observer.CellStarted(todo[i], i + 1, todo.Count);
                observer.CellFinished(CellRunner.Run(Spec, Dir, todo[i], observer.Training, cancellation));
            }
            return;
        }
        int perWorker = Math.Max(1, threads / workers);
        var running = new List<(SweepCell Cell, Process Process)>();
        int next = 0, started = 0;
        while (next < todo.Count || running.Count > 0)
        {
            cancellation.ThrowIfCancellationRequested();
            while (running.Count < workers && next < todo.Count)
            {
                var cell = todo[next++];
                observer.CellStarted(cell, ++started, todo.Count);
                running.Add((cell, StartChild(command, cell, perWorker)));
            }
            Thread.Sleep(200);
            foreach (var finished in running.Where(r => r.Process.HasExited).ToList())
            {
                running.Remove(finished);
                finished.Process.Dispose();
                observer.CellFinished(CellRunner.Read(CellDir(finished.Cell)) ?? new CellRecord
                {
                    Index = finished.Cell.Index, Name = finished.Cell.Name, Values = [], Status = CellStatus.Failed, Error = "its process ended without a record",
                });
            }
        }
    }

    private Process StartChild(CellCommand command, SweepCell cell, int threads)
    {
        var psi = new ProcessStartInfo(command.Program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in command.Prefix) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "sweep", "cell", Dir, "--index", cell.Index.ToString(CultureInfo.InvariantCulture), "--threads", threads.ToString(CultureInfo.InvariantCulture),
                     "--parent-pid", Environment.ProcessId.ToString(CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        string log = Path.Combine(CellDir(cell), "cell.log");
        Directory.CreateDirectory(CellDir(cell));
        // The child's output goes to the cell's log; reading it keeps the pipes from filling.
        _ = Task.Run(async () =>
        {
            await using var writer = new StreamWriter(log, append: true);
            var err = p.StandardError.ReadToEndAsync();
            await writer.WriteAsync(await p.StandardOutput.ReadToEndAsync());
            await writer.WriteAsync(await err);
        });
        return p;
    }
}
