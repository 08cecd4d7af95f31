using TorchSharp;
using Vlsm.Imaging;
using Vlsm.Tensors;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.Cris;

/// <summary>Text-prompted segmentation with a loaded CRIS: CLIP-normalised images at img_size, prompts padded with the end id to word_len.</summary>
public sealed class CrisPredictor : ISegmenter
{
    public IModelFamily Family => CrisFamily.Instance;

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

    public static CrisPredictor FromFolder(string modelDir, string? checkpoint, CrisPadMask padMask, int? imageSize = null)
    {
        var model = CrisLoader.Load(modelDir, imageSize);
        try
        {
            if (checkpoint is not null) CrisCheckpointFile.Apply(model, checkpoint);
            model.PadMask = padMask;
            model.eval();
            return new CrisPredictor(model, CrisLoader.Tokenizer(modelDir, model.Config));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }


    public IImageFeatures EncodeImages(Tensor pixels) => new Images(Model.EncodeImage(pixels));

    public Tensor Decode(IImageFeatures images, IReadOnlyList<string>? prompts)
    {
        if (prompts is null) throw new ArgumentException("CRIS reads a prompt per image.", nameof(prompts));
        var tokens = Tokenize(Tokenizer, Model.Config, prompts);
        using var inputIds = tokens.IdsTensor();
        using var text = Model.EncodeText(inputIds);
        return Model.Head(((Images)images).Features, text);
    }

    public void Dispose() => Model.Dispose();

    private sealed class Images(CrisVisionFeatures features) : IImageFeatures
    {
        public CrisVisionFeatures Features { get; } = features;

        public IImageFeatures Select(Tensor index) => new Images(Features.Select(index));

        public void Dispose() => Features.Dispose();
    }
}
