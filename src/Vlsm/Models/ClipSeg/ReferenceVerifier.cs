using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Models.ClipSeg;


/// <summary>
/// Runs the inputs stored in a reference file (see shared/parity/README.md) through a model and
/// compares every output tensor the file stores that the model produces.
/// </summary>
public static class ReferenceVerifier
{
    private const string HiddenPrefix = "vision_hidden_states.";

    /// <param name="model">The base model (vision hidden states come from it).</param>
    /// <param name="reference">The reference file.</param>
    /// <param name="adapted">If given, logits and conditional embeddings come from the model with its trained weights.</param>
    public static IReadOnlyList<TensorComparison> Verify(ClipSegModel model, SafetensorsFile reference, AdaptedClipSeg? adapted = null)
    {
        foreach (var name in new[] { "input_ids", "pixel_values" })
            if (!reference.Contains(name))
                throw new VlsmException($"{reference.Path}: no \"{name}\" tensor; a reference file needs input_ids and pixel_values (attention_mask optional).");
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var ids = ReferenceComparison.TokenIds(reference, model.Config.Text.VocabSize, "text_config.vocab_size");
        var mask = reference.Contains("attention_mask") ? reference.Load("attention_mask", ScalarType.Int64) : null;
        var pixels = reference.Load("pixel_values", ScalarType.Float32);

        var hiddenKeys = reference.Names.Where(n => n.StartsWith(HiddenPrefix, StringComparison.Ordinal)).ToList();
        var results = new List<TensorComparison>();
        var produced = new Dictionary<string, Tensor>();

        if (adapted is null)
        {
            var vision = model.EncodeImage(pixels);
            var conditional = model.EncodeText(ids, mask);
            produced["logits"] = model.Decode(vision, conditional);
            produced["conditional_embeddings"] = conditional;
        }
        else
        {
            var vision = adapted.EncodeImage(pixels);
            var text = adapted.EncodeText(ids, mask);
            produced["logits"] = adapted.Head(vision, text);
            produced["conditional_embeddings"] = adapted.ConditionalEmbedding(text);
        }
        if (hiddenKeys.Count > 0)
        {
            var wanted = new HashSet<int>();
            foreach (var key in hiddenKeys)
            {
                if (!int.TryParse(key.AsSpan(HiddenPrefix.Length), out int k) || k < 0 || k > model.Config.Vision.NumHiddenLayers)
                    results.Add(new TensorComparison(key, double.NaN, $"not a hidden-state index of this model (0..{model.Config.Vision.NumHiddenLayers})"));
                else
                    wanted.Add(k);
            }
            if (wanted.Count > 0)
            {
                var hidden = model.Clip.VisionModel.Forward(pixels, wanted);
                foreach (var (k, t) in hidden) produced[HiddenPrefix + k] = t;
            }
        }

        ReferenceComparison.Compare(reference, produced, results);
        return results;
    }
}
