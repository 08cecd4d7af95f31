using Vlsm.Data;
using Vlsm.Imaging;

namespace Vlsm.Evaluation;

/// <summary>
/// The metrics of one prediction: one record with one prompt.
/// </summary>
/// <param name="PromptKey">The key evaluated (p3), "random" for a key drawn per record, empty for literal text.</param>
/// <param name="Prompt">The text the model was given.</param>
/// <param name="Dice">At the original mask resolution (what the paper reports).</param>
/// <param name="Hd95">In pixels at the original resolution; null when either mask is empty (undefined).</param>
/// <param name="DiceNetwork">At the network's input resolution, against the mask the data loader produced.</param>
public sealed record ImageScore(
    RecordId Record,
    string PromptKey,
    string Prompt,
    double Dice,
    double IoU,
    double? Hd95,
    double DiceNetwork,
    double IoUNetwork);

/// <summary>The metrics of one prediction before they are tied to a record.</summary>
public readonly record struct MaskScores(double Dice, double IoU, double? Hd95, double DiceNetwork, double IoUNetwork);

/// <summary>Compares a thresholded prediction with the ground truth at both resolutions.</summary>
/// <remarks>
/// The prediction is thresholded at the model's output size, then resized (nearest neighbour,
/// Pillow's index mapping) to whichever ground-truth grid it is compared with; the ground truth is
/// never resampled here:
/// <list type="bullet">
/// <item>network resolution: the loader's mask (the mask file resized nearest to the network
/// input size and binarised, exactly the training target). CLIPSeg's decoder usually outputs the
/// input size, so the resize is then the identity; models whose output is smaller (the tiny parity
/// model gives 24×24 for a 48×48 input) have their thresholded prediction upsampled to the input
/// size rather than the ground truth downsampled a second time;</item>
/// <item>original resolution: the mask file as decoded, binarised above the mask threshold, and the
/// prediction upsampled to its size, as <c>vlsm predict</c> writes masks.</item>
/// </list>
/// </remarks>
public static class PredictionScorer
{
    /// <param name="prediction">0/255 (above 127 is foreground) at the model's output size.</param>
    /// <param name="networkTruth">0/1 at <paramref name="networkWidth"/>×<paramref name="networkHeight"/> (the loader's mask).</param>
    /// <param name="originalTruth">The decoded mask file.</param>
    /// <param name="maskThreshold">Mask file values above this are foreground.</param>
    /// <param name="predictionAtOriginal">The prediction at the original size (0/255), for saving.</param>
    public static MaskScores Score(GrayImage prediction, ReadOnlySpan<float> networkTruth, int networkWidth, int networkHeight,
        GrayImage originalTruth, int maskThreshold, out GrayImage predictionAtOriginal)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(originalTruth);
        if (networkTruth.Length != networkWidth * networkHeight)
            throw new ArgumentException($"the network-resolution mask has {networkTruth.Length} values, expected {networkWidth}x{networkHeight}.", nameof(networkTruth));

        var predictedNetwork = Foreground(Resize.ResizeNearest(prediction, networkWidth, networkHeight).Pixels, 127);
        var truthNetwork = new bool[networkTruth.Length];
        for (int i = 0; i < truthNetwork.Length; i++) truthNetwork[i] = networkTruth[i] > 0.5f;

        int w = originalTruth.Width, h = originalTruth.Height;
        predictionAtOriginal = Resize.ResizeNearest(prediction, w, h);
        var predicted = Foreground(predictionAtOriginal.Pixels, 127);
        var truth = Foreground(originalTruth.Pixels, maskThreshold);

        return new MaskScores(
            SegmentationMetrics.Dice(predicted, truth),
            SegmentationMetrics.IoU(predicted, truth),
            SegmentationMetrics.Hd95(predicted, truth, w, h),
            SegmentationMetrics.Dice(predictedNetwork, truthNetwork),
            SegmentationMetrics.IoU(predictedNetwork, truthNetwork));
    }

    internal static bool[] Foreground(ReadOnlySpan<byte> pixels, int threshold)
    {
        var mask = new bool[pixels.Length];
        for (int i = 0; i < mask.Length; i++) mask[i] = pixels[i] > threshold;
        return mask;
    }
}
