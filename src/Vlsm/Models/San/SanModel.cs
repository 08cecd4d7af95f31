using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Models.San;

#pragma warning disable IDE1006 // field names are the reference's state-dict keys

/// <summary>
/// CLIP's image features that SAN reads: the token sequences (B, 1 + hc·wc, D) after ln_pre
/// (index 0) or after CLIP block k-1 (index k), for the indices the side network and the rec head
/// use, on a grid of hc x wc. They depend only on the image (and, when it trains, CLIP's positional embedding).
/// </summary>
public sealed class SanClipFeatures : IDisposable
{
    public SanClipFeatures(IReadOnlyDictionary<int, Tensor> tokens, long gridH, long gridW)
    {
        Tokens = tokens;
        GridH = gridH;
        GridW = gridW;
    }

    public IReadOnlyDictionary<int, Tensor> Tokens { get; }
    public long GridH { get; }
    public long GridW { get; }

    /// <summary>Feature <paramref name="index"/>'s patch tokens as a map (B, D, hc, wc), as the reference's ClipOutput stores it.</summary>
    public Tensor Map(int index)
    {
        var t = Tokens[index];
        long b = t.shape[0], d = t.shape[2];
        using var patches = t.narrow(1, 1, GridH * GridW);
        using var channelsFirst = patches.permute(0, 2, 1);
        return channelsFirst.reshape(b, d, GridH, GridW);
    }

    public void Dispose()
    {
        foreach (var t in Tokens.Values) t.Dispose();
    }
}

/// <summary>
/// What a SAN forward pass computes before the text: the query masks at the side resolution
/// (B, Q, h, w) and their L2-normalised CLIP embeddings (B, Q, embed), and the input size the
/// output is resized to. The prompt only weighs the masks, so one image pass serves any prompt.
/// </summary>
public sealed class SanMaskProposals : IDisposable
{
    public SanMaskProposals(Tensor maskPreds, Tensor maskEmbeddings, long height, long width)
    {
        MaskPreds = maskPreds;
        MaskEmbeddings = maskEmbeddings;
        Height = height;
        Width = width;
    }

    public Tensor MaskPreds { get; }
    public Tensor MaskEmbeddings { get; }
    public long Height { get; }
    public long Width { get; }

    public SanMaskProposals Select(Tensor index) => new(MaskPreds.index_select(0, index), MaskEmbeddings.index_select(0, index), Height, Width);

    public void Dispose()
    {
        MaskPreds.Dispose();
        MaskEmbeddings.Dispose();
    }
}

/// <summary>
/// SAN as the VLSM-Adapter benchmark runs it (vlsm-adapter <c>src/models/san/san.py</c>): a frozen
/// open_clip CLIP (<c>clip_model</c>) that sees the image at <c>clip_resolution</c>, the trainable
/// side adapter network (<c>side_adapter_network</c>), the rec head (CLIP blocks first_layer_idx..
/// under the decoder's attention bias) and the text tower, whose features weigh each query mask.
/// Parameter names are the reference's state-dict keys; the reference's aliased copies of CLIP
/// blocks (<c>clip_visual_extractor.*</c>, <c>clip_rec_head.*</c>) are the same tensors and are not
/// separate parameters here (<see cref="SanLoader"/> checks them when a file has them).
/// </summary>
public sealed class SanModel : Module
{
    private readonly OpenClipModel clip_model;
    private readonly SideAdapterNetwork side_adapter_network;

    /// <summary>The rec head's mask value for blocked positions (the reference's constant, not -inf).</summary>
    private const double Blocked = -100;

    public SanModel(SanConfig config) : base(nameof(SanModel))
    {
        Config = config;
        clip_model = new OpenClipModel(config.Clip);
        side_adapter_network = new SideAdapterNetwork(config);
        RegisterComponents();
    }

    public SanConfig Config { get; }

    internal OpenClipModel Clip => clip_model;

    internal SideAdapterNetwork Side => side_adapter_network;

    /// <summary>
    /// Whether gradients flow through the rec head into the attention bias and through the CLIP
    /// image tower into its trainable parameters (the original SAN's training). False (the
    /// reference): both run without autograd, as under no_grad.
    /// </summary>
    public bool OriginalGradients { get; set; }

    /// <summary>The CLIP input: bilinear resize by <c>clip_resolution</c> (align_corners false, scale given as the reference gives it).</summary>
    public Tensor ClipInput(Tensor pixelValues)
    {
        CheckPixels(pixelValues);
        double s = Config.ClipResolution;
        return functional.interpolate(pixelValues, scale_factor: [s, s], mode: InterpolationMode.Bilinear, align_corners: false, recompute_scale_factor: false);
    }

