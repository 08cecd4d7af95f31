using Vlsm.Imaging;
using Vlsm.IO;
using Vlsm.Models;

namespace Vlsm.Inference;

/// <summary>The size <c>NAME.probs.npy</c> is written at.</summary>
public enum ProbabilitiesSize
{
    /// <summary>The model's output resolution, as the network computes it.</summary>
    Model,

    /// <summary>The input image's size, resized bilinearly (half-pixel centres, as PyTorch's interpolate without align_corners).</summary>
    Original,
}

/// <summary>How <c>vlsm predict</c> writes a folder of predictions.</summary>
public sealed record PredictionOptions
{
    public required string OutputDirectory { get; init; }

    /// <summary>The prompts every image gets, one output set per prompt; empty for a text-free family.</summary>
    public IReadOnlyList<string> Prompts { get; init; } = [];

    public float Threshold { get; init; } = MaskRule.DefaultThreshold;

    /// <summary>Also write <c>NAME.probs.npy</c> (float32 sigmoid).</summary>
    public bool WriteProbabilities { get; init; }

    public ProbabilitiesSize ProbabilitiesSize { get; init; } = ProbabilitiesSize.Model;

    public int BatchSize { get; init; } = 8;

    /// <exception cref="VlsmException">A value is out of range; the message names the option.</exception>
    public void Validate()
    {
        if (BatchSize < 1) throw new VlsmException($"--batch-size must be at least 1, got {BatchSize}.");
        if (!(Threshold is >= 0f and <= 1f)) throw new VlsmException($"--threshold must be within [0, 1] (a probability), got {Threshold}.");
        if (Prompts.Any(string.IsNullOrWhiteSpace)) throw new VlsmException("--prompt is empty; give the text to segment, e.g. --prompt \"small pink polyp\".");
    }
}

/// <summary>What a prediction run wrote, and the images it could not read.</summary>
public sealed record PredictionReport(int Written, IReadOnlyList<string> Failures);

/// <summary>
/// Segments image files and folders with one model and one or more prompts, writing
/// <c>NAME.mask.png</c> (0/255 at the original size), <c>NAME.overlay.png</c> and, if asked,
/// <c>NAME.probs.npy</c> for each image; with several prompts, <c>NAME.pK.mask.png</c> and so on for
/// the K-th prompt (1-based). Planned first (every input found, names checked), then run batch by batch.
/// </summary>
/// <remarks>
/// Memory does not grow with the batch size: each image is decoded and shrunk to the model's input
/// on its own, and only images of at most <see cref="LargeImages.Pixels"/> pixels are kept for writing;
/// larger ones are decoded again, one at a time, when their outputs are written.
/// </remarks>
public sealed class PredictionJob
{
    public static readonly IReadOnlyList<string> ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"];

    /// <summary>The suffixes predict writes; files named so are its own outputs and never inputs.</summary>
    public static readonly IReadOnlyList<string> OutputSuffixes = [".mask.png", ".overlay.png", ".probs.npy"];

    private readonly ISegmenter segmenter;

    private PredictionJob(ISegmenter segmenter, IReadOnlyList<string> files, IReadOnlyList<string> skipped, PredictionOptions options)
    {
        this.segmenter = segmenter;
        Files = files;
        SkippedOutputs = skipped;
        Options = options;
    }

    public IReadOnlyList<string> Files { get; }

    /// <summary>Files in input folders that predict itself writes (<see cref="OutputSuffixes"/>), left out.</summary>
    public IReadOnlyList<string> SkippedOutputs { get; }

    public PredictionOptions Options { get; }

    /// <exception cref="VlsmException">An option is out of range, an input is missing or holds no image, two inputs would write the same outputs, or the prompts do not suit the model.</exception>
    public static PredictionJob Plan(ISegmenter segmenter, IEnumerable<string> inputs, PredictionOptions options)
    {
        options.Validate();
        if (segmenter.Family.TakesText && options.Prompts.Count == 0)
            throw new VlsmException($"{segmenter.Family.Name} models segment what a prompt names; give --prompt \"TEXT\".");
        if (!segmenter.Family.TakesText && options.Prompts.Count > 0)
            throw new VlsmException($"--prompt: {segmenter.Family.Name} models read no text; leave --prompt out.");
        var (files, skipped) = CollectImages(inputs);
        return new PredictionJob(segmenter, files, skipped, options);
    }

    /// <summary>The outputs' name stem of <paramref name="file"/> for prompt <paramref name="prompt"/> (0-based), without the folder.</summary>
    public string Stem(string file, int prompt) =>
        Path.GetFileNameWithoutExtension(file) + (Options.Prompts.Count > 1 ? $".p{prompt + 1}" : "");

