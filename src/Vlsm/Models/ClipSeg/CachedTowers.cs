using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Models.ClipSeg;

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

    public VisionFeatures Vision(Tensor pixels, IReadOnlyList<string> keys)
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
        return new VisionFeatures(stacked, gh, gw);
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
