using System.CommandLine;
using Vlsm.Data;

namespace Vlsm.Cli.Commands;

/// <summary>Options about how dataset records are read, shared by the commands that load data (data check, training).</summary>
internal static class DataOptions
{
    public static Option<int> MaskThreshold() => new("--mask-threshold")
    {
        Description = "Mask values above this are foreground (0..254); cleans JPEG masks whose edges are neither 0 nor 255.",
        DefaultValueFactory = _ => 127,
    };

    public static Option<OnError> OnErrorOption() => new("--on-error")
    {
        Description = "fail: stop at a record whose files are missing, corrupt or of different sizes (default); skip: leave it out and count it.",
        DefaultValueFactory = _ => OnError.Fail,
    };

    /// <summary>
    /// Allow dataset records reached through symbolic links that lead outside the dataset folder.
    /// <see cref="VlsmCli.Guard"/> applies it to every dataset the command opens, so a command only adds the option.
    /// </summary>
    public static Option<bool> FollowSymlinks() => new(FollowSymlinksName)
    {
        Description = "Read images and masks through symbolic links that lead outside the dataset folder (refused by default: a link must not make a dataset read other files).",
    };

    public const string FollowSymlinksName = "--follow-symlinks";

    public static Option<string?> Prompt(string description) => new("--prompt") { Description = description };

    /// <summary>A --prompt value as a choice; a bare "p" followed by non-digits is text, so "p3" and "random" are the only special forms.</summary>
    public static PromptChoice? ParsePrompt(string? value) => value is null ? null : PromptChoice.Parse(value);

    /// <exception cref="VlsmException">The threshold is out of range.</exception>
    public static int CheckThreshold(int threshold) =>
        threshold is >= 0 and <= 254
            ? threshold
            : throw new VlsmException($"--mask-threshold must be within 0..254 (values above it are foreground), got {threshold}.");
}
