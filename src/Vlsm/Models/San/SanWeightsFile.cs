using System.Globalization;
using TorchSharp;
using Vlsm.IO;

namespace Vlsm.Models.San;

/// <summary>
/// Trained SAN weights as safetensors, under SAN's state-dict names: the tensors that trained
/// (<see cref="SanTrainables.ReceivesGradient"/>: side network parts, and with
/// <c>san_gradients: original</c> the attention-bias MLP and CLIP's positional embedding). Metadata
/// records the format, the gradient flow, the trainable count and the architecture's fingerprint.
/// </summary>
public static class SanWeightsFile
{
    public const string Format = "vlsm-san";
    private const string GradientsKey = "san_gradients";

    public static IEnumerable<(string Name, TorchSharp.Modules.Parameter Parameter)> Trained(SanModel model, SanGradients gradients) =>
        model.named_parameters().Where(p => SanTrainables.ReceivesGradient(model.Config, gradients, p.name));

    public static long TrainableParameterCount(SanModel model, SanGradients gradients) => Trained(model, gradients).Sum(p => p.Parameter.numel());

    public static void Save(string path, SanModel model, SanGradients gradients, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["kind"] = FineTuneSpec.ModeName(FineTuneMode.Full),
            [GradientsKey] = SanTrainables.Name(gradients),
            ["trainable_parameters"] = TrainableParameterCount(model, gradients).ToString(CultureInfo.InvariantCulture),
            ["base"] = model.Config.Fingerprint,
        };
        if (extraMetadata is not null) foreach (var (k, v) in extraMetadata) metadata[k] = v;
        SafetensorsWriter.Save(path, Trained(model, gradients).Select(p => new KeyValuePair<string, torch.Tensor>(p.Name, p.Parameter)), metadata);
    }

    /// <summary>Copies a trained-weights file into <paramref name="model"/>; returns the gradient flow it was trained with.</summary>
    /// <exception cref="VlsmException">The file was trained for another architecture, or lacks or adds tensors (named).</exception>
    public static SanGradients Apply(SanModel model, string path)
    {
        using var file = SafetensorsFile.Open(path);
        if (file.Metadata.TryGetValue("format", out var format) && format != Format)
            throw new VlsmException($"{path}: a \"{format}\" file, not SAN trained weights ({Format}).");
        if (file.Metadata.TryGetValue("base", out var fingerprint) && fingerprint != model.Config.Fingerprint)
            throw new VlsmException($"{path}: trained for a SAN of another shape ({fingerprint}); this model is {model.Config.Fingerprint}.");
        SanGradients gradients;
        if (file.Metadata.TryGetValue(GradientsKey, out var flow))
        {
            try
            {
                gradients = SanTrainables.Parse(flow);
            }
            catch (VlsmException e)
            {
                throw new VlsmException($"{path}: metadata \"{GradientsKey}\": {e.Message}", e);
            }
        }
        else if (file.Names.Count > 0 && file.Names.All(n => n.StartsWith(SanLoader.ClipPrefix, StringComparison.Ordinal) || SanTrainables.IsSide(n)))
        {
            // Weights saved without our metadata (e.g. from the Python reference): the keys say which flow trained them.
            gradients = file.Names.Any(n => SanTrainables.ReceivesGradient(model.Config, SanGradients.Original, n) && !SanTrainables.ReceivesGradient(model.Config, SanGradients.Reference, n))
                ? SanGradients.Original : SanGradients.Reference;
        }
        else
        {
            throw new VlsmException($"{path}: neither metadata \"{GradientsKey}\" nor SAN keys (side_adapter_network.*, clip_model.*); not SAN trained weights.");
        }
        var required = Trained(model, gradients).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        StateDictLoader.LoadSubset(model, file, SanLoader.IsAlias, required);
        return gradients;
    }
}
