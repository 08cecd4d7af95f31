using System.Globalization;
using Vlsm.Models;
using Vlsm.Models.Registry;
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
    /// <summary>The model folder; absolute in a run's config.yaml (<see cref="MakePathsAbsolute"/>).</summary>
    public string Model { get; set; } = "";
    /// <summary>The dataset roots; absolute in a run's config.yaml, so a run resumes from any working directory.</summary>
    public List<string> Data { get; set; } = new();
    /// <summary>The model folder as the user spelt it (for display), when that differs from <see cref="Model"/>.</summary>
    public string? ModelAsGiven { get; set; }
    /// <summary>The dataset roots as the user spelt them (for display), when that differs from <see cref="Data"/>.</summary>
    public List<string>? DataAsGiven { get; set; }
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
    /// <summary>"plateau" (ReduceLROnPlateau on validation loss, as VLSM-Adapter) or "none" (a constant rate, as medvlsm's UNet recipe).</summary>
    public string Scheduler { get; set; } = "plateau";
    public double PlateauFactor { get; set; } = 0.3;
    public int PlateauPatience { get; set; } = 5;
    public double PlateauThreshold { get; set; } = 1e-4;
    public int EarlyStoppingPatience { get; set; } = 20;
    public double EarlyStoppingMinDelta { get; set; } = 1e-4;

    /// <summary>A name of <see cref="SegmentationLosses"/>: "reference" (sigmoid fed to BCE-with-logits, as the reference), "dice-bce", ...</summary>
    public string Loss { get; set; } = "reference";
    /// <summary>A prompt key (p3), "random" (p1…pN per sample), or literal text.</summary>
    public string Prompt { get; set; } = "random";
    public int Seed { get; set; } = Defaults.Seed;
    public string Precision { get; set; } = "fp32";
    /// <summary>Mask binarisation threshold (value &gt; threshold is foreground), or "soft" for value/255 targets.</summary>
    public string MaskThreshold { get; set; } = "127";
    public bool Augment { get; set; }
    /// <summary>"fail" stops at the first unusable record; "skip" skips it and reports the count.</summary>
    public string OnError { get; set; } = "fail";
    /// <summary>
    /// Read records through symbolic links that lead outside a dataset folder (<c>--follow-symlinks</c>).
    /// Recorded so that <c>--resume</c> opens the datasets as the run started; a config.yaml without the key means false.
    /// </summary>
    public bool FollowSymlinks { get; set; }
    /// <summary>
    /// Train at <c>image_size x image_size</c> (<c>--image-size</c>: images resized to it, plainly);
    /// absent or empty: the model's own size. A new run records the size it trains at, so eval and
    /// predict with <c>--run</c> use it.
    /// </summary>
    public int? ImageSize { get; set; }
    public bool FeatureCache { get; set; } = true;
    public int FeatureCacheMemoryMb { get; set; } = 2048;
    public string TrainSplit { get; set; } = "train";
    public string ValSplit { get; set; } = "val";

    public const string DefaultCrisPadMask = "reference";
    /// <summary>CRIS only: "reference" (the reference's mask of ids equal to 0) or "fixed" (mask the padding).</summary>
    public string CrisPadMask { get; set; } = DefaultCrisPadMask;

    public const string DefaultSanGradients = "reference";
    /// <summary>SAN only: "reference" (as vlsm-adapter: the rec head and text run without gradients) or "original" (gradients into the attention bias and CLIP's positional embedding, as the original SAN).</summary>
    public string SanGradients { get; set; } = DefaultSanGradients;
    public const string DefaultBiomedclipsegExtract = "reference", DefaultBiomedclipsegTextMask = "reference";
    /// <summary>BiomedCLIPSeg only: "reference" (extract layer i reads ViT block i+1, as medvlsm) or "fixed" (block i).</summary>
    public string BiomedclipsegExtract { get; set; } = DefaultBiomedclipsegExtract;
    /// <summary>BiomedCLIPSeg only: "reference" (the tokenizer's mask: a literal [PAD] in a prompt is attended) or "fixed" (every [PAD] id masked).</summary>
    public string BiomedclipsegTextMask { get; set; } = DefaultBiomedclipsegTextMask;
    public const string DefaultSmpInput = "reference";
    /// <summary>UNet, UNet++, DeepLabV3+ only: "reference" (medvlsm's Resize(256): shorter side, aspect kept; non-square images refused) or "square" (resize to img_size x img_size).</summary>
    public string SmpInput { get; set; } = DefaultSmpInput;

    /// <summary>Options of the model's family, as <see cref="IModelFamily.Options"/> keys (only those set away from their defaults).</summary>
    public IReadOnlyDictionary<string, string> FamilyOptions()
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        if (CrisPadMask != DefaultCrisPadMask) options[Models.Cris.CrisFamily.PadMaskOption] = CrisPadMask;
        if (SanGradients != DefaultSanGradients) options[Models.San.SanTrainables.OptionKey] = SanGradients;
        if (BiomedclipsegExtract != DefaultBiomedclipsegExtract) options[Models.BiomedClipSeg.BiomedClipSegFamily.ExtractOption] = BiomedclipsegExtract;
        if (BiomedclipsegTextMask != DefaultBiomedclipsegTextMask) options[Models.BiomedClipSeg.BiomedClipSegFamily.TextMaskOption] = BiomedclipsegTextMask;
        if (SmpInput != DefaultSmpInput) options[Models.Smp.SmpFamily.InputOption] = SmpInput;
        return options;
    }

    /// <summary>Sets family options given by key (those this config has fields for).</summary>
    /// <exception cref="VlsmException">A key no family declares.</exception>
    public void SetFamilyOptions(IReadOnlyDictionary<string, string> options)
    {
        foreach (var (key, value) in options)
        {
            if (key == Models.Cris.CrisFamily.PadMaskOption) CrisPadMask = value;
            else if (key == Models.San.SanTrainables.OptionKey) SanGradients = value;
            else if (key == Models.BiomedClipSeg.BiomedClipSegFamily.ExtractOption) BiomedclipsegExtract = value;
            else if (key == Models.BiomedClipSeg.BiomedClipSegFamily.TextMaskOption) BiomedclipsegTextMask = value;
            else if (key == Models.Smp.SmpFamily.InputOption) SmpInput = value;
            else throw new VlsmException($"{key} is not an option of any model family.");
        }
    }

    /// <summary>Applies a reference experiment (mode, adapter placements, learning rate) of any family.</summary>
    public void ApplyPreset(string name)
    {
        var (_, preset) = ModelFamilies.Preset(name);
        Preset = name;
        Mode = FineTuneSpec.ModeName(preset.Mode);
        Parts = preset.Parts;
        Lr = preset.LearningRate;
        if (preset.WeightDecay is { } wd) WeightDecay = wd;
        if (preset.BatchSize is { } b) BatchSize = b;
        if (preset.Loss is { } loss) Loss = loss;
        if (preset.Scheduler is { } scheduler) Scheduler = scheduler;
        if (preset.PlateauFactor is { } factor) PlateauFactor = factor;
        if (preset.PlateauPatience is { } patience) PlateauPatience = patience;
        if (preset.EarlyStoppingPatience is { } early) EarlyStoppingPatience = early;
        if (preset.MinEpochs is { } min) MinEpochs = min;
        if (preset.MaxEpochs is { } max) MaxEpochs = max;
        if (preset.GradClip is { } clip) GradClip = clip;
    }

    /// <summary>Resolves and checks every value a run depends on (<see cref="TrainingPlan.Resolve"/>); the message names the field.</summary>
    public TrainingPlan Validate() => TrainingPlan.Resolve(this);

    /// <summary>As <see cref="Validate()"/>, for a config read whole from <paramref name="configFile"/> (a run's config.yaml): messages name that file and the field, not flags.</summary>
    public TrainingPlan Validate(string configFile) => TrainingPlan.Resolve(this, configFile);

    /// <summary>
    /// Sets max epochs. The minimum stays as it is: a run applies min(min_epochs, max_epochs)
    /// (<see cref="EffectiveMinEpochs"/>), so a smaller maximum lowers the minimum (as --epochs
    /// promises) and raising the maximum later (<c>train --resume RUN --epochs N</c>) gives what a run
    /// started with that maximum would have done.
    /// </summary>
    public void SetEpochs(int epochs) => MaxEpochs = epochs;

    /// <summary>The minimum epochs a run trains before early stopping may end it: min_epochs, at most max_epochs.</summary>
    [YamlIgnore]
    public int EffectiveMinEpochs => Math.Min(MinEpochs, MaxEpochs);

    /// <summary>
    /// Stores the model folder and dataset roots as absolute paths (resolved against
    /// <paramref name="baseDirectory"/>, default the current directory), keeping the spelling the user
    /// gave in <see cref="ModelAsGiven"/>/<see cref="DataAsGiven"/> when it differs.
    /// </summary>
    public void MakePathsAbsolute(string? baseDirectory = null)
    {
        string root = baseDirectory ?? Environment.CurrentDirectory;
        string Full(string path) => path.Length == 0 ? path : Path.TrimEndingDirectorySeparator(Path.GetFullPath(path, root));
        string model = Full(Model);
        if (model != Model) ModelAsGiven ??= Model;
        Model = model;
        var data = Data.Select(Full).ToList();
        if (!data.SequenceEqual(Data, StringComparer.Ordinal)) DataAsGiven ??= Data.ToList();
        Data = data;
    }

    private static readonly ISerializer Writer = new SerializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .WithTypeConverter(new IO.YamlFloats())
        .ConfigureDefaultValuesHandling(DefaultValuesHandling.Preserve)
        .Build();

    private static readonly IDeserializer Reader = new DeserializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .Build();

    public string ToYaml() => Writer.Serialize(this);

    /// <summary>The config.yaml keys whose values differ between this config and <paramref name="other"/>, with both values as YAML would show them.</summary>
    public IReadOnlyList<(string Key, string Was, string Now)> Differences(TrainConfig other)
    {
        var was = Reader.Deserialize<Dictionary<string, object?>>(ToYaml()) ?? [];
        var now = Reader.Deserialize<Dictionary<string, object?>>(other.ToYaml()) ?? [];
        static string Text(object? value) => value switch
        {
            null => "null",
            List<object?> list => $"[{string.Join(", ", list.Select(Text))}]",
            _ => value.ToString() ?? "",
        };
        return was.Keys.Union(now.Keys)
            .Select(k => (Key: k, Was: Text(was.GetValueOrDefault(k)), Now: Text(now.GetValueOrDefault(k))))
            .Where(d => d.Was != d.Now).ToList();
    }

    /// <summary>
    /// A copy with options set by their config.yaml names (<c>lr</c>, <c>batch_size</c>, <c>data</c>, ...);
    /// <c>epochs</c> sets the maximum and lowers the minimum to it, as <c>--epochs</c> does, and
    /// <c>preset</c> applies a preset first. Values are YAML scalars or lists, checked as config.yaml is.
    /// </summary>
    /// <param name="where">Names the source of the options in messages (e.g. a sweep spec).</param>
    /// <exception cref="VlsmException">An unknown option, or a value of the wrong type (named).</exception>
    public TrainConfig With(IReadOnlyDictionary<string, object?> options, string where)
    {
        var values = Reader.Deserialize<Dictionary<string, object?>>(ToYaml()) ?? [];
        if (options.TryGetValue("preset", out var presetName) && presetName is not null)
        {
            var withPreset = FromYamlText(Writer.Serialize(values), where);
            withPreset.ApplyPreset(presetName.ToString()!);
            values = Reader.Deserialize<Dictionary<string, object?>>(withPreset.ToYaml()) ?? [];
        }
        foreach (var (key, value) in options)
        {
            if (key is "epochs" or "preset") continue;
            if (!values.ContainsKey(key))
                throw new VlsmException($"{where}: \"{key}\" is not a train option; known: epochs, preset, {string.Join(", ", values.Keys.Order(StringComparer.Ordinal))}.");
            values[key] = value;
        }
        var result = FromYamlText(Writer.Serialize(values), where);
        if (options.TryGetValue("epochs", out var epochs) && epochs is not null)
        {
            if (!int.TryParse(epochs.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n))
                throw new VlsmException($"{where}: epochs \"{epochs}\" is not a whole number.");
            result.SetEpochs(n);
        }
        return result;
    }

    /// <param name="where">Names the source in messages; the YAML is written from options, so its line numbers mean nothing to the user.</param>
    private static TrainConfig FromYamlText(string yaml, string where) => Read(yaml, where, withLines: false);

    public static TrainConfig FromYaml(string path)
    {
        if (!File.Exists(path)) throw new VlsmException($"{path}: config file not found.");
        // The saved config is fully resolved (preset already applied), so it is read as it is.
        return Read(File.ReadAllText(path), path, withLines: true);
    }

    private static TrainConfig Read(string yaml, string where, bool withLines)
    {
        try
        {
            return Reader.Deserialize<TrainConfig>(yaml) ?? new TrainConfig();
        }
        catch (YamlException e)
        {
            throw new VlsmException(DescribeError(yaml, e, where, withLines), e);
        }
    }

    /// <summary>
    /// What is wrong with a config, in the user's words: YamlDotNet's own message names .NET types
    /// ("Invalid cast from 'System.String' to 'System.Collections.Generic.List`1...") and not the key,
    /// and reports a syntax error at the first node it could not convert rather than where the syntax breaks.
    /// </summary>
    private static string DescribeError(string yaml, YamlException error, string where, bool withLines)
    {
        string At(Mark mark) => withLines ? $"{where} line {mark.Line}" : where;
        var stream = new YamlDotNet.RepresentationModel.YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException syntax)
        {
            return $"{At(syntax.Start)}: not valid YAML ({syntax.Message.TrimEnd('.')}).";
        }
        if (stream.Documents.FirstOrDefault()?.RootNode is not YamlDotNet.RepresentationModel.YamlMappingNode root)
            return $"{where}: not a config (a mapping of keys such as model, data, lr to values).";
        var keys = typeof(TrainConfig).GetProperties()
            .Where(p => p.CanWrite && !Attribute.IsDefined(p, typeof(YamlIgnoreAttribute)))
            .ToDictionary(p => UnderscoredNamingConvention.Instance.Apply(p.Name), p => p.PropertyType, StringComparer.Ordinal);
        foreach (var (keyNode, value) in root.Children)
        {
            string key = keyNode.ToString();
            if (!keys.TryGetValue(key, out var type))
            {
                if (keyNode.Start.Index != error.Start.Index) continue;
                return $"{At(keyNode.Start)}: \"{key}\" is not a config key; known: {string.Join(", ", keys.Keys.Order(StringComparer.Ordinal))}.";
            }
            if (error.Start.Index < value.Start.Index || error.Start.Index > value.End.Index) continue;
            string given = value switch
            {
                YamlDotNet.RepresentationModel.YamlScalarNode scalar => $"\"{scalar.Value}\"",
                YamlDotNet.RepresentationModel.YamlSequenceNode => "a list",
                _ => "a mapping",
            };
            return $"{At(keyNode.Start)}: {key} must be {Expected(type)}, not {given}.";
        }
        return $"{At(error.Start)}: not a config vlsm can read ({(error.InnerException ?? error).Message.TrimEnd('.')}).";
    }

    /// <summary>A config value's type in words.</summary>
    private static string Expected(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        string words =
            t == typeof(string) ? "text" :
            t == typeof(int) ? "a whole number" :
            t == typeof(double) ? "a number" :
            t == typeof(bool) ? "true or false" :
            t == typeof(List<string>) ? "a list of texts (one \"- item\" line each)" :
            "a single value";
        return Nullable.GetUnderlyingType(type) is null ? words : words + " (or empty)";
    }
}
