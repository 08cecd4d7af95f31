using System.Text.Json.Nodes;
using Vlsm.IO;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Tests;

/// <summary>
/// The C# CLIPSeg against outputs of HF transformers on the same random weights: every tensor
/// stored in each folder's reference.safetensors within 1e-4.
/// </summary>
public class ClipSegParityTests
{
    public const double Tolerance = 1e-4;

    /// <summary>Every CLIPSeg model folder with a reference file in shared/parity and under $VLSM_PARITY_DIR.</summary>
    public static IEnumerable<object[]> ModelFolders() => Fixtures.ParityFoldersOf(ClipSegFamily.Instance);

    [Fact]
    public void SharedParityHasTheThreeClipSegFolders()
    {
        var names = ModelFolders().Select(o => Path.GetFileName((string)o[0])).ToList();
        Assert.Contains("clipseg-tiny", names);
        Assert.Contains("clipseg-geometry", names);
        Assert.Contains("clipseg-adapter-base", names);
    }

    [Theory]
    [MemberData(nameof(ModelFolders))]
    public void EveryReferenceTensorIsReproduced(string folder)
    {
        using var model = ClipSegLoader.Load(folder);
        using var reference = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var results = ReferenceVerifier.Verify(model, reference);

        var outputs = reference.Names.Where(n => n is not ("input_ids" or "attention_mask" or "pixel_values")).ToList();
        Assert.Contains("logits", outputs);
        Assert.Equal(outputs.Order(), results.Select(r => r.Name).Order());
        foreach (var r in results)
        {
            Assert.True(r.Problem is null, $"{folder}: {r.Name}: {r.Problem}");
            Assert.True(r.MaxAbsDiff <= Tolerance, $"{folder}: {r.Name} differs by {r.MaxAbsDiff:g3} (> {Tolerance:g})");
        }
    }
}
