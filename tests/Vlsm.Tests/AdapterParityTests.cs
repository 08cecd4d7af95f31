using Vlsm.Models;
using Vlsm.Models.ClipSeg;
using Vlsm.IO;

namespace Vlsm.Tests;

/// <summary>Adapters against the reference vlsm-adapter modules on HF CLIPSeg (random weights): logits within 1e-4.</summary>
public class AdapterParityTests
{
    /// <summary>(base model folder, adapter case name) for every adapters/ folder in shared/parity and under $VLSM_PARITY_DIR.</summary>
    public static IEnumerable<object[]> Cases()
    {
        var roots = new List<string> { Fixtures.Parity };
        if (Environment.GetEnvironmentVariable("VLSM_PARITY_DIR") is { Length: > 0 } extra) roots.Add(extra);
        return roots
            .SelectMany(r => Directory.EnumerateFiles(r, "*.adapter.safetensors", SearchOption.AllDirectories))
            .Where(f => Path.GetFileName(Path.GetDirectoryName(f)) == "adapters")
            .Select(f => new object[] { Path.GetDirectoryName(Path.GetDirectoryName(f))!, Path.GetFileName(f)[..^".adapter.safetensors".Length] })
            .OrderBy(o => (string)o[0] + "/" + o[1], StringComparer.Ordinal);
    }

    [Fact]
    public void SharedParityHasShallowAndDenseCases()
    {
        var names = Cases().Select(o => (string)o[1]).ToList();
        Assert.Contains("shallow-vlc", names);
        Assert.Contains("dense-vlc", names);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitsMatchTheReference(string baseFolder, string name)
    {
        string dir = Path.Combine(baseFolder, "adapters");
        using var model = ClipSegLoader.Load(baseFolder);
        using var adapted = AdapterFile.Load(model, Path.Combine(dir, name + ".adapter.safetensors"));
        using var reference = SafetensorsFile.Open(Path.Combine(dir, name + ".reference.safetensors"));
        var results = ReferenceVerifier.Verify(model, reference, adapted);
        Assert.Contains(results, r => r.Name == "logits");
        foreach (var r in results)
            Assert.True(r.Within(ClipSegParityTests.Tolerance), $"{name}: {r.Name}: {r.MaxAbsDiff:g3} {r.Problem}");

        using var file = SafetensorsFile.Open(Path.Combine(dir, name + ".adapter.safetensors"));
        Assert.Equal(long.Parse(file.Metadata["trainable_parameters"]), adapted.TrainableParameterCount);
    }
}
