using TorchSharp;
using TorchSharp.Modules;
using Vlsm.IO;
using Vlsm.Tensors;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Vlsm.Models.Smp;

/// <summary>What <see cref="SmpWeights.Convert"/> or <see cref="SmpWeights.Initialize"/> wrote.</summary>
/// <param name="StrippedPrefix">The prefix removed from the checkpoint's keys (medvlsm's <c>net.</c>), if any.</param>
/// <param name="AddedStepCounters">BatchNorm step counters the source lacked, written as 0 (as PyTorch loads such files).</param>
/// <param name="DroppedKeys">Keys of the source the model has no use for (torchvision's <c>fc</c> classifier).</param>
/// <param name="SkippedObjects">Classes of objects pickled beside the state dict (a Lightning checkpoint's loss, optimizer factory), read as inert placeholders.</param>
public sealed record SmpFolderWritten(string OutDir, string Source, SmpConfig Config, int Tensors, string? StrippedPrefix, int AddedStepCounters,
    IReadOnlyList<string> DroppedKeys, IReadOnlyList<string> SkippedObjects);

/// <summary>
/// Model folders for the smp families: <c>vlsm convert smp</c> (a medvlsm Lightning checkpoint or a
/// plain smp state dict, read without running its pickle) and <c>vlsm init</c> (smp's initial weights,
/// optionally with torchvision's ImageNet encoder, as <c>encoder_weights="imagenet"</c> loads it).
/// Everything is read and checked before anything is written; the folder appears whole or not at all.
/// </summary>
public static class SmpWeights
{
    /// <summary>medvlsm's <c>BaseModule.net</c>: its Lightning checkpoints key the smp model's tensors <c>net.</c> + smp's key.</summary>
    public const string LightningPrefix = "net.";

    /// <param name="checkpoint">A medvlsm Lightning checkpoint (<c>.ckpt</c>/<c>.pth</c>: state_dict under <c>net.</c>, other entries skipped unbuilt) or an smp state dict.</param>
    /// <param name="configPath">The model's config.json (the fixtures' format); null means config.json beside the checkpoint.</param>
    public static SmpFolderWritten Convert(string checkpoint, string? configPath, string outDir)
    {
        OutputFolder.CheckNew(outDir, "--out");
        configPath ??= Path.Combine(Path.GetDirectoryName(Path.GetFullPath(checkpoint))!, SmpLoader.ConfigFile);
        if (!File.Exists(configPath))
            throw new VlsmException($"{configPath} not found: give the model's settings with --config FILE (a config.json with model_type unet, unetplusplus or deeplabv3plus, as in shared/parity/smp-unet-tiny), or write one with vlsm init --arch NAME.");
        var config = SmpLoader.ReadConfigFile(configPath);
        var read = TorchCheckpoint.ReadStateDictBesideObjects(checkpoint, out var skipped);
        var tensors = TorchCheckpoint.StripPrefix(read, LightningPrefix);
        string? stripped = ReferenceEquals(read, tensors) ? null : LightningPrefix;
        var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        SmpLoader.CheckWeights(config, configPath, checkpoint, byName.Keys, k => byName.TryGetValue(k, out var t) ? (t.Dtype, t.Shape) : null);
        using var model = new SmpModel(config);
        var (output, added) = Complete(checkpoint, tensors, model.state_dict());
        Write(outDir, config, path => SafetensorsWriter.Save(path, output, Pt));
        return new SmpFolderWritten(outDir, checkpoint, config, output.Count, stripped, added, [], skipped);
    }

    /// <summary>
    /// A trainable folder: smp's initial weights (torchvision's ResNet initialisation in the encoder,
    /// Kaiming-uniform decoder convolutions, Xavier head, BatchNorm at 1 and 0), drawn from
    /// <paramref name="seed"/>, with the encoder from <paramref name="encoderWeights"/> when given.
    /// </summary>
    /// <param name="encoderWeights">torchvision's ResNet state dict (<c>resnet50-19c8e357.pth</c>, legacy or zip <c>torch.save</c>, or safetensors): <c>fc.*</c> is dropped, <c>num_batches_tracked</c> may be absent.</param>
    public static SmpFolderWritten Initialize(SmpConfig config, string outDir, string? encoderWeights, long seed)
    {
        OutputFolder.CheckNew(outDir, "--out");
        using var model = Create(config, seed);
        var dropped = new List<string>();
        int added = 0;
        if (encoderWeights is not null) (dropped, added) = LoadEncoder(model, encoderWeights);
        var tensors = model.state_dict();
        Write(outDir, config, path => SafetensorsWriter.Save(path, tensors, Pt));
        return new SmpFolderWritten(outDir, encoderWeights ?? $"random (seed {seed})", config, tensors.Count, null, added, dropped, []);
    }

