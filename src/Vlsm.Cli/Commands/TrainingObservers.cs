using System.Diagnostics;
using Spectre.Console;
using Vlsm.Training;

namespace Vlsm.Cli.Commands;

/// <summary>Training progress for <c>vlsm train</c> and <c>vlsm demo</c>: live bars on a terminal, plain lines in logs.</summary>
internal static class TrainingObservers
{
    internal static string Line(EpochMetrics m, bool best) =>
        $"epoch {m.Epoch + 1}: train loss {m.TrainLoss:0.0000}, val loss {m.ValLoss:0.0000}, val Dice {m.ValDice:0.0000}, val IoU {m.ValIoU:0.0000}, lr {m.Lr:0.###e+0}, {m.Seconds:0.0} s{(best ? " (best)" : "")}";

    /// <summary>A bar per epoch with loss, learning rate and images/s in its description.</summary>
    internal sealed class LiveObserver : ITrainingObserver
    {
        private readonly ProgressContext ctx;
        private ProgressTask? task;
        private int epoch, maxEpochs;

        public LiveObserver(ProgressContext ctx) => this.ctx = ctx;

        public void RunStarted(string description) => AnsiConsole.MarkupLine(Markup.Escape(description));

        public void EpochStarted(int epoch, int maxEpochs, int steps)
        {
            this.epoch = epoch;
            this.maxEpochs = maxEpochs;
            task = ctx.AddTask($"epoch {epoch + 1}/{maxEpochs}", maxValue: Math.Max(steps, 1));
        }

        public void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond)
        {
            if (task is null) return;
            task.Description = Markup.Escape($"epoch {epoch + 1}/{maxEpochs} loss {loss:0.0000} lr {lr:0.###e+0} {imagesPerSecond:0.0} img/s");
            task.Value = step;
        }

        public void EpochCompleted(EpochMetrics metrics, bool best)
        {
            if (task is not null)
            {
                task.Description = Markup.Escape($"epoch {epoch + 1}/{maxEpochs} val Dice {metrics.ValDice:0.0000}{(best ? " (best)" : "")}");
                task.StopTask();
            }
        }

        public void Message(string text) => AnsiConsole.MarkupLine(Markup.Escape(text));
    }

    /// <summary>Plain lines for logs: one per epoch, and step progress at most every 10 s.</summary>
    internal sealed class LogObserver : ITrainingObserver
    {
        private readonly Stopwatch clock = new();
        private TimeSpan lastPrint;
        private int maxEpochs;

        public void RunStarted(string description) => Console.WriteLine(description);

        public void EpochStarted(int epoch, int maxEpochs, int steps)
        {
            this.maxEpochs = maxEpochs;
            clock.Restart();
            lastPrint = TimeSpan.Zero;
        }

        public void StepCompleted(int epoch, int step, int steps, double loss, double lr, double imagesPerSecond)
        {
            var now = clock.Elapsed;
            if (now - lastPrint < TimeSpan.FromSeconds(10) || step == steps) return;
            lastPrint = now;
            var eta = TimeSpan.FromSeconds(now.TotalSeconds / step * (steps - step));
            Console.WriteLine($"epoch {epoch + 1}/{maxEpochs} step {step}/{steps}: loss {loss:0.0000}, {imagesPerSecond:0.0} img/s, epoch ETA {eta:hh\\:mm\\:ss}");
        }

        public void EpochCompleted(EpochMetrics metrics, bool best) => Console.WriteLine(Line(metrics, best));

        public void Message(string text) => Console.WriteLine(text);
    }
}
