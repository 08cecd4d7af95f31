using Vlsm.Models;
using Vlsm.Models.Registry;

namespace Vlsm.Inference;

/// <summary>The outcome of <c>vlsm verify</c>: each output tensor's difference from the reference.</summary>
public sealed record VerificationReport(IModelFamily Family, IReadOnlyList<TensorComparison> Tensors, double Tolerance)
{
    /// <summary>At least one tensor was compared and every one is within the tolerance.</summary>
    public bool Passed => Tensors.Count > 0 && Tensors.All(t => t.Within(Tolerance));
}

/// <summary>Checks a model folder (with optional trained weights) against a reference file, through its family.</summary>
public static class Verification
{
    public static VerificationReport Run(string modelDir, string referencePath, string? weights, double tolerance)
    {
        var family = ModelFamilies.ForFolder(modelDir);
        if (Directory.Exists(referencePath))
            throw new VlsmException($"--reference {referencePath} is a folder; give the reference.safetensors file in it.");
        if (!File.Exists(referencePath))
            throw new VlsmException($"--reference {referencePath}: no such file.");
        return new VerificationReport(family, family.Verify(modelDir, referencePath, weights), tolerance);
    }
}
