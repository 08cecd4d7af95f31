using TorchSharp;
using Vlsm.Tensors;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Vlsm.Models.Smp;

#pragma warning disable IDE1006 // field names are smp's state-dict keys

/// <summary>
/// smp's <c>SegmentationHead</c>: a convolution with bias ("0"; 3x3 for Unet and Unet++, 1x1 for
/// DeepLabV3+), then DeepLabV3+'s bilinear upsampling with align_corners; no activation (logits).
/// </summary>
internal sealed class SegmentationHead : SequentialBlock
{
    private readonly SafeConv2d conv;
    private readonly int upsampling;

    public SegmentationHead(int inChannels, int classes, int kernel, int upsampling) : base(nameof(SegmentationHead))
    {
        conv = new SafeConv2d(inChannels, classes, kernel, padding: kernel / 2, bias: true);
        this.upsampling = upsampling;
        Child(0, conv);
    }

    public override Tensor forward(Tensor x)
    {
        var y = conv.call(x);
        if (upsampling == 1) return y;
        using (y) return functional.interpolate(y, [y.shape[2] * upsampling, y.shape[3] * upsampling], mode: InterpolationMode.Bilinear, align_corners: true);
    }
}

/// <summary>What one forward pass computed, for verification: encoder features, decoder output, logits and named decoder intermediates.</summary>
public sealed class SmpOutputs : IDisposable
{
    internal SmpOutputs(Tensor[] features, Tensor decoderOutput, Tensor logits, Dictionary<string, Tensor> intermediates)
    {
        Features = features;
        DecoderOutput = decoderOutput;
        Logits = logits;
        Intermediates = intermediates;
    }

    public IReadOnlyList<Tensor> Features { get; }
    public Tensor DecoderOutput { get; }

    /// <summary>(B, classes, H, W).</summary>
    public Tensor Logits { get; }

    /// <summary>By smp module path (<c>decoder.blocks.0</c>, <c>decoder.aspp.0.convs.4</c>, ...).</summary>
    public IReadOnlyDictionary<string, Tensor> Intermediates { get; }

    public void Dispose()
    {
        foreach (var t in Features) t.Dispose();
        DecoderOutput.Dispose();
        Logits.Dispose();
        foreach (var t in Intermediates.Values) t.Dispose();
    }
}

/// <summary>
/// smp's <c>Unet</c>, <c>UnetPlusPlus</c> or <c>DeepLabV3Plus</c> with a ResNet encoder, as medvlsm
/// wraps it (<c>src/models/{unet,unetpp,deeplabv3plus}.py</c>): pixels in, logits out, no text.
/// Parameter names equal smp's state-dict keys (<c>encoder.*</c>, <c>decoder.*</c>,
/// <c>segmentation_head.*</c>).
/// </summary>
public sealed class SmpModel : nn.Module
{
    private readonly ResNetEncoder encoder;
    private readonly nn.Module decoder;
    private readonly SegmentationHead segmentation_head;

    public SmpModel(SmpConfig config) : base(nameof(SmpModel))
    {
        Config = config.Checked();
        var channels = config.Encoder.OutChannels(config.InChannels);
        encoder = new ResNetEncoder(config.Encoder, config.InChannels, config.IsDeepLab ? config.OutputStride : 32);
        decoder = config.Architecture switch
        {
            SmpArchitecture.Unet => new UnetDecoder(channels, config.DecoderChannels),
            SmpArchitecture.UnetPlusPlus => new UnetPlusPlusDecoder(channels, config.DecoderChannels),
            _ => new DeepLabV3PlusDecoder(channels, config.DeepLabChannels, config.AtrousRates, config.OutputStride),
        };
        segmentation_head = config.IsDeepLab
            ? new SegmentationHead(config.DeepLabChannels, config.Classes, 1, config.Upsampling)
            : new SegmentationHead(config.DecoderChannels[^1], config.Classes, 3, 1);
        RegisterComponents();
    }

    public SmpConfig Config { get; }

