using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.IO;

namespace Vlsm.Apps.Sweeps;

/// <summary>sbatch settings passed through as given (null: the cluster's default).</summary>
public sealed record SlurmSettings(string? Partition, string? Time, int? CpusPerTask, string? Mem, string? Gres);

/// <summary>What was submitted: the array job's id and how many tasks it has.</summary>
public sealed record SlurmSubmission(string JobId, int Tasks);

/// <summary>
/// Runs a sweep as one Slurm job array: task <c>i</c> runs cell <c>i</c> through the same entry point
/// as a local worker (<c>vlsm sweep cell</c>). Near its time limit a task gets SIGUSR2 (90 s ahead,
/// as submitit asks), requeues itself and stops; requeued, it resumes its cell from the last epoch.
/// Results land in the same cell folders as local runs.
/// </summary>
public static class SlurmBackend
{
    private const string JobsFile = "jobs.json";

    public static string SlurmDir(Sweep sweep) => Path.Combine(sweep.Dir, "slurm");

    /// <summary>Submits every cell that is not done; returns the job (no job when there is nothing to run).</summary>
    /// <exception cref="VlsmException">sbatch is missing or refuses the job (its message is passed on).</exception>
    public static SlurmSubmission Submit(Sweep sweep, SlurmSettings settings, CellCommand command)
    {
        var todo = sweep.Status().Where(s => s.Status is not (CellStatus.Done or CellStatus.Running)).Select(s => s.Cell.Index).ToList();
        if (todo.Count == 0) return new SlurmSubmission("", 0);
        string dir = SlurmDir(sweep);
        Directory.CreateDirectory(dir);
        string script = Path.Combine(dir, "array.sh");
        AtomicFile.WriteAllText(script, Script(sweep, settings, command));
        var args = new List<string> { "--parsable", $"--array={string.Join(",", todo)}", script };
        string output = Run("sbatch", args).Trim();
        string jobId = output.Split(';')[0];
        if (!jobId.All(char.IsAsciiDigit)) throw new VlsmException($"sbatch answered \"{output}\", not a job id.");
        var jobs = Jobs(sweep);
        jobs.Add(jobId);
        AtomicFile.WriteAllText(Path.Combine(dir, JobsFile), JsonSerializer.Serialize(jobs) + "\n");
        return new SlurmSubmission(jobId, todo.Count);
    }

    /// <summary>The batch script: sbatch settings, the requeue-on-time-limit trap, and the cell's command.</summary>
    internal static string Script(Sweep sweep, SlurmSettings s, CellCommand command)
    {
        static string Quote(string a) => "'" + a.Replace("'", "'\\''") + "'";
        var text = new StringBuilder("#!/bin/bash\n");
        text.Append($"#SBATCH --job-name=vlsm-{sweep.Spec.Name}\n");
        text.Append($"#SBATCH --output={Path.Combine(SlurmDir(sweep), "%A_%a.out")}\n");
        text.Append("#SBATCH --open-mode=append\n#SBATCH --requeue\n#SBATCH --signal=B:USR2@90\n");
        if (s.Partition is { } p) text.Append($"#SBATCH --partition={p}\n");
        if (s.Time is { } t) text.Append($"#SBATCH --time={t}\n");
        if (s.CpusPerTask is { } c) text.Append($"#SBATCH --cpus-per-task={c}\n");
        if (s.Mem is { } m) text.Append($"#SBATCH --mem={m}\n");
        if (s.Gres is { } g) text.Append($"#SBATCH --gres={g}\n");
        text.Append("# Near the time limit Slurm sends USR2: stop the cell (its last finished epoch is on disk),\n");
        text.Append("# requeue this task, and end; requeued, the cell resumes from that epoch.\n");
        text.Append("requeue() {\n  echo \"vlsm: time limit near; requeueing ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n");
        text.Append("  kill -TERM \"$child\" 2>/dev/null; wait \"$child\"\n");
        text.Append("  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n  exit 0\n}\ntrap requeue USR2\n");
        text.Append(string.Join(' ', new[] { command.Program }.Concat(command.Prefix).Select(Quote)));
        text.Append($" sweep cell {Quote(sweep.Dir)} --index \"$SLURM_ARRAY_TASK_ID\" &\nchild=$!\nwait \"$child\"\nstatus=$?\n");
        text.Append("# wait returns early when the trap runs; the trap then ends the script\nwait \"$child\" 2>/dev/null\nexit $status\n");
        return text.ToString();
    }

    /// <summary>The array jobs submitted for this sweep so far.</summary>
    public static List<string> Jobs(Sweep sweep)
    {
        string path = Path.Combine(SlurmDir(sweep), JobsFile);
        return File.Exists(path) ? JsonSerializer.Deserialize<List<string>>(File.ReadAllText(path)) ?? [] : [];
    }

    /// <summary>
    /// Scheduler states by cell index for a Slurm sweep (squeue for queued and running tasks, sacct
    /// for the rest where accounting is on), e.g. "PENDING (Priority)", "RUNNING on node1"; null for a local sweep.
    /// </summary>
    public static IReadOnlyDictionary<int, string>? States(Sweep sweep)
    {
        var jobs = Jobs(sweep);
        if (jobs.Count == 0) return null;
        var states = new Dictionary<int, string>();
        foreach (var job in jobs)
        {
            if (TryRun("sacct", ["-n", "-P", "-X", "-j", job, "-o", "JobID,State,ExitCode"]) is { } accounting)
            {
                foreach (var line in accounting.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    var f = line.Split('|');
                    if (f.Length >= 2 && TaskIndex(f[0]) is { } i) states[i] = $"{f[1]} (job {f[0]}{(f.Length > 2 ? $", exit {f[2]}" : "")})";
                }
            }
            if (TryRun("squeue", ["-h", "-r", "-j", job, "-o", "%i|%T|%r|%N"]) is { } queue)
            {
                foreach (var line in queue.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    var f = line.Split('|');
                    if (f.Length >= 2 && TaskIndex(f[0]) is { } i)
                        states[i] = f[1] == "RUNNING" ? $"RUNNING on {f.ElementAtOrDefault(3)} (job {f[0]})" : $"{f[1]} ({f.ElementAtOrDefault(2)}, job {f[0]})";
                }
            }
        }
        return states;
    }

    private static int? TaskIndex(string jobId)
    {
        int underscore = jobId.IndexOf('_');
        return underscore > 0 && int.TryParse(jobId[(underscore + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) ? i : null;
    }

    /// <summary>Waits until squeue lists no task of the job (finished, failed or cancelled).</summary>
    public static void Wait(string jobId, TimeSpan? poll = null, CancellationToken cancellation = default)
    {
        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            string queue = Run("squeue", ["-h", "-r", "-j", jobId, "-o", "%i"]);
            if (queue.Trim().Length == 0) return;
            Thread.Sleep(poll ?? TimeSpan.FromSeconds(2));
        }
    }

    private static string? TryRun(string program, IReadOnlyList<string> args)
    {
        try
        {
            return Run(program, args);
        }
        catch (VlsmException)
        {
            return null;
        }
    }

    internal static string Run(string program, IReadOnlyList<string> args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new VlsmException($"{program} is not installed or not on PATH ({e.Message}); the Slurm backend needs Slurm's client commands.", e);
        }
        using (p)
        {
            var stderr = p.StandardError.ReadToEndAsync();
            string stdout = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new VlsmException($"{program} {string.Join(' ', args)} failed: {stderr.Result.Trim()}");
            return stdout;
        }
    }
}
