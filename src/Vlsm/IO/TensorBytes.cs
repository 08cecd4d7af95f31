using TorchSharp;

namespace Vlsm.IO;

/// <summary>
/// Raw byte copies between memory and contiguous CPU tensors. <see cref="torch.Tensor.bytes"/> is a
/// <see cref="Span{T}"/> over the tensor's own storage, so each copy is one memmove; tensors larger
/// than a Span can address are copied through views of at most <c>chunkBytes</c> bytes.
/// </summary>
internal static class TensorBytes
{
    public const long DefaultChunkBytes = 1L << 30;

    /// <summary>Copies <paramref name="count"/> bytes from <paramref name="source"/> into a contiguous CPU tensor of that size.</summary>
    public static unsafe void CopyInto(torch.Tensor tensor, IntPtr source, long count, long chunkBytes = DefaultChunkBytes) =>
        CopyInto(tensor, (byte*)source, count, chunkBytes);

    public static unsafe void CopyInto(torch.Tensor tensor, byte* source, long count, long chunkBytes = DefaultChunkBytes)
    {
        if (count == 0)
        {
            return;
        }
        if (count <= chunkBytes)
        {
            new ReadOnlySpan<byte>(source, checked((int)count)).CopyTo(tensor.bytes);
            return;
        }
        var elementSize = tensor.element_size();
        using var flat = tensor.view(-1);
        var perChunk = Math.Max(1, chunkBytes / elementSize);
        for (long start = 0, total = flat.shape[0]; start < total; start += perChunk)
        {
            var length = Math.Min(perChunk, total - start);
            using var part = flat.narrow(0, start, length);
            new ReadOnlySpan<byte>(source + start * elementSize, checked((int)(length * elementSize))).CopyTo(part.bytes);
        }
    }

    /// <summary>Writes the bytes of a contiguous CPU tensor to <paramref name="stream"/>.</summary>
    public static void WriteTo(torch.Tensor tensor, Stream stream, long chunkBytes = DefaultChunkBytes)
    {
        var elementSize = tensor.element_size();
        var count = tensor.numel() * elementSize;
        if (count == 0)
        {
            return;
        }
        if (count <= chunkBytes)
        {
            stream.Write(tensor.bytes);
            return;
        }
        using var flat = tensor.view(-1);
        var perChunk = Math.Max(1, chunkBytes / elementSize);
        for (long start = 0, total = flat.shape[0]; start < total; start += perChunk)
        {
            using var part = flat.narrow(0, start, Math.Min(perChunk, total - start));
            stream.Write(part.bytes);
        }
    }
}
