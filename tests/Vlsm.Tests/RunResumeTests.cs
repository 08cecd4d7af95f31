using System.Text.Json.Nodes;
using Vlsm.Data.Synthetic;
using Vlsm.Training;

namespace Vlsm.Tests;

/// <summary>
/// Resuming and extending runs through <c>vlsm train</c> (issue 19: paths and data identity, resume
/// gaps; issue 20: --epochs on resume, Ctrl-C, epochs numbered from 1).
/// </summary>
public sealed class RunResumeTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-resume-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string Tiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");

    private static string Data(string dir, int scenes, ulong seed)
    {
        SyntheticDataset.Generate(dir, new SynthOptions(scenes, seed, Size: 64, Style: SynthStyle.Medical), null);
        return dir;
    }

    private static string[] Train(string data, string run, int epochs, params string[] more) =>
        ["train", "--model", Tiny, "--data", data, "--mode", "decoder", "--epochs", epochs.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--batch-size", "4", "--prompt", "p1", "--lr", "0.01", "--out", run, .. more];

    private static string[] WithoutSeconds(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Select(l => string.Join(',', l.Split(',')[..^1])).ToArray();

    private static void Ok(CliResult r) => Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

    [Fact]
    public void ResumeWithMoreEpochsEndsExactlyAsARunStartedWithThatMaximum()
    {
        string data = Data(Path.Combine(tmp, "data"), 16, 3);
        string fresh = Path.Combine(tmp, "fresh"), extended = Path.Combine(tmp, "extended");
        Ok(CliRunner.Run(Train(data, fresh, 4)));
        Ok(CliRunner.Run(Train(data, extended, 2)));

        var finished = CliRunner.Run("train", "--resume", extended);
        Ok(finished);
        Assert.Contains("nothing to resume; --epochs N (more than 2) trains it on", finished.Stdout);
        var changed = CliRunner.Run("train", "--resume", extended, "--epochs", "4", "--batch-size", "8", "--seed", "2");
        Assert.Equal(2, changed.ExitCode);
        Assert.Contains("batch_size (4 in config.yaml, 8 asked)", changed.Stderr);
        Assert.Contains("seed (1 in config.yaml, 2 asked)", changed.Stderr);
        var fewer = CliRunner.Run("train", "--resume", extended, "--epochs", "1");
        Assert.Equal(2, fewer.ExitCode);
        Assert.Contains("resume can raise", fewer.Stderr);
        Assert.Contains("max_epochs (2), not lower it", fewer.Stderr);

        var more = CliRunner.Run("train", "--resume", extended, "--epochs", "4", "--batch-size", "4"); // an unchanged flag is fine
        Ok(more);
        Assert.Contains("resuming", more.Stdout);

        Assert.Equal(WithoutSeconds(fresh), WithoutSeconds(extended));
        Assert.Equal(File.ReadAllText(Path.Combine(fresh, "config.yaml")), File.ReadAllText(Path.Combine(extended, "config.yaml")));
        foreach (var file in new[] { "best.safetensors", "last.safetensors" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(fresh, file)), File.ReadAllBytes(Path.Combine(extended, file)));
        var a = JsonNode.Parse(File.ReadAllText(Path.Combine(fresh, "state.json")))!.AsObject();
        var b = JsonNode.Parse(File.ReadAllText(Path.Combine(extended, "state.json")))!.AsObject();
        foreach (var key in new[] { "epochs_completed", "lr", "best_epoch", "optimizer_step", "global_step", "finished", "stop_reason", "early_stopping_best", "plateau_best" })
            Assert.Equal(a[key]?.ToJsonString(), b[key]?.ToJsonString());

        // Epochs are numbered from 1 in every file.
        Assert.Equal(["1", "2", "3", "4"], WithoutSeconds(fresh).Skip(1).Select(l => l.Split(',')[0]));
        Assert.Equal(2, a["version"]!.GetValue<int>());
        int best = a["best_epoch"]!.GetValue<int>();
        Assert.InRange(best, 1, 4);
        var rows = new RunFolder(fresh).ReadMetrics();
        Assert.Equal(rows.MaxBy(r => r.ValDice)!.Epoch + 1, best);
        Assert.Equal(["checkpoints/epoch-0004"], Directory.GetDirectories(Path.Combine(fresh, "checkpoints")).Select(d => Path.GetRelativePath(fresh, d)));
    }

    [Fact]
    public void ResumeAndConfigWorkFromAnotherDirectoryAndAChangedDatasetIsRefused()
    {
        string here = Path.Combine(tmp, "here"), elsewhere = Path.Combine(tmp, "elsewhere");
        Data(Path.Combine(here, "data"), 16, 3);
        Data(Path.Combine(elsewhere, "data"), 20, 4); // same folder name, other records
        var first = CliRunner.RunIn(here, Train("data", "run", 1));
        Ok(first);
        string run = Path.Combine(here, "run");
        string config = File.ReadAllText(Path.Combine(run, "config.yaml"));
        Assert.Contains($"- {Path.Combine(here, "data")}\n", config);
        Assert.Contains("data_as_given:\n- data\n", config);
        string counts = first.Stdout.Split('\n').First(l => l.Contains(" train / ")).Split(": ")[^1];

        var resumed = CliRunner.RunIn(elsewhere, "train", "--resume", Path.Combine("..", "here", "run"), "--epochs", "2");
        Ok(resumed);
        Assert.Contains(counts, resumed.Stdout);
        var repeat = CliRunner.RunIn(elsewhere, "train", "--config", Path.Combine("..", "here", "run", "config.yaml"), "--out", "repeat");
        Ok(repeat);
        Assert.Contains(counts, repeat.Stdout);
        Assert.Equal(WithoutSeconds(run)[..2], WithoutSeconds(Path.Combine(elsewhere, "repeat"))[..2]);

        // Two more training records than the run started with: refused, unless allowed.
        string train = Path.Combine(here, "data", "anns", "train.json");
        var records = JsonNode.Parse(File.ReadAllText(train))!.AsArray();
        int before = records.Count;
        records.Add(records[0]!.DeepClone());
        records.Add(records[1]!.DeepClone());
        File.WriteAllText(train, records.ToJsonString());
        var refused = CliRunner.RunIn(elsewhere, "train", "--resume", Path.Combine("..", "here", "run"), "--epochs", "3");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains($"split \"train\" had {before} records, now {before + 2}", refused.Stderr);
        Assert.Contains("--allow-data-change", refused.Stderr);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "metrics.csv")).Length); // nothing trained
        var allowed = CliRunner.RunIn(elsewhere, "train", "--resume", Path.Combine("..", "here", "run"), "--epochs", "3", "--allow-data-change");
        Ok(allowed);
        Assert.Contains("the data differs from what this run trained on", allowed.Stdout);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(run, "metrics.csv")).Length);
    }

    [Fact]
    public void ARunKilledInItsFirstEpochRestartsAndALostMetricsFileIsRebuilt()
    {
        string data = Data(Path.Combine(tmp, "data"), 16, 3);
        string straight = Path.Combine(tmp, "straight");
        Ok(CliRunner.Run(Train(data, straight, 3)));

        // Killed in epoch 1: the folder has its config.yaml and no state.json.
        string killed = Path.Combine(tmp, "killed");
        Directory.CreateDirectory(killed);
        File.Copy(Path.Combine(straight, "config.yaml"), Path.Combine(killed, "config.yaml"));
        var restarted = CliRunner.Run("train", "--resume", killed, "--epochs", "2");
        Ok(restarted);
        Assert.Contains("starting it again from its config.yaml", restarted.Stdout);
        Assert.Equal(WithoutSeconds(straight)[..3], WithoutSeconds(killed));

        File.Delete(Path.Combine(killed, "metrics.csv"));
        var rebuilt = CliRunner.Run("train", "--resume", killed, "--epochs", "3");
        Ok(rebuilt);
        Assert.Contains("metrics.csv is missing; rebuilt from state.json", rebuilt.Stdout);
        Assert.Equal(WithoutSeconds(straight), WithoutSeconds(killed));
    }

    [Fact]
    public void BadValuesInARunsConfigYamlAreBlamedOnItNotOnFlags()
    {
        string data = Data(Path.Combine(tmp, "data"), 12, 3);
        string run = Path.Combine(tmp, "run");
        Ok(CliRunner.Run(Train(data, run, 1)));
        string configFile = Path.Combine(run, "config.yaml");
        string good = File.ReadAllText(configFile);
        string state = File.ReadAllText(Path.Combine(run, "state.json"));

        foreach (var (config, says) in new[]
        {
            ("", $"error: {configFile} is empty: the run's settings (model, data, mode, ...) are lost, so it cannot be resumed."),
            (good.Replace("batch_size: 4\n", "batch_size: -3\n", StringComparison.Ordinal), $"error: {configFile}: batch_size must be at least 1, got -3."),
            (good.Replace("image_size: 48\n", "image_size: 47\n", StringComparison.Ordinal),
                $"error: {configFile}: image_size 47 is not a multiple of 8 (CLIPSeg's patch size): use 40 or 48, or remove image_size from {configFile} for the model's own 48."),
        })
        {
            Assert.NotEqual(good, config);
            File.WriteAllText(configFile, config);
            var r = CliRunner.Run("train", "--resume", run, "--epochs", "2");
            Assert.Equal(2, r.ExitCode);
            Assert.StartsWith(says, r.Stderr.Trim());
            Assert.DoesNotContain("--", r.Stderr); // no flag named: none was given
            Assert.Equal(state, File.ReadAllText(Path.Combine(run, "state.json")));
        }

        File.WriteAllText(configFile, "model: [unclosed\n  - : :\n");
        var broken = CliRunner.Run("train", "--resume", run, "--epochs", "2");
        Assert.Equal(2, broken.ExitCode);
        Assert.Equal($"error: {configFile} line 2: not valid YAML (While parsing a flow sequence, did not find expected ',' or ']').", broken.Stderr.Trim());
        string listless = Path.Combine(tmp, "listless.yaml");
        File.WriteAllText(listless, good.Replace("data:\n- ", "data: ", StringComparison.Ordinal));
        var notAList = CliRunner.Run("train", "--config", listless, "--out", Path.Combine(tmp, "other"));
        Assert.Equal(2, notAList.ExitCode);
        Assert.Equal($"error: {listless} line 2: data must be a list of texts (one \"- item\" line each), not \"{data}\".", notAList.Stderr.Trim());

        File.WriteAllText(configFile, good.Replace("image_size: 48\n", "image_size: 47\n", StringComparison.Ordinal));
        // eval --run reads image_size from the same file.
        var eval = CliRunner.Run("eval", "--run", run, "--data", data, "--split", "val");
        Assert.Equal(2, eval.ExitCode);
        Assert.Equal($"error: {configFile}: image_size 47 is not a multiple of 8 (CLIPSeg's patch size): use 40 or 48, or remove image_size from {configFile} for the model's own 48.", eval.Stderr.Trim());
        // A flag still names itself.
        File.WriteAllText(configFile, good);
        var flag = CliRunner.Run("eval", "--run", run, "--data", data, "--split", "val", "--image-size", "47");
        Assert.Equal(2, flag.ExitCode);
        Assert.Contains("image_size (--image-size) 47 is not a multiple of 8", flag.Stderr);
    }

    [Fact]
    public void ResumeRefusesAStateJsonThatPointsOutsideTheRunOrCountsBackwards()
    {
        string data = Data(Path.Combine(tmp, "data"), 12, 3);
        string run = Path.Combine(tmp, "run");
        Ok(CliRunner.Run(Train(data, run, 1)));
        string stateFile = Path.Combine(run, "state.json");
        string good = File.ReadAllText(stateFile);
        var outside = Path.Combine(tmp, "outside", "epoch-0001"); // a checkpoint-looking folder outside the run
        Directory.CreateDirectory(outside);
        foreach (var file in Directory.GetFiles(Path.Combine(run, "checkpoints", "epoch-0001"))) File.Copy(file, Path.Combine(outside, Path.GetFileName(file)));

        foreach (var (key, value, says) in new[]
        {
            ("checkpoint", (JsonNode)"../outside/epoch-0001", $"{stateFile}: checkpoint \"../outside/epoch-0001\" is not a folder in {Path.Combine(run, "checkpoints")}/ (such as checkpoints/epoch-0001)"),
            ("checkpoint", (JsonNode)"../../../etc", $"{stateFile}: checkpoint \"../../../etc\" is not a folder in"),
            ("epochs_completed", (JsonNode)(-5), $"{stateFile}: epochs_completed is -5; it counts completed epochs, so it is at least 0"),
            ("best_epoch", (JsonNode)7, $"{stateFile}: best_epoch is 7, but the run completed 1 epochs"),
        })
        {
            var state = JsonNode.Parse(good)!.AsObject();
            state[key] = value;
            File.WriteAllText(stateFile, state.ToJsonString());
            var r = CliRunner.Run("train", "--resume", run, "--epochs", "2");
            Assert.Equal(2, r.ExitCode);
            Assert.StartsWith($"error: {says}", r.Stderr.Trim());
            Assert.True(Directory.Exists(Path.Combine(run, "checkpoints", "epoch-0001"))); // not pruned
            Assert.Equal(2, File.ReadAllLines(Path.Combine(run, "metrics.csv")).Length); // nothing trained
        }
    }

    [Fact]
    public void ResumeRefusesARunWhoseBestWeightsAreMissingOrUnreadableBeforeTraining()
    {
        string data = Data(Path.Combine(tmp, "data"), 12, 3);
        string run = Path.Combine(tmp, "run");
        Ok(CliRunner.Run(Train(data, run, 1)));
        string best = Path.Combine(run, "best.safetensors");
        byte[] good = File.ReadAllBytes(best);
        string state = File.ReadAllText(Path.Combine(run, "state.json"));
        string[] metrics = File.ReadAllLines(Path.Combine(run, "metrics.csv"));

        foreach (var (damage, says) in new (Action, string)[]
        {
            (() => File.Delete(best), $"{best} is missing"),
            (() => File.WriteAllBytes(best, []), $"{best}, the run's best weights (epoch 1), does not load"),
            (() => File.WriteAllBytes(best, good[..3000]), $"{best}, the run's best weights (epoch 1), does not load"),
        })
        {
            damage();
            var r = CliRunner.Run("train", "--resume", run, "--epochs", "2");
            Assert.Equal(2, r.ExitCode);
            Assert.Contains(says, r.Stderr);
            Assert.Contains($"copy {Path.Combine(run, "checkpoints", "epoch-0001", "weights.safetensors")} (epoch 1's weights) to it", r.Stderr);
            Assert.DoesNotContain("done:", r.Stdout);
            Assert.Equal(state, File.ReadAllText(Path.Combine(run, "state.json"))); // nothing trained
            Assert.Equal(metrics, File.ReadAllLines(Path.Combine(run, "metrics.csv")));
        }

        File.Copy(Path.Combine(run, "checkpoints", "epoch-0001", "weights.safetensors"), best, overwrite: true); // the fix the message gives
        var resumed = CliRunner.Run("train", "--resume", run, "--epochs", "2");
        Ok(resumed);
        Assert.Contains("resuming", resumed.Stdout);
    }

    [Fact]
    public void CtrlCKeepsTheLastEpochAndPrintsTheResumeCommand()
    {
        string data = Data(Path.Combine(tmp, "data"), 16, 3);
        string run = Path.Combine(tmp, "run");
        var (p, output) = CliRunner.Start(Train(data, run, 50));
        int exitCode;
        try
        {
            CliRunner.WaitFor(() => File.Exists(Path.Combine(run, "state.json")), p, "the first epoch");
            CliRunner.Interrupt(p);
            Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), "the run did not stop after SIGINT");
            p.WaitForExit();
            exitCode = p.ExitCode;
        }
        finally
        {
            if (!p.HasExited) p.Kill();
            p.Dispose();
        }
        string text;
        lock (output) text = output.ToString();
        Assert.Equal(130, exitCode);
        Assert.Contains("interrupted: ", text);
        Assert.Contains($"  vlsm train --resume {run}\n", text);
        var state = new RunFolder(run).ReadState();
        Assert.InRange(state.EpochsCompleted, 1, 49);
        Assert.False(state.Finished);
        Assert.Equal(state.EpochsCompleted, new RunFolder(run).ReadMetrics().Count);
        Assert.Single(Directory.GetDirectories(Path.Combine(run, "checkpoints")));

        // The printed command continues the run (stopped again once it has said so: the rest is the resume tests' business).
        var (again, log) = CliRunner.Start("train", "--resume", run);
        try
        {
            CliRunner.WaitFor(() => { lock (log) return log.ToString().Contains($"resuming {run} after epoch {state.EpochsCompleted}"); }, again, "the resume");
        }
        finally
        {
            again.Kill();
            again.WaitForExit();
            again.Dispose();
        }
    }

    [Fact]
    public void CtrlCOnATerminalRestoresTheCursor()
    {
        string data = Data(Path.Combine(tmp, "data"), 16, 3);
        string run = Path.Combine(tmp, "run");
        string socket = $"vlsm-test-{Environment.ProcessId}-{Guid.NewGuid():N}";
        string Tmux(params string[] args)
        {
            var psi = new System.Diagnostics.ProcessStartInfo("tmux") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "-L", socket }.Concat(args)) psi.ArgumentList.Add(a);
            using var p = System.Diagnostics.Process.Start(psi)!;
            string text = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            return text;
        }
        string command = string.Join(' ', new[] { "dotnet", Path.Combine(AppContext.BaseDirectory, "vlsm.dll") }.Concat(Train(data, run, 50)))
            + "; echo EXIT=$?; sleep 600";
        Tmux("new-session", "-d", "-x", "100", "-y", "30", "-s", "t", command);
        try
        {
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (!File.Exists(Path.Combine(run, "state.json")) && DateTime.UtcNow < deadline) Thread.Sleep(50);
            Assert.True(File.Exists(Path.Combine(run, "state.json")), Tmux("capture-pane", "-p", "-t", "t"));
            Assert.Equal("0", Tmux("display", "-p", "-t", "t", "#{cursor_flag}").Trim()); // the live view hides the cursor
            Tmux("send-keys", "-t", "t", "C-c");
            string screen = "";
            deadline = DateTime.UtcNow.AddMinutes(2);
            while (!screen.Contains("EXIT=") && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(200);
                screen = Tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "t");
            }
            Assert.Contains("EXIT=130", screen);
            Assert.Contains($"vlsm train --resume {run}", screen);
            Assert.Equal("1", Tmux("display", "-p", "-t", "t", "#{cursor_flag}").Trim());
        }
        finally
        {
            Tmux("kill-server");
        }
        Assert.False(new RunFolder(run).ReadState().Finished);
    }

    [Fact]
    public void WithoutAPresetOrModeTheRunSaysItIsDenseVlc()
    {
        string data = Data(Path.Combine(tmp, "data"), 12, 3);
        var r = CliRunner.Run("train", "--model", Tiny, "--data", data, "--epochs", "1", "--batch-size", "4", "--prompt", "p1", "--out", Path.Combine(tmp, "run"));
        Ok(r);
        Assert.StartsWith("mode: dense VLC adapters (the default; choose with --preset or --mode)", r.Stdout);
        Assert.Contains("seed: 1\n", File.ReadAllText(Path.Combine(tmp, "run", "config.yaml")));
        var help = CliRunner.Run("train", "--help");
        Assert.Contains("dense VLC", help.Stdout);
        Assert.Contains("default 1, as every vlsm command", help.Stdout);
        Assert.Contains("default 1, as every vlsm command", CliRunner.Run("prompts", "--help").Stdout);
    }

    [Fact]
    public void PatienceWeightDecayAndThreadsReachTheRunAndAreRangeChecked()
    {
        string data = Data(Path.Combine(tmp, "data"), 12, 3);
        string run = Path.Combine(tmp, "run");
        Ok(CliRunner.Run(Train(data, run, 1, "--patience", "3", "--weight-decay", "0.05", "--threads", "1")));
        string config = File.ReadAllText(Path.Combine(run, "config.yaml"));
        Assert.Contains("early_stopping_patience: 3\n", config);
        Assert.Contains("weight_decay: 0.05\n", config);
        foreach (var (flag, value, says) in new[]
        {
            ("--patience", "-1", "early_stopping_patience must be at least 0"),
            ("--weight-decay", "-0.1", "weight_decay (--weight-decay) must be in [0, inf)"),
            ("--weight-decay", "NaN", "weight_decay (--weight-decay) must be in [0, inf)"),
            ("--threads", "0", "--threads 0: give at least 1"),
            ("--threads", $"{TrainingThreads.Max + 1}", $"--threads {TrainingThreads.Max + 1}: give at least 1 and at most {TrainingThreads.Max} (4 per core"),
        })
        {
            var r = CliRunner.Run(Train(data, Path.Combine(tmp, "refused"), 1, flag, value));
            Assert.Equal(2, r.ExitCode);
            Assert.Contains(says, r.Stderr);
            Assert.False(Directory.Exists(Path.Combine(tmp, "refused")));
        }
        // An adapter millions wide only exhausted memory (the run killed, its lock files left behind).
        var wide = CliRunner.Run("train", "--model", Tiny, "--data", data, "--mode", "dense", "--adapter-dim", "100000000", "--out", Path.Combine(tmp, "refused"));
        Assert.Equal(2, wide.ExitCode);
        Assert.Contains("adapter_dim (--adapter-dim) must be between 1 and 4096, got 100000000.", wide.Stderr);
        Assert.False(Directory.Exists(Path.Combine(tmp, "refused")));
    }
}
