using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vlsm.Inference;
using Vlsm.Models;
using Vlsm.Models.Registry;

namespace Vlsm.Cli.Commands;

/// <summary><c>vlsm info --run RUN</c> and <c>vlsm info --adapter FILE</c>: what a training run or a trained-weights file holds.</summary>
internal static class TrainedInfo
{
    public static int Print(string? runDir, string? weightsFile, bool json)
    {
        var o = new JsonObject();
        TrainedWeightsInfo? weights;
        string? modelDir = null;
        if (runDir is not null)
        {
            var run = RunInfo.Read(runDir);
            weights = run.Best;
            modelDir = run.Config.Model;
            o["run"] = runDir;
            o["model"] = modelDir;
            o["family"] = FamilyOf(modelDir, weights);
            o["mode"] = run.Config.Mode;
            if (run.Config.Parts is { } parts) o["parts"] = parts;
            if (run.Config.Preset is { } preset) o["preset"] = preset;
            o["prompt"] = run.Config.Prompt;
            if (run.Config.ImageSize is { } side) o["image_size"] = side;
            foreach (var (key, value) in run.Config.FamilyOptions) o[key] = value;
            o["epochs_completed"] = run.Epochs;
            if (run.BestDice is { } best)
            {
                o["best_val_dice"] = best.Dice;
                o["best_epoch"] = best.Epoch;
            }
        }
        else
        {
            weights = TrainedWeightsInfo.Read(weightsFile!);
            o["weights"] = weightsFile;
            o["family"] = FamilyOf(null, weights);
            o["mode"] = weights.Mode;
            foreach (var key in new[] { "parts", "adapter_dim", "cond_adapter_dim", "epoch" })
                if (weights.Metadata.TryGetValue(key, out var v)) o[key] = v;
        }
        if (weights is not null)
        {
            o["weights_file"] = weights.Path;
            o["tensors"] = weights.Tensors;
            o["values"] = weights.Values;
            if (weights.Metadata.TryGetValue("trainable_parameters", out var trainable)) o["trainable_parameters"] = trainable;
            if (weights.Metadata.TryGetValue("base", out var shape)) o["base_architecture"] = shape;
            o["base_weights"] = weights.BaseWeights;
        }
        if (modelDir is not null && weights?.BaseWeights is { } recorded && Directory.Exists(modelDir))
            o["base_weights_match"] = BaseWeights.Fingerprint(modelDir) is { } actual ? actual == recorded : null;

        if (json)
        {
            Console.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        Console.WriteLine(runDir is not null ? $"run {runDir}" : $"weights {weightsFile}");
        foreach (var (key, value) in o)
        {
            if (key is "run" || (key == "weights" && runDir is null)) continue;
            string text = value switch
            {
                null => "-",
                JsonValue v when v.TryGetValue<double>(out var d) && key == "best_val_dice" => d.ToString("0.0000", CultureInfo.InvariantCulture),
                JsonValue v when v.TryGetValue<string>(out var str) => str,
                _ => value.ToJsonString(),
            };
            if (key == "base_weights" && value is null) text = "- (not recorded: written before vlsm recorded the base's fingerprint)";
            Console.WriteLine($"  {key.Replace('_', ' '),-22} {text}");
        }
        return 0;
    }

    private static string? FamilyOf(string? modelDir, TrainedWeightsInfo? weights)
    {
        if (modelDir is not null && Directory.Exists(modelDir))
        {
            try
            {
                return ModelFamilies.ForFolder(modelDir).Name;
            }
            catch (VlsmException)
            {
                // The weights' metadata may still say.
            }
        }
        if (weights?.Family is { } type)
        {
            try
            {
                return ModelFamilies.ForType(type).Name;
            }
            catch (VlsmException)
            {
                return type;
            }
        }
        return null;
    }
}
