using Vlsm.IO;
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
    /// <param name="allowOtherBase">Apply weights trained on another base of the same shape (see <see cref="BaseWeights.Check"/>).</param>
    /// <param name="note">Hears one-line notes (weights without a recorded base).</param>
    /// <exception cref="VlsmException">The tolerance is not a number of 0 or more, a path is wrong, the reference holds no usable input or non-finite values, or the weights were trained on another base.</exception>
    public static VerificationReport Run(string modelDir, string referencePath, string? weights, double tolerance, bool allowOtherBase = false, Action<string>? note = null)
    {
        if (!(tolerance >= 0) || double.IsInfinity(tolerance))
            throw new VlsmException($"--tolerance must be a number, 0 or more (the largest allowed absolute difference), got {tolerance.ToString(System.Globalization.CultureInfo.InvariantCulture)}.");
        if (File.Exists(modelDir))
            throw new VlsmException($"--model {modelDir} is a file; give the model's folder (config.json and weights).");
        var family = ModelFamilies.ForFolder(modelDir);
        if (Directory.Exists(referencePath))
            throw new VlsmException($"--reference {referencePath} is a folder; give the reference.safetensors file in it.");
        if (!File.Exists(referencePath))
            throw new VlsmException($"--reference {referencePath}: no such file.");
        CheckReference(referencePath);
        if (weights is not null) new ModelReference(modelDir, weights, null).CheckBase(allowOtherBase, note);
        try
        {
            return new VerificationReport(family, family.Verify(modelDir, referencePath, weights), tolerance);
        }
        catch (VlsmException e) when (Inputs.Any(input => e.Message.StartsWith(input + " ", StringComparison.Ordinal)))
        {
            // The model's own check of an input's shape names the tensor; here the tensor came from the reference file.
            throw new VlsmException($"{referencePath}: {e.Message} The reference's inputs were not made for this model; regenerate it for {modelDir}.", e);
        }
    }

    /// <summary>The inputs a reference file can hold; every other tensor is an expected output.</summary>
    private static readonly string[] Inputs = ["input_ids", "attention_mask", "pixel_values"];

    /// <summary>
    /// Faults of the reference file itself, blamed on it: token ids or an attention mask stored as
    /// floats, a mask not of the token ids' shape, non-finite expected values, no expected output at all.
    /// </summary>
    private static void CheckReference(string path)
    {
        using var file = SafetensorsFile.Open(path);
        foreach (var name in file.Names)
        {
            var entry = file.Entry(name);
            if (name is "input_ids" && SafetensorsDtypes.IsFloat(entry.Dtype))
                throw new VlsmException($"{path}: input_ids is {entry.Dtype}; token ids must be integers (I64 or I32). Save them as integers in the reference.");
            if (!SafetensorsDtypes.IsFloat(entry.Dtype)) continue;
            using var values = file.Load(name, TorchSharp.torch.ScalarType.Float64);
            using var finite = values.isfinite().all();
            if (!finite.item<bool>())
                throw new VlsmException($"{path}: tensor \"{name}\" holds NaN or infinite values; the reference file is at fault, not the model. Regenerate it.");
        }
        if (file.Contains("attention_mask"))
        {
            var mask = file.Entry("attention_mask");
            if (SafetensorsDtypes.IsFloat(mask.Dtype))
                throw new VlsmException($"{path}: attention_mask is {mask.Dtype}; the mask must be integers (I64 or I32), 1 for a token and 0 for padding. Save it as integers in the reference.");
            // A mask of another shape would be broadcast or reshaped by the text tower, not refused.
            if (file.Contains("input_ids") && file.Entry("input_ids") is var ids && !mask.Shape.SequenceEqual(ids.Shape))
                throw new VlsmException($"{path}: attention_mask is [{string.Join(", ", mask.Shape)}] but input_ids is [{string.Join(", ", ids.Shape)}]; "
                    + "the mask must have input_ids' shape (one 0 or 1 per token). Regenerate the reference.");
        }
        if (!file.Names.Any(n => !Inputs.Contains(n)))
            throw new VlsmException($"{path} holds no expected outputs (only {string.Join(", ", file.Names)}); a reference needs the model's outputs to compare with, such as logits.");
    }
}
