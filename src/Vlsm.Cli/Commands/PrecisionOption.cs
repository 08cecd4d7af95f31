using System.CommandLine;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Cli.Commands;

/// <summary>--precision for the commands that run a model without training its towers (eval, predict).</summary>
internal static class PrecisionOption
{
    public static Option<string> Create() => new("--precision")
    {
        Description = $"{TowerPrecision.Fp32} (default) or {TowerPrecision.Bf16}: bf16 runs the CLIP towers in bfloat16 (inference about 2.8x and training steps about 2.3x faster on CPUs with bf16 instructions, but some 50x slower on CPUs without AVX-512, such as AMD Zen 3, where vlsm says so; "
            + "logits differ from fp32 by about 1e-2), dense adapters inside the towers in bf16 as PyTorch's autocast runs them, the decoder, shallow adapters and all trainable weights in float32.",
        DefaultValueFactory = _ => TowerPrecision.Fp32,
    };
}
