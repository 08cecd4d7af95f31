using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Models.Smp;

/// <summary>
/// Runs the inputs of an smp reference file (<c>pixel_values</c> and, when present,
/// <c>pixel_values_nonsquare</c>) through a model and compares every output it stores:
/// <c>encoder_features.K</c>, <c>decoder_output</c>, <c>logits</c>, <c>intermediate.*</c> (smp's
/// module paths) and <c>logits_nonsquare</c>.
/// </summary>
public static class SmpReferenceVerifier
{
    public const string NonSquareInput = "pixel_values_nonsquare";

    public static IReadOnlyList<TensorComparison> Verify(SmpModel model, SafetensorsFile reference)
    {
        if (!reference.Contains("pixel_values"))
            throw new VlsmException($"{reference.Path}: no \"pixel_values\" tensor; an smp reference file needs the input it was computed from.");
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var pixels = reference.Load("pixel_values", ScalarType.Float32);
        using var outputs = model.ForwardAll(pixels);
        var produced = new Dictionary<string, Tensor>
        {
            ["decoder_output"] = outputs.DecoderOutput,
            ["logits"] = outputs.Logits,
        };
        for (int k = 0; k < outputs.Features.Count; k++) produced[$"encoder_features.{k}"] = outputs.Features[k];
        foreach (var (name, t) in outputs.Intermediates) produced["intermediate." + name] = t;
        if (reference.Contains(NonSquareInput))
            produced["logits_nonsquare"] = model.Forward(reference.Load(NonSquareInput, ScalarType.Float32));
        var results = new List<TensorComparison>();
        ReferenceComparison.Compare(reference, produced, results);
        return results;
    }
}
