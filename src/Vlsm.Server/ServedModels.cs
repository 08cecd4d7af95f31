using Vlsm.Inference;
using Vlsm.Models;

namespace Vlsm.Server;

/// <summary>One model <c>vlsm serve</c> should load: a name and where it comes from.</summary>
/// <param name="Name">What requests call it (form field <c>model</c>).</param>
/// <param name="Reference">The model folder, and trained weights on top when given.</param>
public sealed record ServedModelSpec(string Name, ModelReference Reference)
{
    /// <summary>Reads <c>--model [NAME=]DIR</c> or <c>--run [NAME=]RUN</c>; without NAME, the folder's name.</summary>
    public static (string Name, string Path) SplitName(string value, string flag)
    {
        int eq = value.IndexOf('=');
        // A path may itself hold '=', so only a NAME made of name characters counts.
        if (eq > 0 && value[..eq].All(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.'))
            return (value[..eq], value[(eq + 1)..]);
        if (eq == 0) throw new VlsmException($"{flag} {value}: the name before '=' is empty; give {flag} NAME=PATH or just {flag} PATH.");
        string name = System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(value)));
        return (name, value);
    }

    /// <summary>
    /// The models named by <c>--model</c> and <c>--run</c> options; <paramref name="adapter"/> applies
    /// to the single <c>--model</c> when there is exactly one.
    /// </summary>
    /// <exception cref="VlsmException">Nothing to serve, two models share a name, or a folder is missing.</exception>
    public static IReadOnlyList<ServedModelSpec> FromOptions(IReadOnlyList<string> models, IReadOnlyList<string> runs, string? adapter)
    {
        if (models.Count == 0 && runs.Count == 0)
            throw new VlsmException("nothing to serve; give --model DIR (a model folder) or --run RUN (a training run folder), each as many times as needed.");
        if (adapter is not null && (models.Count != 1 || runs.Count > 0))
            throw new VlsmException("--adapter goes with exactly one --model; for several trained models give each run folder with --run NAME=RUN.");
        var specs = new List<ServedModelSpec>();
        foreach (var value in models)
        {
            var (name, path) = SplitName(value, "--model");
            if (!Directory.Exists(path)) throw new VlsmException($"--model {value}: no such model folder {path}.");
            specs.Add(new ServedModelSpec(name, ModelReference.Resolve(path, adapter, null)));
        }
        foreach (var value in runs)
        {
            var (name, path) = SplitName(value, "--run");
            specs.Add(new ServedModelSpec(name, ModelReference.Resolve(null, null, path)));
        }
        if (specs.GroupBy(s => s.Name).FirstOrDefault(g => g.Count() > 1) is { } clash)
            throw new VlsmException($"two models are named '{clash.Key}'; name them apart with --model NAME=DIR or --run NAME=RUN.");
        return specs;
    }

    /// <summary>Loads the model through its family and puts a request queue in front of it.</summary>
    /// <param name="allowOtherBase">Serve weights trained on another base of the same shape (see <c>BaseWeights.Check</c>).</param>
    /// <param name="note">Hears one-line notes (weights without a recorded base).</param>
    public ModelHost Open(ComputePrecision precision, IReadOnlyDictionary<string, string> options, QueueSettings queue, bool allowOtherBase = false, Action<string>? note = null)
    {
        var family = Reference.Family;
        var source = ModelSource.Folder(Reference.ModelDirectory);
        var summary = family.Describe(source, null);
        // What fine-tuning would train in each mode, with the default adapter settings (as vlsm info --mode).
        var trainable = family.Modes.ToDictionary(
            FineTuneSpec.ModeName,
            mode => family.Describe(source, family.CheckSpec(FineTuneSpec.Create(mode))).TrainableParameters);
        var segmenter = Reference.Open(precision, options, allowOtherBase, note);
        return new ModelHost(Name, segmenter, summary, queue, Reference.Weights) { TrainableByMode = trainable };
    }
}
