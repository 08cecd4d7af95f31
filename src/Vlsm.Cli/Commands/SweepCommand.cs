using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.IO;
using Spectre.Console;
using TorchSharp;
using Vlsm.Apps.Reports;
using Vlsm.Apps.Sweeps;
using Vlsm.Training;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm sweep</c>: a grid of trainings and evaluations, locally or on Slurm; <c>status</c>; <c>cell</c> (one cell, for workers and array tasks).</summary>
internal static class SweepCommand
{
    public static Command Build()
    {
        var spec = new Argument<string>("SPEC") { Description = "The sweep's YAML spec (name, model, grid, train, eval; see vlsm sweep --help)." };
        var output = new Option<string>("--out") { Description = "The sweep's folder: sweep.json and cells/NAME/ (run/, eval/, cell.json).", Required = true };
        var vars = new Option<string[]>("--var") { Description = "NAME=VALUE for ${NAME} in the spec's paths (repeatable).", AllowMultipleArgumentsPerToken = false };
        var backend = new Option<string>("--backend") { Description = "local (this machine) or slurm (one job array).", DefaultValueFactory = _ => "local" };
        var workers = new Option<int>("--workers") { Description = "Local: cells at a time (each in its own process, threads split between them).", DefaultValueFactory = _ => 1 };
        var threads = new Option<int?>("--threads") { Description = "Local: threads in all (default: the cores)." };
        var dryRun = new Option<bool>("--dry-run") { Description = "List the cells and the estimated cost; run nothing." };
        var wait = new Option<bool>("--wait") { Description = "Slurm: wait until every cell has finished (or failed)." };
        var slurm = SlurmOptions.Create();
        var cmd = new Command("sweep", "Run a grid of trainings and evaluations (the papers' experiments): idempotent and resumable, one run folder per cell; "
            + "then vlsm report makes the tables.")
        {
            spec, output, vars, backend, workers, threads, dryRun, wait,
        };
        foreach (var o in slurm.All) cmd.Options.Add(o);
        cmd.Subcommands.Add(BuildStatus());
        cmd.Subcommands.Add(BuildCell());
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            int? threadsInAll = ThreadsWithinBounds(parse.GetValue(threads));
            var variables = ParseVars(parse.GetValue(vars) ?? []);
            var sweepSpec = SweepSpec.Load(parse.GetValue(spec)!, variables);
            string dir = parse.GetValue(output)!;
            if (parse.GetValue(dryRun))
            {
                OutputFolder.RefuseFileOnPath(dir, "--out"); // a dry run reads the folder's plan, if any, and writes nothing
                var cells = Sweep.Plan(sweepSpec, Path.Combine(Path.GetTempPath(), "vlsm-dry-run-" + Guid.NewGuid().ToString("N")));
                PrintCells(cells, dir);
                return 0;
            }
            OutputFolder.CheckWritable(dir, "--out");
            var sweep = Sweep.Plan(sweepSpec, dir);
            switch (parse.GetValue(backend))
            {
                case "local":
                {
                    int total = threadsInAll ?? Environment.ProcessorCount;
                    var states = sweep.RunLocal(parse.GetValue(workers), total, CellCommand(), new Observer());
                    return Summarize(states);
                }
                case "slurm":
                {
                    var submission = SlurmBackend.Submit(sweep, slurm.Read(parse), CellCommand());
                    Console.WriteLine(submission.Tasks == 0
                        ? "every cell is done; nothing submitted"
                        : $"submitted Slurm job {submission.JobId}: {submission.Tasks} array task(s); vlsm sweep status {dir} shows them");
                    if (!parse.GetValue(wait) || submission.Tasks == 0) return 0;
                    SlurmBackend.Wait(submission.JobId);
                    return Summarize(sweep.Status(SlurmBackend.States(sweep)));
                }
                default:
                    throw new VlsmException($"--backend \"{parse.GetValue(backend)}\" is not one of local, slurm.");
            }
        }));
        return cmd;
    }

    private static Command BuildStatus()
    {
        var dir = new Argument<string>("DIR") { Description = "The sweep's --out folder." };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var cmd = new Command("status", "Each cell: done, running, failed or pending, and why (from cell.json, its lock, and squeue/sacct for Slurm sweeps).") { dir, json };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var sweep = Sweep.Open(parse.GetValue(dir)!);
            var states = sweep.Status(SlurmBackend.States(sweep));
            if (parse.GetValue(json))
            {
                var cells = new JsonArray(states.Select(s => (JsonNode)new JsonObject
                {
                    ["index"] = s.Cell.Index,
                    ["name"] = s.Cell.Name,
                    ["status"] = s.Status.ToString().ToLowerInvariant(),
                    ["reason"] = s.Reason,
                }).ToArray());
                Console.WriteLine(new JsonObject { ["sweep"] = sweep.Spec.Name, ["cells"] = cells }.ToJsonString(JsonText.Indented));
                return 0;
            }
            var table = new Table().AddColumn("#").AddColumn("cell").AddColumn("status").AddColumn("why");
            foreach (var s in states)
                table.AddRow(s.Cell.Index.ToString(CultureInfo.InvariantCulture), Markup.Escape(s.Cell.Name), StatusMarkup(s.Status), Markup.Escape(s.Reason ?? ""));
            TableOutput.Write(table);
            Console.WriteLine(string.Join(", ", Enum.GetValues<CellStatus>().Select(st => $"{states.Count(s => s.Status == st)} {st.ToString().ToLowerInvariant()}")));
            return 0;
        }));
        return cmd;
    }

    private static Command BuildCell()
    {
        var dir = new Argument<string>("DIR") { Description = "The sweep's --out folder." };
        var index = new Option<int?>("--index") { Description = "The cell's index (default: $SLURM_ARRAY_TASK_ID)." };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads (default: $SLURM_CPUS_PER_TASK, else the cores)." };
        var parent = new Option<int?>("--parent-pid") { Description = "Stop when this process ends (a local sweep's workers)." };
        var cmd = new Command("cell", "Run one cell of a planned sweep (what local workers and Slurm array tasks run).") { dir, index, threads, parent };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            int? given = ThreadsWithinBounds(parse.GetValue(threads));
            var sweep = Sweep.Open(parse.GetValue(dir)!);
            int i = parse.GetValue(index)
                ?? (int.TryParse(Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID"), out int task) ? task : throw new VlsmException("give --index I (or run as a Slurm array task)."));
            int? t = given ?? (int.TryParse(Environment.GetEnvironmentVariable("SLURM_CPUS_PER_TASK"), out int c) ? c : null);
            if (t is { } n) torch.set_num_threads(n);
            if (parse.GetValue(parent) is { } pid) WatchParent(pid);
            var record = CellRunner.Run(sweep.Spec, sweep.Dir, sweep.Cell(i), new CellTraining(sweep.Cell(i).Name));
            Console.WriteLine($"{record.Name}: {record.Status.ToString().ToLowerInvariant()}{(record.Error is { } e ? ": " + e : "")}");
            return record.Status == CellStatus.Done ? 0 : record.Status == CellStatus.Running ? 0 : 1;
        }));
        return cmd;
    }

    /// <summary>A worker whose sweep was killed stops too, as the kill would have stopped it in one process.</summary>
    private static void WatchParent(int pid)
    {
        var thread = new Thread(() =>
        {
            while (true)
            {
                Thread.Sleep(1000);
                try
                {
                    using var p = Process.GetProcessById(pid);
                    if (p.HasExited) Environment.Exit(130);
                }
                catch (ArgumentException)
                {
                    Environment.Exit(130);
                }
            }
        }) { IsBackground = true };
        thread.Start();
    }

    /// <summary>--threads within train's bounds (<see cref="TrainingThreads"/>), or null when not given.</summary>
    private static int? ThreadsWithinBounds(int? threads) => threads is { } n ? TrainingThreads.Check(n) : null;

    /// <summary>This program as a child process would run it: vlsm's own binary, or dotnet and vlsm.dll.</summary>
    internal static CellCommand CellCommand()
    {
        string program = Environment.ProcessPath!;
        var prefix = Path.GetFileNameWithoutExtension(program) == "dotnet" ? new[] { typeof(VlsmCli).Assembly.Location } : [];
        return new CellCommand(program, prefix);
    }

    private static Dictionary<string, string> ParseVars(IEnumerable<string> given)
    {
        var vars = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in given)
        {
            int eq = v.IndexOf('=');
            if (eq <= 0) throw new VlsmException($"--var \"{v}\" is not NAME=VALUE.");
            vars[v[..eq]] = v[(eq + 1)..];
        }
        return vars;
    }

    private static void PrintCells(Sweep sweep, string dir)
    {
        var table = new Table().AddColumn("#").AddColumn("cell (folder under cells/)");
        foreach (var cell in sweep.Cells) table.AddRow(cell.Index.ToString(CultureInfo.InvariantCulture), Markup.Escape(cell.Name));
        TableOutput.Write(table);
        var planned = File.Exists(Path.Combine(dir, Sweep.PlanFile)) ? Sweep.Open(dir) : sweep;
        var cost = planned.Estimate();
        Console.WriteLine($"{cost.Cells} cells, {cost.Remaining} to run: {cost.ImagePasses:N0} image passes (records x epochs, validation included)"
            + (cost.EstimatedSeconds is { } s ? $", about {TimeSpan.FromSeconds(s):g} at the speed of the cells already done" : "; no cell has run yet to time them"));
        try
        {
            Directory.Delete(sweep.Dir, recursive: true); // the dry run's own scratch plan
        }
        catch (IOException)
        {
        }
    }

    private static int Summarize(IReadOnlyList<CellState> states)
    {
        int failed = states.Count(s => s.Status == CellStatus.Failed);
        Console.WriteLine($"{states.Count(s => s.Status == CellStatus.Done)} of {states.Count} cells done"
            + (failed > 0 ? $", {failed} failed (vlsm sweep status shows why)" : ""));
        foreach (var s in states.Where(s => s.Status == CellStatus.Failed)) Console.Error.WriteLine($"failed: {s.Cell.Name}: {s.Reason}");
        return failed > 0 ? 1 : 0;
    }

    private static string StatusMarkup(CellStatus status) => status switch
    {
        CellStatus.Done => "[green]done[/]",
        CellStatus.Failed => "[red]failed[/]",
        CellStatus.Running => "[yellow]running[/]",
        _ => "pending",
    };

    /// <summary>Plain lines: one when a cell starts, one when it ends, and its epochs.</summary>
    private sealed class Observer : ISweepObserver
    {
        private string current = "";

        public ITrainingObserver Training => new CellTraining(current);

        public void CellStarted(SweepCell cell, int position, int count)
        {
            current = cell.Name;
            Console.WriteLine($"[{position}/{count}] {cell.Name}");
        }

        public void CellFinished(CellRecord record) =>
            Console.WriteLine($"  {record.Status.ToString().ToLowerInvariant()}{(record.Seconds is { } s ? $" in {s:0.#} s" : "")}{(record.Error is { } e ? ": " + e : "")}");
    }

    private sealed class CellTraining(string cell) : ITrainingObserver
    {
        public void RunStarted(string description) => Console.WriteLine($"  {description}");
        public void EpochStarted(int epoch, int maxEpochs, int steps) { }
        public void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond) { }
        public void EpochCompleted(EpochMetrics metrics, bool best) => Console.WriteLine($"  {cell}: {TrainingObservers.Line(metrics, best)}");
        public void Message(string text) => Console.WriteLine($"  {text}");
    }
}

