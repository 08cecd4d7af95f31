using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;
using Vlsm.Tensors;

namespace Vlsm.Models.ClipSeg;

#pragma warning disable IDE1006 // field names are HF state-dict keys

/// <summary>HF <c>CLIPSegDecoder</c>: reduce, FiLM, post-LN layers, transposed-convolution head.</summary>
public sealed class ClipSegDecoder : nn.Module
{
    private readonly Linear film_mul;
    private readonly Linear film_add;
    private readonly nn.Module<Tensor, Tensor> transposed_convolution;
    private readonly ModuleList<Linear> reduces;
    private readonly ModuleList<ClipSegDecoderLayer> layers;
    private readonly int conditionalLayer;

    public ClipSegDecoder(ClipSegConfig c) : base(nameof(ClipSegDecoder))
    {
        conditionalLayer = c.ConditionalLayer;
        film_mul = Linear(c.ProjectionDim, c.ReduceDim);
        film_add = Linear(c.ProjectionDim, c.ReduceDim);
        int p = c.Vision.PatchSize;
        if (c.UseComplexTransposedConvolution)
        {
            int k = p / 4;
            transposed_convolution = Sequential(
                ("0", new SafeConv2d(c.ReduceDim, c.ReduceDim, 3, padding: 1)),
                ("1", ReLU()),
                ("2", new SafeConvTranspose2d(c.ReduceDim, c.ReduceDim / 2, k, stride: k)),
                ("3", ReLU()),
                ("4", new SafeConvTranspose2d(c.ReduceDim / 2, 1, k, stride: k)));
        }
        else
        {
            transposed_convolution = new SafeConvTranspose2d(c.ReduceDim, 1, p, stride: p);
        }
        reduces = new ModuleList<Linear>();
        layers = new ModuleList<ClipSegDecoderLayer>();
        foreach (var _ in c.ExtractLayers)
        {
            reduces.Add(Linear(c.Vision.HiddenSize, c.ReduceDim));
            layers.Add(new ClipSegDecoderLayer(c.ReduceDim, c.DecoderNumAttentionHeads, c.DecoderIntermediateSize, c.Vision.LayerNormEps));
        }
        RegisterComponents();
    }

    /// <param name="activations">Vision hidden states in <c>extract_layers</c> order (shallow first), class token included.</param>
    /// <param name="conditional">(B, projection_dim) conditional embeddings.</param>
    /// <param name="gridHeight">Patch rows of the input image.</param>
    /// <param name="gridWidth">Patch columns of the input image.</param>
    /// <returns>Logits (B, H, W).</returns>
    public Tensor Forward(IReadOnlyList<Tensor> activations, Tensor conditional, long gridHeight, long gridWidth)
    {
        using var grid = ForwardGrid(activations, conditional, gridHeight, gridWidth);
        return Upsample(grid);
    }

    /// <summary>The decoder state after its layers, class token dropped, as a (B, reduce_dim, gridHeight, gridWidth) grid.</summary>
    public Tensor ForwardGrid(IReadOnlyList<Tensor> activations, Tensor conditional, long gridHeight, long gridWidth)
    {
        Tensor? output = null;
        // The decoder consumes the deepest activation first.
        for (int i = 0; i < activations.Count; i++)
        {
            var activation = activations[activations.Count - 1 - i];
            var reduced = reduces[i].forward(activation);
            if (output is not null)
            {
                var sum = Plus(reduced, output);
                reduced.Dispose();
                output.Dispose();
                reduced = sum;
            }
            output = reduced;
            if (i == conditionalLayer)
            {
                using var scale = film_mul.forward(conditional);
                using var shift = film_add.forward(conditional);
                using var mul = scale.unsqueeze(1);
                using var add = shift.unsqueeze(1);
                using var scaled = output.mul(mul);
                output.Dispose();
                output = Plus(scaled, add);
            }
            var next = layers[i].Forward(output);
            output.Dispose();
            output = next;
        }
        using var last = output!;
        long b = last.shape[0], r = last.shape[2];
        using var patchTokens = last.narrow(1, 1, last.shape[1] - 1);
        using var channelsFirst = patchTokens.permute(0, 2, 1);
        return channelsFirst.reshape(b, r, gridHeight, gridWidth);
    }

    /// <summary>The transposed-convolution head on a <see cref="ForwardGrid"/> result: logits (B, H, W).</summary>
    public Tensor Upsample(Tensor grid)
    {
        using var logits = transposed_convolution.forward(grid);
        return logits.squeeze(1);
    }
}
