using TorchSharp;
using Vlsm.Adapters;
using Vlsm.Imaging;
using Vlsm.Models.ClipSeg;
using Vlsm.Text;
using static TorchSharp.torch;

namespace Vlsm.Inference;

/// <summary>Sigmoid probabilities at the model's output resolution for one image.</summary>
public sealed record Prediction(float[] Probabilities, int Width, int Height)
{
    /// <summary>Binary mask (0/255) at the original image size: threshold at model resolution, then nearest-neighbour resize.</summary>
    public GrayImage MaskAt(int width, int height, float threshold)
    {
        var binary = new float[Probabilities.Length];
        for (int i = 0; i < binary.Length; i++) binary[i] = Probabilities[i] > threshold ? 255f : 0f;
        var resized = Resize.ResizeNearest(binary, Width, Height, width, height);
        var pixels = new byte[resized.Length];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)resized[i];
        return new GrayImage(width, height, pixels);
    }
}

/// <summary>Text-prompted segmentation with a loaded CLIPSeg: images in, probabilities out.</summary>
public sealed class ClipSegPredictor
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

    /// <param name="towerDtype">BFloat16 runs the CLIP towers in bf16 (faster, logits within about 1e-2); the decoder and adapters stay float32.</param>
    public static ClipSegPredictor FromFolder(string modelDir, string? adapterFile = null, ScalarType towerDtype = ScalarType.Float32)
    {
        var model = ClipSegLoader.Load(modelDir);
        var adapted = adapterFile is null ? null : AdapterFile.Load(model, adapterFile);
        // Prediction needs no gradients; frozen weights let the model keep what it derives from
        // them (stacked q/k/v, resized position embeddings) from one batch to the next.
        foreach (var p in ((nn.Module?)adapted ?? model).parameters()) p.requires_grad = false;
        model.SetTowerDtype(towerDtype);
        return new ClipSegPredictor(model, ClipTokenizer.FromFolder(modelDir), ImagePreprocessor.FromFolder(modelDir), adapted);
    }

    /// <summary>One forward pass over a batch; every image gets its prompt (one prompt per image).</summary>
    public IReadOnlyList<Prediction> Predict(IReadOnlyList<RgbImage> images, IReadOnlyList<string> prompts)
    {
        if (images.Count != prompts.Count)
            throw new ArgumentException($"{images.Count} images but {prompts.Count} prompts.");
        if (images.Count == 0) return Array.Empty<Prediction>();
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var tokens = Tokenizer.EncodeBatch(prompts);
        var ids = tensor(tokens.InputIds, new long[] { tokens.BatchSize, tokens.Length });
        var mask = tensor(tokens.AttentionMask, new long[] { tokens.BatchSize, tokens.Length });
        var chw = Preprocessor.ToChwBatch(images);
        var pixels = tensor(chw, new long[] { images.Count, 3, Preprocessor.Height, Preprocessor.Width });
        var logits = Adapted is null ? Model.Forward(pixels, ids, mask) : Adapted.Forward(pixels, ids, mask);
        var probs = logits.sigmoid().contiguous();
        int h = (int)probs.shape[1], w = (int)probs.shape[2];
        var all = probs.data<float>().ToArray();
        var result = new Prediction[images.Count];
        for (int i = 0; i < images.Count; i++)
            result[i] = new Prediction(all.AsSpan(i * h * w, h * w).ToArray(), w, h);
        return result;
    }
}
