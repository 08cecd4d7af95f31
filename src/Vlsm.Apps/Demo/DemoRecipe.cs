using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Apps.Demo;

/// <summary>One fine-tuning method of the demo: a mode (and adapter parts) with its learning rate.</summary>
/// <param name="Name">Row label: "decoder", "shallow VLC", "dense VL", "full".</param>
public sealed record DemoMethod(string Name, string Mode, string? Parts, double Lr);

/// <summary>
/// Everything that shapes a demo run: the small CLIPSeg, the two synthetic domains, and the
/// training recipes. The full recipe is sized to finish in under 5 minutes on 2 cores; the quick
/// one only exercises the pipeline (under 2 minutes), so its numbers mean little.
/// </summary>
public sealed record DemoRecipe
{
    public required string Name { get; init; }

    /// <summary>Side of the square synthetic images and of the model input.</summary>
    public int ImageSize { get; init; } = 64;
    public int PatchSize { get; init; } = 8;
    public int Width { get; init; } = 128;
    public int Layers { get; init; } = 4;

    public int NaturalScenes { get; init; }

    /// <summary>Fewest objects per pretraining scene: with several objects per image, only the text tells the targets apart, so the model must learn to read it.</summary>
    public int NaturalMinObjects { get; init; } = 3;
    public int MedicalScenes { get; init; }

    public int PretrainEpochs { get; init; }
    public double PretrainLr { get; init; } = 1e-3;
    public int FineTuneEpochs { get; init; }
    public int BatchSize { get; init; } = 16;

    /// <summary>Prompt key for pretraining (<see cref="Data.PromptChoice"/> syntax).</summary>
    public string PretrainPrompt { get; init; } = "p4";

    /// <summary>Prompt key for fine-tuning and every evaluation: "{size} {colour} {shape} {class}"; colour and shape differ between the objects of a scene.</summary>
    public string Prompt { get; init; } = "p4";

    /// <summary>Loss for every run: BCE on logits (the small model trains from scratch; the reference's double sigmoid is too weak a signal for that).</summary>
    public string Loss { get; init; } = "dice-bce";

    /// <summary>Adapter width for the small model (the paper's 64 for dense, 512 for shallow, scaled to width 128).</summary>
    public int DenseAdapterDim { get; init; } = 32;
    public int ShallowAdapterDim { get; init; } = 32;

    public IReadOnlyList<DemoMethod> Methods { get; init; } =
    [
        new("decoder", "decoder", null, 1e-3),
        new("shallow VLC", "shallow", "vlc", 1e-3),
        new("dense VL", "dense", "vl", 1e-3),
        new("full", "full", null, 3e-4),
    ];

    public static DemoRecipe Full { get; } = new()
    {
        Name = "full",
        NaturalScenes = 500,
        MedicalScenes = 320,
        PretrainEpochs = 13,
        FineTuneEpochs = 15,
    };

    public static DemoRecipe Quick { get; } = new()
    {
        Name = "quick",
        NaturalScenes = 80,
        MedicalScenes = 60,
        PretrainEpochs = 2,
        FineTuneEpochs = 1,
    };

    /// <summary>The small CLIPSeg: same code path as the real one, extract layers the last three of four.</summary>
    public ClipSegConfig ModelConfig()
    {
        var tower = new ClipTowerConfig
        {
            HiddenSize = Width,
            IntermediateSize = Width * 4,
            NumHiddenLayers = Layers,
            NumAttentionHeads = Width / 32,
        };
        return new ClipSegConfig
        {
            Text = tower with { MaxPositionEmbeddings = 77 },
            Vision = tower with { ImageSize = ImageSize, PatchSize = PatchSize },
            ProjectionDim = Width,
            ExtractLayers = Enumerable.Range(Layers - 3, 3).ToArray(),
            ReduceDim = 64,
            DecoderNumAttentionHeads = 4,
            DecoderIntermediateSize = 256,
            UseComplexTransposedConvolution = false,
        };
    }

    /// <summary>Names the pretrained model in the cache: changes to anything that shapes pretraining give a new entry.</summary>
    public string PretrainKey(ulong seed)
    {
        string text = string.Join('|', "v1", Name, ImageSize, PatchSize, Width, Layers, NaturalScenes, NaturalMinObjects, PretrainEpochs,
            PretrainLr.ToString("R", CultureInfo.InvariantCulture), BatchSize, PretrainPrompt, Loss, seed);
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..12];
        return $"clipseg-w{Width}-l{Layers}-{Name}-seed{seed}-{hash}";
    }

    /// <summary>
    /// Expected wall time of pretraining, for the demo's ETA: 8 s an epoch of the full recipe's 500
    /// scenes on the README's 2-core machine, scaled by scenes and epochs, plus a few seconds of
    /// set-up (the ETA rescales it by the speed it measures).
    /// </summary>
    public double EstimatedPretrainSeconds() => 8.0 * NaturalScenes / 500 * PretrainEpochs + SetUpSeconds;

    /// <summary>Seconds a training stage spends besides its epochs (opening the model and data, scoring), as a guess.</summary>
    private const double SetUpSeconds = 5;

    /// <summary>
    /// Expected wall time of one fine-tuning method and its scoring, as <see cref="EstimatedPretrainSeconds"/>:
    /// seconds an epoch of the full recipe's 320 medical scenes, from the README's table.
    /// </summary>
    public double EstimatedSeconds(DemoMethod method)
    {
        double perEpoch = method.Mode switch { "decoder" => 1.2, "shallow" => 1.2, "dense" => 2.9, "full" => 4.2, _ => 3 };
        return perEpoch * MedicalScenes / 320 * FineTuneEpochs + SetUpSeconds;
    }

    public string Describe() =>
        $"CLIPSeg, {Layers} vision + {Layers} text layers of width {Width}, patch {PatchSize}, {ImageSize}x{ImageSize} images, extract layers {string.Join(",", ModelConfig().ExtractLayers)}, reduce dim 64";
}
