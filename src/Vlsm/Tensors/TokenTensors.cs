using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Tensors;

/// <summary>A <see cref="TokenBatch"/> as the (batch, length) int64 tensors the text towers take.</summary>
public static class TokenTensors
{
    /// <summary>The token ids, (BatchSize, Length).</summary>
    public static Tensor IdsTensor(this TokenBatch tokens) => tensor(tokens.InputIds, [tokens.BatchSize, tokens.Length]);

    /// <summary>The attention mask (1 on each row's own tokens, 0 on padding), (BatchSize, Length).</summary>
    public static Tensor MaskTensor(this TokenBatch tokens) => tensor(tokens.AttentionMask, [tokens.BatchSize, tokens.Length]);
}
