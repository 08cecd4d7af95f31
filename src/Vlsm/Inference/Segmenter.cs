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
        if (pairs.Any(p => p.Image < 0 || p.Image >= images.Count)) throw new ArgumentException("a pair names an image that is not in the batch.", nameof(pairs));
        bool text = segmenter.Family.TakesText;
        if (text && pairs.Any(p => p.Prompt is null)) throw new ArgumentException($"{segmenter.Family.Name} reads a prompt for every pair.", nameof(pairs));
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var preprocessor = segmenter.Preprocessor;
        var pixels = tensor(preprocessor.ToChwBatch(images), new long[] { images.Count, 3, preprocessor.Height, preprocessor.Width });
        using var features = segmenter.EncodeImages(pixels);
        bool identity = pairs.Count == images.Count && pairs.Select((p, i) => p.Image == i).All(x => x);
        using var selected = identity ? null : features.Select(tensor(pairs.Select(p => (long)p.Image).ToArray()));
        var probs = MaskRule.Probabilities(segmenter.Decode(selected ?? features, text ? pairs.Select(p => p.Prompt!).ToList() : null)).contiguous();
        int h = (int)probs.shape[1], w = (int)probs.shape[2];
        var all = probs.data<float>().ToArray();
        var result = new Prediction[pairs.Count];
        for (int i = 0; i < pairs.Count; i++)
            result[i] = new Prediction(all.AsSpan(i * h * w, h * w).ToArray(), w, h);
        return result;
    }
}
