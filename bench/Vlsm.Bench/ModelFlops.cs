using Vlsm.Models.ClipSeg;

namespace Vlsm.Bench;

/// <summary>
/// Floating-point operations of one CLIPSeg forward pass (multiply and add counted separately), from
/// the architecture: matrix products, attention and convolutions; norms and activations are left out.
/// </summary>
public static class ModelFlops
{
    /// <summary>Per image of <paramref name="size"/>×<paramref name="size"/> with a prompt of <paramref name="tokens"/> tokens.</summary>
    /// <param name="visionLayers">Vision encoder layers run: HF runs all of them, vlsm stops after the deepest extract layer.</param>
    public static double PerImage(ClipSegConfig c, int size, int tokens, int visionLayers)
    {
        var v = c.Vision;
        long grid = size / v.PatchSize, patches = grid * grid, t = patches + 1;
        double flops = 2.0 * patches * v.NumChannels * v.PatchSize * v.PatchSize * v.HiddenSize;
        flops += visionLayers * Layer(t, v.HiddenSize, v.IntermediateSize);
        flops += c.Text.NumHiddenLayers * Layer(tokens, c.Text.HiddenSize, c.Text.IntermediateSize) + 2.0 * c.Text.HiddenSize * c.ProjectionDim;
        // Decoder: reduce each extract layer, FiLM, one post-LN layer per extract layer, the transposed-convolution head.
        int r = c.ReduceDim;
        flops += c.ExtractLayers.Count * (2.0 * t * v.HiddenSize * r + Layer(t, r, c.DecoderIntermediateSize)) + 2 * 2.0 * c.ProjectionDim * r;
        if (c.UseComplexTransposedConvolution)
        {
            int k = v.PatchSize / 4;
            flops += 2.0 * patches * r * r * 9 + 2.0 * patches * r * (r / 2) * k * k + 2.0 * patches * k * k * (r / 2) * k * k;
        }
        else
        {
            flops += 2.0 * patches * r * v.PatchSize * v.PatchSize;
        }
        return flops;
    }

    /// <summary>One transformer layer over <paramref name="t"/> tokens: q, k, v and output projections, attention, MLP.</summary>
    private static double Layer(long t, int d, int intermediate) =>
        4 * 2.0 * t * d * d + 2 * 2.0 * t * t * d + 2 * 2.0 * t * d * intermediate;
}
