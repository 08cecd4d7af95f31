using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using TorchSharp;

namespace Vlsm.IO;

/// <summary>
/// NumPy <c>.npy</c> files (format 1.0; 2.0 only when a header outgrows 1.0's 64 KiB): float32,
/// little-endian, C order, so that <c>numpy.load</c> reads what this library writes.
/// </summary>
public static partial class Npy
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Data starts at a multiple of this, as recent NumPy versions write.</summary>
    private const int Alignment = 64;

    /// <summary>Writes <paramref name="tensor"/> (any device, any dtype, converted to float32) atomically.</summary>
    public static void Save(string path, torch.Tensor tensor)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensor);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Writing .npy files needs a little-endian machine.");
        }
        if (tensor.is_complex())
        {
            throw new VlsmException($"Cannot save '{path}': a {tensor.dtype} tensor has no float32 form");
        }

        using var scope = torch.NewDisposeScope();
        var data = tensor.detach().cpu().to_type(torch.ScalarType.Float32).contiguous();
        var header = Header(data.shape);
        AtomicFile.Write(path, stream =>
        {
            stream.Write(header);
            TensorBytes.WriteTo(data, stream);
        });
    }

    /// <summary>The magic, version, header length and header dict, padded so the data is aligned.</summary>
    internal static byte[] Header(long[] shape)
    {
        var dims = shape.Length == 1
            ? $"({shape[0]},)"
            : "(" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")";
        var dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}";

        foreach (var (major, lengthBytes) in new[] { (1, 2), (2, 4) })
        {
            var prefix = Magic.Length + 2 + lengthBytes;
            var total = prefix + dict.Length + 1; // + the terminating newline
            var padded = (total + Alignment - 1) / Alignment * Alignment;
            var headerLength = padded - prefix;
            if (major == 1 && headerLength > ushort.MaxValue)
            {
                continue;
            }
            var bytes = new byte[padded];
            Magic.CopyTo(bytes);
            bytes[Magic.Length] = (byte)major;
            bytes[Magic.Length + 1] = 0;
            if (lengthBytes == 2)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(Magic.Length + 2), (ushort)headerLength);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(Magic.Length + 2), (uint)headerLength);
            }
            var text = dict.PadRight(headerLength - 1) + "\n";
            Encoding.ASCII.GetBytes(text, bytes.AsSpan(prefix));
            return bytes;
        }
        throw new VlsmException($"A tensor of {shape.Length} dimensions is too large for an .npy header");
    }

    /// <summary>
    /// Reads a little-endian float32 (or float64, converted) C-order <c>.npy</c> file.
    /// </summary>
    /// <exception cref="VlsmException">The file cannot be read or is not such a file.</exception>
    public static (long[] shape, float[] data) ReadFloat32(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VlsmException($"Cannot read .npy file '{path}': {e.Message}", e);
        }

        if (bytes.Length < Magic.Length + 2 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            throw Invalid(path, "it does not start with the NumPy magic string \\x93NUMPY");
        }
        var major = bytes[Magic.Length];
        var lengthBytes = major switch
        {
            1 => 2,
            2 or 3 => 4,
            _ => throw Invalid(path, $"format version {major}.{bytes[Magic.Length + 1]} is not supported"),
        };
        var prefix = Magic.Length + 2 + lengthBytes;
        if (bytes.Length < prefix)
        {
            throw Invalid(path, "it ends inside the header length");
        }
        long headerLength = lengthBytes == 2
            ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(Magic.Length + 2))
            : BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(Magic.Length + 2));
        if (prefix + headerLength > bytes.Length)
        {
            throw Invalid(path, $"the header length ({headerLength} bytes) runs past the end of the file ({bytes.Length} bytes)");
        }
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(bytes, prefix, (int)headerLength);

        var descr = DescrPattern().Match(header);
        var fortran = FortranPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !fortran.Success || !shapeMatch.Success)
        {
            throw Invalid(path, $"the header {header.TrimEnd()} lacks 'descr', 'fortran_order' or 'shape'");
        }
        if (fortran.Groups[1].Value == "True")
        {
            throw Invalid(path, "Fortran-order arrays are not supported");
        }
        var itemSize = descr.Groups[1].Value switch
        {
            "<f4" => 4,
            "<f8" => 8,
            var other => throw Invalid(path, $"dtype '{other}' is not supported (only '<f4' and '<f8')"),
        };

        var shape = new List<long>();
        foreach (var part in shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var dimension))
            {
                throw Invalid(path, $"shape entry '{part}' is not a non-negative integer");
            }
            shape.Add(dimension);
        }

        long count = 1;
        try
        {
            foreach (var dimension in shape)
            {
                count = checked(count * dimension);
            }
            _ = checked(count * itemSize);
        }
        catch (OverflowException)
        {
            throw Invalid(path, $"shape ({string.Join(", ", shape)}) is too large");
        }
        var dataStart = prefix + headerLength;
        var available = bytes.Length - dataStart;
        if (count * itemSize != available)
        {
            throw Invalid(path, $"shape ({string.Join(", ", shape)}) needs {count * itemSize} data bytes, but the file holds {available}");
        }

        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Reading .npy files needs a little-endian machine.");
        }
        var span = bytes.AsSpan((int)dataStart);
        float[] data;
        if (itemSize == 4)
        {
            data = MemoryMarshal.Cast<byte, float>(span).ToArray();
        }
        else
        {
            var doubles = MemoryMarshal.Cast<byte, double>(span);
            data = new float[doubles.Length];
            for (var i = 0; i < doubles.Length; i++)
            {
                data[i] = (float)doubles[i];
            }
        }
        return (shape.ToArray(), data);
    }

    private static VlsmException Invalid(string path, string what) => new($"Invalid .npy file '{path}': {what}");

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
