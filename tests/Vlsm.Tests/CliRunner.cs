using System.Diagnostics;

namespace Vlsm.Tests;

public sealed record CliResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs the built <c>vlsm</c> command in a child process, as a user would.</summary>
internal static class CliRunner
{
    public static CliResult Run(params string[] args) => RunIn(Environment.CurrentDirectory, args);

    public static CliResult RunIn(string workingDirectory, params string[] args) => RunWith(workingDirectory, new Dictionary<string, string>(), args);

    /// <summary>Runs with extra environment variables.</summary>
    public static CliResult RunWith(string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "vlsm.dll");
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (var (name, value) in environment) psi.Environment[name] = value;
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"vlsm {string.Join(' ', args)} did not finish in 10 minutes");
        }
        return new CliResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Starts vlsm in the background (to signal or kill it); its stdout and stderr are collected, interleaved, in the builder.</summary>
    public static (Process Process, System.Text.StringBuilder Output) Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "vlsm.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return (p, output);
    }

    /// <summary>Waits (up to 3 minutes) until <paramref name="condition"/> holds, failing if it never does.</summary>
    public static void WaitFor(Func<bool> condition, Process p, string what)
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (!condition() && !p.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.True(condition(), $"{what} did not happen (exited: {p.HasExited})");
    }

    /// <summary>Sends SIGINT (what Ctrl-C sends) to a process.</summary>
    public static void Interrupt(Process p)
    {
        using var kill = Process.Start("kill", ["-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }
}