/// <summary><c>vlsm report</c>: the comparison tables from sweep, cell and evaluation folders.</summary>
internal static class ReportCommand
{
    public static Command Build()
    {
        var dirs = new Argument<string[]>("DIR") { Description = "Sweep folders (vlsm sweep --out), cell folders, or evaluation folders (vlsm eval --out).", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "Where report.md, report.csv, report.tex, report.png and cells.csv go.", Required = true };
        var metric = new Option<string>("--metric") { Description = "dice, iou, hd95, nsd, ones_dice_diff or zeros_dice_diff.", DefaultValueFactory = _ => "dice" };
        var columns = new Option<string>("--columns") { Description = "data (a column per dataset) or prompt (per prompt key: the zero-shot study).", DefaultValueFactory = _ => "data" };
        var cmd = new Command("report", "The papers' tables: methods x datasets (or prompts), mean ± std over seeds, best in bold; Markdown, CSV, LaTeX and a figure.")
        {
            dirs, output, metric, columns,
        };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            string dir = parse.GetValue(output)!;
            OutputFolder.CheckWritable(dir, "--out");
            var report = ComparisonReport.Collect(parse.GetValue(dirs)!, parse.GetValue(metric)!, parse.GetValue(columns)!);
            report.Write(dir);
            Console.Write(report.ToMarkdown());
            Console.WriteLine($"wrote {string.Join(", ", new[] { ComparisonReport.MarkdownFile, ComparisonReport.CsvFile, ComparisonReport.LatexFile, ComparisonReport.FigureFile, ComparisonReport.CellsFile })} to {dir}");
            return 0;
        }));
        return cmd;
    }
}
