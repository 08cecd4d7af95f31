namespace Vlsm.Tests;

/// <summary>Locates the repository (the folder holding vlsm.sln) and the read-only ../shared fixtures.</summary>
internal static class Fixtures
{
    public static readonly string RepoRoot = FindRepoRoot();
    public static readonly string Shared = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
    public static readonly string Parity = Path.Combine(Shared, "parity");

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "vlsm.sln"))) return dir.FullName;
        throw new InvalidOperationException($"No vlsm.sln above {AppContext.BaseDirectory}.");
    }
}
