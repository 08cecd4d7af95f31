using System.Text.Json;
using TorchSharp;
using Vlsm.Imaging;
using Vlsm.IO;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.BiomedClipSeg;

/// <summary>
/// Runs a BiomedCLIPSeg reference file (shared/parity/biomedclipseg-tiny/README.md) through a model
/// and compares every tensor it stores: the image transform (<c>resized_uint8</c> and
/// <c>pixel_values</c> from <c>image_uint8.i</c>), the tokenizer (the metadata's prompts against
/// <c>input_ids</c> and <c>attention_mask</c>, exactly), the ViT's embeddings, block outputs and
/// pooled output, BERT's last hidden state, the pooled and projected text, the decoder's grid and
/// the logits, (B, 1, H, W) as the reference returns them for B ≥ 2.
/// </summary>
public static class BiomedClipSegVerifier
{
    private const string BlockPrefix = "vision_block_output.", ImagePrefix = "image_uint8.";

    public static IReadOnlyList<TensorComparison> Verify(AdaptedBiomedClipSeg adapted, SafetensorsFile reference, WordPieceTokenizer? tokenizer)
    {
        foreach (var name in new[] { "input_ids", "attention_mask", "pixel_values" })
            if (!reference.Contains(name))
                throw new VlsmException($"{reference.Path}: no \"{name}\" tensor; a BiomedCLIPSeg reference file needs input_ids, attention_mask and pixel_values.");
        var model = adapted.Base;
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var ids = ReferenceComparison.TokenIds(reference, model.Config.Text.VocabSize, "the BERT vocab_size");
        var mask = reference.Load("attention_mask", ScalarType.Int64);
        var pixels = reference.Load("pixel_values", ScalarType.Float32);
        var results = new List<TensorComparison>();
        var produced = new Dictionary<string, Tensor>();

        CompareTokens(reference, tokenizer, model.Config, ids, mask, results);
        ComparePreprocessing(reference, model.Config, pixels, results);

        var trunk = model.Trunk;
        var embeddings = trunk.Embed(pixels);
        produced["vision_embeddings"] = embeddings;
        var blocks = trunk.Blocks(embeddings, model.Config.Vision.Depth, Enumerable.Range(0, model.Config.Vision.Depth).ToHashSet());
        foreach (var (k, t) in blocks) produced[BlockPrefix + k] = t;
        produced["vision_pooled"] = model.BiomedClip.Visual.Head.forward(trunk.Pool(blocks[model.Config.Vision.Depth - 1]));

        var hidden = model.TextHidden(ids, mask);
        produced["text_last_hidden_state"] = hidden;
        produced["text_pooled"] = BiomedClipSeg.BiomedText.Pool(hidden);
        var conditional = model.EncodeText(ids, mask);
        produced["conditional_embeddings"] = adapted.ConditionalEmbedding(conditional);

        var vision = adapted.EncodeImage(pixels);
        produced["decoder_pre_transposed_conv"] = model.Decoder.ForwardGrid(vision.Activations, produced["conditional_embeddings"], vision.GridHeight, vision.GridWidth);
        produced["logits"] = adapted.Head(vision, conditional).unsqueeze(1);

        var inputs = reference.Names.Where(n => n.StartsWith(ImagePrefix, StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        ReferenceComparison.Compare(reference, produced, results, inputs);
        return results;
    }

    /// <summary>The prompts of the file's metadata, tokenized and padded to the stored length, against input_ids and attention_mask: the number of differing ids.</summary>
    private static void CompareTokens(SafetensorsFile reference, WordPieceTokenizer? tokenizer, BiomedClipSegConfig config, Tensor ids, Tensor mask, List<TensorComparison> results)
    {
        if (tokenizer is null || !reference.Metadata.TryGetValue("prompts", out var json)) return;
        string[] prompts;
        try
        {
            prompts = JsonSerializer.Deserialize<string[]>(json) ?? [];
        }
        catch (JsonException e)
        {
            results.Add(new TensorComparison("input_ids (tokenized prompts)", double.NaN, $"metadata \"prompts\" is not a JSON list of strings ({e.Message})"));
            return;
        }
        if (prompts.Length != ids.shape[0])
        {
            results.Add(new TensorComparison("input_ids (tokenized prompts)", double.NaN, $"{prompts.Length} prompts in the metadata for {ids.shape[0]} rows of input_ids"));
            return;
        }
        var batch = tokenizer.EncodeBatch(prompts, config.ContextLength, padTo: (int)ids.shape[1]);
        using var ours = tensor(batch.InputIds, ids.shape);
        using var ourMask = tensor(batch.AttentionMask, mask.shape);
        results.Add(new TensorComparison("input_ids (tokenized prompts)", ours.ne(ids).sum().item<long>()));
        results.Add(new TensorComparison("attention_mask (tokenized prompts)", ourMask.ne(mask).sum().item<long>()));
    }

    /// <summary>medvlsm's transform of each stored source image, against resized_uint8 (exact bytes) and pixel_values.</summary>
    private static void ComparePreprocessing(SafetensorsFile reference, BiomedClipSegConfig config, Tensor pixels, List<TensorComparison> results)
    {
        var sources = reference.Names.Where(n => n.StartsWith(ImagePrefix, StringComparison.Ordinal)).OrderBy(n => int.TryParse(n.AsSpan(ImagePrefix.Length), out int i) ? i : int.MaxValue).ToList();
        if (sources.Count == 0) return;
        var preprocessor = BiomedClipSegLoader.Preprocessor(config);
        var resized = new List<Tensor>();
        var normalized = new List<Tensor>();
        foreach (var name in sources)
        {
            var hwc = reference.Load(name, ScalarType.Byte);
            if (hwc.dim() != 3 || hwc.shape[2] != 3)
            {
                results.Add(new TensorComparison(name, double.NaN, $"expected (H, W, 3) uint8, got [{string.Join(", ", hwc.shape)}]"));
                return;
            }
            var image = new RgbImage((int)hwc.shape[1], (int)hwc.shape[0], hwc.contiguous().data<byte>().ToArray());
            var sized = preprocessor.Prepare(image);
            resized.Add(tensor(sized.Pixels, new long[] { sized.Height, sized.Width, 3 }));
            normalized.Add(tensor(preprocessor.ToChw(image), new long[] { 3, preprocessor.Height, preprocessor.Width }));
        }
        if (reference.Contains("resized_uint8"))
        {
            var expected = reference.Load("resized_uint8", ScalarType.Byte).to(ScalarType.Int32);
            var ours = stack(resized).to(ScalarType.Int32);
            results.Add(expected.shape.SequenceEqual(ours.shape)
                ? new TensorComparison("resized_uint8", ours.sub(expected).abs().max().item<int>())
                : new TensorComparison("resized_uint8", double.NaN, $"shape [{string.Join(", ", ours.shape)}] differs from [{string.Join(", ", expected.shape)}]"));
        }
        var chw = stack(normalized);
        results.Add(chw.shape.SequenceEqual(pixels.shape)
            ? new TensorComparison("pixel_values (from image_uint8)", chw.sub(pixels).abs().max().item<float>())
            : new TensorComparison("pixel_values (from image_uint8)", double.NaN, $"shape [{string.Join(", ", chw.shape)}] differs from [{string.Join(", ", pixels.shape)}]"));
    }
}
