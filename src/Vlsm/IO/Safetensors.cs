using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Unicode;
using TorchSharp;

namespace Vlsm.IO;

/// <summary>The element types of the safetensors format that this library reads and writes.</summary>
public enum SafetensorsDtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL }

/// <summary>
/// One tensor of a safetensors header. <see cref="Begin"/> and <see cref="End"/> are byte offsets
/// relative to the start of the data section (the first byte after the header).
/// </summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDtype Dtype, long[] Shape, long Begin, long End);

internal static class SafetensorsDtypes
{
    public static bool TryParse(string text, out SafetensorsDtype dtype)
    {
        // Exact, case-sensitive names as the format defines them; Enum.TryParse would also accept "1" or "f32".
        switch (text)
        {
            case "F64": dtype = SafetensorsDtype.F64; return true;
            case "F32": dtype = SafetensorsDtype.F32; return true;
            case "F16": dtype = SafetensorsDtype.F16; return true;
            case "BF16": dtype = SafetensorsDtype.BF16; return true;
            case "I64": dtype = SafetensorsDtype.I64; return true;
            case "I32": dtype = SafetensorsDtype.I32; return true;
            case "I16": dtype = SafetensorsDtype.I16; return true;
            case "I8": dtype = SafetensorsDtype.I8; return true;
            case "U8": dtype = SafetensorsDtype.U8; return true;
            case "BOOL": dtype = SafetensorsDtype.BOOL; return true;
            default: dtype = default; return false;
        }
    }

    public static int Size(SafetensorsDtype dtype) => dtype switch
    {
        SafetensorsDtype.F64 or SafetensorsDtype.I64 => 8,
        SafetensorsDtype.F32 or SafetensorsDtype.I32 => 4,
        SafetensorsDtype.F16 or SafetensorsDtype.BF16 or SafetensorsDtype.I16 => 2,
        SafetensorsDtype.I8 or SafetensorsDtype.U8 or SafetensorsDtype.BOOL => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public static bool IsFloat(SafetensorsDtype dtype) =>
        dtype is SafetensorsDtype.F64 or SafetensorsDtype.F32 or SafetensorsDtype.F16 or SafetensorsDtype.BF16;

    public static torch.ScalarType ToScalarType(SafetensorsDtype dtype) => dtype switch
    {
        SafetensorsDtype.F64 => torch.ScalarType.Float64,
        SafetensorsDtype.F32 => torch.ScalarType.Float32,
        SafetensorsDtype.F16 => torch.ScalarType.Float16,
        SafetensorsDtype.BF16 => torch.ScalarType.BFloat16,
        SafetensorsDtype.I64 => torch.ScalarType.Int64,
        SafetensorsDtype.I32 => torch.ScalarType.Int32,
        SafetensorsDtype.I16 => torch.ScalarType.Int16,
        SafetensorsDtype.I8 => torch.ScalarType.Int8,
        SafetensorsDtype.U8 => torch.ScalarType.Byte,
        SafetensorsDtype.BOOL => torch.ScalarType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public static SafetensorsDtype? FromScalarType(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Float64 => SafetensorsDtype.F64,
        torch.ScalarType.Float32 => SafetensorsDtype.F32,
        torch.ScalarType.Float16 => SafetensorsDtype.F16,
        torch.ScalarType.BFloat16 => SafetensorsDtype.BF16,
        torch.ScalarType.Int64 => SafetensorsDtype.I64,
        torch.ScalarType.Int32 => SafetensorsDtype.I32,
        torch.ScalarType.Int16 => SafetensorsDtype.I16,
        torch.ScalarType.Int8 => SafetensorsDtype.I8,
        torch.ScalarType.Byte => SafetensorsDtype.U8,
        torch.ScalarType.Bool => SafetensorsDtype.BOOL,
        _ => null,
    };
}

/// <summary>
/// A safetensors file, memory-mapped for reading. <see cref="Open"/> reads and validates the whole
/// header (dtypes, shapes, offsets within the file, no overlapping tensors), so that
/// <see cref="Load"/> can only fail for reasons outside the file. Tensors are copied out of the
/// mapping, so they stay valid after <see cref="Dispose"/>. <see cref="Load"/> may run on several
/// threads at once, but not concurrently with <see cref="Dispose"/>.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Headers larger than this are refused (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _mapped;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsEntry> _entries;

    private SafetensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* mapped, long dataStart,
        Dictionary<string, SafetensorsEntry> entries, List<string> names, Dictionary<string, string> metadata)
    {
        Path = path;
        _map = map;
        _view = view;
        _mapped = mapped;
        _dataStart = dataStart;
        _entries = entries;
        Names = names.AsReadOnly();
        Metadata = metadata.AsReadOnly();
    }

