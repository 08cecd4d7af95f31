using System.CommandLine;
using Vlsm.Models;
using Vlsm.Models.Cris;
using Vlsm.Models.Smp;

namespace Vlsm.Cli.Commands;

/// <summary>Options about which model runs and how, shared by predict, eval and train.</summary>
internal static class ModelOptions
{
    public static Option<string?> CrisPadMask() => new("--cris-pad-mask")
    {
        Description = "CRIS only: reference (default; masks ids equal to 0 as the reference does, so padding is attended) or fixed (masks the padding after the end token).",
    };

    public static Option<string?> SmpInput() => new(SmpFamily.InputFlag)
    {
        Description = "UNet, UNet++, DeepLabV3+ only: reference (default; medvlsm's Resize(256): shorter side to 256, aspect kept, so only images that come out square are taken) or square (resize every image to 256x256).",
    };

    public static Option<string?> Model(string what) => new("--model") { Description = what };

    public static Option<string?> Run() => new("--run")
    {
        Description = "Training run folder: its best.safetensors on the model its config.yaml names (no --model needed).",
    };

    public static Option<string?> Adapter() => new("--adapter")
    {
        Description = "Adapter or checkpoint file (safetensors) from vlsm train or the Python reference.",
    };

    /// <summary>The family options given on the command line, by their config keys.</summary>
    public static IReadOnlyDictionary<string, string> FamilyOptions(string? crisPadMask, string? smpInput = null)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        if (crisPadMask is not null) options[CrisFamily.PadMaskOption] = crisPadMask;
        if (smpInput is not null) options[SmpFamily.InputOption] = smpInput;
        return options;
    }

    public static ComputePrecision Precision(string name)
    {
        try
        {
            return ComputePrecisions.Parse(name);
        }
        catch (VlsmException)
        {
            throw new VlsmException($"--precision must be fp32 or bf16, got \"{name}\".");
        }
    }
}
