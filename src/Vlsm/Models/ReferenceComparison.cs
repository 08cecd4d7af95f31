using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Models;

/// <summary>Compares what a model produced with the outputs a reference file stores (every family's verifier uses it).</summary>
public static class ReferenceComparison
{
    /// <summary>
    /// The reference's <c>input_ids</c> as int64, after checking that the file stores integers and
    /// that every id indexes one of the model's <paramref name="embeddingRows"/> token embeddings
    /// (<paramref name="configField"/> says where that count comes from): an id out of range would
    /// otherwise fail inside libtorch's embedding lookup.
    /// </summary>
    /// <exception cref="VlsmException">input_ids is not an integer tensor, or an id is negative or past the embedding.</exception>
    public static Tensor TokenIds(SafetensorsFile reference, long embeddingRows, string configField)
    {
        var entry = reference.Entry("input_ids");
        if (entry.Dtype is not (SafetensorsDtype.I64 or SafetensorsDtype.I32 or SafetensorsDtype.I16 or SafetensorsDtype.U8 or SafetensorsDtype.I8))
            throw new VlsmException($"{reference.Path}: input_ids is {entry.Dtype}, not an integer tensor; token ids are stored as I64 (torch.long).");
        var ids = reference.Load("input_ids", ScalarType.Int64);
        if (ids.numel() == 0) return ids;
        long low = ids.min().item<long>(), high = ids.max().item<long>();
        if (low < 0 || high >= embeddingRows)
            throw new VlsmException($"{reference.Path}: input_ids holds the token id {(low < 0 ? low : high)}, but the model has token ids 0..{embeddingRows - 1} ({configField}); "
                + "the reference was not made for this model.");
        return ids;
    }

    /// <summary>
    /// Adds a comparison for every output tensor of <paramref name="reference"/> (all but the
    /// inputs) not yet in <paramref name="results"/>: its largest absolute difference from the
    /// tensor of that name in <paramref name="produced"/>, or the problem that prevents one.
    /// <paramref name="inputs"/> names further tensors of the file that are inputs, not outputs.
    /// </summary>
    public static void Compare(SafetensorsFile reference, IReadOnlyDictionary<string, Tensor> produced, List<TensorComparison> results, IReadOnlySet<string>? inputs = null)
    {
        foreach (var name in reference.Names)
        {
            // Inputs: token ids, masks and pixel values (smp references hold a second, non-square one).
            if (name is "input_ids" or "attention_mask" || name.StartsWith("pixel_values", StringComparison.Ordinal)) continue;
            if (inputs is not null && inputs.Contains(name)) continue;
            if (results.Any(r => r.Name == name)) continue;
            if (!produced.TryGetValue(name, out var actual))
            {
                results.Add(new TensorComparison(name, double.NaN, "this model does not produce a tensor of that name"));
                continue;
            }
            var expected = reference.Load(name, ScalarType.Float32);
            if (!expected.shape.SequenceEqual(actual.shape))
            {
                results.Add(new TensorComparison(name, double.NaN,
                    $"shape [{string.Join(", ", actual.shape)}] differs from the reference's [{string.Join(", ", expected.shape)}]"));
                continue;
            }
            double diff = (actual.to(ScalarType.Float32) - expected).abs().max().item<float>();
            results.Add(new TensorComparison(name, diff, double.IsNaN(diff) ? "output contains NaN" : null));
        }
    }
}
