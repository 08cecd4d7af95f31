using System.CommandLine;
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
                DemoResults? r = null;
                AnsiConsole.Progress().AutoClear(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx => r = new DemoRunner(options, new LiveDemoObserver(ctx)).Run());
                results = r!;
            }
            else
            {
                results = new DemoRunner(options, new LogDemoObserver()).Run();
            }
            PrintTable(results);
            string dir = Path.GetFullPath(options.OutDir);
            Console.WriteLine($"wrote {Path.Combine(dir, DemoResults.FileName)} and {Path.Combine(dir, results.ExamplesImage)}");
            return 0;
        }));
        return cmd;
    }

    private static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);

    private static void PrintTable(DemoResults r)
    {
        Console.WriteLine();
        Console.WriteLine($"model: {r.ModelDescription}, {r.TotalParameters:N0} parameters");
        Console.WriteLine($"pretrained on synthetic natural scenes: {r.PretrainEpochs} epochs, val Dice {F(r.PretrainValDice, "0.000")}"
            + (r.PretrainedFromCache ? " (from the cache)" : $", {F(r.PretrainSeconds, "0")} s"));
        Console.WriteLine($"test split of the synthetic medical scenes, prompt {r.Prompt}. trained: parameters trained (% of the model);");
        Console.WriteLine("swap Dice: Dice when the prompt names another object of the same image (low = the model reads the text)");
        var table = new Table().AddColumns("method", "trained", "%", "epochs", "time", "Dice", "IoU", "swap Dice");
        foreach (var i in Enumerable.Range(1, 7)) table.Columns[i].RightAligned();
        table.AddRow("zero-shot", "0", "0", "-", "-", F(r.ZeroShot.Dice, "0.000"), F(r.ZeroShot.IoU, "0.000"), F(r.ZeroShot.PromptSwapDice, "0.000"));
        foreach (var m in r.Methods)
            table.AddRow(Markup.Escape(m.Method), m.TrainableParameters.ToString("N0", CultureInfo.InvariantCulture), F(m.TrainablePercent, "0.00"),
                m.Epochs.ToString(CultureInfo.InvariantCulture), F(m.WallSeconds, "0") + " s",
                F(m.Test.Dice, "0.000"), F(m.Test.IoU, "0.000"), F(m.Test.PromptSwapDice, "0.000"));
        AnsiConsole.Write(table);
    }

    /// <summary>One bar per stage; a training stage advances per epoch (and within it per step) and shows the latest val Dice.</summary>
    private sealed class LiveDemoObserver : IDemoObserver, ITrainingObserver
    {
        private readonly ProgressContext ctx;
        private ProgressTask? task;
        private string title = "";
        private int maxEpochs = 1;

        public LiveDemoObserver(ProgressContext ctx) => this.ctx = ctx;

        public ITrainingObserver Training => this;

        public void Stage(string stage)
        {
            if (task is not null)
            {
                task.Value = task.MaxValue;
                task.StopTask();
            }
            title = stage;
            task = ctx.AddTask(Markup.Escape(stage), maxValue: 1);
        }

        public void RunStarted(string description) { }

        public void EpochStarted(int epoch, int maxEpochs, int steps)
        {
            this.maxEpochs = maxEpochs;
            if (task is null) return;
            task.MaxValue = maxEpochs;
            task.Value = epoch;
        }

        public void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond)
        {
            if (task is null) return;
            task.Value = epoch + (double)step / Math.Max(steps, 1);
            task.Description = Markup.Escape($"{title}: epoch {epoch + 1}/{maxEpochs}, loss {loss:0.000}");
        }

        public void EpochCompleted(EpochMetrics metrics, bool best)
        {
            if (task is null) return;
            task.Value = metrics.Epoch + 1;
            task.Description = Markup.Escape($"{title}: epoch {metrics.Epoch + 1}/{maxEpochs}, val Dice {metrics.ValDice:0.000}");
        }

        public void Message(string text) { }
    }

    private sealed class LogDemoObserver : IDemoObserver
    {
        public ITrainingObserver Training { get; } = new TrainingObservers.LogObserver();

        public void Stage(string title) => Console.WriteLine($"== {title}");
    }
}
