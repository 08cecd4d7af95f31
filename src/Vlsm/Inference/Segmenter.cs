using TorchSharp;
using Vlsm.Imaging;
using Vlsm.Models;
using static TorchSharp.torch;

namespace Vlsm.Inference;

/// <summary>Prediction on top of any family's <see cref="ISegmenter"/>.</summary>
public static class Segmenters
{
    /// <summary>
    /// One forward pass over a batch: every image gets its prompt (one per image; null for a
    /// text-free family). Probabilities at the model's output resolution.
    /// </summary>
    public static IReadOnlyList<Prediction> Predict(this ISegmenter segmenter, IReadOnlyList<RgbImage> images, IReadOnlyList<string>? prompts)
    {
        if (prompts is not null && images.Count != prompts.Count)
            throw new ArgumentException($"{images.Count} images but {prompts.Count} prompts.");
        return segmenter.PredictPairs(images, Enumerable.Range(0, images.Count).Select(i => (i, prompts?[i])).ToList());
    }

    /// <summary>
    /// One forward pass for several (image, prompt) pairs: each distinct image goes through the
    /// image encoder once, then every pair is decoded (several prompts on one image, several
    /// requests' images in one batch).
    /// </summary>
    /// <param name="pairs">Index into <paramref name="images"/> and the prompt (null for a text-free family).</param>
    public static IReadOnlyList<Prediction> PredictPairs(this ISegmenter segmenter, IReadOnlyList<RgbImage> images, IReadOnlyList<(int Image, string? Prompt)> pairs)
    {
        if (pairs.Count == 0) return Array.Empty<Prediction>();
        return segmenter.PredictPrepared(segmenter.Preprocessor.ToChwBatch(images), images.Count, pairs);
    }

    /// <summary>
    /// <see cref="PredictPairs"/> on images already turned into model input (<see cref="ImagePreprocessor.ToChw(RgbImage)"/>,
    /// concatenated): callers that must not hold large originals decode and shrink one image at a time.
    /// </summary>
    /// <param name="pixels">N × 3 × H × W floats at the preprocessor's size.</param>
    /// <param name="count">N, the number of images in <paramref name="pixels"/>.</param>
    /// <param name="names">How messages name each image (a file), or null.</param>
    /// <exception cref="VlsmException">The model's logits are not finite (NaN or infinite weights or input), naming the image.</exception>
    public static IReadOnlyList<Prediction> PredictPrepared(this ISegmenter segmenter, float[] pixels, int count, IReadOnlyList<(int Image, string? Prompt)> pairs,
        IReadOnlyList<string>? names = null)
    {
        if (pairs.Count == 0) return Array.Empty<Prediction>();
        if (pairs.Any(p => p.Image < 0 || p.Image >= count)) throw new ArgumentException("a pair names an image that is not in the batch.", nameof(pairs));
        bool text = segmenter.Family.TakesText;
        if (text && pairs.Any(p => p.Prompt is null)) throw new ArgumentException($"{segmenter.Family.Name} reads a prompt for every pair.", nameof(pairs));
        var preprocessor = segmenter.Preprocessor;
        if (pixels.LongLength != (long)count * 3 * preprocessor.Height * preprocessor.Width)
            throw new ArgumentException($"{pixels.LongLength} floats are not {count} images of 3x{preprocessor.Height}x{preprocessor.Width}.", nameof(pixels));
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var input = tensor(pixels, new long[] { count, 3, preprocessor.Height, preprocessor.Width });
        using var features = segmenter.EncodeImages(input);
        bool identity = pairs.Count == count && pairs.Select((p, i) => p.Image == i).All(x => x);
        using var selected = identity ? null : features.Select(tensor(pairs.Select(p => (long)p.Image).ToArray()));
        var logits = segmenter.Decode(selected ?? features, text ? pairs.Select(p => p.Prompt!).ToList() : null);
        CheckFinite(logits, i => names?[pairs[i].Image] ?? $"image {pairs[i].Image + 1} of the batch");
        var probs = MaskRule.Probabilities(logits).contiguous();
        int h = (int)probs.shape[1], w = (int)probs.shape[2];
        var all = probs.data<float>().ToArray();
        var result = new Prediction[pairs.Count];
        for (int i = 0; i < pairs.Count; i++)
            result[i] = new Prediction(all.AsSpan(i * h * w, h * w).ToArray(), w, h);
        return result;
    }

    /// <summary>Refuses logits (B, h, w) with a NaN or infinite value, naming the first such sample.</summary>
    /// <exception cref="VlsmException">A sample's logits are not all finite.</exception>
    public static void CheckFinite(Tensor logits, Func<int, string> name)
    {
        using var scope = NewDisposeScope();
        using var bad = logits.isfinite().logical_not().reshape(logits.shape[0], -1).any(1);
        if (!bad.any().item<bool>()) return;
        var flags = bad.data<bool>().ToArray();
        int first = Array.IndexOf(flags, true);
        throw new VlsmException($"{name(first)}: the model's logits are not finite (NaN or infinite); its weights or the input hold non-finite values. Check the model and adapter files.");
    }
}
