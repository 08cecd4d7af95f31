namespace Vlsm.Tests;

/// <summary>Locates the read-only fixtures: <c>../shared</c> next to the folder holding vlsm.sln.</summary>
internal static class Fixtures
{
    public static readonly string RepoRoot = FindRepoRoot();
    public static readonly string Shared = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
    public static readonly string Parity = Path.Combine(Shared, "parity");

    /// <summary>
    /// Every model folder with a reference.safetensors under shared/parity and $VLSM_PARITY_DIR for
    /// which <paramref name="isKind"/> is true, as xunit member data.
    /// </summary>
    public static IEnumerable<object[]> ParityModelFolders(Func<string, bool> isKind)
    {
        var roots = new List<string> { Parity };
        if (Environment.GetEnvironmentVariable("VLSM_PARITY_DIR") is { Length: > 0 } extra) roots.Add(extra);
        return roots
            .SelectMany(r => Directory.EnumerateFiles(r, "config.json", SearchOption.AllDirectories))
            .Select(f => Path.GetDirectoryName(f)!)
            .Where(d => File.Exists(Path.Combine(d, "reference.safetensors")) && isKind(d))
            .Distinct()
            .Order(StringComparer.Ordinal)
            .Select(d => new object[] { d });
    }

    /// <summary>The parity folders whose config.json names <paramref name="family"/> (through the registry, as every command finds a family).</summary>
    public static IEnumerable<object[]> ParityFoldersOf(Vlsm.Models.IModelFamily family) => ParityModelFolders(dir => FamilyOf(dir) == family);

    /// <summary>The family of a model folder, or null for a family vlsm does not have (yet).</summary>
    public static Vlsm.Models.IModelFamily? FamilyOf(string dir)
    {
        try
        {
            return Vlsm.Models.Registry.ModelFamilies.ForFolder(dir);
        }
        catch (VlsmException)
        {
            return null;
        }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "vlsm.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"No vlsm.sln above {AppContext.BaseDirectory}.");
    }
}
