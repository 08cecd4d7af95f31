using TorchSharp;
using Vlsm.Imaging;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.San;

/// <summary>
/// Text-prompted segmentation with a loaded SAN: CLIP-normalised images at the configured size
/// (640 px in the benchmark); the image pass (CLIP, side network, rec head) is done once per
/// image, and each prompt only scores the query masks.
/// </summary>
public sealed class SanPredictor : ISegmenter
{
    public SanPredictor(SanModel model, ClipTokenizer tokenizer)
    {
        Model = model;
        Tokenizer = tokenizer;
        Preprocessor = PreprocessorFor(model.Config);
    }

    public IModelFamily Family => SanFamily.Instance;
    public SanModel Model { get; }
    public ClipTokenizer Tokenizer { get; }
    public ImagePreprocessor Preprocessor { get; }

    /// <summary>The benchmark's input: resize to image_size, CLIP mean and std.</summary>
    public static ImagePreprocessor PreprocessorFor(SanConfig config) =>
        ImagePreprocessor.Resized(config.ImageWidth, config.ImageHeight, config.ImageMean.Select(v => (float)v).ToArray(), config.ImageStd.Select(v => (float)v).ToArray());

    public static SanPredictor FromFolder(string modelDir, string? weights, int? imageSize = null)
    {
        var model = SanLoader.Load(modelDir, imageSize);
        try
        {
            if (weights is not null) SanWeightsFile.Apply(model, weights);
            model.eval();
            return new SanPredictor(model, SanLoader.Tokenizer(modelDir, model.Config));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public IImageFeatures EncodeImages(Tensor pixels)
    {
        using var clip = Model.EncodeClip(pixels);
        return new Images(Model.Propose(pixels, clip));
    }

    public Tensor Decode(IImageFeatures images, IReadOnlyList<string>? prompts)
    {
        if (prompts is null) throw new ArgumentException("SAN reads a prompt per image.", nameof(prompts));
        using var ids = SanLoader.InputIds(Tokenizer, Model.Config, prompts);
        using var text = Model.EncodeText(ids);
        return SanModel.Combine(((Images)images).Proposals, text);
    }

    public void Dispose() => Model.Dispose();

    private sealed class Images(SanMaskProposals proposals) : IImageFeatures
    {
        public SanMaskProposals Proposals { get; } = proposals;

        public IImageFeatures Select(Tensor index) => new Images(Proposals.Select(index));

        public void Dispose() => Proposals.Dispose();
    }
}
