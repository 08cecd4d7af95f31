using System.Diagnostics;
using System.Text;
using Spectre.Console;

namespace Vlsm.Cli;

/// <summary>
/// Live progress (bar, rate, ETA) on a terminal; plain, throttled lines on stderr when stdout is
/// redirected, so logs and CI output stay readable and stdout keeps only results.
/// </summary>
internal static class ProgressReporter
{
    public static bool Interactive =>
        !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>
    /// Shows the cursor and resets colours: what a live view (ours or Spectre's) may have left hidden
    /// or set. Safe to call at any time, from any thread, more than once (e.g. from a Ctrl-C handler).
    /// </summary>
    public static void RestoreTerminal()
    {
        if (Console.IsOutputRedirected) return;
        try
        {
            Console.Out.Write("\u001b[0m\u001b[?25h");
            Console.Out.Flush();
        }
        catch (IOException)
        {
            // The terminal is gone; nothing to restore.
        }
    }

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
        // Far enough back that the first report prints; not TimeSpan.MinValue, whose difference overflows.
        var lastPrint = TimeSpan.FromDays(-1);
        int done = 0;
        work(n =>
        {
            done += n;
            var now = clock.Elapsed;
            if (done < total && now - lastPrint < TimeSpan.FromSeconds(2)) return;
            lastPrint = now;
            double rate = done / Math.Max(now.TotalSeconds, 1e-9);
            string eta = done > 0 && done < total ? $", ETA {TimeSpan.FromSeconds((total - done) / rate):hh\\:mm\\:ss}" : "";
            Console.Error.WriteLine($"{title}: {done}/{total} ({100.0 * done / Math.Max(total, 1):0}%), {rate:0.0}/s{eta}");
        });
    }

    /// <summary>Terminal columns, 80 when unknown.</summary>
    public static int Width
    {
        get
        {
            try
            {
                return Console.WindowWidth is > 0 and var w ? w : 80;
            }
            catch (IOException)
            {
                return 80;
            }
        }
    }

    /// <summary>
    /// A block of lines at the bottom of the terminal, redrawn in place a few times a second from
    /// <c>render</c>, with finished lines printed above it. Every line is cut to the terminal's
    /// width less one column (so no terminal wraps it and the redraw stays in place, at 80 columns
    /// as at 200). Only for an interactive terminal; the cursor is hidden while it runs and shown
    /// again by <see cref="Dispose"/> (or <see cref="RestoreTerminal"/>).
    /// </summary>
    internal sealed class LiveView : IDisposable
    {
        private readonly Func<IReadOnlyList<string>> render;
        private readonly Timer timer;
        private readonly object gate = new();
        private int drawn;
        private bool closed;

        public LiveView(Func<IReadOnlyList<string>> render, TimeSpan? period = null)
        {
            this.render = render;
            Console.CancelKeyPress += OnCancel; // Ctrl-C ends the process: give the cursor back first
            Console.Out.Write("\u001b[?25l");
            var every = period ?? TimeSpan.FromMilliseconds(250);
            timer = new Timer(_ => Refresh(), null, TimeSpan.Zero, every);
        }

        /// <summary>Prints <paramref name="line"/> above the live block (wrapped at word boundaries to the width), where it stays.</summary>
        public void WriteAbove(string line)
        {
            lock (gate)
            {
                if (closed) return;
                var sb = new StringBuilder();
                Erase(sb);
                foreach (var part in Wrap(line, Width - 1)) sb.Append(part).Append('\n');
                Draw(sb);
            }
        }

        /// <summary>Redraws the block now.</summary>
        public void Refresh()
        {
            lock (gate)
            {
                if (closed) return;
                var sb = new StringBuilder();
                Erase(sb);
                Draw(sb);
            }
        }

        private void Erase(StringBuilder sb)
        {
            if (drawn > 0) sb.Append("\u001b[").Append(drawn).Append('A');
            sb.Append("\r\u001b[J");
            drawn = 0;
        }

        private void Draw(StringBuilder sb)
        {
            IReadOnlyList<string> lines;
            try
            {
                lines = render();
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException)
            {
                lines = []; // a render racing a state change: skip this frame
            }
            int width = Width - 1;
            foreach (var line in lines)
            {
                sb.Append(Clip(line, width)).Append('\n');
                drawn++;
            }
            Console.Out.Write(sb.ToString());
            Console.Out.Flush();
        }

        private void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            lock (gate) closed = true;
            RestoreTerminal();
        }

        /// <summary>Draws the last frame, leaves it on screen and shows the cursor.</summary>
        public void Dispose()
        {
            Console.CancelKeyPress -= OnCancel;
            timer.Dispose();
            lock (gate)
            {
                if (closed) return;
                var sb = new StringBuilder();
                Erase(sb);
                Draw(sb);
                closed = true;
            }
            RestoreTerminal();
        }
    }

    /// <summary>The first <paramref name="width"/> characters (control characters dropped), with "~" marking a cut.</summary>
    internal static string Clip(string text, int width)
    {
        var clean = new string(text.Where(c => !char.IsControl(c)).ToArray());
        width = Math.Max(width, 1);
        return clean.Length <= width ? clean : clean[..(width - 1)] + "~";
    }

    /// <summary>Lines of at most <paramref name="width"/> characters, broken at spaces where possible.</summary>
    internal static IEnumerable<string> Wrap(string text, int width)
    {
        width = Math.Max(width, 8);
        var rest = new string(text.Where(c => !char.IsControl(c)).ToArray());
        while (rest.Length > width)
        {
            int cut = rest.LastIndexOf(' ', width);
            if (cut <= 2) cut = width; // no space past the continuation indent: cut the word
            yield return rest[..cut].TrimEnd();
            rest = "  " + rest[cut..].TrimStart();
        }
        yield return rest;
    }
}
