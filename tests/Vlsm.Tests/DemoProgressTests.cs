using System.Diagnostics;
using System.Text.RegularExpressions;
using Vlsm.Apps.Demo;

namespace Vlsm.Tests;

/// <summary>The demo's progress: the ETA arithmetic (with a given clock) and the live view in an 80x24 pseudo-terminal.</summary>
public sealed partial class DemoProgressTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-demo-progress-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    [Fact]
    public void EtaScalesTheEstimatesByTheMeasuredSpeed()
    {
        var now = TimeSpan.Zero;
        var eta = new DemoEta([new("a", 100, true), new("b", 50, false), new("c", 50, true)], () => now);
        Assert.Equal(-1, eta.Index);
        // Before any work the estimates stand as they are.
        Assert.Equal(200, eta.Remaining().TotalSeconds, 6);

        eta.NextStage();
        now = TimeSpan.FromSeconds(10); // set-up: 10 s before the first step
        eta.Progress(0);
        // No pace yet: the estimate times the speed factor ((10+10)/(0+10) = 2), less the 10 s spent.
        Assert.Equal(100 * 2 - 10, eta.StageRemaining().TotalSeconds, 6);
        now = TimeSpan.FromSeconds(190); // half of stage a done at 190 s (with the 10 s prior: (190+10)/(50+10))
        eta.Progress(0.5);
        double factor = 200.0 / 60;
        Assert.Equal(factor, eta.SpeedFactor, 9);
        Assert.Equal(150 * factor, eta.Remaining().TotalSeconds, 6);
        // The stage's own pace since its first step: half in 180 s, 180 s to go.
        Assert.Equal(180, eta.StageRemaining().TotalSeconds, 6);

        eta.NextStage(); // a done at 190 s: b has made no progress, so its estimate times the speed factor
        Assert.Equal("b", eta.Current!.Title);
        double f2 = 200.0 / 110;
        Assert.Equal(50 * f2, eta.StageRemaining().TotalSeconds, 6);
        Assert.Equal(100 * f2, eta.Remaining().TotalSeconds, 6);

        eta.NextStage();
        eta.Progress(1);
        Assert.Equal(0, eta.Remaining().TotalSeconds, 9);
        Assert.Equal(TimeSpan.Zero, eta.StageRemaining());
    }

    [Theory]
    [InlineData(0, "0:00")]
    [InlineData(7.4, "0:07")]
    [InlineData(298, "4:58")]
    [InlineData(3909, "1:05:09")]
    public void EtaFormatsMinutesAndHours(double seconds, string expected) =>
        Assert.Equal(expected, DemoEta.Format(TimeSpan.FromSeconds(seconds)));

    [Fact]
    public void ThePlanNamesTheStagesInTheOrderTheyRun()
    {
        var options = new DemoOptions(Path.Combine(tmp, "out"), Path.Combine(tmp, "cache"), Quick: true);
        var plan = new DemoRunner(options, new NullObserver()).Plan();
        Assert.StartsWith("pretraining on", plan[0].Title);
        Assert.Equal(["decoder", "shallow VLC", "dense VL", "full"], plan.Where(s => s.Title.StartsWith("fine-tuning: ")).Select(s => s.Title["fine-tuning: ".Length..]));
        Assert.Equal("drawing examples.png", plan[^1].Title);
        Assert.All(plan, s => Assert.True(s.EstimatedSeconds > 0));
        // The full recipe's estimates are the README's table: dense VL slower than shallow VLC, full the slowest.
        var full = DemoRecipe.Full;
        var seconds = full.Methods.Select(full.EstimatedSeconds).ToArray();
        Assert.True(seconds[2] > seconds[1] && seconds[3] > seconds[2]);
    }

    [Fact]
    public void TheReadmeDescribesTheFullRecipeAndItsEstimatesFitInFiveMinutes()
    {
        // Issue #20 item 4: the README's demo section is the measured run of this recipe, on a named
        // machine, and the recipe was sized to finish within 5 minutes there. The ETA's estimates are
        // that run's per-epoch times, so their sum is the recipe's expected wall time on that machine.
        var full = DemoRecipe.Full;
        string readme = File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "README.md"));
        string section = readme[readme.IndexOf("## The demo", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n## ", 10, StringComparison.Ordinal)];
        Assert.Contains($"on {full.NaturalScenes} synthetic natural scenes", section);
        Assert.Contains($"{full.PretrainEpochs} epochs. The result is stored", section);
        Assert.Contains($"{full.MedicalScenes} synthetic \"medical\" scenes", section);
        Assert.Contains($"in four modes ({full.FineTuneEpochs} epochs each", section);
        Assert.Contains($"Pretraining: {full.PretrainEpochs} epochs", section);
        Assert.Matches(@"current machine kind \(2 cores of an AMD EPYC Zen 5", section);
        var rows = Regex.Matches(section, @"^\| (decoder|shallow VLC|dense VL|full) \| [^|]+\| [^|]+\| (\d+) \|", RegexOptions.Multiline);
        Assert.Equal(full.Methods.Select(m => m.Name), rows.Select(r => r.Groups[1].Value));
        Assert.All(rows, r => Assert.Equal(full.FineTuneEpochs, int.Parse(r.Groups[2].Value)));
        var whole = Regex.Match(section, @"The whole run took (\d+) min (\d+) s");
        Assert.True(whole.Success, "the README gives the whole run's wall time");
        Assert.True(int.Parse(whole.Groups[1].Value) * 60 + int.Parse(whole.Groups[2].Value) < 300, "the README's measured demo takes 5 minutes or more");
        double estimated = full.EstimatedPretrainSeconds() + full.Methods.Sum(full.EstimatedSeconds);
        Assert.InRange(estimated, 150, 300);
    }

    private sealed class NullObserver : IDemoObserver
    {
        public void Stage(string title) { }
        public Vlsm.Training.ITrainingObserver Training => throw new InvalidOperationException();
    }

    [GeneratedRegex(@"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>78])")]
    private static partial Regex Escapes();

    /// <summary>
    /// The quick demo in an 80x24 pseudo-terminal (util-linux's <c>script</c>): the live view names
    /// every stage, shows epoch, step and both ETAs, and no line (between carriage returns and
    /// newlines, escape sequences removed) is wider than the terminal.
    /// </summary>
    [Fact]
    public void LiveViewFitsAnEightyColumnTerminalAndNamesEveryStage()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "vlsm.dll");
        string Q(string s) => "'" + s.Replace("'", "'\\''") + "'";
        string command = $"stty cols 80 rows 24 && exec dotnet {Q(dll)} demo --quick --seed 3 --out {Q(Path.Combine(tmp, "out"))} --cache {Q(Path.Combine(tmp, "cache"))}";
        var psi = new ProcessStartInfo("script") { RedirectStandardInput = true };
        foreach (var a in new[] { "-qfec", command, "/dev/null" }) psi.ArgumentList.Add(a);
        psi.Environment["TERM"] = "xterm-256color";
        psi.Environment.Remove("CI"); // Spectre treats CI as non-interactive
        var r = CliRunner.RunProcess(psi, TimeSpan.FromMinutes(10), "vlsm demo --quick in the pseudo-terminal");
        string raw = r.Stdout;
        Assert.True(r.ExitCode == 0, raw + r.Stderr);

        string text = Escapes().Replace(raw, "");
        var lines = text.Split('\n').SelectMany(l => l.Split('\r')).ToList();
        var wide = lines.Where(l => l.Length > 80).ToList();
        Assert.True(wide.Count == 0, "wider than 80 columns:\n" + string.Join("\n", wide.Take(5)));

        foreach (var stage in new[] { "pretraining on 80 synthetic natural scenes", "domain shift", "zero-shot evaluation", "fine-tuning: decoder",
                     "fine-tuning: shallow VLC", "fine-tuning: dense VL", "fine-tuning: full", "drawing examples.png" })
            Assert.Contains(stage, text);
        Assert.Contains("[4/8] fine-tuning: decoder", text);
        Assert.Matches(@"epoch 1/1  step \d+/\d+", text);
        Assert.Matches(@"stage ETA \d+:\d\d  demo ETA \d+:\d\d", text);
        Assert.Matches(@"done \[8/8\] drawing examples\.png", text);
        // The cursor is hidden while the view runs and shown again at the end.
        Assert.Contains("\u001b[?25l", raw);
        Assert.True(raw.LastIndexOf("\u001b[?25h", StringComparison.Ordinal) > raw.LastIndexOf("\u001b[?25l", StringComparison.Ordinal));
        // The table is the terminal's (box characters), not the piped Markdown.
        Assert.Contains("swap Dice", text);
        Assert.DoesNotContain("| method |", text);
    }
}
