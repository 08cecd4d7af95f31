using TorchSharp;

namespace Vlsm.Training;

/// <summary>A training loss on logits and a target mask of the same shape, family-neutral.</summary>
public interface ISegmentationLoss
{
    /// <summary>The name config.yaml uses (<c>loss:</c>).</summary>
    string Name { get; }

    /// <param name="logits">Network output, (B, H, W) for one channel.</param>
    /// <param name="target">The mask at the logits' size, values in [0, 1].</param>
    torch.Tensor Compute(torch.Tensor logits, torch.Tensor target);
}

/// <summary>The losses <c>loss:</c> may name. Families' presets pick the reference's.</summary>
public static class SegmentationLosses
{
    private static readonly Dictionary<string, (string Description, Func<ISegmentationLoss> Create)> Known = new(StringComparer.Ordinal)
    {
        ["reference"] = ("VLSM-Adapter's 1.5 x Dice + 1.0 x BCE, with sigmoid(logits) fed to BCE-with-logits as the reference does", () => new DiceBceLoss(BceInput.Reference)),
        ["dice-bce"] = ("1.5 x Dice + 1.0 x BCE-with-logits on the logits", () => new DiceBceLoss(BceInput.Logits)),
        [MonaiDiceOnlyLoss.LossName] = (MonaiDiceOnlyLoss.Description, () => new MonaiDiceOnlyLoss()),
        [DiceCeLoss.ReferenceName] = ("medvlsm's DiceCE (monai 1.1, lambda_dice 1.0, lambda_ce 0.2) on sigmoid(logits); its cross-entropy over one channel is 0, as in the reference", () => new DiceCeLoss(CeTerm.Reference)),
        [DiceCeLoss.BceName] = ("1.0 x Dice + 0.2 x BCE-with-logits on the logits (DiceCE with the cross-entropy term working)", () => new DiceCeLoss(CeTerm.Bce)),
        [TunedDiceLoss.ReferenceName] = ("medvlsm's TunedDiceLoss (its UNet/UNet++/DeepLabV3+ loss): soft Dice of each mask plane holding an exact 1, mean per sample, then over the batch; NaN when a sample's mask is empty", () => new TunedDiceLoss(skipEmpty: false)),
        [TunedDiceLoss.FixedName] = ("tuned-dice with samples whose mask is empty left out of the batch mean instead of making it NaN (0 for a batch of empty masks)", () => new TunedDiceLoss(skipEmpty: true)),
    };

    public static IEnumerable<string> Names => Known.Keys;

    /// <exception cref="VlsmException">No loss has that name.</exception>
    public static ISegmentationLoss Create(string name) => Known.TryGetValue(name, out var entry)
        ? entry.Create()
        : throw new VlsmException($"loss \"{name}\" is not one of {string.Join(", ", Known.Keys)}.");

    public static string Describe(string name) => Known.TryGetValue(name, out var entry) ? entry.Description : name;
}