    /// <summary>CLIP's patch grid for an input of <paramref name="height"/> x <paramref name="width"/>: the resized input's size (floored, as interpolate floors it) over the patch size.</summary>
    public (long Height, long Width) ClipGrid(long height, long width)
    {
        long p = Config.Clip.PatchSize;
        return ((long)Math.Floor(height * Config.ClipResolution) / p, (long)Math.Floor(width * Config.ClipResolution) / p);
    }

    private void CheckPixels(Tensor pixelValues)
    {
        if (pixelValues.dim() != 4 || pixelValues.shape[1] != 3)
            throw new VlsmException($"pixel_values must be (batch, 3, height, width); got ({string.Join(", ", pixelValues.shape)}).");
        long side = Config.Side.PatchSize, clipPatch = Config.Clip.PatchSize;
        if (pixelValues.shape[2] % side != 0 || pixelValues.shape[3] % side != 0)
            throw new VlsmException($"image size {pixelValues.shape[2]}x{pixelValues.shape[3]} is not a multiple of the side network's patch size {side}.");
        if ((long)(pixelValues.shape[2] * Config.ClipResolution) < clipPatch || (long)(pixelValues.shape[3] * Config.ClipResolution) < clipPatch)
            throw new VlsmException($"image size {pixelValues.shape[2]}x{pixelValues.shape[3]} at clip_resolution {Config.ClipResolution} is smaller than CLIP's patch ({clipPatch}).");
    }

    /// <summary>CLIP's image features for SAN (the reference's <c>clip_visual_extractor</c>), the indices in <paramref name="keep"/> (default: those SAN reads).</summary>
    public SanClipFeatures EncodeClip(Tensor pixelValues, IReadOnlySet<int>? keep = null)
    {
        using var scope = NewDisposeScope();
        var input = ClipInput(pixelValues);
        var tokens = clip_model.Visual.Features(input, Config.LastLayerIdx, keep ?? Config.NeededClipFeatures, out long h, out long w);
        foreach (var t in tokens.Values) t.MoveToOuterDisposeScope();
        return new SanClipFeatures(tokens, h, w);
    }

    /// <summary><c>clip_model.encode_text</c>, not normalised: (B, embed).</summary>
    public Tensor EncodeText(Tensor inputIds)
    {
        if (inputIds.dim() != 2) throw new VlsmException($"input_ids must be (batch, length); got ({string.Join(", ", inputIds.shape)}).");
        return clip_model.EncodeText(inputIds);
    }

    /// <summary>
    /// The side network, its mask decoder and the rec head: the query masks and their CLIP
    /// embeddings. The rec head runs without autograd unless <see cref="OriginalGradients"/>.
    /// </summary>
    /// <param name="trace">When given, receives the reference's intermediate tensors (verification).</param>
    public SanMaskProposals Propose(Tensor pixelValues, SanClipFeatures clip, Dictionary<string, Tensor>? trace = null)
    {
        CheckPixels(pixelValues);
        using var scope = NewDisposeScope();
        var local = trace is null ? null : new Dictionary<string, Tensor>();
        var maps = Config.ActiveFusions.Select(i => Config.FusionMap[i]).Distinct().ToDictionary(k => k, clip.Map);
        var (query, x) = side_adapter_network.Features(pixelValues, maps, local);
        var (maskPreds, queryEmbedding) = side_adapter_network.Decoder.Masks(query, x);
        Tensor embeddings;
        using (OriginalGradients ? null : no_grad())
        {
            var biases = side_adapter_network.Decoder.AttentionBiases(queryEmbedding, x);
            if (local is not null)
            {
                local["side_query"] = query.detach().clone();
                local["side_x"] = x.detach().clone();
                local["mask_preds"] = maskPreds.detach().clone();
                for (int i = 0; i < biases.Count; i++) local[$"attn_bias.{i}"] = biases[i].detach().clone();
            }
            embeddings = RecHead(clip, biases, local);
        }
        if (local is not null)
            foreach (var (name, t) in local) trace![name] = t.MoveToOuterDisposeScope();
        return new SanMaskProposals(maskPreds.MoveToOuterDisposeScope(), embeddings.MoveToOuterDisposeScope(), pixelValues.shape[2], pixelValues.shape[3]);
    }

