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
/// <param name="DiceNetwork">At the network's input resolution, against the mask the data loader produced; null when only mask files were scored (<c>vlsm score</c>).</param>
public sealed record ImageScore(
    RecordId Record,
    string PromptKey,
    string Prompt,
    double Dice,
    double IoU,
    double? Hd95,
    double? DiceNetwork,
    double? IoUNetwork)
{
    /// <summary>Normalised surface Dice at the evaluation's tolerance; null when both masks are empty.</summary>
    public double? Nsd { get; init; }

    /// <summary>Dice minus an all-foreground prediction's Dice (medvlsm's ones_dice_diff).</summary>
    public double? OnesDiceDiff { get; init; }

    /// <summary>Dice minus an all-background prediction's Dice (medvlsm's zeros_dice_diff).</summary>
    public double? ZerosDiceDiff { get; init; }
}

/// <summary>The metrics of one prediction before they are tied to a record.</summary>
/// <param name="DiceNetwork">Meaningful only when <see cref="HasNetwork"/> (a model's output was scored at network resolution).</param>
public readonly record struct MaskScores(double Dice, double IoU, double? Hd95, double DiceNetwork, double IoUNetwork)
{
    public bool HasNetwork { get; init; }
    public double? Nsd { get; init; }
    public double OnesDiceDiff { get; init; }
    public double ZerosDiceDiff { get; init; }

    public ImageScore For(RecordId record, string promptKey, string prompt) =>
        new(record, promptKey, prompt, Dice, IoU, Hd95, HasNetwork ? DiceNetwork : null, HasNetwork ? IoUNetwork : null)
        {
            Nsd = Nsd, OnesDiceDiff = OnesDiceDiff, ZerosDiceDiff = ZerosDiceDiff,
        };
}

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
        GrayImage originalTruth, int maskThreshold, out GrayImage predictionAtOriginal) =>
        Score(prediction, networkTruth, networkWidth, networkHeight, originalTruth, maskThreshold, EvaluationOptions.DefaultNsdTolerance, out predictionAtOriginal);

    /// <param name="nsdTolerance">Surface Dice tolerance in pixels at the original resolution.</param>
    public static MaskScores Score(GrayImage prediction, ReadOnlySpan<float> networkTruth, int networkWidth, int networkHeight,
        GrayImage originalTruth, int maskThreshold, double nsdTolerance, out GrayImage predictionAtOriginal)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(originalTruth);
        if (networkTruth.Length != networkWidth * networkHeight)
            throw new ArgumentException($"the network-resolution mask has {networkTruth.Length} values, expected {networkWidth}x{networkHeight}.", nameof(networkTruth));

        var predictedNetwork = Foreground(Resize.ResizeNearest(prediction, networkWidth, networkHeight).Pixels, 127);
        var truthNetwork = new bool[networkTruth.Length];
        for (int i = 0; i < truthNetwork.Length; i++) truthNetwork[i] = networkTruth[i] > 0.5f;

        predictionAtOriginal = Resize.ResizeNearest(prediction, originalTruth.Width, originalTruth.Height);
        return AtOriginal(predictionAtOriginal, originalTruth, maskThreshold, nsdTolerance) with
        {
            DiceNetwork = SegmentationMetrics.Dice(predictedNetwork, truthNetwork),
            IoUNetwork = SegmentationMetrics.IoU(predictedNetwork, truthNetwork),
            HasNetwork = true,
        };
    }

    /// <summary>
    /// The original-resolution metrics of a prediction already at the mask file's size (0/255, above
    /// 127 is foreground), as <c>vlsm score</c> computes them for mask files of any tool.
    /// </summary>
    public static MaskScores AtOriginal(GrayImage prediction, GrayImage originalTruth, int maskThreshold, double nsdTolerance)
    {
        if (prediction.Width != originalTruth.Width || prediction.Height != originalTruth.Height)
            throw new ArgumentException($"prediction {prediction.Width}x{prediction.Height} and mask {originalTruth.Width}x{originalTruth.Height} differ in size.");
        int w = originalTruth.Width, h = originalTruth.Height;
        var predicted = Foreground(prediction.Pixels, 127);
        var truth = Foreground(originalTruth.Pixels, maskThreshold);
        var (ones, zeros) = SegmentationMetrics.TrivialDiceDifferences(predicted, truth);
        var (hd95, nsd) = SegmentationMetrics.SurfaceScores(predicted, truth, w, h, nsdTolerance);
        return new MaskScores(
            SegmentationMetrics.Dice(predicted, truth),
            SegmentationMetrics.IoU(predicted, truth),
            hd95,
            double.NaN,
            double.NaN)
        {
            Nsd = nsd,
            OnesDiceDiff = ones,
            ZerosDiceDiff = zeros,
        };
    }

    internal static bool[] Foreground(ReadOnlySpan<byte> pixels, int threshold)
    {
        var mask = new bool[pixels.Length];
        for (int i = 0; i < mask.Length; i++) mask[i] = pixels[i] > threshold;
        return mask;
    }
}
