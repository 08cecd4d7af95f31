using System.Globalization;
using Vlsm.Adapters;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Vlsm.Training;

/// <summary>
/// Everything that defines a training run. Written to RUN/config.yaml; <c>vlsm train --config</c>
/// reads it back, so a run folder is enough to repeat the run.
/// </summary>
public sealed class TrainConfig
{
    public string Model { get; set; } = "";
    public List<string> Data { get; set; } = new();
    public string? Preset { get; set; }
    public string Mode { get; set; } = "dense";
    public string? Parts { get; set; }
    public int? AdapterDim { get; set; }
    public int? CondAdapterDim { get; set; }
    public bool ZeroInitFc2 { get; set; }
    /// <summary>Full mode: keep the text tower fixed (training a model from scratch without letting its text features collapse).</summary>
    public bool FreezeText { get; set; }

    public int MaxEpochs { get; set; } = 200;
    public int MinEpochs { get; set; } = 10;
    public int BatchSize { get; set; } = 32;
    public double Lr { get; set; } = 1e-3;
    public double WeightDecay { get; set; } = 1e-3;
    public double Beta1 { get; set; } = 0.9;
    public double Beta2 { get; set; } = 0.999;
    public double Eps { get; set; } = 1e-8;
    public double GradClip { get; set; } = 0.5;
    public double PlateauFactor { get; set; } = 0.3;
    public int PlateauPatience { get; set; } = 5;
    public double PlateauThreshold { get; set; } = 1e-4;
    public int EarlyStoppingPatience { get; set; } = 20;
    public double EarlyStoppingMinDelta { get; set; } = 1e-4;

    /// <summary>"reference" (sigmoid fed to BCE-with-logits, as the reference) or "dice-bce".</summary>
    public string Loss { get; set; } = "reference";
    /// <summary>A prompt key (p3), "random" (p1…pN per sample), or literal text.</summary>
    public string Prompt { get; set; } = "random";
    public int Seed { get; set; } = 42;
    public string Precision { get; set; } = "fp32";
    /// <summary>Mask binarisation threshold (value &gt; threshold is foreground), or "soft" for value/255 targets.</summary>
    public string MaskThreshold { get; set; } = "127";
    public bool Augment { get; set; }
    /// <summary>"fail" stops at the first unusable record; "skip" skips it and reports the count.</summary>
    public string OnError { get; set; } = "fail";
    public bool FeatureCache { get; set; } = true;
    public int FeatureCacheMemoryMb { get; set; } = 2048;
    public string TrainSplit { get; set; } = "train";
    public string ValSplit { get; set; } = "val";

    public const string DefaultCrisPadMask = "reference";
    /// <summary>CRIS only: "reference" (the reference's mask of ids equal to 0) or "fixed" (mask the padding).</summary>
    public string CrisPadMask { get; set; } = DefaultCrisPadMask;

    /// <summary>Presets named like the VLSM-Adapter experiments, with the paper's learning rates.</summary>
    public static IReadOnlyDictionary<string, Action<TrainConfig>> Presets { get; } = new Dictionary<string, Action<TrainConfig>>
    {
        ["clipseg_shallow_adapter_v"] = c => c.SetMode("shallow", "v", 3e-4),
        ["clipseg_shallow_adapter_vl"] = c => c.SetMode("shallow", "vl", 3e-4),
        ["clipseg_shallow_adapter_vlc"] = c => c.SetMode("shallow", "vlc", 3e-4),
        ["clipseg_dense_adapter_v"] = c => c.SetMode("dense", "v", 1e-3),
        ["clipseg_dense_adapter_vl"] = c => c.SetMode("dense", "vl", 1e-3),
        ["clipseg_dense_adapter_vlc"] = c => c.SetMode("dense", "vlc", 1e-3),
        ["clipseg"] = c => c.SetMode("decoder", null, 1e-3),
        ["clipseg_full"] = c => c.SetMode("full", null, 1e-5),
        ["cris"] = c => c.SetMode("full", null, CrisFullLr),
        ["cris_decoder"] = c => c.SetMode("decoder", null, 1e-3),
    };

    /// <summary>VLSM-Adapter trains all of CRIS at 1e-4.</summary>
    public const double CrisFullLr = 1e-4;