    /// <param name="progress">Called with the number of images just handled.</param>
    public PredictionReport Run(Action<int>? progress = null, CancellationToken cancellation = default)
    {
        Directory.CreateDirectory(Options.OutputDirectory);
        var failures = new List<string>();
        int written = 0;
        var preprocessor = segmenter.Preprocessor;
        int plane = 3 * preprocessor.Width * preprocessor.Height;
        var prompts = Options.Prompts.Count > 0 ? Options.Prompts : [null!];
        foreach (var chunk in Files.Chunk(Options.BatchSize))
        {
            cancellation.ThrowIfCancellationRequested();
            // Decode and shrink one image at a time; keep small originals for writing.
            var decoded = new List<(string Path, int Width, int Height, RgbImage? Kept)>();
            var pixels = new List<float[]>();
            foreach (var f in chunk)
            {
                try
                {
                    var image = ImageCodec.DecodeRgb(f);
                    pixels.Add(preprocessor.ToChw(image));
                    bool keep = (long)image.Width * image.Height <= LargeImages.Pixels;
                    decoded.Add((f, image.Width, image.Height, keep ? image : null));
                    if (!keep) LargeImages.Collect();
                }
                catch (VlsmException e)
                {
                    failures.Add(e.Message);
                }
            }
            if (decoded.Count == 0)
            {
                progress?.Invoke(chunk.Length);
                continue;
            }
            var input = new float[(long)decoded.Count * plane];
            for (int i = 0; i < pixels.Count; i++) pixels[i].CopyTo(input, (long)i * plane);
            pixels.Clear();
            var pairs = new List<(int Image, string? Prompt)>();
            for (int i = 0; i < decoded.Count; i++)
                foreach (var p in prompts) pairs.Add((i, segmenter.Family.TakesText ? p : null));
            var predictions = segmenter.PredictPrepared(input, decoded.Count, pairs, decoded.Select(d => d.Path).ToList());
            input = null;
            for (int i = 0; i < decoded.Count; i++)
            {
                var (path, width, height, kept) = decoded[i];
                var image = kept ?? ImageCodec.DecodeRgb(path);
                if (kept is null) LargeImages.Collect(); // the decoder's buffers
                for (int k = 0; k < prompts.Count; k++)
                {
                    Write(path, k, image, predictions[i * prompts.Count + k]);
                    // This prompt's mask, overlay and encoder buffers; after the last prompt the collection below frees them with the image.
                    if (kept is null && k < prompts.Count - 1) LargeImages.Collect();
                }
                decoded[i] = default;
                if (kept is null) LargeImages.Collect();
                written++;
            }
            progress?.Invoke(chunk.Length);
        }
        return new PredictionReport(written, failures);
    }

    private void Write(string path, int prompt, RgbImage image, Prediction prediction)
    {
        string stem = Path.Combine(Options.OutputDirectory, Stem(path, prompt));
        // Probabilities first: their (native) tensor is freed before the mask and overlay exist.
        if (Options.WriteProbabilities)
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            var probabilities = Options.ProbabilitiesSize == ProbabilitiesSize.Original
                ? prediction.ProbabilitiesAt(image.Width, image.Height)
                : TorchSharp.torch.tensor(prediction.Probabilities, new long[] { prediction.Height, prediction.Width });
            Npy.Save(stem + ".probs.npy", probabilities);
        }
        var mask = prediction.MaskAt(image.Width, image.Height, Options.Threshold);
        ImageCodec.SavePng(stem + ".mask.png", mask);
        ImageCodec.SavePng(stem + ".overlay.png", Overlay.Prediction(image, mask));
    }

    private static (List<string> Files, List<string> Skipped) CollectImages(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        var skipped = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
            {
                var images = Directory.EnumerateFiles(input)
                    .Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal).ToList();
                // predict's own outputs (an --out equal to an input folder, a second run) are never inputs.
                var own = images.Where(IsOutput).ToList();
                skipped.AddRange(own);
                images.RemoveAll(IsOutput);
                if (images.Count == 0)
                    throw new VlsmException(own.Count > 0
                        ? $"{input}: folder holds only predict's outputs (*{string.Join(", *", OutputSuffixes)}), no images."
                        : $"{input}: folder has no images ({string.Join(", ", ImageExtensions)}).");
                files.AddRange(images);
            }
            else if (File.Exists(input))
            {
                files.Add(input);
            }
            else if (input.StartsWith('-'))
            {
                throw new VlsmException($"{input}: unknown option (and no such image file); see vlsm predict --help.");
            }
            else
            {
                throw new VlsmException($"{input}: no such image file or folder.");
            }
        }
        var clash = files.GroupBy(f => Path.GetFileNameWithoutExtension(f)).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
            throw new VlsmException($"{string.Join(" and ", clash.Take(2))} would both write {clash.Key}.mask.png; predict them into separate --out folders.");
        return (files, skipped);
    }

    private static bool IsOutput(string file) =>
        OutputSuffixes.Any(s => file.EndsWith(s, StringComparison.OrdinalIgnoreCase));
}
