using Vlsm.IO;

namespace Vlsm.Models.ClipSeg;

/// <summary>Loads HF-format CLIPSeg model folders (<c>config.json</c> + <c>model.safetensors</c>).</summary>
public static class ClipSegLoader
{
    public const string WeightsFile = "model.safetensors";

    /// <summary>True for the buffers older HF checkpoints store and the model recomputes.</summary>
    public static bool IsIgnoredKey(string key) => key.EndsWith(".position_ids", StringComparison.Ordinal);

    public static void CheckFolder(string dir)
    {
        if (!Directory.Exists(dir))
            throw new VlsmException($"model folder {dir} does not exist; pass the folder of an HF CLIPSeg checkpoint (config.json, model.safetensors, vocab.json, merges.txt).");
    }

    /// <summary>The folder's config, its sizes checked against model.safetensors' header when the folder has one (before anything is built from them).</summary>
    public static ClipSegConfig ReadConfig(string dir)
    {
        CheckFolder(dir);
        string path = Path.Combine(dir, "config.json");
        var config = ClipSegConfig.FromFile(path);
        var (shapes, counts) = config.WeightClaims();
        WeightShapes.Check(path, Path.Combine(dir, WeightsFile), shapes, counts);
        return config;
    }

    /// <summary>The tokenizer and preprocessor files a model folder carries besides config and weights.</summary>
    public static readonly IReadOnlyList<string> SideFiles = new[] { "vocab.json", "merges.txt", "tokenizer_config.json", "preprocessor_config.json", "special_tokens_map.json" };

    /// <summary>
    /// Writes <paramref name="model"/> as an HF-format folder (config.json, model.safetensors) and
    /// copies the tokenizer and preprocessor files present in <paramref name="sideFilesFrom"/>, so the
    /// result loads here and in HF transformers alike. Each file is written atomically.
    /// </summary>
    public static void SaveFolder(ClipSegModel model, string dir, string sideFilesFrom)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), model.Config.ToJson());
        var tensors = model.state_dict().Select(kv => new KeyValuePair<string, TorchSharp.torch.Tensor>(kv.Key, kv.Value));
        SafetensorsWriter.Save(Path.Combine(dir, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        foreach (var name in SideFiles)
        {
            string source = Path.Combine(sideFilesFrom, name);
            if (File.Exists(source)) AtomicFile.WriteAllBytes(Path.Combine(dir, name), File.ReadAllBytes(source));
        }
    }

    /// <summary>The model with the folder's weights, in float32 and eval mode (fp16/bf16 checkpoints are widened).</summary>
    public static ClipSegModel Load(string dir)
    {
        var config = ReadConfig(dir);
        string weights = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weights))
        {
            string hint = File.Exists(Path.Combine(dir, "pytorch_model.bin"))
                ? " The folder has pytorch_model.bin only; save the checkpoint with safe_serialization=True (or convert it) to get model.safetensors."
                : "";
            throw new VlsmException($"{weights} not found.{hint}");
        }
        var model = new ClipSegModel(config);
        using (var file = SafetensorsFile.Open(weights))
            StateDictLoader.LoadStrict(model, file, IsIgnoredKey);
        model.eval();
        return model;
    }
}