    /// <summary>A model with smp's initial weights drawn from <paramref name="seed"/>.</summary>
    public static SmpModel Create(SmpConfig config, long seed)
    {
        manual_seed(seed);
        var model = new SmpModel(config);
        using var _ = no_grad();
        foreach (var m in model.Encoder.modules())
        {
            // torchvision's ResNet: Kaiming-normal (fan_out, ReLU) convolutions; BatchNorm 1 and 0.
            if (m is SafeConv2d conv) init.kaiming_normal_(conv.Weight, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
            else if (m is BatchNorm2d bn) ResetBatchNorm(bn);
        }
        foreach (var m in model.Decoder.modules())
        {
            // smp's initialize_decoder.
            if (m is SafeConv2d conv)
            {
                init.kaiming_uniform_(conv.Weight, mode: init.FanInOut.FanIn, nonlinearity: init.NonlinearityType.ReLU);
                conv.Bias?.zero_();
            }
            else if (m is BatchNorm2d bn) ResetBatchNorm(bn);
        }
        foreach (var conv in model.Head.modules().OfType<SafeConv2d>())
        {
            // smp's initialize_head.
            init.xavier_uniform_(conv.Weight);
            conv.Bias?.zero_();
        }
        model.eval();
        return model;
    }

    private static void ResetBatchNorm(BatchNorm2d bn)
    {
        bn.weight!.fill_(1);
        bn.bias!.zero_();
    }

    /// <summary>
    /// Copies a torchvision ResNet state dict into the encoder, as smp's <c>ResNetEncoder.load_state_dict</c>
    /// does: <c>fc.weight</c> and <c>fc.bias</c> are dropped, every other key must be an encoder
    /// tensor of the same shape, and every encoder tensor must be there (step counters may be absent).
    /// </summary>
    /// <returns>The dropped keys and how many step counters were absent.</returns>
    public static (List<string> Dropped, int MissingStepCounters) LoadEncoder(SmpModel model, string path)
    {
        var tensors = ReadAny(path);
        var dropped = tensors.Where(t => t.Name.StartsWith("fc.", StringComparison.Ordinal)).Select(t => t.Name).ToList();
        var kept = tensors.Where(t => !dropped.Contains(t.Name)).Select(t => t with { Name = SmpModel.EncoderPrefix + t.Name }).ToList();
        var targets = model.state_dict().Where(kv => kv.Key.StartsWith(SmpModel.EncoderPrefix, StringComparison.Ordinal)).ToDictionary();
        var (complete, added) = Complete(path, kept, targets);
        using var _ = no_grad();
        foreach (var t in complete)
        {
            using var value = t.ToTensor();
            targets[t.Name].copy_(value);
        }
        StateDictLoader.ClearDerivedCaches(model);
        return (dropped, added);
    }

    /// <summary>A state dict from a torch.save file (legacy or zip) or a safetensors file.</summary>
    private static IReadOnlyList<TorchTensor> ReadAny(string path)
    {
        if (!path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return TorchCheckpoint.ReadStateDict(path);
        using var file = SafetensorsFile.Open(path);
        return file.Names.Select(n =>
        {
            using var t = file.Load(n);
            return new TorchTensor(n, Dtype(t), t.shape, Bytes(t));
        }).ToList();
    }

    /// <summary>
    /// Checks <paramref name="tensors"/> against <paramref name="targets"/> strictly (step counters
    /// optional) and adds each absent step counter as 0.
    /// </summary>
    private static (List<TorchTensor> Tensors, int Added) Complete(string source, IReadOnlyList<TorchTensor> tensors, IReadOnlyDictionary<string, Tensor> targets)
    {
        var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        StateDictLoader.CheckStrict(source, tensors.Select(t => t.Name).ToList(), k => byName[k].Shape, targets, StateDictLoader.IsStepCounter);
        var output = tensors.ToList();
        foreach (var name in targets.Keys.Where(k => !byName.ContainsKey(k)))
            output.Add(new TorchTensor(name, SafetensorsDtype.I64, [], new byte[8]));
        return (output, output.Count - tensors.Count);
    }

    private static readonly Dictionary<string, string> Pt = new() { ["format"] = "pt" };

    /// <summary>config.json and the weights (written by <paramref name="saveWeights"/> to the path it is given), as one folder.</summary>
    private static void Write(string outDir, SmpConfig config, Action<string> saveWeights) => AtomicFolder.Write(outDir, staging =>
    {
        saveWeights(Path.Combine(staging, SmpLoader.WeightsFile));
        AtomicFile.WriteAllText(Path.Combine(staging, SmpLoader.ConfigFile), config.ToJson());
    });

    private static SafetensorsDtype Dtype(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => SafetensorsDtype.F32,
        ScalarType.Int64 => SafetensorsDtype.I64,
        _ => throw new VlsmException($"a tensor of dtype {t.dtype}, which smp weights do not hold (float32 and int64 only)."),
    };

    private static byte[] Bytes(Tensor t)
    {
        using var stream = new MemoryStream();
        TensorBytes.WriteTo(t, stream);
        return stream.ToArray();
    }
}
