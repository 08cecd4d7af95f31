using System.Diagnostics;

namespace Vlsm.Tests;

/// <summary>
/// The <c>./vlsm</c> launcher at the repository root: it builds only when sources changed since its last
/// build, and otherwise runs the built command directly (a warm call must not pay for MSBuild).
/// The test build has already produced the binary the launcher runs.
/// </summary>
public sealed class LauncherTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-launcher-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static CliResult Launch(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var psi = new ProcessStartInfo("bash");
        psi.ArgumentList.Add(Path.Combine(Fixtures.RepoRoot, "vlsm"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        return CliRunner.RunProcess(psi, TimeSpan.FromMinutes(10), $"./vlsm {string.Join(' ', args)}");
    }

    /// <summary>No stamp (never built by the launcher), or a stamp older than every source: the launcher must build.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AMissingOrOlderStampMakesTheLauncherBuild(bool stampFromLongAgo)
    {
        var stamp = Path.Combine(tmp, "launcher.stamp");
        if (stampFromLongAgo)
        {
            File.WriteAllText(stamp, "");
            File.SetLastWriteTimeUtc(stamp, new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        }
        var r = Launch(new Dictionary<string, string> { ["VLSM_LAUNCHER_STAMP"] = stamp, ["VLSM_LAUNCHER_DRY_RUN"] = "1" });
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("would build", r.Stderr);
    }

    [Fact]
    public void AWarmCallRunsTheBuiltCommandWithoutBuilding()
    {
        // A stamp newer than every source (now + 1 h): the launcher must run the binary straight away.
        var stamp = Path.Combine(tmp, "fresh.stamp");
        File.WriteAllText(stamp, "");
        File.SetLastWriteTimeUtc(stamp, DateTime.UtcNow.AddHours(1));
        var env = new Dictionary<string, string> { ["VLSM_LAUNCHER_STAMP"] = stamp };

        var dry = Launch(new Dictionary<string, string>(env) { ["VLSM_LAUNCHER_DRY_RUN"] = "1" });
        Assert.Contains("up to date", dry.Stderr);

        var r = Launch(env, "--help");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.DoesNotContain("building", r.Stderr);
        Assert.Contains("demo", r.Stdout);
        Assert.Contains("train", r.Stdout);
    }
}
