using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Vlsm.Apps.Demo;
using Vlsm.Training;

namespace Vlsm.Cli.Commands;

internal static class DemoCommand
{
    public static Command Build()
    {
        var quick = new Option<bool>("--quick") { Description = "A small version (under 2 minutes) that runs every step; its numbers mean little." };
        var seed = new Option<ulong>("--seed") { HelpName = "N", Description = "Seed of the data, the initial weights and training; the same seed gives the same results.json numbers.", DefaultValueFactory = _ => 1 };
        var outDir = new Option<string>("--out") { HelpName = "DIR", Description = "Folder for data, runs, results.json and examples.png (new or empty).", DefaultValueFactory = _ => "demo-out" };
        var retrain = new Option<bool>("--retrain") { Description = "Pretrain again even when the cache holds the pretrained model." };
        var cache = new Option<string?>("--cache") { HelpName = "DIR", Description = "Where the pretrained model is kept between runs (default: $VLSM_CACHE/demo or ~/.cache/vlsm/demo)." };
        var cmd = new Command("demo",
            "The VLSM-Adapter experiment in miniature on built-in data: pretrain a small CLIPSeg on synthetic natural scenes, "
            + "evaluate it zero-shot on synthetic medical scenes, fine-tune it four ways (decoder, shallow VLC, dense VL, full) "
            + "and compare test Dice, IoU and prompt-swap Dice with the share of parameters trained.")
            { quick, seed, outDir, retrain, cache };
        cmd.SetAction(parse => VlsmCli.Guard(parse, () =>
        {
            var options = new DemoOptions(parse.GetValue(outDir)!, parse.GetValue(cache) ?? DemoOptions.DefaultCacheDir(),
                parse.GetValue(seed), parse.GetValue(quick), parse.GetValue(retrain));
            DemoResults results;
            if (ProgressReporter.Interactive)
            {
                var observer = new LiveDemoObserver();
                try
                {
                    results = new DemoRunner(options, observer).Run();
                    observer.Finish();
                }
                finally
                {
                    observer.Dispose();
                }
            }
            else
            {
                results = new DemoRunner(options, new LogDemoObserver()).Run();
            }
            PrintTable(results);
            string dir = Path.GetFullPath(options.OutDir);
            Say($"wrote {Path.Combine(dir, DemoResults.FileName)}");
            Say($"  and {Path.Combine(dir, results.ExamplesImage)}");
            return 0;
        }));
        return cmd;
    }

    private static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>A line of text: wrapped at words to the terminal's width on a terminal, as it is in a log.</summary>
    private static void Say(string text)
    {
        if (Console.IsOutputRedirected) Console.WriteLine(text);
        else foreach (var line in ProgressReporter.Wrap(text, ProgressReporter.Width - 1)) Console.WriteLine(line);
    }

    private static void PrintTable(DemoResults r)
    {
        Console.WriteLine();
        Say($"model: {r.ModelDescription}, {r.TotalParameters:N0} parameters");
        Say($"pretrained on synthetic natural scenes: {r.PretrainEpochs} epochs, val Dice {F(r.PretrainValDice, "0.000")}"
            + (r.PretrainedFromCache ? " (from the cache)" : $", {F(r.PretrainSeconds, "0")} s"));
        Say($"test split of the synthetic medical scenes, prompt {r.Prompt}. trained: parameters trained (% of the model);");
        Say("swap Dice: Dice when the prompt names another object of the same image (low = the model reads the text)");
        // On a terminal, short headers that fit 80 columns; piped, the README's Markdown table, row for row.
        bool piped = Console.IsOutputRedirected;
        var table = piped
            ? new Table().AddColumns("method", "trainable parameters", "% of the model", "epochs", "wall time", "test Dice", "test IoU", "prompt-swap Dice")
            : new Table().AddColumns("method", "trained", "%", "epochs", "time", "Dice", "IoU", "swap Dice");
        foreach (var i in Enumerable.Range(1, 7)) table.Columns[i].RightAligned();
        table.AddRow(piped ? "zero-shot (pretrained model)" : "zero-shot", "0", "0", "-", "-", F(r.ZeroShot.Dice, "0.000"), F(r.ZeroShot.IoU, "0.000"), F(r.ZeroShot.PromptSwapDice, "0.000"));
        foreach (var m in r.Methods)
            table.AddRow(Markup.Escape(m.Method), m.TrainableParameters.ToString("N0", CultureInfo.InvariantCulture), F(m.TrainablePercent, "0.00"),
                m.Epochs.ToString(CultureInfo.InvariantCulture), F(m.WallSeconds, "0") + " s",
                F(m.Test.Dice, "0.000"), F(m.Test.IoU, "0.000"), F(m.Test.PromptSwapDice, "0.000"));
        TableOutput.Write(table);
    }

    /// <summary>
    /// Follows the demo's plan: the current stage, its epoch and step, and the time left in the
    /// stage and in the whole demo (<see cref="DemoEta"/>). Subclasses show it.
    /// </summary>
    private abstract class DemoProgressObserver : IDemoObserver, ITrainingObserver
    {
        private readonly Stopwatch clock = Stopwatch.StartNew();
        protected DemoEta Eta { get; private set; } = null!;
        protected string Title { get; private set; } = "";
        protected int Epoch { get; private set; } = -1;
        protected int MaxEpochs { get; private set; }
        protected int Step { get; private set; }
        protected int Steps { get; private set; }
        protected double Loss { get; private set; } = double.NaN;
        protected double ValDice { get; private set; } = double.NaN;
        protected TimeSpan StageStarted { get; private set; }

