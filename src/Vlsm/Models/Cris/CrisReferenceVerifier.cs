using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Models.Cris;

/// <summary>
/// Runs the inputs of a CRIS reference file (<c>input_ids</c>, <c>pixel_values</c>) through a model
/// and compares every output it stores: <c>logits</c>, <c>text_state</c>, <c>text_words</c>,
/// <c>vision_c3</c>, <c>vision_c4</c>, <c>vision_c5</c>.
/// </summary>
public static class CrisReferenceVerifier
{
    public static IReadOnlyList<TensorComparison> Verify(CrisModel model, SafetensorsFile reference)
    {
        foreach (var name in new[] { "input_ids", "pixel_values" })
            if (!reference.Contains(name))
                throw new VlsmException($"{reference.Path}: no \"{name}\" tensor; a CRIS reference file needs input_ids and pixel_values.");
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var ids = ReferenceComparison.TokenIds(reference, model.Config.Clip.VocabSize, "the weights' backbone.token_embedding.weight");
        var pixels = reference.Load("pixel_values", ScalarType.Float32);
        var vision = model.EncodeImage(pixels);
        var text = model.EncodeText(ids);
        var produced = new Dictionary<string, Tensor>
        {
            ["logits"] = model.Head(vision, text),
            ["text_state"] = text.State,
            ["text_words"] = text.Words,
            ["vision_c3"] = vision.C3,
            ["vision_c4"] = vision.C4,
            ["vision_c5"] = vision.C5,
        };
        var results = new List<TensorComparison>();
        ReferenceComparison.Compare(reference, produced, results);
        return results;
    }
}

/// <summary>Parameter counts per part, as <c>vlsm info</c> reports them.</summary>
public sealed record CrisSummary(CrisConfig Config, long TotalParameters, long BackboneParameters, long NeckParameters, long DecoderParameters, long ProjectorParameters)
{
    public static CrisSummary Of(CrisModel model)
    {
        static long Count(nn.Module m) => m.parameters().Sum(p => p.numel());
        return new CrisSummary(model.Config, Count(model), Count(model.Backbone), Count(model.Neck), Count(model.Decoder), Count(model.Projector));
    }
}
