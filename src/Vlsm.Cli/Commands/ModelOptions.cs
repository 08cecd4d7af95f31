using System.CommandLine;
using Vlsm.Models;
using Vlsm.Models.Smp;
using Vlsm.Platform;

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

    public static Option<string?> SanGradients() => new("--san-gradients")
    {
        Description = "SAN only: reference (default; as vlsm-adapter, the rec head and text run without gradients, so the attention-bias MLP and CLIP's positional embedding never train) "
            + "or original (gradients through the frozen rec head into the attention bias and into CLIP's positional embedding, as the original SAN trains).",
    };

    public static Option<string?> BiomedclipsegExtract() => new("--biomedclipseg-extract")
    {
        Description = "BiomedCLIPSeg only: reference (default; extract layer i reads ViT block i+1, medvlsm's off-by-one) or fixed (block i, as HF CLIPSeg).",
    };

    public static Option<string?> BiomedclipsegTextMask() => new("--biomedclipseg-text-mask")
    {
        Description = "BiomedCLIPSeg only: reference (default; the tokenizer's mask, so a literal [PAD] typed in a prompt is attended) or fixed (every [PAD] id masked).",
    };

    /// <summary>Every family option's flag, for a command to add and read back with <see cref="FamilyOptions(ParseResult, IReadOnlyList{Option{string}})"/>.</summary>
    /// <param name="training">Adds the options only training reads (SAN's gradient flow).</param>
    public static IReadOnlyList<Option<string?>> FamilyOptionFlags(bool training = false) =>
        training ? [CrisPadMask(), BiomedclipsegExtract(), BiomedclipsegTextMask(), SmpInput(), SanGradients()] : [CrisPadMask(), BiomedclipsegExtract(), BiomedclipsegTextMask(), SmpInput()];

    /// <summary>The family options given on the command line through <paramref name="flags"/> (from <see cref="FamilyOptionFlags"/>), by their config keys.</summary>
    public static IReadOnlyDictionary<string, string> FamilyOptions(ParseResult parse, IReadOnlyList<Option<string?>> flags)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var flag in flags)
            if (parse.GetValue(flag) is { } value) options[flag.Name.TrimStart('-').Replace('-', '_')] = value;
        return options;
    }

    /// <summary><c>--image-size N</c>: the side images are resized to, instead of the model's own input size.</summary>
    public static Option<int?> ImageSize(string what) => new("--image-size")
    {
        Description = $"Resize images to N x N instead of the model's own input size (its preprocessor's or config's); {what} "
            + "CLIPSeg: a multiple of its patch size; CRIS, SAN, UNet, UNet++: a multiple of 32; DeepLabV3+: of its output stride; BiomedCLIPSeg: its own size only.",
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

    public static Option<bool> AllowOtherBase() => new("--allow-other-base")
    {
        Description = "Apply trained weights to a base model other than the one they were trained on (same shape, other weights: their recorded fingerprints differ).",
    };

    /// <summary>Whether <paramref name="option"/> was given on the command line (not left at its default).</summary>
    public static bool Given(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    /// <summary>Notes (weights without a recorded base, an overridden check) go to stderr, one line each.</summary>
    public static void Note(string line) => Console.Error.WriteLine(line);

    /// <summary>Parses --precision; bf16 on a CPU where libtorch's bf16 products are slow gets a note first, so a run that would take many times fp32's is not a surprise.</summary>
    public static ComputePrecision Precision(string name)
    {
        try
        {
            var precision = ComputePrecisions.Parse(name);
            if (precision == ComputePrecision.Bf16) NoteIfBf16IsSlow();
            return precision;
        }
        catch (VlsmException)
        {
            throw new VlsmException($"--precision must be fp32 or bf16, got \"{name}\".");
        }
    }

    /// <summary>Writes <see cref="Bf16Speed.SlowNote"/> where bf16 is slow on this CPU (it measures two small products once per process).</summary>
    public static void NoteIfBf16IsSlow()
    {
        if (Bf16Speed.SlowNote() is { } note) Note(note);
    }
}
