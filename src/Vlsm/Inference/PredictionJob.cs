using Vlsm.Imaging;
using Vlsm.IO;
using Vlsm.Models;

namespace Vlsm.Inference;

/// <summary>How <c>vlsm predict</c> writes a folder of predictions.</summary>
public sealed record PredictionOptions
{
    public required string OutputDirectory { get; init; }

    /// <summary>The prompt every image gets; null for a text-free family.</summary>
    public string? Prompt { get; init; }

    public float Threshold { get; init; } = MaskRule.DefaultThreshold;

    /// <summary>Also write <c>NAME.probs.npy</c> (float32 sigmoid at the model's resolution).</summary>
    public bool WriteProbabilities { get; init; }

    public int BatchSize { get; init; } = 8;

    /// <exception cref="VlsmException">A value is out of range; the message names the option.</exception>
    public void Validate()
    {
        if (BatchSize < 1) throw new VlsmException($"--batch-size must be at least 1, got {BatchSize}.");
        if (!(Threshold is >= 0f and <= 1f)) throw new VlsmException($"--threshold must be within [0, 1] (a probability), got {Threshold}.");
    }
}

/// <summary>What a prediction run wrote, and the images it could not read.</summary>
public sealed record PredictionReport(int Written, IReadOnlyList<string> Failures);

/// <summary>
/// Segments image files and folders with one model and prompt, writing <c>NAME.mask.png</c> (0/255 at
/// the original size), <c>NAME.overlay.png</c> and, if asked, <c>NAME.probs.npy</c> for each.
/// Planned first (every input found, names checked), then run batch by batch.
/// </summary>
public sealed class PredictionJob
{
    public static readonly IReadOnlyList<string> ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"];

    private readonly ISegmenter segmenter;

    private PredictionJob(ISegmenter segmenter, IReadOnlyList<string> files, PredictionOptions options)
    {
        this.segmenter = segmenter;
        Files = files;
        Options = options;
    }

    public IReadOnlyList<string> Files { get; }
    public PredictionOptions Options { get; }

    /// <exception cref="VlsmException">An option is out of range, an input is missing or holds no image, two inputs would write the same outputs, or the prompt does not suit the model.</exception>
    public static PredictionJob Plan(ISegmenter segmenter, IEnumerable<string> inputs, PredictionOptions options)
    {
        options.Validate();
        if (segmenter.Family.TakesText && string.IsNullOrEmpty(options.Prompt))
            throw new VlsmException($"{segmenter.Family.Name} models segment what a prompt names; give --prompt \"TEXT\".");
        if (!segmenter.Family.TakesText && options.Prompt is not null)
            throw new VlsmException($"--prompt: {segmenter.Family.Name} models read no text; leave --prompt out.");
        return new PredictionJob(segmenter, CollectImages(inputs), options);
    }

    /// <param name="progress">Called with the number of images just handled.</param>
    public PredictionReport Run(Action<int>? progress = null, CancellationToken cancellation = default)
    {
        Directory.CreateDirectory(Options.OutputDirectory);
        var failures = new List<string>();
        int written = 0;
        foreach (var chunk in Files.Chunk(Options.BatchSize))
        {
            cancellation.ThrowIfCancellationRequested();
            var images = new List<(string Path, RgbImage Image)>();
            foreach (var f in chunk)
            {
                try
                {
                    images.Add((f, ImageCodec.DecodeRgb(f)));
                }
                catch (VlsmException e)
                {
                    failures.Add(e.Message);
                }
            }
            var prompts = Options.Prompt is { } text ? images.Select(_ => text).ToList() : null;
            var predictions = segmenter.Predict(images.Select(i => i.Image).ToList(), prompts);
            for (int i = 0; i < images.Count; i++)
            {
                var (path, image) = images[i];
                string stem = Path.Combine(Options.OutputDirectory, Path.GetFileNameWithoutExtension(path));
                var mask = predictions[i].MaskAt(image.Width, image.Height, Options.Threshold);
                ImageCodec.SavePng(stem + ".mask.png", mask);
                ImageCodec.SavePng(stem + ".overlay.png", Overlay.Prediction(image, mask));
                if (Options.WriteProbabilities)
                {
                    var p = predictions[i];
                    using var t = TorchSharp.torch.tensor(p.Probabilities, new long[] { p.Height, p.Width });
                    Npy.Save(stem + ".probs.npy", t);
                }
                written++;
            }
            progress?.Invoke(chunk.Length);
        }
        return new PredictionReport(written, failures);
    }

    private static List<string> CollectImages(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
            {
                var found = Directory.EnumerateFiles(input)
                    .Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal).ToList();
                if (found.Count == 0) throw new VlsmException($"{input}: folder has no images ({string.Join(", ", ImageExtensions)}).");
                files.AddRange(found);
            }
            else if (File.Exists(input))
            {
                files.Add(input);
            }
            else
            {
                throw new VlsmException($"{input}: no such image file or folder.");
            }
        }
        var clash = files.GroupBy(f => Path.GetFileNameWithoutExtension(f)).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
            throw new VlsmException($"{string.Join(" and ", clash.Take(2))} would both write {clash.Key}.mask.png; predict them into separate --out folders.");
        return files;
    }
}
