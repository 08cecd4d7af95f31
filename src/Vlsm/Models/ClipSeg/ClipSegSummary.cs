using TorchSharp;

namespace Vlsm.Models.ClipSeg;

/// <summary>Parameter counts per component, as <c>vlsm info</c> reports them.</summary>
public sealed record ClipSegSummary(
    ClipSegConfig Config,
    long TotalParameters,
    long TextParameters,
    long VisionParameters,
    long ProjectionParameters,
    long DecoderParameters)
{
    public static ClipSegSummary Of(ClipSegModel model)
    {
        static long Count(torch.nn.Module m) => m.parameters().Sum(p => p.numel());
        long text = Count(model.Clip.TextModel);
        long vision = Count(model.Clip.VisionModel);
        long clip = Count(model.Clip);
        return new ClipSegSummary(model.Config, Count(model), text, vision, clip - text - vision, Count(model.Decoder));
    }
}
