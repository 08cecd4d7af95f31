using TorchSharp;
using Vlsm.Imaging;
using static TorchSharp.torch;

namespace Vlsm.Inference;

/// <summary>Sigmoid probabilities at the model's output resolution for one image.</summary>
public sealed record Prediction(float[] Probabilities, int Width, int Height)
{
    /// <summary>Binary mask (0/255) at the original image size: threshold at model resolution, then nearest-neighbour resize.</summary>
    public GrayImage MaskAt(int width, int height, float threshold)
    {
        // Bytes, not floats, at the original size: a 12000x12000 mask is 144 MB rather than 576.
        var binary = new byte[Probabilities.Length];
        for (int i = 0; i < binary.Length; i++) binary[i] = MaskRule.IsForeground(Probabilities[i], threshold) ? (byte)255 : (byte)0;
        return Resize.ResizeNearest(new GrayImage(Width, Height, binary), width, height);
    }

    /// <summary>
    /// The probabilities at <paramref name="width"/> x <paramref name="height"/> (a float32 (H, W) tensor),
    /// resized bilinearly with half-pixel centres (PyTorch's <c>interpolate(mode="bilinear", align_corners=False)</c>).
    /// </summary>
    public Tensor ProbabilitiesAt(int width, int height)
    {
        using var scope = NewDisposeScope();
        using var source = tensor(Probabilities, new long[] { 1, 1, Height, Width });
        var resized = nn.functional.interpolate(source, new long[] { height, width }, mode: InterpolationMode.Bilinear, align_corners: false);
        return resized.reshape(height, width).MoveToOuterDisposeScope(); // convex combinations: still within [0, 1]
    }
}
