using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Tensors;

/// <summary>
/// Convolutions written as unfold (im2col), matrix product and fold (col2im): slow, but built only
/// from operations that never reach a convolution kernel, so they are an independent reference
/// for the probe and the tests (run them in float64). Autograd differentiates them as usual.
/// </summary>
public static class ReferenceConvolution
{
    /// <summary>Same meaning and weight layout as <c>torch.nn.functional.conv2d</c>.</summary>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry g)
    {
        using var scope = NewDisposeScope();
        long b = input.shape[0], outChannels = weight.shape[0], groupIn = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3];
        var (oh, ow) = g.OutputSize(input.shape[2], input.shape[3], kh, kw);
        var columns = nn.functional.unfold(input, (kh, kw), (g.DilationH, g.DilationW), (g.PadH, g.PadW), (g.StrideH, g.StrideW));
        // unfold orders rows as (channel, kh, kw), so each group's rows are contiguous.
        var grouped = columns.view(b, g.Groups, groupIn * kh * kw, oh * ow);
        var kernels = weight.reshape(g.Groups, outChannels / g.Groups, groupIn * kh * kw).unsqueeze(0);
        var output = kernels.matmul(grouped).reshape(b, outChannels, oh, ow);
        if (bias is not null) output = output.add(bias.view(1, outChannels, 1, 1), KeptScalars.One);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>Same meaning and weight layout as <c>torch.nn.functional.conv_transpose2d</c>.</summary>
    public static Tensor ConvTranspose2d(Tensor input, Tensor weight, Tensor? bias, ConvolutionGeometry g)
    {
        using var scope = NewDisposeScope();
        long b = input.shape[0], inChannels = weight.shape[0], groupOut = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3];
        long h = input.shape[2], w = input.shape[3];
        long oh = (h - 1) * g.StrideH - 2 * g.PadH + g.DilationH * (kh - 1) + g.OutputPadH + 1;
        long ow = (w - 1) * g.StrideW - 2 * g.PadW + g.DilationW * (kw - 1) + g.OutputPadW + 1;
        long groupIn = inChannels / g.Groups, outChannels = groupOut * g.Groups;
        var x = input.reshape(b, g.Groups, groupIn, h * w);
        var kernels = weight.reshape(g.Groups, groupIn, groupOut * kh * kw).transpose(1, 2).unsqueeze(0);
        var columns = kernels.matmul(x).reshape(b, outChannels * kh * kw, h * w);
        var output = nn.functional.fold(columns, (oh, ow), (kh, kw), (g.DilationH, g.DilationW), (g.PadH, g.PadW), (g.StrideH, g.StrideW));
        if (bias is not null) output = output.add(bias.view(1, outChannels, 1, 1), KeptScalars.One);
        return output.MoveToOuterDisposeScope();
    }
}
