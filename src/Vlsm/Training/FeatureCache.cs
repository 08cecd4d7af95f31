using TorchSharp;
using Vlsm.Adapters;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Training;

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

/// <summary>Tower features for a batch, from the cache where the mode allows it, else computed.</summary>
public sealed class CachedTowers
{
    private readonly AdaptedClipSeg model;
    private readonly FeatureCache? vision;
    private readonly FeatureCache? text;

    public CachedTowers(AdaptedClipSeg model, FeatureCache? vision, FeatureCache? text)
    {
        this.model = model;
        this.vision = vision;
        this.text = text;
    }

    /// <summary>Whether the vision tower's outputs are fixed for an image (nothing in it trains).</summary>
    public static bool VisionIsFrozen(FineTuneSpec spec) =>
        spec.Mode is FineTuneMode.Shallow or FineTuneMode.Decoder || (spec.Mode == FineTuneMode.Dense && !spec.Parts.HasFlag(AdapterParts.V));

    /// <summary>Whether the text tower's outputs are fixed for a prompt.</summary>
    public static bool TextIsFrozen(FineTuneSpec spec) =>
        spec.Mode is FineTuneMode.Shallow or FineTuneMode.Decoder || (spec.Mode == FineTuneMode.Dense && !spec.Parts.HasFlag(AdapterParts.L));

    public Models.ClipSeg.VisionFeatures Vision(Tensor pixels, IReadOnlyList<string> keys)
    {
        if (vision is null) return model.EncodeImage(pixels);
        int p = model.Config.Vision.PatchSize;
        long gh = pixels.shape[2] / p, gw = pixels.shape[3] / p;
        var perSample = new List<Tensor[]>();
        for (int i = 0; i < keys.Count; i++)
        {
            int index = i;
            perSample.Add(vision.GetOrAdd(keys[i], () =>
            {
                using var one = pixels.narrow(0, index, 1);
                using var f = model.EncodeImage(one);
                return f.Activations.Select(a => a.squeeze(0)).ToArray();
            }));
        }
        int layers = perSample[0].Length;
        var stacked = Enumerable.Range(0, layers).Select(l => stack(perSample.Select(s => s[l]).ToArray())).ToList();
        return new Models.ClipSeg.VisionFeatures(stacked, gh, gw);
    }

    public TextFeatures Text(Tensor inputIds, Tensor attentionMask, IReadOnlyList<string> prompts, Func<string, (Tensor Ids, Tensor Mask)> tokenizeOne)
    {
        if (text is null) return model.EncodeText(inputIds, attentionMask);
        var perPrompt = prompts.Select(prompt => text.GetOrAdd(prompt, () =>
        {
            var (ids, mask) = tokenizeOne(prompt);
            using var f = model.EncodeText(ids, mask);
            var list = new List<Tensor> { f.Conditional.squeeze(0) };
            if (f.PooledHidden is not null) list.AddRange(f.PooledHidden.Select(h => h.squeeze(0)));
            return list.ToArray();
        })).ToList();
        var conditional = stack(perPrompt.Select(t => t[0]).ToArray());
        IReadOnlyList<Tensor>? pooled = perPrompt[0].Length > 1
            ? Enumerable.Range(1, perPrompt[0].Length - 1).Select(i => stack(perPrompt.Select(t => t[i]).ToArray())).ToList()
            : null;
        return new TextFeatures(conditional, pooled);
    }
}
