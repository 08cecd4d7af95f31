using TorchSharp;
using Vlsm.Imaging;
using static TorchSharp.torch;

namespace Vlsm.Models.Smp;

/// <summary>How an smp model's images are sized (<see cref="SmpFamily.InputOption"/>).</summary>
public enum SmpInput
{
    /// <summary>medvlsm's <c>Resize(img_size)</c>: shorter side to img_size, aspect kept; images that do not come out square are refused.</summary>
    Reference,

    /// <summary>Resize to img_size x img_size, aspect not kept: every image is taken.</summary>
    Square,
}

/// <summary>Image-only segmentation with a loaded smp model: no prompt, logits of the foreground channel.</summary>
public sealed class SmpPredictor : ISegmenter
{
    public SmpPredictor(SmpModel model, IModelFamily family, SmpInput input, ComputePrecision precision = ComputePrecision.Fp32)
    {
        Model = model;
        Family = family;
        Preprocessor = PreprocessorFor(model.Config, input);
        Precision = precision;
        if (precision == ComputePrecision.Bf16) model.UseBf16Encoder();
    }

    public SmpModel Model { get; }
    public IModelFamily Family { get; }
    public ImagePreprocessor Preprocessor { get; }
    public ComputePrecision Precision { get; }

    /// <summary>
    /// medvlsm's image transform (experiment yaml): <c>Resize(img_size)</c>, <c>ToTensor</c>,
    /// <c>Normalize</c> with the config's (ImageNet) mean and std; or a square resize.
    /// </summary>
    public static ImagePreprocessor PreprocessorFor(SmpConfig config, SmpInput input)
    {
        var mean = config.ImageMean.Select(v => (float)v).ToArray();
        var std = config.ImageStd.Select(v => (float)v).ToArray();
        return input == SmpInput.Square
            ? ImagePreprocessor.Resized(config.ImgSize, config.ImgSize, mean, std)
            : ImagePreprocessor.ShorterSide(config.ImgSize, mean, std,
                $"batches hold one size and {SmpConfig.SmpClass(config.Architecture)} needs sides that are multiples of {config.SizeDivisor}, so the reference cannot take it either. "
                + $"Use {SmpFamily.InputFlag} square (resize every image to {config.ImgSize}x{config.ImgSize}), or crop the images square.");
    }

    public static SmpPredictor FromFolder(string modelDir, string? checkpoint, IModelFamily family, SmpInput input, ComputePrecision precision, int? imageSize = null)
    {
        var model = SmpLoader.Load(modelDir, imageSize);
        try
        {
            if (checkpoint is not null) SmpCheckpointFile.Apply(model, checkpoint, family.Name);
            model.eval();
            return new SmpPredictor(model, family, input, precision);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Runs the whole network: an image-only model's output does not depend on a prompt, so there is nothing left for <see cref="Decode"/>.</summary>
    public IImageFeatures EncodeImages(Tensor pixels) => new Logits(Model.ForegroundLogits(pixels));

    /// <summary>Logits (B, H, W) of the foreground channel (<see cref="SmpModel.ForegroundChannel"/>).</summary>
    public Tensor Decode(IImageFeatures images, IReadOnlyList<string>? prompts)
    {
        if (prompts is not null) throw new ArgumentException($"{Family.Name} models read no text; pass no prompts.", nameof(prompts));
        return ((Logits)images).Values.alias();
    }

    public void Dispose() => Model.Dispose();

    private sealed class Logits(Tensor values) : IImageFeatures
    {
        public Tensor Values { get; } = values;

        public IImageFeatures Select(Tensor index) => new Logits(Values.index_select(0, index));

        public void Dispose() => Values.Dispose();
    }
}
