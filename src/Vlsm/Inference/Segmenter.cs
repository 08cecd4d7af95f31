using TorchSharp;
using Vlsm.Imaging;
using Vlsm.Models.Cris;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Inference;

/// <summary>Image features a segmenter computes once per batch and decodes with one or more prompts.</summary>
public interface IImageFeatures : IDisposable
{
    /// <summary>The features of the images at <paramref name="index"/> (a 1-d int64 tensor), in that order.</summary>
    IImageFeatures Select(Tensor index);
}

/// <summary>A loaded text-prompted segmenter (CLIPSeg or CRIS, with any trained weights applied), as predict and eval use it.</summary>
public interface ISegmenter
{
    ImagePreprocessor Preprocessor { get; }

    /// <summary>Token ids (and attention mask) in the form this model reads them.</summary>
    TokenBatch Tokenize(IReadOnlyList<string> prompts);

    IImageFeatures EncodeImages(Tensor pixels);

    /// <summary>Logits (B, h, w) for the images of <paramref name="images"/> with one prompt each.</summary>
    Tensor Decode(IImageFeatures images, Tensor inputIds, Tensor attentionMask);
}

/// <summary>Opening a model folder of either kind, and prediction on top of <see cref="ISegmenter"/>.</summary>
public static class Segmenters
{
    /// <summary>
    /// The model in <paramref name="modelDir"/> (a CRIS folder when its config.json has a <c>cris</c>
    /// object, else an HF CLIPSeg folder) with the trained weights of <paramref name="checkpoint"/>.
    /// </summary>
    /// <param name="padMask">CRIS's padding mask; null for the default. Refused for CLIPSeg.</param>
    /// <param name="towerDtype">CLIPSeg: the dtype its CLIP towers compute in (bf16 for speed); CRIS computes in float32 only.</param>
    public static ISegmenter FromFolder(string modelDir, string? checkpoint = null, CrisPadMask? padMask = null, ScalarType towerDtype = ScalarType.Float32)
    {
        if (CrisLoader.IsCrisFolder(modelDir))
        {
            if (towerDtype != ScalarType.Float32)
                throw new VlsmException($"{modelDir} is a CRIS model, which computes in fp32 only; use --precision fp32.");
            return CrisPredictor.FromFolder(modelDir, checkpoint, padMask ?? CrisPadMask.Reference);
        }
        if (padMask is not null) throw new VlsmException($"--cris-pad-mask applies to CRIS models; {modelDir} is a CLIPSeg model.");
        return ClipSegPredictor.FromFolder(modelDir, checkpoint, towerDtype);
    }

    /// <summary>Parses <c>--cris-pad-mask</c>: reference or fixed.</summary>
    public static CrisPadMask? ParsePadMask(string? text) => text switch
    {
        null => null,
        "reference" => CrisPadMask.Reference,
        "fixed" => CrisPadMask.Fixed,
        _ => throw new VlsmException($"--cris-pad-mask \"{text}\" is not one of reference (mask ids equal to 0, as the reference does), fixed (mask the padding)."),
    };

    /// <summary>One forward pass over a batch; every image gets its prompt (one prompt per image).</summary>
    public static IReadOnlyList<Prediction> Predict(this ISegmenter segmenter, IReadOnlyList<RgbImage> images, IReadOnlyList<string> prompts)
    {
        if (images.Count != prompts.Count)
            throw new ArgumentException($"{images.Count} images but {prompts.Count} prompts.");
        if (images.Count == 0) return Array.Empty<Prediction>();
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var tokens = segmenter.Tokenize(prompts);
        var ids = tensor(tokens.InputIds, new long[] { tokens.BatchSize, tokens.Length });
        var mask = tensor(tokens.AttentionMask, new long[] { tokens.BatchSize, tokens.Length });
        var preprocessor = segmenter.Preprocessor;
        var pixels = tensor(preprocessor.ToChwBatch(images), new long[] { images.Count, 3, preprocessor.Height, preprocessor.Width });
        using var features = segmenter.EncodeImages(pixels);
        var probs = segmenter.Decode(features, ids, mask).sigmoid().contiguous();
        int h = (int)probs.shape[1], w = (int)probs.shape[2];
        var all = probs.data<float>().ToArray();
        var result = new Prediction[images.Count];
        for (int i = 0; i < images.Count; i++)
            result[i] = new Prediction(all.AsSpan(i * h * w, h * w).ToArray(), w, h);
        return result;
    }
}

/// <summary>Text-prompted segmentation with a loaded CRIS: CLIP-normalised images at img_size, prompts padded with the end id to word_len.</summary>
public sealed class CrisPredictor : ISegmenter
{
    public CrisPredictor(CrisModel model, ClipTokenizer tokenizer)
    {
        Model = model;
        Tokenizer = tokenizer;
        Preprocessor = PreprocessorFor(model.Config);
    }

    public CrisModel Model { get; }
    public ClipTokenizer Tokenizer { get; }
    public ImagePreprocessor Preprocessor { get; }

    /// <summary>The benchmarks' CRIS input: resize to img_size, CLIP mean and std.</summary>
    public static ImagePreprocessor PreprocessorFor(CrisConfig config) =>
        ImagePreprocessor.Resized(config.ImgSize, config.ImgSize, config.ImageMean.Select(v => (float)v).ToArray(), config.ImageStd.Select(v => (float)v).ToArray());

    /// <summary>The benchmarks' tokenization: start, text, end, padded with the end id to word_len.</summary>
    public static TokenBatch Tokenize(ClipTokenizer tokenizer, CrisConfig config, IReadOnlyList<string> prompts) =>
        tokenizer.EncodeBatch(prompts, padTo: config.WordLen, maxLength: config.WordLen);

    public static CrisPredictor FromFolder(string modelDir, string? checkpoint, CrisPadMask padMask)
    {
        var model = CrisLoader.Load(modelDir);
        try
        {
            if (checkpoint is not null) CrisCheckpointFile.Apply(model, checkpoint);
            model.PadMask = padMask;
            model.eval();
            return new CrisPredictor(model, CrisLoader.Tokenizer(modelDir));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public TokenBatch Tokenize(IReadOnlyList<string> prompts) => Tokenize(Tokenizer, Model.Config, prompts);

    public IImageFeatures EncodeImages(Tensor pixels) => new Images(Model.EncodeImage(pixels));

    public Tensor Decode(IImageFeatures images, Tensor inputIds, Tensor attentionMask)
    {
        using var text = Model.EncodeText(inputIds);
        return Model.Head(((Images)images).Features, text);
    }

    private sealed class Images(CrisVisionFeatures features) : IImageFeatures
    {
        public CrisVisionFeatures Features { get; } = features;

        public IImageFeatures Select(Tensor index) => new Images(Features.Select(index));

        public void Dispose() => Features.Dispose();
    }
}
