using TorchSharp;
using Vlsm.Imaging;
using Vlsm.Models.ClipSeg;
using Vlsm.Tensors;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Models.BiomedClipSeg;

/// <summary>Text-prompted segmentation with a loaded BiomedCLIPSeg (trained weights applied, frozen).</summary>
public sealed class BiomedClipSegPredictor : ISegmenter
{
    public BiomedClipSegPredictor(AdaptedBiomedClipSeg model, WordPieceTokenizer tokenizer)
    {
        Model = model;
        Tokenizer = tokenizer;
        Preprocessor = BiomedClipSegLoader.Preprocessor(model.Config);
    }

    public IModelFamily Family => BiomedClipSegFamily.Instance;
    public AdaptedBiomedClipSeg Model { get; }
    public WordPieceTokenizer Tokenizer { get; }
    public ImagePreprocessor Preprocessor { get; }

    /// <param name="weights">A trained-weights file (decoder, adapters or full), or null for the folder's own weights.</param>
    public static BiomedClipSegPredictor FromFolder(string dir, string? weights, ModelRequest request)
    {
        var baseModel = BiomedClipSegLoader.Load(dir);
        AdaptedBiomedClipSeg adapted;
        try
        {
            BiomedClipSegFamily.ApplyOptions(baseModel, request);
            adapted = weights is null ? new AdaptedBiomedClipSeg(baseModel, FineTuneSpec.Create(FineTuneMode.Decoder)) : BiomedClipSegWeightsFile.Load(baseModel, weights);
        }
        catch
        {
            baseModel.Dispose();
            throw;
        }
        try
        {
            foreach (var p in adapted.parameters()) p.requires_grad = false;
            adapted.eval();
            baseModel.SetTowerDtype(ComputePrecisions.Dtype(request.Precision));
            return new BiomedClipSegPredictor(adapted, BiomedClipSegLoader.Tokenizer(dir, baseModel.Config));
        }
        catch
        {
            adapted.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Prompts as medvlsm tokenizes them, padded to the longest prompt of the batch rather than to
    /// the context length: padded keys are masked, so [CLS]'s state, and with it every logit, is the same.
    /// </summary>
    public static (Tensor Ids, Tensor Mask) Tokenize(WordPieceTokenizer tokenizer, BiomedClipSegConfig config, IReadOnlyList<string> prompts)
    {
        var tokens = tokenizer.EncodeBatch(prompts, config.ContextLength);
        return (tokens.IdsTensor(), tokens.MaskTensor());
    }

    public IImageFeatures EncodeImages(Tensor pixels) => new Images(Model.EncodeImage(pixels));

    public Tensor Decode(IImageFeatures images, IReadOnlyList<string>? prompts)
    {
        if (prompts is null) throw new ArgumentException("BiomedCLIPSeg reads a prompt per image.", nameof(prompts));
        using var scope = NewDisposeScope();
        var (ids, mask) = Tokenize(Tokenizer, Model.Config, prompts);
        var conditional = Model.EncodeText(ids, mask);
        return Model.Head(((Images)images).Features, conditional).MoveToOuterDisposeScope();
    }

    public void Dispose() => Model.Dispose();

    private sealed class Images(VisionFeatures features) : IImageFeatures
    {
        public VisionFeatures Features { get; } = features;

        public IImageFeatures Select(Tensor index) =>
            new Images(new VisionFeatures(Features.Activations.Select(a => a.index_select(0, index)).ToList(), Features.GridHeight, Features.GridWidth));

        public void Dispose() => Features.Dispose();
    }
}