        protected DemoProgressObserver() => Eta = new DemoEta([], () => clock.Elapsed);

        public ITrainingObserver Training => this;

        public virtual void Planned(IReadOnlyList<DemoStagePlan> stages) => Eta = new DemoEta(stages, () => clock.Elapsed);

        public virtual void Stage(string title)
        {
            Title = title;
            Epoch = -1;
            MaxEpochs = Step = Steps = 0;
            Loss = ValDice = double.NaN;
            StageStarted = clock.Elapsed;
            Eta.NextStage();
        }

        protected TimeSpan InStage => clock.Elapsed - StageStarted;

        /// <summary>"[3/9]": the stage's place in the plan.</summary>
        protected string StageNumber => $"[{Eta.Index + 1}/{Math.Max(Eta.Count, Eta.Index + 1)}]";

        public virtual void RunStarted(string description) { }

        public virtual void EpochStarted(int epoch, int maxEpochs, int steps)
        {
            Epoch = epoch;
            MaxEpochs = maxEpochs;
            Steps = steps;
            Step = 0;
            Eta.Progress((double)epoch / Math.Max(maxEpochs, 1));
        }

        public virtual void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond)
        {
            Step = step;
            Steps = steps;
            Loss = loss;
            Eta.Progress((epoch + (double)step / Math.Max(steps, 1)) / Math.Max(MaxEpochs, 1));
        }

        public virtual void EpochCompleted(EpochMetrics metrics, bool best)
        {
            ValDice = metrics.ValDice;
            Eta.Progress((double)(metrics.Epoch + 1) / Math.Max(MaxEpochs, 1));
        }

        public virtual void Message(string text) { }

        /// <summary>"done [2/9] title: 25 epochs, val Dice 0.957, 2:07" for the stage that just ended.</summary>
        protected string Summary()
        {
            string trained = Epoch >= 0 ? $" {Epoch + 1} epochs{(double.IsNaN(ValDice) ? "" : $", val Dice {ValDice:0.000}")}," : "";
            return $"done {StageNumber} {Title}:{trained} {DemoEta.Format(InStage)}";
        }
    }

    /// <summary>
    /// The live view: finished stages as lines that stay, and three lines redrawn in place (stage;
    /// epoch, step, loss and val Dice; a bar with the stage's and the demo's time left), each cut
    /// to the terminal's width.
    /// </summary>
    private sealed class LiveDemoObserver : DemoProgressObserver, IDisposable
    {
        private readonly ProgressReporter.LiveView view;
        private bool finished;

        public LiveDemoObserver() => view = new ProgressReporter.LiveView(Render);

        public override void Stage(string title)
        {
            if (Eta.Index >= 0) view.WriteAbove(Summary());
            base.Stage(title);
            view.Refresh();
        }

        public override void RunStarted(string description) => view.WriteAbove("  " + description);

        public override void Message(string text) => view.WriteAbove("  " + text);

        public void Finish()
        {
            view.WriteAbove(Summary());
            view.WriteAbove($"demo finished in {DemoEta.Format(Eta.Elapsed)}");
            finished = true;
        }

        private IReadOnlyList<string> Render()
        {
            if (finished || Eta.Index < 0) return [];
            var training = Epoch < 0 ? "" : $"epoch {Epoch + 1}/{MaxEpochs}  step {Step}/{Steps}"
                + (double.IsNaN(Loss) ? "" : $"  loss {Loss:0.0000}") + (double.IsNaN(ValDice) ? "" : $"  val Dice {ValDice:0.000}");
            double fraction = MaxEpochs > 0 ? Math.Clamp((Epoch + (double)Step / Math.Max(Steps, 1)) / MaxEpochs, 0, 1) : 0;
            const int bar = 20;
            int filled = (int)Math.Round(fraction * bar);
            var status = $"[{new string('#', filled)}{new string('.', bar - filled)}] {100 * fraction,3:0}%"
                + $"  stage ETA {DemoEta.Format(Eta.StageRemaining())}  demo ETA {DemoEta.Format(Eta.Remaining())}"
                + $"  ({DemoEta.Format(Eta.Elapsed)})";
            return [$"{StageNumber} {Title}", training.Length > 0 ? "  " + training : "  ...", status];
        }

        public void Dispose() => view.Dispose();
    }

    /// <summary>Plain lines for logs: the trainer's lines as <c>vlsm train</c> prints them, with the demo's time left on stage and epoch lines.</summary>
    private sealed class LogDemoObserver : DemoProgressObserver
    {
        private readonly TrainingObservers.LogObserver inner = new();

        private string DemoEtaText => $"demo ETA {DemoEta.Format(Eta.Remaining())}";

        public override void Stage(string title)
        {
            base.Stage(title);
            Console.WriteLine($"== {title} ({StageNumber}, {DemoEtaText})");
        }

        public override void RunStarted(string description) => inner.RunStarted(description);

        public override void EpochStarted(int epoch, int maxEpochs, int steps)
        {
            base.EpochStarted(epoch, maxEpochs, steps);
            inner.EpochStarted(epoch, maxEpochs, steps);
        }

        public override void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond)
        {
            base.StepCompleted(epoch, step, steps, loss, lr, imagesPerSecond);
            inner.StepCompleted(epoch, step, steps, loss, lr, imagesPerSecond);
        }

        public override void EpochCompleted(EpochMetrics metrics, bool best)
        {
            base.EpochCompleted(metrics, best);
            Console.WriteLine($"{TrainingObservers.Line(metrics, best)}, {DemoEtaText}");
        }

        public override void Message(string text) => inner.Message(text);
    }
}
