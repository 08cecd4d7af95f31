using TorchSharp;
using Vlsm.Models;
using Vlsm.Imaging;
using Vlsm.Tensors;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.ClipSeg;

/// <summary>Text-prompted segmentation with a loaded CLIPSeg: images in, probabilities out.</summary>
public sealed class ClipSegPredictor : ISegmenter
{
    public ClipSegPredictor(ClipSegModel model, ClipTokenizer tokenizer, ImagePreprocessor preprocessor, AdaptedClipSeg? adapted = null)
    {
        Model = model;
        Adapted = adapted;
        Tokenizer = tokenizer;
        Preprocessor = preprocessor;
    }

    public ClipSegModel Model { get; }

    /// <summary>The model with trained adapter or checkpoint weights, when an adapter file was given.</summary>
    public AdaptedClipSeg? Adapted { get; }
    public ClipTokenizer Tokenizer { get; }
    public ImagePreprocessor Preprocessor { get; }

    /// <param name="towerDtype">BFloat16 runs the CLIP towers in bf16 (faster, logits within about 1e-2); dense adapters compute in bf16 inside them, as autocast would; the decoder and shallow adapters stay float32.</param>
    /// <param name="imageSize">Images resized to this side instead of the preprocessor's size (<see cref="ModelRequest.ImageSize"/>).</param>
    public static ClipSegPredictor FromFolder(string modelDir, string? adapterFile = null, ScalarType towerDtype = ScalarType.Float32, int? imageSize = null)
    {
        var model = ClipSegLoader.Load(modelDir);
        var adapted = adapterFile is null ? null : AdapterFile.Load(model, adapterFile);
        // Prediction needs no gradients; frozen weights let the model keep what it derives from
        // them (stacked q/k/v, resized position embeddings) from one batch to the next.
        foreach (var p in ((nn.Module?)adapted ?? model).parameters()) p.requires_grad = false;
        model.SetTowerDtype(towerDtype);
        return new ClipSegPredictor(model, ClipTokenizer.FromFolder(modelDir).Within(model.Config.Text.VocabSize, "text_config.vocab_size"), ImagePreprocessor.FromFolder(modelDir).WithSide(imageSize), adapted);
    }

    /// <summary>Releases the model (the adapted wrapper owns the base, so disposing it disposes both).</summary>
    public void Dispose()
    {
        if (Adapted is { } adapted) adapted.Dispose();
        else Model.Dispose();
    }

    public IModelFamily Family => ClipSegFamily.Instance;

    public IImageFeatures EncodeImages(Tensor pixels) => new Images(Adapted is { } adapted ? adapted.EncodeImage(pixels) : Model.EncodeImage(pixels));

    /// <summary>Text tower and decoder (with adapters when loaded); prompts padded to the longest, with the attention mask HF's CLIPSeg reads.</summary>
    public Tensor Decode(IImageFeatures images, IReadOnlyList<string>? prompts)
    {
        if (prompts is null) throw new ArgumentException("CLIPSeg reads a prompt per image.", nameof(prompts));
        using var scope = NewDisposeScope();
        var tokens = Tokenizer.EncodeBatch(prompts);
        var inputIds = tokens.IdsTensor();
        var attentionMask = tokens.MaskTensor();
        return DecodeTokens(((Images)images).Features, inputIds, attentionMask).MoveToOuterDisposeScope();
    }

    private Tensor DecodeTokens(VisionFeatures vision, Tensor inputIds, Tensor attentionMask)
    {
        if (Adapted is { } adapted)
        {
            using var text = adapted.EncodeText(inputIds, attentionMask);
            return adapted.Head(vision, text);
        }
        using var conditional = Model.EncodeText(inputIds, attentionMask);
        return Model.Decode(vision, conditional);
    }

    private sealed class Images(VisionFeatures features) : IImageFeatures
    {
        public VisionFeatures Features { get; } = features;

        public IImageFeatures Select(Tensor index) =>
            new Images(new VisionFeatures(Features.Activations.Select(a => a.index_select(0, index)).ToList(), Features.GridHeight, Features.GridWidth));

        public void Dispose() => Features.Dispose();
    }
}
