using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Models;

/// <summary>
/// Frozen tower outputs kept after first use so later epochs skip the CLIP towers: vision
/// features per image (record), text features per prompt. Entries live in memory up to a budget,
/// then on disk. Each entry is computed from one sample alone, so its value does not depend on
/// which batch first needed it; a resumed run therefore sees exactly the values an
/// uninterrupted run saw.
/// </summary>
public sealed class FeatureCache : IDisposable
{
    private readonly Dictionary<string, Tensor[]> memory = new();
    private readonly Dictionary<string, string> onDisk = new();
    private readonly long budgetBytes;
    private readonly string spillDir;
    private long usedBytes;

    public FeatureCache(long budgetBytes, string spillDir)
    {
        this.budgetBytes = budgetBytes;
        this.spillDir = spillDir;
    }

    public long Hits { get; private set; }
    public long Misses { get; private set; }
    public long MemoryBytes => usedBytes;
    public int Count => memory.Count + onDisk.Count;

    /// <summary>The cached tensors for <paramref name="key"/>, computing and storing them on a miss.</summary>
    public Tensor[] GetOrAdd(string key, Func<Tensor[]> compute)
    {
        if (memory.TryGetValue(key, out var hit))
        {
            Hits++;
            return hit;
        }
        if (onDisk.TryGetValue(key, out var path))
        {
            Hits++;
            using var file = SafetensorsFile.Open(path);
            return file.Names.Select(n => file.Load(n)).ToArray();
        }
        Misses++;
        var computed = compute();
        long bytes = computed.Sum(t => t.numel() * t.element_size());
        if (usedBytes + bytes <= budgetBytes)
        {
            // Kept tensors leave every dispose scope: the cache owns them until it is disposed.
            var kept = computed.Select(t => t.detach().clone().DetachFromDisposeScope()).ToArray();
            memory[key] = kept;
            usedBytes += bytes;
            return kept;
        }
        Directory.CreateDirectory(spillDir);
        string file2 = Path.Combine(spillDir, $"{onDisk.Count:D7}.safetensors");
        SafetensorsWriter.Save(file2, computed.Select((t, i) => new KeyValuePair<string, Tensor>($"t{i:D3}", t.detach())));
        onDisk[key] = file2;
        return computed; // still owned by the caller's dispose scope
    }

    public void Dispose()
    {
        foreach (var ts in memory.Values) foreach (var t in ts) t.Dispose();
        memory.Clear();
        usedBytes = 0;
        if (onDisk.Count > 0 && Directory.Exists(spillDir)) Directory.Delete(spillDir, recursive: true);
        onDisk.Clear();
    }
}