    /// <summary>
    /// The reference's <c>RecWithAttnbiasHead</c> with cross_attn false: [Q copies of the cls token,
    /// cls, patches] of CLIP feature first_layer_idx through CLIP blocks first_layer_idx.. under the
    /// attention mask, then the Q first tokens through ln_post and proj, L2-normalised.
    /// </summary>
    private Tensor RecHead(SanClipFeatures clip, IReadOnlyList<Tensor> biases, Dictionary<string, Tensor>? trace)
    {
        using var scope = NewDisposeScope();
        int first = Config.FirstLayerIdx, q = Config.NumQueries;
        var tokens = clip.Tokens[first];
        long b = tokens.shape[0], d = tokens.shape[2];
        var cls = tokens.narrow(1, 0, 1);
        var x = cat([cls.expand(b, q, d), tokens], 1);
        var masks = biases.Select(bias => AttentionMask(bias, clip.GridH, clip.GridW)).ToList();
        if (trace is not null)
            for (int i = 0; i < masks.Count; i++) trace[$"rec_attn_mask.{i}"] = masks[i].flatten(0, 1).detach().clone().MoveToOuterDisposeScope();
        var visual = clip_model.Visual.Transformer;
        for (int i = first; i < visual.Count; i++)
            x = visual[i].Forward(x, masks[masks.Count == 1 ? 0 : i - first]);
        var sos = clip_model.Visual.Project(x.narrow(1, 0, q));
        return functional.normalize(sos, p: 2, dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One rec-head layer's attention mask (B, heads, T, T), T = Q + 1 + hc·wc, from its bias
    /// (B, n, Q, h, w): downsampled to the CLIP grid, repeated over heads when n is 1; sos columns
    /// blocked (-100) but each sos token's own, the cls column blocked for sos rows, the bias at
    /// sos rows over the patch columns, everything else 0.
    /// </summary>
    private Tensor AttentionMask(Tensor bias, long hc, long wc)
    {
        using var scope = NewDisposeScope();
        long b = bias.shape[0], n = bias.shape[1], q = bias.shape[2], h = bias.shape[3], w = bias.shape[4];
        long heads = clip_model.Visual.Transformer[0].Heads, l = hc * wc, t = q + 1 + l;
        var pooled = Downsample(bias.reshape(b, n * q, h, w), hc, wc).reshape(b, n, q, l);
        if (n == 1) pooled = pooled.expand(b, heads, q, l);
        using var blocked = Blocked.ToScalar();
        using var open = 0.0.ToScalar();
        var sosColumns = full([q, q], blocked).masked_fill_(eye(q, dtype: ScalarType.Bool), open);
        var sosRows = cat([sosColumns.expand(b, heads, q, q), full([b, heads, q, 1], blocked), pooled], -1);
        var otherRows = cat([full([1 + l, q], blocked), zeros(1 + l, 1 + l)], -1).expand(b, heads, 1 + l, t);
        return cat([sosRows, otherRows], 2).MoveToOuterDisposeScope();
    }

    private Tensor Downsample(Tensor x, long h, long w) => Config.DownsampleMethod switch
    {
        "max" => functional.adaptive_max_pool2d(x, [h, w]),
        "avg" => functional.adaptive_avg_pool2d(x, [h, w]),
        "bilinear" => functional.interpolate(x, [h, w], mode: InterpolationMode.Bilinear, align_corners: false),
        "bicubic" => functional.interpolate(x, [h, w], mode: InterpolationMode.Bicubic, align_corners: false),
        _ => functional.interpolate(x, [h, w], mode: InterpolationMode.Nearest),
    };

    /// <summary>Each query's score for the text, mean over d of mask_emb · text (no logit scale): (B, Q).</summary>
    public static Tensor MaskLogits(Tensor maskEmbeddings, Tensor textFeatures)
    {
        using var product = maskEmbeddings.mul(textFeatures.unsqueeze(1));
        return product.mean([-1]);
    }

    /// <summary>
    /// The output logits (B, H, W): the score-weighted sum of the query masks, resized bilinearly
    /// to the input. The reference resizes every mask first; the resize is linear, so summing first
    /// gives the same numbers (to float rounding) for one resize instead of Q.
    /// </summary>
    public static Tensor Combine(SanMaskProposals proposals, Tensor textFeatures)
    {
        using var scope = NewDisposeScope();
        var scores = MaskLogits(proposals.MaskEmbeddings, textFeatures);
        var masks = proposals.MaskPreds;
        long b = masks.shape[0], q = masks.shape[1], h = masks.shape[2], w = masks.shape[3];
        var summed = scores.unsqueeze(1).matmul(masks.view(b, q, h * w)).view(b, 1, h, w);
        var logits = functional.interpolate(summed, [proposals.Height, proposals.Width], mode: InterpolationMode.Bilinear, align_corners: false);
        return logits.squeeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>The whole forward pass: logits (B, H, W) for one prompt per image.</summary>
    public Tensor Forward(Tensor pixelValues, Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        SanClipFeatures clip;
        using (OriginalGradients ? null : no_grad()) clip = EncodeClip(pixelValues);
        using (clip)
        {
            using var proposals = Propose(pixelValues, clip);
            Tensor text;
            using (no_grad()) text = EncodeText(inputIds);
            return Combine(proposals, text).MoveToOuterDisposeScope();
        }
    }
}
