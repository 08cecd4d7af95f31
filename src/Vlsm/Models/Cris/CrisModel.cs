using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Vlsm.Models.Cris;

#pragma warning disable IDE1006 // field names are the reference's state-dict keys

/// <summary>
/// CRIS as the vlsm-adapter and medvlsm benchmarks run it (<c>src/models/cris/segmenter.py</c>):
/// CLIP RN backbone, FPN neck, transformer decoder, dynamic-kernel projector, and a final bicubic
/// upsampling (align_corners) to <c>img_size</c>. Parameter names equal the reference's state-dict
/// keys (<c>backbone.*</c>, <c>neck.*</c>, <c>decoder.*</c>, <c>proj.*</c>).
/// </summary>
public sealed class CrisModel : nn.Module
{
    /// <summary>CLIP's end-of-text id, which the benchmarks also pad with.</summary>
    public const long EndId = 49407;

    private readonly CrisBackbone backbone;
    private readonly CrisNeck neck;
    private readonly CrisDecoder decoder;
    private readonly CrisProjector proj;

    public CrisModel(CrisConfig config) : base(nameof(CrisModel))
    {
        Config = config;
        backbone = new CrisBackbone(config.Clip);
        neck = new CrisNeck(config);
        decoder = new CrisDecoder(config);
        proj = new CrisProjector(config);
        RegisterComponents();
    }

    public CrisConfig Config { get; }

    /// <summary>Which words the decoder's cross-attention ignores (default: the reference's behaviour).</summary>
    public CrisPadMask PadMask { get; set; } = CrisPadMask.Reference;

    public CrisBackbone Backbone => backbone;
    public CrisNeck Neck => neck;
    public CrisDecoder Decoder => decoder;
    public CrisProjector Projector => proj;

    /// <summary>CLIP's contrastive temperature: loaded with the weights, never used for segmentation, so it never has a gradient.</summary>
    public const string UnusedParameter = "backbone.logit_scale";

    /// <summary>The state-dict prefixes of the parts after the backbone (what decoder mode trains).</summary>
    public static readonly IReadOnlyList<string> HeadPrefixes = ["neck.", "decoder.", "proj."];

    public CrisVisionFeatures EncodeImage(Tensor pixelValues)
    {
        if (pixelValues.dim() != 4 || pixelValues.shape[1] != 3)
            throw new VlsmException($"pixel_values must be (batch, 3, height, width); got ({string.Join(", ", pixelValues.shape)}).");
        if (pixelValues.shape[2] % 32 != 0 || pixelValues.shape[3] % 32 != 0)
            throw new VlsmException($"image size {pixelValues.shape[2]}x{pixelValues.shape[3]} is not a multiple of 32, which CRIS's stride-32 features need.");
        return backbone.EncodeImage(pixelValues);
    }

    /// <summary>Word features, the sentence state and the decoder's padding mask (per <see cref="PadMask"/>).</summary>
    public CrisTextFeatures EncodeText(Tensor inputIds)
    {
        if (inputIds.dim() != 2) throw new VlsmException($"input_ids must be (batch, length); got ({string.Join(", ", inputIds.shape)}).");
        var (words, state) = backbone.EncodeText(inputIds);
        return new CrisTextFeatures(words, state, PaddingMask(inputIds, PadMask, words.dtype));
    }

    /// <summary>
    /// The additive cross-attention mask: -inf at ignored words, or null when none is ignored. The
    /// reference tests <c>input_ids == 0</c> although padding is 49407; <see cref="CrisPadMask.Fixed"/>
    /// ignores the positions after the end token instead.
    /// </summary>
    public static Tensor? PaddingMask(Tensor inputIds, CrisPadMask mode, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        Tensor ignored;
        if (mode == CrisPadMask.Reference)
        {
            ignored = inputIds.eq(0);
        }
        else
        {
            var end = inputIds.argmax(-1, keepdim: true);
            ignored = arange(inputIds.shape[1], dtype: ScalarType.Int64).unsqueeze(0).gt(end);
        }
        if (!ignored.any().item<bool>()) return null;
        using var minusInfinity = float.NegativeInfinity.ToScalar(); // held through the call (see KeptScalars)
        var mask = zeros(ignored.shape, dtype: dtype).masked_fill(ignored, minusInfinity);
        return mask.view(inputIds.shape[0], 1, 1, inputIds.shape[1]).MoveToOuterDisposeScope();
    }

    /// <summary>Neck, decoder, projector and the final upsampling: logits (B, img_size, img_size).</summary>
    public Tensor Head(CrisVisionFeatures vision, CrisTextFeatures text)
    {
        using var scope = NewDisposeScope();
        var fq = neck.Forward(vision, text.State);
        fq = decoder.Forward(fq, text);
        var pred = proj.Forward(fq, text.State);
        long s = Config.ImgSize;
        var logits = functional.interpolate(pred, [s, s], mode: InterpolationMode.Bicubic, align_corners: true);
        return logits.squeeze(1).MoveToOuterDisposeScope();
    }

    public Tensor Forward(Tensor pixelValues, Tensor inputIds)
    {
        using var vision = EncodeImage(pixelValues);
        using var text = EncodeText(inputIds);
        return Head(vision, text);
    }
}
