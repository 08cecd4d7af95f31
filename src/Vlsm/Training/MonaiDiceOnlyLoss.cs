using TorchSharp;

namespace Vlsm.Training;

/// <summary>
/// The loss VLSM-Adapter's published runs computed: <c>monai.losses.DiceCELoss(lambda_dice=1.5,
/// lambda_ce=1.0)</c> on sigmoid(logits) as monai 1.1.0 (the version pinned then) evaluates it. With
/// one channel its cross-entropy term is <c>CrossEntropyLoss</c> over a single class, identically 0,
/// so the loss is 1.5 × the soft Dice of <see cref="DiceBceLoss"/>. monai 1.3 replaced that term by
/// BCE-with-logits, which is <see cref="DiceBceLoss"/>'s "reference" loss.
/// </summary>
public sealed class MonaiDiceOnlyLoss : ISegmentationLoss
{
    public const string LossName = "monai-1.1.0";

    public const string Description = "1.5 x Dice on sigmoid(logits): monai 1.1.0's DiceCELoss with one channel, whose cross-entropy term is 0 (what the VLSM-Adapter paper's runs trained with)";

    private readonly DiceBceLoss dice = new(BceInput.Reference, diceWeight: 1.5, bceWeight: 0);

    public string Name => LossName;

    public torch.Tensor Compute(torch.Tensor logits, torch.Tensor target) => dice.Compute(logits, target);
}
