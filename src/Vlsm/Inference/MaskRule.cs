using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Inference;

/// <summary>
/// The one rule that turns logits into masks, for validation, evaluation and prediction alike:
/// a pixel is foreground when its sigmoid probability is above the threshold.
/// </summary>
public static class MaskRule
{
    /// <summary>The threshold every command uses unless told otherwise.</summary>
    public const float DefaultThreshold = 0.5f;

    /// <summary>Sigmoid probabilities of logits (any shape).</summary>
    public static Tensor Probabilities(Tensor logits) => logits.sigmoid();

    /// <summary>The rule on one probability (prediction thresholds probabilities it already holds).</summary>
    public static bool IsForeground(float probability, float threshold) => probability > threshold;

    /// <summary>Foreground (bool, the logits' shape): probability above <paramref name="threshold"/>, as <see cref="IsForeground"/>.</summary>
    public static Tensor Foreground(Tensor logits, float threshold)
    {
        using var probabilities = logits.sigmoid();
        using var t = ((double)threshold).ToScalar(); // held through the call (see KeptScalars)
        return probabilities.gt(t);
    }
}
