namespace Vlsm.Models;

/// <summary>What trains: adapters (shallow or dense), the decoder only, or everything.</summary>
public enum FineTuneMode { Shallow, Dense, Decoder, Full }

/// <summary>Where adapters go: the vision tower (V), the language tower (L), the conditional embedding (C).</summary>
[Flags]
public enum AdapterParts { None = 0, V = 1, L = 2, C = 4 }

/// <summary>A fine-tuning configuration: mode, adapter placements and sizes.</summary>
/// <param name="FreezeText">Full mode only: keep the text tower and its projection fixed (LiT-style), training vision and decoder.</param>
public sealed record FineTuneSpec(FineTuneMode Mode, AdapterParts Parts, int AdapterDim, int CondAdapterDim, bool ZeroInitFc2 = false, bool FreezeText = false)
{
    public const int DefaultCondAdapterDim = 256;

    public static int DefaultAdapterDim(FineTuneMode mode) => mode == FineTuneMode.Dense ? 64 : 512;

    public bool HasAdapters => Mode is FineTuneMode.Shallow or FineTuneMode.Dense;

    /// <summary>Shallow and decoder modes never need gradients through the CLIP towers.</summary>
    public bool TowersNeedGradient => Mode is FineTuneMode.Dense or FineTuneMode.Full;

    public static FineTuneSpec Create(FineTuneMode mode, string? parts = null, int? adapterDim = null, int? condAdapterDim = null, bool zeroInitFc2 = false,
        bool freezeText = false)
    {
        if (freezeText && mode != FineTuneMode.Full)
            throw new VlsmException($"freeze text applies to full mode only; in mode {ModeName(mode)} the text tower is frozen unless adapters (L) train it.");
        if (mode is FineTuneMode.Decoder or FineTuneMode.Full)
        {
            if (!string.IsNullOrEmpty(parts) || adapterDim is not null || condAdapterDim is not null)
                throw new VlsmException($"parts and adapter dims apply to shallow and dense modes only; mode {ModeName(mode)} trains {(mode == FineTuneMode.Decoder ? "the decoder" : "every parameter")}.");
            return new FineTuneSpec(mode, AdapterParts.None, 0, 0, FreezeText: freezeText);
        }
        var p = ParseParts(parts ?? "vlc");
        int r = adapterDim ?? DefaultAdapterDim(mode);
        int c = condAdapterDim ?? DefaultCondAdapterDim;
        CheckDim(r, "adapter_dim (--adapter-dim)");
        CheckDim(c, "cond_adapter_dim (--cond-adapter-dim)");
        return new FineTuneSpec(mode, p, r, c, zeroInitFc2);
    }

    /// <summary>
    /// The widest adapter allowed: 8 times the widest default (512) and over 5 times the widest tower
    /// vlsm trains (768); an adapter is a bottleneck, and a width in the millions only exhausts memory
    /// (its weights are allocated before anything else happens).
    /// </summary>
    public const int MaxAdapterDim = 4096;

    private static void CheckDim(int dim, string name)
    {
        if (dim is < 1 or > MaxAdapterDim)
            throw new VlsmException($"{name} must be between 1 and {MaxAdapterDim}, got {dim}.");
    }

    public static AdapterParts ParseParts(string text)
    {
        var parts = AdapterParts.None;
        foreach (char ch in text.Trim().ToLowerInvariant())
        {
            var part = ch switch
            {
                'v' => AdapterParts.V,
                'l' => AdapterParts.L,
                'c' => AdapterParts.C,
                _ => throw new VlsmException($"parts \"{text}\": '{ch}' is not one of v (vision), l (language), c (conditional)."),
            };
            if ((parts & part) != 0) throw new VlsmException($"parts \"{text}\" names '{ch}' twice.");
            parts |= part;
        }
        if (parts == AdapterParts.None) throw new VlsmException("parts must name at least one of v, l, c.");
        return parts;
    }

    public static FineTuneMode ParseMode(string text) => text.Trim().ToLowerInvariant() switch
    {
        "shallow" => FineTuneMode.Shallow,
        "dense" => FineTuneMode.Dense,
        "decoder" => FineTuneMode.Decoder,
        "full" => FineTuneMode.Full,
        _ => throw new VlsmException($"mode \"{text}\" is not one of shallow, dense, decoder, full."),
    };

    public static string ModeName(FineTuneMode mode) => mode.ToString().ToLowerInvariant();

    public static string PartsName(AdapterParts parts) =>
        (parts.HasFlag(AdapterParts.V) ? "v" : "") + (parts.HasFlag(AdapterParts.L) ? "l" : "") + (parts.HasFlag(AdapterParts.C) ? "c" : "");

    public override string ToString() => HasAdapters
        ? $"{ModeName(Mode)} {PartsName(Parts)} (adapter dim {AdapterDim}{(Parts.HasFlag(AdapterParts.C) ? $", cond adapter dim {CondAdapterDim}" : "")})"
        : ModeName(Mode) + (FreezeText ? " (text tower frozen)" : "");
}
