using Vlsm.IO;
using Vlsm.Models.San;
using Xunit.Abstractions;

namespace Vlsm.Tests;

/// <summary>
/// The C# SAN against outputs of vlsm-adapter's Python SAN (open_clip at the benchmark's commit,
/// timm) on the same random weights: every tensor san-tiny's reference.safetensors stores, from the
/// CLIP input to the logits, within 1e-4.
/// </summary>
public class SanParityTests
{
    public const double Tolerance = 1e-4;

    private readonly ITestOutputHelper output;

    public SanParityTests(ITestOutputHelper output) => this.output = output;

    public static string TinyFolder => Path.Combine(Fixtures.Parity, "san-tiny");

    [Fact]
    public void EveryReferenceTensorIsReproduced()
    {
        using var model = SanLoader.Load(TinyFolder);
        using var reference = SafetensorsFile.Open(Path.Combine(TinyFolder, "reference.safetensors"));
        var results = SanReferenceVerifier.Verify(model, reference);

        var outputs = reference.Names.Where(n => n is not ("input_ids" or "attention_mask" or "pixel_values")).ToList();
        Assert.Contains("logits", outputs);
        Assert.Equal(outputs.Order(), results.Select(r => r.Name).Order());
        foreach (var r in results)
        {
            output.WriteLine($"san-tiny {r.Name}: max |diff| {r.MaxAbsDiff:g3}");
            Assert.True(r.Problem is null, $"{r.Name}: {r.Problem}");
            Assert.True(r.MaxAbsDiff <= Tolerance, $"{r.Name} differs by {r.MaxAbsDiff:g3} (> {Tolerance:g})");
        }
    }
}
