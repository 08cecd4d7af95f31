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
        if (images.Count == 0) return Array.Empty<Prediction>();
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var preprocessor = segmenter.Preprocessor;
        var pixels = tensor(preprocessor.ToChwBatch(images), new long[] { images.Count, 3, preprocessor.Height, preprocessor.Width });
        using var features = segmenter.EncodeImages(pixels);
        var probs = MaskRule.Probabilities(segmenter.Decode(features, prompts)).contiguous();
        int h = (int)probs.shape[1], w = (int)probs.shape[2];
        var all = probs.data<float>().ToArray();
        var result = new Prediction[images.Count];
        for (int i = 0; i < images.Count; i++)
            result[i] = new Prediction(all.AsSpan(i * h * w, h * w).ToArray(), w, h);
        return result;
    }
}
