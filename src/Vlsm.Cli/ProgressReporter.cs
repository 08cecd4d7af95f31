using System.Diagnostics;
using Spectre.Console;

namespace Vlsm.Cli;

/// <summary>
/// Live progress (bar, rate, ETA) on a terminal; plain, throttled log lines when stdout is
/// redirected, so logs and CI output stay readable.
/// </summary>
internal static class ProgressReporter
{
    public static bool Interactive =>
        !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Runs <paramref name="work"/>, which reports completed units through the callback it is given.</summary>
    public static void Run(string title, int total, Action<Action<int>> work)
    {
        if (Interactive)
        {
            AnsiConsole.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                    new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape(title), maxValue: Math.Max(total, 1));
                    work(n => task.Increment(n));
                });
            return;
        }
        var clock = Stopwatch.StartNew();
        var lastPrint = TimeSpan.Zero; // not MinValue: "now - MinValue" overflows; the first line comes after 2 s or at the end
        int done = 0;
        work(n =>
        {
            done += n;
            var now = clock.Elapsed;
            if (done < total && now - lastPrint < TimeSpan.FromSeconds(2)) return;
            lastPrint = now;
            double rate = done / Math.Max(now.TotalSeconds, 1e-9);
            string eta = done > 0 && done < total ? $", ETA {TimeSpan.FromSeconds((total - done) / rate):hh\\:mm\\:ss}" : "";
            Console.WriteLine($"{title}: {done}/{total} ({100.0 * done / Math.Max(total, 1):0}%), {rate:0.0}/s{eta}");
        });
    }
}