    /// <summary>The path the file was opened with.</summary>
    public string Path { get; }

    /// <summary>The header's <c>__metadata__</c> (empty if it has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensor names, in header order.</summary>
    public IReadOnlyList<string> Names { get; }

    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>The header entry of tensor <paramref name="name"/>.</summary>
    /// <exception cref="VlsmException">The file has no such tensor.</exception>
    public SafetensorsEntry Entry(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!_entries.TryGetValue(name, out var entry))
        {
            throw new VlsmException($"Safetensors file '{Path}' has no tensor '{Printable.Clip(name)}'{NearbyNames(name)}");
        }
        return entry with { Shape = (long[])entry.Shape.Clone() };
    }

    /// <summary>
    /// Copies tensor <paramref name="name"/> into a new CPU tensor that owns its memory (it stays
    /// valid after this file is disposed), converted to <paramref name="dtype"/> if given.
    /// </summary>
    public torch.Tensor Load(string name, torch.ScalarType? dtype = null)
    {
        var entry = Entry(name);
        var mapped = _mapped;
        ObjectDisposedException.ThrowIf(mapped is null, this);

        // BOOL is read as bytes and then compared with zero: a byte other than 0 or 1 must not become an invalid bool.
        var stored = entry.Dtype == SafetensorsDtype.BOOL ? torch.ScalarType.Byte : SafetensorsDtypes.ToScalarType(entry.Dtype);
        var target = dtype ?? SafetensorsDtypes.ToScalarType(entry.Dtype);
        var tensor = torch.empty(entry.Shape, stored);
        try
        {
            TensorBytes.CopyInto(tensor, mapped + _dataStart + entry.Begin, entry.End - entry.Begin);
            if (entry.Dtype == SafetensorsDtype.BOOL)
            {
                var asBool = tensor.ne(0);
                tensor.Dispose();
                tensor = asBool;
            }
            if (tensor.dtype != target)
            {
                var converted = tensor.to_type(target);
                tensor.Dispose();
                tensor = converted;
            }
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads every tensor, in header order. Floating-point tensors are converted to
    /// <paramref name="floatDtype"/> if given; integer and bool tensors keep their type.
    /// </summary>
    public Dictionary<string, torch.Tensor> LoadAll(torch.ScalarType? floatDtype = null)
    {
        var result = new Dictionary<string, torch.Tensor>(_entries.Count);
        try
        {
            foreach (var name in Names)
            {
                var isFloat = SafetensorsDtypes.IsFloat(_entries[name].Dtype);
                result.Add(name, Load(name, isFloat ? floatDtype : null));
            }
            return result;
        }
        catch
        {
            foreach (var tensor in result.Values)
            {
                tensor.Dispose();
            }
            throw;
        }
    }

    public void Dispose()
    {
        if (_mapped is null)
        {
            return;
        }
        _mapped = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="VlsmException">The file cannot be read or is not a valid safetensors file.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Reading safetensors needs a little-endian machine.");
        }

        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new VlsmException($"Cannot open safetensors file '{path}': {e.Message}", e);
        }

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* mapped = null;
        try
        {
            long fileLength;
            try
            {
                fileLength = stream.Length;
                if (fileLength >= 8)
                {
                    map = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read,
                        HandleInheritability.None, leaveOpen: false);
                    view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
            {
                throw new VlsmException($"Cannot map safetensors file '{path}' into memory: {e.Message}", e);
            }
            if (view is null)
            {
                throw Invalid(path, $"it is {fileLength} bytes long, too short to hold the 8-byte header length");
            }
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref mapped);
            mapped += view.PointerOffset;

            var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(mapped, 8));
            if (headerLength > (ulong)(fileLength - 8))
            {
                throw Invalid(path, $"the header length ({headerLength} bytes) runs past the end of the file ({fileLength} bytes)");
            }
            if (headerLength > MaxHeaderBytes)
            {
                throw Invalid(path, $"the header is {headerLength} bytes long, more than the {MaxHeaderBytes}-byte limit");
            }
            var header = new ReadOnlySpan<byte>(mapped + 8, (int)headerLength);
            var dataStart = 8 + (long)headerLength;
            var (entries, names, metadata) = ParseHeader(path, header, fileLength - dataStart);
            var file = new SafetensorsFile(path, map!, view, mapped, dataStart, entries, names, metadata);
            return file;
        }
        catch
        {
            if (mapped is not null)
            {
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            }
            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            throw;
        }
    }

    private static VlsmException Invalid(string path, string what) =>
        new($"Invalid safetensors file '{path}': {what}");

    private static VlsmException Invalid(string path, string tensor, string what) =>
        new($"Invalid safetensors file '{path}': tensor '{Printable.Clip(tensor)}': {what}");

    private static (Dictionary<string, SafetensorsEntry>, List<string>, Dictionary<string, string>) ParseHeader(
        string path, ReadOnlySpan<byte> header, long dataLength)
    {
        if (!Utf8.IsValid(header))
        {
            throw Invalid(path, "the header is not valid UTF-8");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new VlsmException($"Invalid safetensors file '{path}': the header is not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(path, $"the header is a JSON {Describe(root.ValueKind)}, not an object");
            }

            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var names = new List<string>();
            Dictionary<string, string>? metadata = null;
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (metadata is not null)
                    {
                        throw Invalid(path, "the header has '__metadata__' twice");
                    }
                    metadata = ParseMetadata(path, property.Value);
                    continue;
                }
                if (entries.ContainsKey(property.Name))
                {
                    throw Invalid(path, property.Name, "it appears twice in the header");
                }
                entries.Add(property.Name, ParseEntry(path, property.Name, property.Value, dataLength));
                names.Add(property.Name);
            }

            CheckNoOverlap(path, entries.Values);
            return (entries, names, metadata ?? new Dictionary<string, string>());
        }
    }

    private static Dictionary<string, string> ParseMetadata(string path, JsonElement value)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (value.ValueKind == JsonValueKind.Null)
        {
            return metadata;
        }
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(path, $"'__metadata__' is a JSON {Describe(value.ValueKind)}, not an object of strings");
        }
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw Invalid(path, $"metadata value '{Printable.Clip(item.Name)}' is a JSON {Describe(item.Value.ValueKind)}; metadata values must be strings");
            }
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
            {
                throw Invalid(path, $"metadata key '{Printable.Clip(item.Name)}' appears twice");
            }
        }
        return metadata;
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement value, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(path, name, $"its header entry is a JSON {Describe(value.ValueKind)}, not an object");
        }

        if (!value.TryGetProperty("dtype", out var dtypeElement))
        {
            throw Invalid(path, name, "its header entry has no 'dtype'");
        }
        if (dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw Invalid(path, name, $"'dtype' is a JSON {Describe(dtypeElement.ValueKind)}, not a string");
        }
        var dtypeText = dtypeElement.GetString()!;
        if (!SafetensorsDtypes.TryParse(dtypeText, out var dtype))
        {
            throw Invalid(path, name, $"unsupported dtype '{Printable.Clip(dtypeText)}' (supported: {string.Join(", ", Enum.GetNames<SafetensorsDtype>())})");
        }

        if (!value.TryGetProperty("shape", out var shapeElement))
        {
            throw Invalid(path, name, "its header entry has no 'shape'");
        }
        var shape = ReadIntegers(path, name, "shape", shapeElement);

        if (!value.TryGetProperty("data_offsets", out var offsetsElement))
        {
            throw Invalid(path, name, "its header entry has no 'data_offsets'");
        }
        var offsets = ReadIntegers(path, name, "data_offsets", offsetsElement);
        if (offsets.Length != 2)
        {
            throw Invalid(path, name, $"'data_offsets' has {offsets.Length} numbers, not 2 ([begin, end])");
        }
        var (begin, end) = (offsets[0], offsets[1]);
        if (begin > end)
        {
            throw Invalid(path, name, $"data_offsets [{begin}, {end}] begin after they end");
        }
        if (end > dataLength)
        {
            throw Invalid(path, name, $"data_offsets [{begin}, {end}] run past the end of the data section ({dataLength} bytes)");
        }

        long bytes;
        try
        {
            bytes = SafetensorsDtypes.Size(dtype);
            foreach (var dimension in shape)
            {
                bytes = checked(bytes * dimension);
            }
        }
        catch (OverflowException)
        {
            throw Invalid(path, name, $"shape [{string.Join(", ", shape)}] is too large");
        }
        if (bytes != end - begin)
        {
            throw Invalid(path, name,
                $"shape [{string.Join(", ", shape)}] of {dtype} needs {bytes} bytes, but data_offsets [{begin}, {end}] span {end - begin}");
        }
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static long[] ReadIntegers(string path, string name, string field, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            throw Invalid(path, name, $"'{field}' is a JSON {Describe(element.ValueKind)}, not an array of integers");
        }
        var values = new long[element.GetArrayLength()];
        var i = 0;
        foreach (var item in element.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var number))
            {
                throw Invalid(path, name, $"'{field}' holds {Printable.Clip(item.GetRawText())}, which is not an integer");
            }
            if (number < 0)
            {
                throw Invalid(path, name, $"'{field}' holds the negative number {number}");
            }
            values[i++] = number;
        }
        return values;
    }

    private static void CheckNoOverlap(string path, IEnumerable<SafetensorsEntry> entries)
    {
        // Empty tensors occupy no bytes and so overlap nothing.
        var spans = entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        SafetensorsEntry? reach = null; // the span seen so far that ends last
        foreach (var span in spans)
        {
            if (reach is not null && span.Begin < reach.End)
            {
                throw Invalid(path,
                    $"tensors '{Printable.Clip(reach.Name)}' (bytes {reach.Begin}..{reach.End}) and '{Printable.Clip(span.Name)}' (bytes {span.Begin}..{span.End}) overlap");
            }
            if (reach is null || span.End > reach.End)
            {
                reach = span;
            }
        }
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private string NearbyNames(string name)
    {
        // Help with typos and prefix mistakes without listing hundreds of weights: show names that
        // share the longest dotted prefix with the one asked for.
        for (var end = name.LastIndexOf('.'); end > 0; end = name.LastIndexOf('.', end - 1))
        {
            var prefix = name[..(end + 1)];
            var similar = Names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Take(5).ToList();
            if (similar.Count > 0)
            {
                return $" (it has {Names.Count} tensors, e.g. {string.Join(", ", similar.Select(n => $"'{Printable.Clip(n)}'"))})";
            }
        }
        return $" (it has {Names.Count} tensors)";
    }
}

