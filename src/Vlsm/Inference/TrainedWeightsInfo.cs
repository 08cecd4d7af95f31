using System.Globalization;
using Vlsm.IO;
using Vlsm.Models;

namespace Vlsm.Inference;

/// <summary>
/// What a trained-weights file (adapters, a decoder or a checkpoint: best.safetensors and the like)
/// says about itself, for <c>vlsm info</c>: its metadata, tensor count and size.
/// </summary>
public sealed record TrainedWeightsInfo(string Path, string? Family, string? Mode, IReadOnlyDictionary<string, string> Metadata, int Tensors, long Values)
{
    /// <summary>Which family each of vlsm's weights formats belongs to (metadata <c>format</c>).</summary>
    private static readonly Dictionary<string, string> Formats = new(StringComparer.Ordinal)
    {
        [Models.ClipSeg.AdapterFile.Format] = "clipseg",
        [Models.Cris.CrisCheckpointFile.Format] = "cris",
        [Models.San.SanWeightsFile.Format] = "san",
        [Models.BiomedClipSeg.BiomedClipSegWeightsFile.Format] = "biomedclipseg",
    };

    /// <summary>The fingerprint of the base weights it was trained on, or null (written before it was recorded).</summary>
    public string? BaseWeights => Metadata.TryGetValue(Models.BaseWeights.MetadataKey, out var v) ? v : null;

    /// <exception cref="VlsmException">The file is missing, a folder, or not a safetensors file.</exception>
    public static TrainedWeightsInfo Read(string path)
    {
        if (Directory.Exists(path)) throw new VlsmException($"{path} is a folder; give a weights file (such as a run's best.safetensors), or the run folder with --run.");
        if (!File.Exists(path)) throw new VlsmException($"{path}: no such weights file.");
        using var file = SafetensorsFile.Open(path);
        var m = file.Metadata;
        string? family = m.TryGetValue("model_type", out var type) ? type
            : m.TryGetValue("format", out var format) && Formats.TryGetValue(format, out var f) ? f : null;
        long values = file.Names.Sum(n => file.Entry(n).Shape.Aggregate(1L, (a, b) => a * b));
        return new TrainedWeightsInfo(path, family, m.TryGetValue("kind", out var kind) ? kind : null, m, file.Names.Count, values);
    }
}

/// <summary>A training run folder as <c>vlsm info</c> describes it: its config, its weights and how far it got.</summary>
/// <param name="Epochs">Epochs completed (rows of metrics.csv).</param>
/// <param name="BestDice">The best validation Dice of those epochs, and the epoch (1-based) it came from.</param>
public sealed record RunInfo(string Path, RunDefaults Config, TrainedWeightsInfo? Best, int Epochs, (double Dice, int Epoch)? BestDice)
{
    /// <exception cref="VlsmException">The folder is not a training run folder (no config.yaml), or its files are unreadable.</exception>
    public static RunInfo Read(string runDir)
    {
        if (File.Exists(runDir)) throw new VlsmException($"--run {runDir} is a file; give the folder vlsm train wrote, or the file with --adapter.");
        if (!Directory.Exists(runDir)) throw new VlsmException($"--run {runDir}: no such training run folder.");
        var config = RunDefaults.Read(runDir);
        string best = System.IO.Path.Combine(runDir, ModelReference.RunBestFile);
        var weights = File.Exists(best) ? TrainedWeightsInfo.Read(best) : null;
        int epochs = 0;
        (double, int)? bestDice = null;
        string metrics = System.IO.Path.Combine(runDir, "metrics.csv");
        if (File.Exists(metrics))
        {
            var lines = File.ReadAllLines(metrics);
            int column = lines.Length > 0 ? Array.IndexOf(lines[0].Split(','), "val_dice") : -1;
            foreach (var line in lines.Skip(1).Where(l => l.Length > 0))
            {
                epochs++;
                var cells = line.Split(',');
                if (column >= 0 && column < cells.Length
                    && double.TryParse(cells[column], NumberStyles.Float, CultureInfo.InvariantCulture, out double dice)
                    && (bestDice is null || dice > bestDice.Value.Item1))
                    bestDice = (dice, epochs);
            }
        }
        return new RunInfo(runDir, config, weights, epochs, bestDice);
    }
}
