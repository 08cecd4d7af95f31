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
        return RunProcess(psi, TimeSpan.FromMinutes(10), $"vlsm {string.Join(' ', args)}");
    }

    /// <summary>
    /// Runs any program to its end, collecting stdout and stderr; past <paramref name="timeout"/> it
    /// kills the process tree and fails naming <paramref name="what"/>.
    /// </summary>
    public static CliResult RunProcess(ProcessStartInfo psi, TimeSpan timeout, string what)
    {
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{what} did not finish in {timeout.TotalMinutes:0} minutes");
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