/// <summary>Writes safetensors files.</summary>
public static class SafetensorsWriter
{
    /// <summary>Writes tensors read from a PyTorch checkpoint (<see cref="TorchCheckpoint"/>), in the given order, atomically.</summary>
    public static void Save(string path, IReadOnlyList<TorchTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var materialised = tensors.Select(t => new KeyValuePair<string, torch.Tensor>(t.Name, t.ToTensor())).ToList();
        try
        {
            Save(path, materialised, metadata);
        }
        finally
        {
            foreach (var (_, t) in materialised) t.Dispose();
        }
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> (in the given order) and <paramref name="metadata"/> to
    /// <paramref name="path"/>, atomically: on failure an existing file is left as it was. Tensors
    /// may live on any device and need not be contiguous; they are not modified.
    /// </summary>
    /// <exception cref="VlsmException">A name is empty, repeated or reserved, or a tensor has a dtype safetensors cannot hold here.</exception>
    public static void Save(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Writing safetensors needs a little-endian machine.");
        }

        var items = new List<(string Name, torch.Tensor Tensor)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata)
                {
                    if (value is null)
                    {
                        throw new VlsmException($"Cannot save '{path}': metadata value '{key}' is null");
                    }
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }

            long offset = 0;
            foreach (var (name, tensor) in tensors)
            {
                if (string.IsNullOrEmpty(name))
                {
                    throw new VlsmException($"Cannot save '{path}': a tensor has an empty name");
                }
                if (name == "__metadata__")
                {
                    throw new VlsmException($"Cannot save '{path}': '__metadata__' is reserved and cannot name a tensor");
                }
                if (!seen.Add(name))
                {
                    throw new VlsmException($"Cannot save '{path}': tensor '{name}' is given twice");
                }
                if (tensor is null || tensor.IsInvalid)
                {
                    throw new VlsmException($"Cannot save '{path}': tensor '{name}' is null or disposed");
                }
                var dtype = SafetensorsDtypes.FromScalarType(tensor.dtype)
                    ?? throw new VlsmException($"Cannot save '{path}': tensor '{name}' has dtype {tensor.dtype}, which is not supported "
                        + $"(supported: {string.Join(", ", Enum.GetNames<SafetensorsDtype>())})");
                var bytes = tensor.numel() * SafetensorsDtypes.Size(dtype);

                json.WriteStartObject(name);
                json.WriteString("dtype", dtype.ToString());
                json.WriteStartArray("shape");
                foreach (var dimension in tensor.shape)
                {
                    json.WriteNumberValue(dimension);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();

                offset += bytes;
                items.Add((name, tensor));
            }
            json.WriteEndObject();
        }

        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        while (header.Length % 8 != 0)
        {
            header.WriteByte((byte)' ');
        }

        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            header.Position = 0;
            header.CopyTo(stream);
            foreach (var (_, tensor) in items)
            {
                // One tensor's CPU copy at a time; the scope frees the intermediates, never the caller's tensor.
                using var scope = torch.NewDisposeScope();
                var data = tensor.detach().cpu().contiguous();
                TensorBytes.WriteTo(data, stream);
            }
        });
    }
}
