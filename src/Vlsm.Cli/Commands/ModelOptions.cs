using System.CommandLine;

namespace Vlsm.Cli.Commands;

/// <summary>Options about how a model runs, shared by predict, eval and train.</summary>
internal static class ModelOptions
{
    public static Option<string?> CrisPadMask() => new("--cris-pad-mask")
    {
        Description = "CRIS only: reference (default; masks ids equal to 0 as the reference does, so padding is attended) or fixed (masks the padding after the end token).",
    };
}
