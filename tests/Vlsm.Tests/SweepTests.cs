using System.Diagnostics;
using System.Text.Json.Nodes;
using Vlsm.Apps.Reports;
using Vlsm.Apps.Sweeps;
using Vlsm.Data.Synthetic;
using Vlsm.Training;

namespace Vlsm.Tests;

/// <summary>Two small synthetic datasets and the issue's spec, shared by the sweep tests.</summary>
public sealed class SweepFixture : IDisposable
{
    public SweepFixture()
    {
        Root = Directory.CreateTempSubdirectory("vlsm-sweep-").FullName;
        SyntheticDataset.Generate(Path.Combine(Root, "data", "a"), new SynthOptions(16, 1, Size: 64, Style: SynthStyle.Medical), null);
        SyntheticDataset.Generate(Path.Combine(Root, "data", "b"), new SynthOptions(16, 2, Size: 64, Style: SynthStyle.Medical), null);
        Spec = Path.Combine(Root, "tiny.yaml");
        // The issue's spec contract, as written (the model's path made absolute).
        File.WriteAllText(Spec, $"""
            name: tiny
            model: {Path.Combine(Fixtures.Parity, "clipseg-tiny")}
            grid:                      # every key is a train option; the cells are the product of the lists
              preset: [clipseg_shallow_adapter_vlc, clipseg_dense_adapter_vl]
              data: [data/a, data/b]
              seed: [1, 2]
            train: {"{"}epochs: 1, batch_size: 8{"}"}
            eval: {"{"}split: test, prompt: p1{"}"}
            """);
        Reference = Path.Combine(Root, "straight");
        var run = CliRunner.RunIn(Root, "sweep", Spec, "--out", Reference);
        if (run.ExitCode != 0) throw new InvalidOperationException("the uninterrupted sweep failed: " + run.Stdout + run.Stderr);
        ReferenceReport = Report(Reference);
    }

    public string Root { get; }
    public string Spec { get; }
    public string Reference { get; }
    public string ReferenceReport { get; }