    /// <summary>The state-dict prefix of the encoder (what decoder mode freezes).</summary>
    public const string EncoderPrefix = "encoder.";

    internal nn.Module Encoder => encoder;
    internal nn.Module Decoder => decoder;
    internal nn.Module Head => segmentation_head;

    /// <summary>The dtype the encoder computes in: float32, or bfloat16 after <see cref="UseBf16Encoder"/>; the decoder and head stay float32.</summary>
    public ScalarType EncoderDtype { get; private set; } = ScalarType.Float32;

    /// <summary>
    /// Runs the encoder in bfloat16 (weights converted in place, no float32 copy kept): for
    /// prediction and for training with a frozen encoder. Its features are widened to float32 for the decoder.
    /// </summary>
    public void UseBf16Encoder()
    {
        encoder.to(ScalarType.BFloat16);
        EncoderDtype = ScalarType.BFloat16;
    }

    /// <summary>The six encoder features, float32 whatever the encoder computes in.</summary>
    public Tensor[] Encode(Tensor pixels)
    {
        CheckInput(pixels);
        if (EncoderDtype == ScalarType.Float32) return encoder.Forward(pixels);
        using var scope = NewDisposeScope();
        var features = encoder.Forward(pixels.to(EncoderDtype));
        return features.Select((f, i) => (i == 0 ? pixels.alias() : f.to(ScalarType.Float32)).MoveToOuterDisposeScope()).ToArray();
    }

    /// <summary>Decoder and head on the encoder's features: logits (B, classes, H, W).</summary>
    public Tensor Decode(IReadOnlyList<Tensor> features)
    {
        using var scope = NewDisposeScope();
        var x = ((ISmpDecoder)decoder).Forward(features, null);
        return segmentation_head.call(x).MoveToOuterDisposeScope();
    }

    /// <exception cref="VlsmException">The input is not (B, 3, H, W) with H and W multiples of the encoder's output stride.</exception>
    public void CheckInput(Tensor pixels)
    {
        if (pixels.dim() != 4 || pixels.shape[1] != Config.InChannels)
            throw new VlsmException($"pixel_values must be (batch, {Config.InChannels}, height, width); got ({string.Join(", ", pixels.shape)}).");
        int d = Config.SizeDivisor;
        if (pixels.shape[2] % d != 0 || pixels.shape[3] % d != 0)
            throw new VlsmException($"image size {pixels.shape[2]}x{pixels.shape[3]} is not a multiple of {d}, which {SmpConfig.SmpClass(Config.Architecture)} needs (smp refuses it too; it never pads).");
    }

    /// <summary>
    /// The channel vlsm's binary masks are compared with: the only one of a one-class model; for
    /// several classes channel 1, the first foreground class (channel 0 is the background, as in
    /// MONAI's metrics, which medvlsm computes with include_background=False).
    /// </summary>
    public int ForegroundChannel => Config.Classes == 1 ? 0 : 1;

    /// <summary>Logits (B, H, W) of <see cref="ForegroundChannel"/>.</summary>
    public Tensor ForegroundLogits(Tensor pixels)
    {
        using var logits = Forward(pixels);
        return logits.select(1, ForegroundChannel).contiguous();
    }

    /// <summary>Logits (B, classes, H, W).</summary>
    public Tensor Forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return Decode(Encode(pixels)).MoveToOuterDisposeScope();
    }

    /// <summary>A forward pass keeping every encoder feature, the decoder output and the decoder's named intermediates.</summary>
    public SmpOutputs ForwardAll(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var features = Encode(pixels);
        var intermediates = new Dictionary<string, Tensor>();
        var x = ((ISmpDecoder)decoder).Forward(features, intermediates);
        var logits = segmentation_head.call(x);
        return new SmpOutputs(features.Select(f => f.MoveToOuterDisposeScope()).ToArray(), x.MoveToOuterDisposeScope(), logits.MoveToOuterDisposeScope(), intermediates);
    }
}