    /// <summary>The paper's learning rate for a mode (full: 1e-5, our choice).</summary>
    public static double DefaultLr(FineTuneMode mode, bool cris = false) => mode switch
    {
        FineTuneMode.Full when cris => CrisFullLr,
        FineTuneMode.Shallow => 3e-4,
        FineTuneMode.Dense => 1e-3,
        FineTuneMode.Decoder => 1e-3,
        _ => 1e-5,
    };

    private void SetMode(string mode, string? parts, double lr)
    {
        Mode = mode;
        Parts = parts;
        Lr = lr;
    }

    public void ApplyPreset(string name)
    {
        if (!Presets.TryGetValue(name, out var apply))
            throw new VlsmException($"unknown preset \"{name}\"; known: {string.Join(", ", Presets.Keys)}.");
        Preset = name;
        apply(this);
    }

    public FineTuneSpec Spec()
    {
        var mode = FineTuneSpec.ParseMode(Mode);
        return mode is FineTuneMode.Shallow or FineTuneMode.Dense
            ? FineTuneSpec.Create(mode, Parts, AdapterDim, CondAdapterDim, ZeroInitFc2)
            : FineTuneSpec.Create(mode, freezeText: FreezeText);
    }

    [YamlIgnore]
    public BceInput BceInput => Loss switch
    {
        "reference" => BceInput.Reference,
        "dice-bce" => BceInput.Logits,
        _ => throw new VlsmException($"loss \"{Loss}\" is not one of reference, dice-bce."),
    };

    /// <summary>Checks every value a run depends on; the message names the field.</summary>
    public void Validate()
    {
        void Check(bool ok, string message)
        {
            if (!ok) throw new VlsmException(message);
        }
        Check(Model.Length > 0, "model: no model folder given (--model DIR).");
        Check(Data.Count > 0, "data: no dataset given (--data ROOT).");
        Spec();
        _ = BceInput;
        Check(MaxEpochs >= 1, $"max_epochs must be at least 1, got {MaxEpochs}.");
        Check(MinEpochs >= 0 && MinEpochs <= MaxEpochs, $"min_epochs must be within 0..max_epochs ({MaxEpochs}), got {MinEpochs}.");
        Check(BatchSize >= 1, $"batch_size must be at least 1, got {BatchSize}.");
        Check(Lr > 0 && double.IsFinite(Lr), $"lr must be positive, got {Lr}.");
        Check(WeightDecay >= 0, $"weight_decay must be non-negative, got {WeightDecay}.");
        Check(GradClip > 0, $"grad_clip must be positive, got {GradClip}.");
        Check(Precision is "fp32" or "bf16", $"precision \"{Precision}\" is not one of fp32, bf16.");
        Check(CrisPadMask is "reference" or "fixed", $"cris_pad_mask \"{CrisPadMask}\" is not one of reference, fixed.");
        Check(OnError is "fail" or "skip", $"on_error \"{OnError}\" is not one of fail, skip.");
        Check(MaskThreshold == "soft" || (int.TryParse(MaskThreshold, NumberStyles.Integer, CultureInfo.InvariantCulture, out int t) && t is >= 0 and < 255),
            $"mask_threshold \"{MaskThreshold}\" must be an integer 0..254 or \"soft\".");
    }

    /// <summary>Sets max epochs; a smaller maximum also lowers the minimum (as --epochs promises).</summary>
    public void SetEpochs(int epochs)
    {
        MaxEpochs = epochs;
        MinEpochs = Math.Min(MinEpochs, epochs);
    }

    private static readonly ISerializer Writer = new SerializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .ConfigureDefaultValuesHandling(DefaultValuesHandling.Preserve)
        .Build();

    private static readonly IDeserializer Reader = new DeserializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .Build();

    public string ToYaml() => Writer.Serialize(this);

    public static TrainConfig FromYaml(string path)
    {
        if (!File.Exists(path)) throw new VlsmException($"{path}: config file not found.");
        try
        {
            // The saved config is fully resolved (preset already applied), so it is read as it is.
            return Reader.Deserialize<TrainConfig>(File.ReadAllText(path)) ?? new TrainConfig();
        }
        catch (YamlException e)
        {
            string detail = e.InnerException?.Message ?? e.Message;
            throw new VlsmException($"{path} line {e.Start.Line}: {detail}", e);
        }
    }
}
