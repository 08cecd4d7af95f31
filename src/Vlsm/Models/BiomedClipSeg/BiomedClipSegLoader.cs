using Vlsm.Imaging;
using Vlsm.IO;
using Vlsm.Text;

namespace Vlsm.Models.BiomedClipSeg;

/// <summary>
/// BiomedCLIPSeg model folders: <c>config.json</c> (vlsm's layout, <c>model_type: biomedclipseg</c>),
/// <c>model.safetensors</c> (the reference's state dict: <c>biomedclip.*</c>, <c>decoder.*</c>) and
/// the PubMedBERT <c>vocab.txt</c>. <c>vlsm convert biomedclip</c> writes them.
/// </summary>
public static class BiomedClipSegLoader
{
    public const string WeightsFile = "model.safetensors";
    public const string ConfigFile = "config.json";

    /// <summary>BERT's <c>position_ids</c> buffer, persistent in transformers 4.27 checkpoints and recomputed here.</summary>
    public static bool IsIgnoredKey(string key) => key.EndsWith(".position_ids", StringComparison.Ordinal);

    public static BiomedClipSegConfig ReadConfig(string dir)
    {
        if (!Directory.Exists(dir))
            throw new VlsmException($"model folder {dir} does not exist; pass a BiomedCLIPSeg folder (config.json, model.safetensors, vocab.txt), e.g. one written by vlsm convert biomedclip.");
        string path = Path.Combine(dir, ConfigFile);
        var config = BiomedClipSegConfig.FromFile(path);
        var (shapes, counts) = config.WeightClaims();
        WeightShapes.Check(path, Path.Combine(dir, WeightsFile), shapes, counts);
        return config;
    }

    /// <summary>The folder's model in float32 and eval mode, weights loaded strictly.</summary>
    public static BiomedClipSegModel Load(string dir)
    {
        var config = ReadConfig(dir);
        string weights = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weights))
        {
            string hint = Directory.EnumerateFiles(dir).Any(f => f.EndsWith(".bin", StringComparison.Ordinal) || f.EndsWith(".ckpt", StringComparison.Ordinal) || f.EndsWith(".pth", StringComparison.Ordinal))
                ? " The folder has a PyTorch checkpoint; convert it with vlsm convert biomedclip." : "";
            throw new VlsmException($"{weights} not found.{hint}");
        }
        var model = new BiomedClipSegModel(config);
        try
        {
            using var file = SafetensorsFile.Open(weights);
            StateDictLoader.LoadStrict(model, file, IsIgnoredKey);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }

    /// <summary>The folder's WordPiece tokenizer (its vocab.txt), its ids bounded by <paramref name="config"/>'s vocabulary (as SAN's and CRIS's tokenizers take their model's config).</summary>
    public static WordPieceTokenizer Tokenizer(string dir, BiomedClipSegConfig config) =>
        WordPieceTokenizer.FromVocabFile(Path.Combine(dir, WordPieceTokenizer.VocabFileName)).Within(config.Text.VocabSize, "the BERT vocab_size");

    /// <summary>medvlsm's image transform: PIL bilinear resize to the ViT size (antialiased, aspect ratio not kept), /255, OpenAI mean and std.</summary>
    public static ImagePreprocessor Preprocessor(BiomedClipSegConfig config) =>
        ImagePreprocessor.Resized(config.Vision.ImageSize, config.Vision.ImageSize,
            config.ImageMean.Select(v => (float)v).ToArray(), config.ImageStd.Select(v => (float)v).ToArray());
}