    public string Report(string sweep)
    {
        string output = sweep + "-report";
        var r = CliRunner.Run("report", sweep, "--out", output);
        if (r.ExitCode != 0) throw new InvalidOperationException("report failed: " + r.Stderr);
        return File.ReadAllText(Path.Combine(output, ComparisonReport.MarkdownFile));
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

/// <summary>
/// vlsm sweep and vlsm report: the issue's spec gives 8 cells and a 2x2 table; a sweep killed with
/// SIGKILL and restarted ends with the same report; the same sweep on the test Slurm gives the
/// same numbers; a task interrupted near its time limit requeues itself and resumes.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class SweepTests : IClassFixture<SweepFixture>
{
    private readonly SweepFixture fx;

    public SweepTests(SweepFixture fx) => this.fx = fx;

    private string NewDir(string name) => Path.Combine(fx.Root, name + "-" + Guid.NewGuid().ToString("N")[..8]);

    [Fact]
    public void TheIssuesSpecGivesEightCellsAndATwoByTwoTable()
    {
        var sweep = Sweep.Open(fx.Reference);
        Assert.Equal(8, sweep.Cells.Count);
        Assert.Equal("preset=clipseg_shallow_adapter_vlc__data=a__seed=1", sweep.Cells[0].Name);
        Assert.All(sweep.Status(), s => Assert.Equal(CellStatus.Done, s.Status));
        foreach (var cell in sweep.Cells)
        {
            var run = new RunFolder(Path.Combine(sweep.CellDir(cell), "run"));
            Assert.True(run.HasState, cell.Name);
            Assert.Single(run.ReadMetrics());
        }

        var report = ComparisonReport.Collect([fx.Reference]);
        Assert.Equal(["clipseg_shallow_adapter_vlc", "clipseg_dense_adapter_vl"], report.Methods);
        Assert.Equal(["a", "b"], report.Columns);
        foreach (var method in report.Methods)
        {
            foreach (var column in report.Columns)
            {
                var cell = report.Cell(method, column)!;
                Assert.Equal(2, cell.Entries.Count); // two seeds
                var values = cell.Entries.Select(e => e.Metrics["dice"]!.Value).ToList();
                Assert.Equal(values.Average(), cell.Mean, 12);
                Assert.Equal(Math.Abs(values[0] - values[1]) / Math.Sqrt(2), cell.Std!.Value, 12); // sample std of two
            }
        }
        // The formats agree: every mean of report.csv appears, rounded, in report.md and report.tex.
        string dir = fx.Reference + "-report";
        var csv = File.ReadAllLines(Path.Combine(dir, ComparisonReport.CsvFile));
        Assert.Equal("method,trainable_parameters,a_mean,a_std,a_n,b_mean,b_std,b_n", csv[0]);
        string tex = File.ReadAllText(Path.Combine(dir, ComparisonReport.LatexFile));
        foreach (var line in csv.Skip(1))
        {
            var f = line.Split(',');
            foreach (int i in new[] { 2, 5 })
            {
                string shown = (double.Parse(f[i], System.Globalization.CultureInfo.InvariantCulture) * 100).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
                Assert.Contains(shown, fx.ReferenceReport);
                Assert.Contains(shown, tex);
            }
        }
        Assert.Contains("\\smallStd{", tex);
        Assert.Equal(8 * 1 + 1, File.ReadAllLines(Path.Combine(dir, ComparisonReport.CellsFile)).Length); // a row per cell and dataset
        Assert.True(new FileInfo(Path.Combine(dir, ComparisonReport.FigureFile)).Length > 1000);
    }

    [Fact]
    public void AMissingCellIsShownAsMissing()
    {
        string copy = NewDir("partial");
        CopyDirectory(fx.Reference, copy);
        var sweep = Sweep.Open(copy);
        // One seed of one method on dataset b never ran: its cell keeps the other seed; remove both and it is missing.
        foreach (var cell in sweep.Cells.Where(c => c.Name.StartsWith("preset=clipseg_dense_adapter_vl__data=b", StringComparison.Ordinal)))
            Directory.Delete(sweep.CellDir(cell), recursive: true);
        var report = ComparisonReport.Collect([copy]);
        Assert.Null(report.Cell("clipseg_dense_adapter_vl", "b"));
        Assert.Contains("| clipseg_dense_adapter_vl | 54,304 |", report.ToMarkdown());
        Assert.Contains(" — |", report.ToMarkdown());
        Assert.Contains(",,,0", report.ToCsv());
    }

    [Fact]
    public void AKilledSweepRestartedEndsWithTheSameReport()
    {
        string out1 = NewDir("killed");
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = fx.Root, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "vlsm.dll"), "sweep", fx.Spec, "--out", out1 }) psi.ArgumentList.Add(a);
        using (var p = Process.Start(psi)!)
        {
            _ = p.StandardOutput.ReadToEndAsync();
            _ = p.StandardError.ReadToEndAsync();
            // Kill it while the fourth cell trains: three are done, one is half way.
            var deadline = DateTime.UtcNow.AddMinutes(5);
            while (DateTime.UtcNow < deadline && !(Done(out1) >= 3 && Running(out1)) && !p.HasExited) Thread.Sleep(100);
            Assert.False(p.HasExited, "the sweep finished before it could be killed");
            p.Kill(entireProcessTree: true); // SIGKILL
            p.WaitForExit();
        }
        Assert.InRange(Done(out1), 3, 7);
        var again = CliRunner.RunIn(fx.Root, "sweep", fx.Spec, "--out", out1);
        Assert.True(again.ExitCode == 0, again.Stdout + again.Stderr);
        Assert.Equal(8, Done(out1));
        Assert.Equal(fx.ReferenceReport, fx.Report(out1));
    }

    [Fact]
    public void AFailedCellIsRecordedAndTheOthersGoOn()
    {
        string spec = Path.Combine(fx.Root, "failing.yaml");
        File.WriteAllText(spec, $"""
            name: failing
            model: {Path.Combine(Fixtures.Parity, "clipseg-tiny")}
            grid:
              data: [data/a, data/missing]
            train: {"{"}epochs: 1, batch_size: 8, mode: decoder, prompt: p1{"}"}
            """);
        string dir = NewDir("failing");
        var r = CliRunner.RunIn(fx.Root, "sweep", spec, "--out", dir);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("1 of 2 cells done, 1 failed", r.Stdout);
        var status = CliRunner.Run("sweep", "status", dir, "--json");
        var cells = JsonNode.Parse(status.Stdout)!["cells"]!.AsArray();
        Assert.Equal("done", cells[0]!["status"]!.GetValue<string>());
        Assert.Equal("failed", cells[1]!["status"]!.GetValue<string>());
        Assert.Contains("missing", cells[1]!["reason"]!.GetValue<string>());
    }

    [Fact]
    public void ASpecWithATypoFailsBeforeAnyCellRuns()
    {
        string spec = Path.Combine(fx.Root, "typo.yaml");
        File.WriteAllText(spec, $"model: {Path.Combine(Fixtures.Parity, "clipseg-tiny")}\ngrid:\n  data: [data/a]\ntrain: {{epocs: 1}}\n");
        var r = CliRunner.RunIn(fx.Root, "sweep", spec, "--out", NewDir("typo"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("\"epocs\" is not a train option", r.Stderr);
        var dry = CliRunner.RunIn(fx.Root, "sweep", fx.Spec, "--out", NewDir("dry"), "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.Stderr);
        Assert.Contains("8 cells, 8 to run", dry.Stdout);
    }

    [Fact]
    public void ThreadsOutsideTrainsBoundsAreRefusedBeforeAnythingIsWritten()
    {
        foreach (var threads in new[] { "0", "-1", "100000" })
        {
            string dir = NewDir("threads");
            foreach (var args in new[] { new[] { "sweep", fx.Spec, "--out", dir, "--threads", threads }, ["sweep", fx.Spec, "--out", dir, "--threads", threads, "--dry-run"],
                ["sweep", "cell", dir, "--index", "0", "--threads", threads] })
            {
                var r = CliRunner.RunIn(fx.Root, args);
                Assert.Equal(2, r.ExitCode);
                Assert.StartsWith($"error: --threads {threads}: give at least 1 and at most {Vlsm.Training.TrainingThreads.Max}", r.Stderr.Trim());
                Assert.False(Directory.Exists(dir));
            }
        }
    }

    [Fact]
    public void ACellInBf16WhereBf16IsSlowSaysSoAndRuns()
    {
        string spec = Path.Combine(fx.Root, "bf16.yaml");
        File.WriteAllText(spec, $"""
            name: bf16
            mode: eval
            model: {Path.Combine(Fixtures.Parity, "clipseg-tiny")}
            grid:
              data: [data/a]
            train: {"{"}precision: bf16{"}"}
            eval: {"{"}split: test, prompt: p1{"}"}
            """);
        string dir = NewDir("bf16");
        var r = CliRunner.RunIn(fx.Root, "sweep", spec, "--out", dir, "--workers", "1");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Equal(1, Done(dir));
        // The note names the spec to change, where bf16 products run on libtorch's reference kernel (AVX2-only CPUs), and only there.
        Assert.Equal(Vlsm.Platform.Bf16Speed.IsSlow, r.Stdout.Contains("note: bf16 is slow on this CPU", StringComparison.Ordinal));
        if (Vlsm.Platform.Bf16Speed.IsSlow) Assert.Contains($"Set precision: fp32 in {spec}", r.Stdout);
    }

    [Fact]
    public void TheSameSweepOnSlurmGivesTheSameNumbers()
    {
        SlurmCluster.RequireRunning();
        string dir = NewDir("slurm");
        var r = CliRunner.RunIn(fx.Root, "sweep", fx.Spec, "--out", dir, "--backend", "slurm", "--wait");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("submitted Slurm job", r.Stdout);
        Assert.Equal(8, Done(dir));
        Assert.All(Directory.GetDirectories(Path.Combine(dir, "cells")), c => Assert.NotNull(JsonNode.Parse(File.ReadAllText(Path.Combine(c, "cell.json")))!["slurm_job"]));
        Assert.Equal(fx.ReferenceReport, fx.Report(dir));
    }

    [Fact]
    public void ATaskNearItsTimeLimitRequeuesAndResumes()
    {
        SlurmCluster.RequireRunning();
        string spec = Path.Combine(fx.Root, "long.yaml");
        File.WriteAllText(spec, $"""
            name: long
            model: {Path.Combine(Fixtures.Parity, "clipseg-tiny")}
            grid:
              data: [data/a]
            train: {"{"}epochs: 4, batch_size: 2, mode: decoder, prompt: p1, seed: 3{"}"}
            """);
        string slurm = NewDir("requeue");
        var r = CliRunner.RunIn(fx.Root, "sweep", spec, "--out", slurm, "--backend", "slurm");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var sweep = Sweep.Open(slurm);
        string job = SlurmBackend.Jobs(sweep).Single();
        var run = new RunFolder(Path.Combine(sweep.CellDir(sweep.Cells[0]), "run"));
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (DateTime.UtcNow < deadline && !(run.HasState && run.ReadState().EpochsCompleted >= 1)) Thread.Sleep(100);
        Assert.True(run.HasState, "the task never finished an epoch");
        // What Slurm sends 90 s before the time limit (--signal=B:USR2@90).
        SlurmCluster.Run("scancel", "--batch", "--signal=USR2", $"{job}_0");
        // Slurm holds a requeued job back for two minutes (reason BeginTime); the test lets it go at once.
        // The update is refused while the task is still completing, so it is retried until it is pending.
        deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && !SlurmCluster.Run("squeue", "-h", "-r", "-j", job, "-o", "%T %r").Contains("PENDING BeginTime")) Thread.Sleep(200);
        deadline = DateTime.UtcNow.AddMinutes(1);
        while (!SlurmCluster.TryRun("scontrol", "update", $"JobId={job}_0", "BeginTime=now") && DateTime.UtcNow < deadline) Thread.Sleep(500);
        SlurmBackend.Wait(job);
        var record = CellRunner.Read(sweep.CellDir(sweep.Cells[0]))!;
        Assert.Equal(CellStatus.Done, record.Status);
        Assert.True(record.Attempts >= 2, $"attempts {record.Attempts}: the task was not requeued");
        Assert.Contains("requeueing", File.ReadAllText(Directory.GetFiles(Path.Combine(slurm, "slurm"), "*_0.out").Single()));

        // The requeued cell ends exactly as an uninterrupted one.
        string local = NewDir("requeue-local");
        Assert.Equal(0, CliRunner.RunIn(fx.Root, "sweep", spec, "--out", local).ExitCode);
        var straight = new RunFolder(Path.Combine(Sweep.Open(local).CellDir(sweep.Cells[0]), "run"));
        static string[] WithoutSeconds(RunFolder r) => File.ReadAllLines(r.MetricsFile).Select(l => string.Join(',', l.Split(',')[..^1])).ToArray();
        Assert.Equal(4, run.ReadMetrics().Count);
        Assert.Equal(WithoutSeconds(straight), WithoutSeconds(run));
        Assert.Equal(File.ReadAllBytes(straight.BestFile), File.ReadAllBytes(run.BestFile));
    }

    private static int Done(string sweepDir) => Directory.Exists(Path.Combine(sweepDir, "cells"))
        ? Directory.GetDirectories(Path.Combine(sweepDir, "cells")).Count(c => CellRunner.Read(c)?.Status == CellStatus.Done)
        : 0;

    private static bool Running(string sweepDir) => Directory.Exists(Path.Combine(sweepDir, "cells"))
        && Directory.GetDirectories(Path.Combine(sweepDir, "cells")).Any(c => CellRunner.Read(c)?.Status == CellStatus.Running && File.Exists(Path.Combine(c, "run", "config.yaml")));

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(file, file.Replace(from, to));
    }
}

/// <summary>The single-node Slurm that tests/setup/slurm.sh starts (the README's test command runs it first).</summary>
internal static class SlurmCluster
{
    public static void RequireRunning()
    {
        try
        {
            string nodes = Run("sinfo", "-h", "-N", "-o", "%T");
            Assert.True(nodes.Contains("idle") || nodes.Contains("mixed") || nodes.Contains("alloc"), $"the Slurm node is not up: {nodes}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Fail($"Slurm is not installed ({e.Message}); run tests/setup/slurm.sh (the README's test command does).");
        }
    }

    /// <summary>Runs a Slurm command; false when it exits non-zero.</summary>
    public static bool TryRun(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0;
    }

    public static string Run(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{program} {string.Join(' ', args)}: {error}");
        return output;
    }
}
