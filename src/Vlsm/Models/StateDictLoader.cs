using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Models;

/// <summary>Strict loading of a safetensors state dict into a module whose parameter names are the file's keys.</summary>
public static class StateDictLoader
{
    private const int ListedKeys = 12;

    /// <summary>BatchNorm's step counter: older checkpoints lack it and inference never reads it, so loaders may treat it as optional.</summary>
    public static bool IsStepCounter(string key) => key.EndsWith(".num_batches_tracked", StringComparison.Ordinal);

    /// <summary>
    /// Copies every tensor of <paramref name="file"/> into the parameter or buffer of the same name,
    /// converting floating-point data to the target's dtype. Missing keys, unexpected keys and
    /// shape mismatches are errors that name them; keys for which <paramref name="ignore"/> is true
    /// are skipped (e.g. the <c>position_ids</c> buffers older HF checkpoints carry); targets for
    /// which <paramref name="optional"/> is true may be absent and keep their value (e.g. BatchNorm's
    /// <c>num_batches_tracked</c>, which older checkpoints lack).
    /// </summary>
    public static void LoadStrict(nn.Module module, SafetensorsFile file, Func<string, bool>? ignore = null, Func<string, bool>? optional = null)
    {
        var targets = module.state_dict();
        var fileKeys = file.Names.Where(n => ignore is null || !ignore(n)).ToList();
        CheckStrict(file.Path, fileKeys, k => file.Entry(k).Shape, targets, optional);
        Copy(module, file, targets, fileKeys);
    }

    /// <summary>
    /// The checks of <see cref="LoadStrict"/> for tensors that are not in a safetensors file yet (a
    /// converted checkpoint): the same keys as <paramref name="targets"/> (those for which
    /// <paramref name="optional"/> is true may be absent), each of the target's shape.
    /// </summary>
    public static void CheckStrict(string source, IReadOnlyList<string> keys, Func<string, long[]> shapeOf,
        IReadOnlyDictionary<string, Tensor> targets, Func<string, bool>? optional = null)
    {
        var present = keys.ToHashSet(StringComparer.Ordinal);
        var missing = targets.Keys.Where(k => !present.Contains(k) && (optional is null || !optional(k))).ToList();
        var unexpected = keys.Where(k => !targets.ContainsKey(k)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing {missing.Count} key(s): {Listing(missing)}");
            if (unexpected.Count > 0) parts.Add($"unexpected {unexpected.Count} key(s): {Listing(unexpected)}");
            throw new VlsmException($"{source}: keys do not match the model; {string.Join("; ", parts)}.");
        }
        CheckShapes(source, shapeOf, targets, keys);
    }

    /// <summary>
    /// Copies the file's tensors into same-named targets of <paramref name="module"/> (a partial
    /// checkpoint such as decoder weights). Every file key must exist with the same shape, and
    /// every name in <paramref name="requireAll"/> must be in the file.
    /// </summary>
    public static void LoadSubset(nn.Module module, SafetensorsFile file, Func<string, bool>? ignore, IReadOnlySet<string> requireAll)
    {
        var targets = module.state_dict();
        var fileKeys = file.Names.Where(n => ignore is null || !ignore(n)).ToList();
        var unexpected = fileKeys.Where(k => !targets.ContainsKey(k)).ToList();
        var missing = requireAll.Where(k => !file.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing {missing.Count} key(s): {Listing(missing)}");
            if (unexpected.Count > 0) parts.Add($"unexpected {unexpected.Count} key(s): {Listing(unexpected)}");
            throw new VlsmException($"{file.Path}: does not fit this model; {string.Join("; ", parts)}.");
        }
        CheckShapes(file.Path, k => file.Entry(k).Shape, targets, fileKeys);
        Copy(module, file, targets, fileKeys);
    }

    private static void CheckShapes(string source, Func<string, long[]> shapeOf, IReadOnlyDictionary<string, Tensor> targets, IEnumerable<string> keys)
    {
        foreach (var key in keys)
        {
            var shape = shapeOf(key);
            var target = targets[key];
            if (!shape.SequenceEqual(target.shape))
                throw new VlsmException($"{source}: tensor \"{key}\" has shape [{string.Join(", ", shape)}], the architecture expects [{string.Join(", ", target.shape)}].");
        }
    }

    /// <summary>
    /// Copies each tensor into its target after two cheap checks: the stored dtype is of the target's
    /// kind (floating point for a float weight, integer for a counter; an I32 or BOOL tensor declared
    /// for a float weight would otherwise be converted silently), and a float tensor holds no NaN or
    /// infinity (such weights give empty masks or a Dice of 0 with exit code 0).
    /// </summary>
    private static void Copy(nn.Module module, SafetensorsFile file, Dictionary<string, Tensor> targets, IEnumerable<string> keys)
    {
        using var _ = no_grad();
        var keyList = keys.ToList();
        foreach (var key in keyList)
        {
            var stored = file.Entry(key).Dtype;
            bool targetFloat = targets[key].is_floating_point();
            if (SafetensorsDtypes.IsFloat(stored) != targetFloat)
                throw new VlsmException($"{file.Path}: tensor {Printable.Quote(key)} is stored as {stored}, but the model's is {(targetFloat ? "a floating-point weight" : "an integer buffer")} "
                    + $"({targets[key].dtype}); the file was not written for this model.");
        }
        foreach (var key in keyList)
        {
            var target = targets[key];
            using var loaded = file.Load(key, target.dtype);
            if (target.is_floating_point())
            {
                using var finite = loaded.isfinite().all();
                if (!finite.item<bool>())
                {
                    using var nan = loaded.isnan().sum();
                    using var inf = loaded.isinf().sum();
                    throw new VlsmException($"{file.Path}: tensor {Printable.Quote(key)} holds {nan.item<long>()} NaN and {inf.item<long>()} infinite values; "
                        + "weights must be finite (the training that wrote them diverged, or the file is damaged).");
                }
            }
            target.copy_(loaded);
        }
        ClearDerivedCaches(module);
    }

    /// <summary>Drops what the module and its submodules derived from their weights (call after changing weights or dtypes in place).</summary>
    public static void ClearDerivedCaches(nn.Module module)
    {
        foreach (var m in module.modules().Prepend(module))
            if (m is IDerivedTensorCache cache) cache.ClearCache();
    }

    private static string Listing(IReadOnlyList<string> keys) =>
        string.Join(", ", keys.Take(ListedKeys)) + (keys.Count > ListedKeys ? $", ... ({keys.Count - ListedKeys} more)" : "");
}
