using Vlsm.IO;
using Vlsm.Models.Cris;
using Xunit.Abstractions;

namespace Vlsm.Tests;

/// <summary>
/// The C# CRIS against outputs of the benchmarks' Python CRIS on the same random weights: every
/// tensor stored in each CRIS folder's reference.safetensors within 1e-4.
/// </summary>
public class CrisParityTests
{
    public const double Tolerance = 1e-4;

    private readonly ITestOutputHelper output;

    public CrisParityTests(ITestOutputHelper output) => this.output = output;

    /// <summary>Every CRIS model folder with a reference file in shared/parity and under $VLSM_PARITY_DIR.</summary>
    public static IEnumerable<object[]> ModelFolders() => Fixtures.ParityFoldersOf(CrisFamily.Instance);

    [Fact]
    public void SharedParityHasTheCrisTinyFolder() =>
        Assert.Contains("cris-tiny", ModelFolders().Select(o => Path.GetFileName((string)o[0])));

    [Theory]
    [MemberData(nameof(ModelFolders))]
    public void EveryReferenceTensorIsReproduced(string folder)
    {
        using var model = CrisLoader.Load(folder);
        using var reference = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var results = CrisReferenceVerifier.Verify(model, reference);

        var outputs = reference.Names.Where(n => n is not ("input_ids" or "pixel_values")).ToList();
        Assert.Contains("logits", outputs);
        Assert.Equal(outputs.Order(), results.Select(r => r.Name).Order());
        foreach (var r in results)
        {
            output.WriteLine($"{Path.GetFileName(folder)} {r.Name}: max |diff| {r.MaxAbsDiff:g3}");
            Assert.True(r.Problem is null, $"{folder}: {r.Name}: {r.Problem}");
            Assert.True(r.MaxAbsDiff <= Tolerance, $"{folder}: {r.Name} differs by {r.MaxAbsDiff:g3} (> {Tolerance:g})");
        }
    }
}
