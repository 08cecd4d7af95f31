using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Models.San;

/// <summary>
/// Runs the inputs of a SAN reference file (<c>input_ids</c>, <c>pixel_values</c>) through a model
/// and compares every tensor it stores: the CLIP input and features, the side network's
/// intermediates, the decoder's masks and attention biases, the rec head's mask and embeddings, the
/// text features, the query scores and the logits (shapes as <c>shared/parity/san-tiny/README.md</c> gives them).
/// </summary>
public static class SanReferenceVerifier
{
    public static IReadOnlyList<TensorComparison> Verify(SanModel model, SafetensorsFile reference)
    {
        foreach (var name in new[] { "input_ids", "pixel_values" })
            if (!reference.Contains(name))
                throw new VlsmException($"{reference.Path}: no \"{name}\" tensor; a SAN reference file needs input_ids and pixel_values.");
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var ids = ReferenceComparison.TokenIds(reference, model.Config.Clip.VocabSize, "net.open_clip_cfg.text_cfg.vocab_size");
        var pixels = reference.Load("pixel_values", ScalarType.Float32);
        var produced = Trace(model, pixels, ids);
        var results = new List<TensorComparison>();
        ReferenceComparison.Compare(reference, produced, results);
        return results;
    }

    /// <summary>Every intermediate the reference file names, computed by <paramref name="model"/> (in the caller's dispose scope).</summary>
    public static Dictionary<string, Tensor> Trace(SanModel model, Tensor pixels, Tensor ids)
    {
        var produced = new Dictionary<string, Tensor> { ["clip_input"] = model.ClipInput(pixels) };
        var all = Enumerable.Range(0, model.Config.LastLayerIdx + 1).ToHashSet();
        var clip = model.EncodeClip(pixels, all);
        foreach (var k in all)
        {
            produced[$"clip_features.{k}"] = clip.Map(k);
            produced[$"clip_cls.{k}"] = clip.Tokens[k].select(1, 0);
        }
        var proposals = model.Propose(pixels, clip, produced);
        var text = model.EncodeText(ids);
        produced["text_features"] = text;
        produced["mask_embs"] = proposals.MaskEmbeddings;
        produced["mask_logits"] = SanModel.MaskLogits(proposals.MaskEmbeddings, text);
        produced["logits"] = SanModel.Combine(proposals, text).unsqueeze(1);
        return produced;
    }
}
