using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.RegularExpressions;
using TorchSharp;

namespace Vlsm.IO;

/// <summary>One tensor of a PyTorch state dict: its bytes, contiguous and little-endian, as the checkpoint stores them.</summary>
public sealed record TorchTensor(string Name, SafetensorsDtype Dtype, long[] Shape, byte[] Data)
{
    /// <summary>A CPU tensor holding exactly these bytes (same dtype, no conversion).</summary>
    public torch.Tensor ToTensor()
    {
        var stored = Dtype == SafetensorsDtype.BOOL ? torch.ScalarType.Byte : SafetensorsDtypes.ToScalarType(Dtype);
        var tensor = torch.empty(Shape, stored);
        try
        {
            unsafe
            {
                fixed (byte* source = Data) TensorBytes.CopyInto(tensor, source, Data.LongLength);
            }
            if (Dtype != SafetensorsDtype.BOOL) return tensor;
            var asBool = tensor.ne(0);
            tensor.Dispose();
            return asBool;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }
}

/// <summary>
/// Reads state dicts from <c>torch.save</c> checkpoints (<c>.pth</c>, <c>.pt</c>, HF
/// <c>pytorch_model.bin</c>; the zip archive of PyTorch 1.6 and later and the legacy stream of
/// pickles before it) and the parameters of TorchScript archives, without Python and without
/// running anything the file says: the pickle is interpreted by <see cref="RestrictedUnpickler"/>,
/// which knows only the opcodes and globals a state dict needs and refuses any other by name (or,
/// only when a caller asks, reads it as an inert <see cref="PickleObject"/>). Tensor bytes come
/// from the archive's <c>data/N</c> entries (or the legacy stream's storages), honouring each
/// tensor's storage offset, size and stride.
/// </summary>
public static class TorchCheckpoint
{
    /// <summary>Keys under which training scripts nest the state dict in a larger checkpoint dict.</summary>
    private static readonly string[] NestingKeys = ["state_dict", "model", "model_state_dict", "module", "net"];

    /// <summary>The tensors of the checkpoint's state dict, in the order the file stores them.</summary>
    /// <exception cref="VlsmException">
    /// The file is missing, not a torch checkpoint, truncated, uses a global or opcode outside
    /// the state-dict subset (named in the message), or holds something other than a dict of tensors.
    /// </exception>
    /// <remarks>
    /// Both <c>torch.save</c> formats are read: the zip archive (PyTorch 1.6 and later) and the
    /// legacy stream of pickles (earlier versions; torchvision's 2017 ImageNet weights).
    /// </remarks>
    public static IReadOnlyList<TorchTensor> ReadStateDict(string path) => Read(path, PickleMode.StateDict, out _);

    /// <summary>
    /// The state dict of a checkpoint that also pickles other objects beside it, such as a PyTorch
    /// Lightning <c>.ckpt</c> whose <c>hyper_parameters</c> hold a loss object or a
    /// <c>functools.partial</c>: those objects become inert placeholders (their classes are never
    /// imported, nothing is called) and <paramref name="foreignGlobals"/> names them. The state dict
    /// itself must still be plain tensors.
    /// </summary>
    /// <exception cref="VlsmException">As <see cref="ReadStateDict(string)"/>, but for other globals.</exception>
    public static IReadOnlyList<TorchTensor> ReadStateDictBesideObjects(string path, out IReadOnlyList<string> foreignGlobals) =>
        Read(path, PickleMode.Lenient, out foreignGlobals);

    /// <summary>
    /// The parameters and buffers of a TorchScript archive (<c>torch.jit.save</c>; e.g. OpenAI's CLIP
    /// <c>.pt</c> files), under the names <c>state_dict()</c> gives them (<c>visual.conv1.weight</c>).
    /// The module tree in data.pkl is read as data: the archive's <c>__torch__.*</c> classes are
    /// only names and its code is never run. The code's class declarations are read as text for one
    /// thing, each class's <c>__parameters__</c> and <c>__buffers__</c>, so that only those tensor
    /// attributes are taken (a class without a declaration gives all of its tensors); tensors in
    /// constants.pkl are not part of the state dict either.
    /// </summary>
    /// <exception cref="VlsmException">As <see cref="ReadStateDict(string)"/>, or data.pkl does not hold a module.</exception>
    public static IReadOnlyList<TorchTensor> ReadTorchScript(string path) => Read(path, PickleMode.TorchScript, out _);

    /// <summary>The file's tensors as <paramref name="mode"/> reads them: a state dict, or a TorchScript module's parameters and buffers.</summary>
    private static IReadOnlyList<TorchTensor> Read(string path, PickleMode mode, out IReadOnlyList<string> foreignGlobals)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new VlsmException($"{path}: checkpoint file not found.");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (IsLegacy(path, stream))
            {
                if (mode == PickleMode.TorchScript)
                    throw new VlsmException($"{path}: a legacy torch.save stream of pickles, not a TorchScript archive (torch.jit.save writes a zip archive with code/ and data.pkl).");
                return ReadLegacy(path, stream, mode, out foreignGlobals);
            }
            var budget = new DecodedBytes(path, stream.Length);
            using var zip = new ZipArchive(stream, ZipArchiveMode.Read);
            var twice = zip.Entries.GroupBy(e => e.FullName, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (twice is not null)
                throw new VlsmException($"{path}: the zip archive holds {twice.Count()} entries named {Printable.Quote(twice.Key)}; "
                    + "readers disagree on which one counts (Python's zipfile takes the last), so the checkpoint is refused. Re-save it with torch.save.");
            var pickle = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                ?? throw new VlsmException($"{path}: a zip file without <name>/data.pkl; not a torch.save checkpoint.");
            string prefix = pickle.FullName[..^"data.pkl".Length];
            if (zip.GetEntry(prefix + "byteorder") is { } order)
            {
                if (order.Length > 64) throw new VlsmException($"{path}: {Printable.Quote(order.FullName)} holds {order.Length} bytes, not \"little\" or \"big\".");
                string text = System.Text.Encoding.ASCII.GetString(budget.Read(order)).Trim();
                if (text != "little")
                    throw new VlsmException($"{path}: byteorder is {Printable.Quote(text)}; only little-endian checkpoints are supported.");
            }
            if (pickle.Length > PickleLimits.MaxPickleBytes)
                throw new VlsmException($"{path}: {Printable.Quote(pickle.FullName)} would decompress to {pickle.Length} bytes; a checkpoint's pickle is far smaller "
                    + $"(the limit is {PickleLimits.MaxPickleBytes >> 20} MB: tensors live in data/, not in the pickle). Refused before reading it.");
            var unpickler = new RestrictedUnpickler(path, budget.Read(pickle), mode);
            object? root = unpickler.Load();
            foreignGlobals = unpickler.ForeignGlobals;
            var dict = mode == PickleMode.TorchScript ? ModuleTensors(path, root, DeclaredTensors(zip, prefix, budget)) : FindStateDict(path, root);
            var storages = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            return Materialise(path, dict, budget, (name, storage) =>
            {
                if (storages.TryGetValue(storage.Key, out var cached)) return cached;
                var entry = zip.GetEntry($"{prefix}data/{storage.Key}")
                    ?? throw new VlsmException($"{path}: tensor {Printable.Quote(name)} refers to storage {Printable.Quote(storage.Key)}, which the archive lacks ({Printable.Clip(prefix)}data/{Printable.Clip(storage.Key)}).");
                return storages[storage.Key] = budget.Read(entry);
            });
        }
        catch (InvalidDataException e)
        {
            throw new VlsmException($"{path}: damaged or truncated zip archive ({e.Message}).", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VlsmException($"{path}: cannot read the checkpoint ({e.Message}).", e);
        }
    }

    /// <summary>The legacy format's first pickle: the magic number 0x1950a86a20f9469cfc6c.</summary>
    private static readonly System.Numerics.BigInteger LegacyMagic = System.Numerics.BigInteger.Parse("01950a86a20f9469cfc6c", System.Globalization.NumberStyles.HexNumber);
    private const long LegacyProtocolVersion = 1001;

    /// <summary>
    /// The legacy <c>torch.save</c> stream: pickles of the magic number, the protocol version (1001),
    /// the system info and the object (storages as persistent ids), the list of storage keys, then
    /// each storage as an int64 element count and its raw bytes, in the order of that list.
    /// </summary>
    private static IReadOnlyList<TorchTensor> ReadLegacy(string path, FileStream stream, PickleMode mode, out IReadOnlyList<string> foreignGlobals)
    {
        if (stream.Length > Array.MaxLength)
            throw new VlsmException($"{path}: a legacy checkpoint of {stream.Length} bytes is more than one array can hold.");
        var data = new byte[stream.Length];
        stream.ReadExactly(data);
        int pos = 0;
        IReadOnlyDictionary<string, StorageRef> seen = new Dictionary<string, StorageRef>();
        IReadOnlyList<string> foreign = [];
        object? Next(PickleMode pickleMode = PickleMode.StateDict)
        {
            var unpickler = new RestrictedUnpickler(path, data, pickleMode, pos);
            var value = unpickler.Load();
            pos = unpickler.Position;
            seen = unpickler.Storages;
            foreign = unpickler.ForeignGlobals;
            return value;
        }
        if (Next() is not System.Numerics.BigInteger magic || magic != LegacyMagic)
            throw new VlsmException($"{path}: starts like a pickle but not with torch.save's magic number; not a PyTorch checkpoint.");
        if (Next() is not long version || version != LegacyProtocolVersion)
            throw new VlsmException($"{path}: legacy torch.save protocol version is not {LegacyProtocolVersion}; this file cannot be read.");
        if (Next() is PickleDict info && info.TryGet("little_endian", out var little) && little is false)
            throw new VlsmException($"{path}: saved on a big-endian machine; only little-endian checkpoints are supported.");
        object? root = Next(mode);
        var referenced = seen;
        foreignGlobals = foreign;
        if (Next() is not List<object?> keys || !keys.All(k => k is string))
            throw new VlsmException($"{path}: the legacy checkpoint's list of storage keys is missing or malformed.");
        var storages = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (string key in keys.Cast<string>())
        {
            if (!referenced.TryGetValue(key, out var storage))
                throw new VlsmException($"{path}: storage {Printable.Quote(key)} is listed but no tensor refers to it; the checkpoint is damaged.");
            if ((long)pos + 8 > data.Length) throw new VlsmException($"{path}: ends before storage {Printable.Quote(key)}; the checkpoint is truncated.");
            long count = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(pos, 8));
            pos += 8;
            if (count < 0 || count != storage.Count || count > data.Length || pos + count * SafetensorsDtypes.Size(storage.Dtype) > data.Length)
                throw new VlsmException($"{path}: storage {Printable.Quote(key)} holds {count} elements where {storage.Count} were announced, or runs past the end; the checkpoint is truncated or damaged.");
            long bytes = count * SafetensorsDtypes.Size(storage.Dtype);
            storages[key] = data.AsSpan(pos, (int)bytes).ToArray();
            pos += (int)bytes;
        }
        var dict = FindStateDict(path, root);
        return Materialise(path, dict, new DecodedBytes(path, data.LongLength), (name, storage) => storages.TryGetValue(storage.Key, out var bytes)
            ? bytes
            : throw new VlsmException($"{path}: tensor {Printable.Quote(name)} refers to storage {Printable.Quote(storage.Key)}, which the file does not hold."));
    }

    /// <summary>Removes <paramref name="prefix"/> (e.g. DataParallel's <c>module.</c>) when every key starts with it.</summary>
    public static IReadOnlyList<TorchTensor> StripPrefix(IReadOnlyList<TorchTensor> tensors, string prefix) =>
        tensors.Count > 0 && tensors.All(t => t.Name.StartsWith(prefix, StringComparison.Ordinal))
            ? tensors.Select(t => t with { Name = t.Name[prefix.Length..] }).ToList()
            : tensors;

    /// <summary>True for the legacy format (a stream of pickles), false for a zip archive; anything else is an error.</summary>
    private static bool IsLegacy(string path, FileStream stream)
    {
        Span<byte> head = stackalloc byte[4];
        int n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        stream.Position = 0;
        if (n == 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return false;
        if (n >= 2 && head[0] == 0x80) return true;
        throw new VlsmException($"{path}: not a torch.save zip checkpoint (it does not start with a zip header).");
    }

    /// <summary>
    /// What a checkpoint may decode, relative to its size: zip entries may decompress to at most
    /// <see cref="PickleLimits.DecodedRatio"/> times the file's size plus <see cref="PickleLimits.DecodedSlack"/>
    /// in all (torch.save stores entries uncompressed, so a real checkpoint decodes to about its own
    /// size), and the tensors gathered from storages to as much again (a stride-0 view could
    /// otherwise expand one stored element into gigabytes). Checked before anything is allocated.
    /// </summary>
    private sealed class DecodedBytes(string path, long fileLength)
    {
        private readonly long limit = fileLength * PickleLimits.DecodedRatio + PickleLimits.DecodedSlack;
        private long entries, tensors;

        public byte[] Read(ZipArchiveEntry entry)
        {
            entries += entry.Length;
            if (entry.Length > Array.MaxLength || entries > limit)
                throw new VlsmException($"{path}: entry {Printable.Quote(entry.FullName)} would decompress to {entry.Length} bytes from {entry.CompressedLength}; "
                    + $"the archive's entries would hold more than {PickleLimits.DecodedRatio} times the file's {fileLength} bytes plus {PickleLimits.DecodedSlack >> 20} MB, "
                    + "which no checkpoint does (torch.save does not compress). Refused before decompressing it.");
            var bytes = new byte[entry.Length];
            using var s = entry.Open();
            int read = s.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            if (read != bytes.Length)
                throw new VlsmException($"{path}: entry {Printable.Quote(entry.FullName)} is truncated ({read} of {bytes.Length} bytes).");
            return bytes;
        }

        public void Gather(string name, long bytes)
        {
            tensors += bytes;
            if (bytes > Array.MaxLength || tensors > limit)
                throw new VlsmException($"{path}: tensor {Printable.Quote(name)} would hold {bytes} bytes, which with the tensors before it is more than "
                    + $"{PickleLimits.DecodedRatio} times the file's {fileLength} bytes plus {PickleLimits.DecodedSlack >> 20} MB: its strides repeat stored elements. The checkpoint is refused.");
        }
    }

    private static PickleDict FindStateDict(string path, object? root)
    {
        if (root is PickleDict d)
        {
            if (d.Items.Count == 0) throw new VlsmException($"{path}: the state dict is empty.");
            if (d.Items.Count > 0 && d.Items.All(kv => kv.Value is PickledTensor)) return d;
            foreach (var key in NestingKeys)
                if (d.TryGet(key, out var inner) && inner is PickleDict nested && nested.Items.Count > 0 && nested.Items.All(kv => kv.Value is PickledTensor))
                    return nested;
            var odd = d.Items.FirstOrDefault(kv => kv.Value is not PickledTensor);
            throw new VlsmException($"{path}: not a state dict: entry {Describe(odd.Key)} is {Describe(odd.Value)}, not a tensor, and no "
                + $"{string.Join("/", NestingKeys)} entry holds a dict of tensors.");
        }
        throw new VlsmException($"{path}: the pickle holds {Describe(root)}, not a state dict (a dict of tensors).");
    }

    private static readonly Regex ClassLine = new(@"^class\s+(\w+)\s*\(", RegexOptions.Compiled);
    private static readonly Regex DeclarationLine = new(@"^\s+__(parameters|buffers)__\s*=\s*\[(.*)\]\s*$", RegexOptions.Compiled);
    private static readonly Regex QuotedName = new("\"([^\"]*)\"", RegexOptions.Compiled);

    /// <summary>
    /// The parameters and buffers each class of the archive's code declares, by qualified name
    /// (<c>code/__torch__/a/b.py</c>'s class <c>C</c> is <c>__torch__.a.b.C</c>). Text is matched, nothing is run.
    /// </summary>
    private static Dictionary<string, HashSet<string>> DeclaredTensors(ZipArchive zip, string prefix, DecodedBytes budget)
    {
        var declared = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        string codeRoot = prefix + "code/";
        foreach (var entry in zip.Entries.Where(e => e.FullName.StartsWith(codeRoot, StringComparison.Ordinal) && e.FullName.EndsWith(".py", StringComparison.Ordinal)))
        {
            string module = entry.FullName[codeRoot.Length..^".py".Length].Replace('/', '.');
            string? current = null;
            foreach (var line in System.Text.Encoding.UTF8.GetString(budget.Read(entry)).Split('\n'))
            {
                var c = ClassLine.Match(line);
                if (c.Success)
                {
                    current = $"{module}.{c.Groups[1].Value}";
                    continue;
                }
                var d = DeclarationLine.Match(line);
                if (!d.Success || current is null) continue;
                if (!declared.TryGetValue(current, out var names)) declared[current] = names = new HashSet<string>(StringComparer.Ordinal);
                foreach (Match name in QuotedName.Matches(d.Groups[2].Value)) names.Add(name.Groups[1].Value);
            }
        }
        return declared;
    }

    /// <summary>The parameters and buffers of a TorchScript module and its submodules, named by their attribute path.</summary>
    private static PickleDict ModuleTensors(string path, object? root, IReadOnlyDictionary<string, HashSet<string>> declared)
    {
        if (root is not PickleObject { State: PickleDict } module)
            throw new VlsmException($"{path}: data.pkl holds {Describe(root)}, not a TorchScript module; is it a torch.save checkpoint rather than a torch.jit.save archive?");
        var result = new PickleDict();
        var open = new HashSet<PickleObject>(ReferenceEqualityComparer.Instance);
        void Walk(PickleObject m, string prefix, int depth)
        {
            if (!open.Add(m)) throw new VlsmException($"{path}: module {Printable.Quote(prefix.TrimEnd('.'))} contains itself; the archive is damaged.");
            if (depth > PickleLimits.MaxModuleDepth)
                throw new VlsmException($"{path}: modules nest more than {PickleLimits.MaxModuleDepth} deep (at {Printable.Quote(prefix)}); no network does. The archive is refused.");
            if (m.State is not PickleDict attributes)
                throw new VlsmException($"{path}: module {(prefix.Length == 0 ? "(root)" : Printable.Quote(prefix.TrimEnd('.')))} of type {Printable.Clip(m.Type)} has no attribute dict ({Describe(m.State)}).");
            foreach (var (key, value) in attributes.Items)
            {
                if (key is not string name) throw new VlsmException($"{path}: attribute {Describe(key)} of {Printable.Clip(m.Type)} is not a string.");
                if (value is PickledTensor)
                {
                    if (!declared.TryGetValue(m.Type, out var stateNames) || stateNames.Contains(name)) result.Set(prefix + name, value);
                }
                else if (value is PickleObject child) Walk(child, prefix + name + ".", depth + 1);
            }
            open.Remove(m);
        }
        Walk(module, "", 0);
        if (result.Items.Count == 0) throw new VlsmException($"{path}: the TorchScript module holds no tensors.");
        return result;
    }

    private static string Describe(object? value) => value switch
    {
        PickleTuple => "a tuple",
        _ => PickleText.Show(value),
    };

    /// <param name="storageBytes">The bytes of a tensor's (root) storage; the name is for messages.</param>
    private static List<TorchTensor> Materialise(string path, PickleDict dict, DecodedBytes budget, Func<string, StorageRef, byte[]> storageBytes)
    {
        var result = new List<TorchTensor>(dict.Items.Count);
        foreach (var (key, value) in dict.Items)
        {
            if (key is not string name) throw new VlsmException($"{path}: state-dict key {Describe(key)} is not a string.");
            var t = (PickledTensor)value!;
            var data = storageBytes(name, t.Storage);
            if (data.LongLength / SafetensorsDtypes.Size(t.Storage.Dtype) < t.Storage.Count)
                throw new VlsmException($"{path}: storage {Printable.Quote(t.Storage.Key)} holds {data.LongLength} bytes, fewer than its {t.Storage.Count} elements need.");
            result.Add(new TorchTensor(name, t.Storage.Dtype, t.Size, Gather(path, name, t, data, budget)));
        }
        return result;
    }

    /// <summary>The tensor's elements in row-major order: a slice when it is contiguous, else an element-by-element gather.</summary>
    private static byte[] Gather(string path, string name, PickledTensor t, byte[] storage, DecodedBytes budget)
    {
        int size = SafetensorsDtypes.Size(t.Storage.Dtype);
        string Layout() => $"offset {t.Offset}, size {Printable.Clip($"[{string.Join(", ", t.Size)}]")}, stride {Printable.Clip($"[{string.Join(", ", t.Stride)}]")}";
        if (t.Size.Any(s => s < 0) || t.Stride.Any(s => s < 0))
            throw new VlsmException($"{path}: tensor {Printable.Quote(name)} has a negative size or stride.");
        if (t.Size.Contains(0)) return [];
        long end = t.Storage.Offset + t.Storage.Count; // one past the last element the view may use
        if (t.Offset < 0 || t.Offset >= t.Storage.Count)
            throw new VlsmException($"{path}: tensor {Printable.Quote(name)} ({Layout()}) reaches past its storage of {t.Storage.Count} elements.");
        long start = t.Offset + t.Storage.Offset;
        long count = 1, last = start;
        bool contiguous = true;
        long expected = 1;
        const long Saturated = long.MaxValue / 16; // past any budget; products stop growing there instead of overflowing
        for (int i = t.Size.Length - 1; i >= 0; i--)
        {
            long n = t.Size[i];
            if (n > 1 && t.Stride[i] > 0 && n - 1 > (end - 1 - last) / t.Stride[i])
                throw new VlsmException($"{path}: tensor {Printable.Quote(name)} ({Layout()}) reaches past its storage of {t.Storage.Count} elements.");
            if (n > 1) last += (n - 1) * t.Stride[i];
            count = count > Saturated / n ? Saturated : count * n;
            if (n > 1 && t.Stride[i] != expected) contiguous = false;
            expected = expected > Saturated / n ? Saturated : expected * n;
        }
        budget.Gather(name, count > Saturated / size ? Saturated : count * size);
        if (contiguous) return storage.AsSpan(checked((int)(start * size)), checked((int)(count * size))).ToArray();

        var result = new byte[count * size];
        var index = new long[t.Size.Length];
        for (long n = 0; n < count; n++)
        {
            long element = start;
            for (int i = 0; i < index.Length; i++) element += index[i] * t.Stride[i];
            storage.AsSpan(checked((int)(element * size)), size).CopyTo(result.AsSpan(checked((int)(n * size)), size));
            for (int i = index.Length - 1; i >= 0; i--)
            {
                if (++index[i] < t.Size[i]) break;
                index[i] = 0;
            }
        }
        return result;
    }
}

/// <summary>A pickled dict (<c>dict</c> or <c>collections.OrderedDict</c>), in insertion order.</summary>
internal sealed class PickleDict
{
    private readonly Dictionary<object, int> index = new();

    public List<KeyValuePair<object?, object?>> Items { get; } = new();

    public void Set(object? key, object? value)
    {
        if (key is null || key is List<object?> || key is PickleDict)
            throw new InvalidDataException("a dict key is not hashable");
        if (index.TryGetValue(key, out int at))
        {
            Items[at] = new(key, value);
            return;
        }
        index[key] = Items.Count;
        Items.Add(new(key, value));
    }

    public bool TryGet(string key, out object? value)
    {
        if (index.TryGetValue(key, out int at))
        {
            value = Items[at].Value;
            return true;
        }
        value = null;
        return false;
    }
}

internal sealed record PickleTuple(object?[] Items)
{
    public override string ToString() => PickleText.Show(this);
}

/// <summary>
/// What the pickle limits are: a state dict's pickle is a few values per tensor, so each bound is
/// far above any real checkpoint and far below what would exhaust memory. The reader refuses a
/// file past any of them, naming the limit, before it allocates what the file asks for.
/// </summary>
internal static class PickleLimits
{
    /// <summary>The decompressed data.pkl (real ones: kilobytes to a few megabytes).</summary>
    public const long MaxPickleBytes = 64L << 20;

    /// <summary>Values on the unpickler's stack at once, and open MARKs.</summary>
    public const int MaxStack = 1_000_000;

    /// <summary>One string, bytes object or GLOBAL line (state-dict strings are tensor names).</summary>
    public const int MaxStringBytes = 1 << 20;

    /// <summary>What the values built so far would take in memory, estimated generously (each value, container slot and memo entry counts).</summary>
    public const long MaxValueBytes = 96L << 20;

    /// <summary>Nesting of TorchScript submodules.</summary>
    public const int MaxModuleDepth = 1000;

    /// <summary>Zip entries, and again the tensors gathered from them, may hold this many times the file's size …</summary>
    public const long DecodedRatio = 4;

    /// <summary>… plus this.</summary>
    public const long DecodedSlack = 64L << 20;
}

/// <summary>Pickled values in one bounded line of a message: strings quoted, cut and escaped; tuples to two levels and six items.</summary>
internal static class PickleText
{
    private const int MaxChars = 200;

    public static string Show(object? value)
    {
        string text = Show(value, 0);
        return text.Length <= MaxChars ? text : text[..MaxChars] + "…";
    }

    private static string Show(object? value, int depth) => value switch
    {
        null => "None",
        string s => Printable.Quote(s),
        byte[] b => $"{b.Length} bytes",
        PickleTuple { Items: var items } => depth >= 2 ? "(…)"
            : "(" + string.Join(", ", items.Take(6).Select(i => Show(i, depth + 1))) + (items.Length > 6 ? $", … {items.Length - 6} more" : "") + ")",
        PickleDict => "a dict",
        List<object?> => "a list",
        PickleObject o => $"an object of {Printable.Clip(o.Type)}",
        PickleGlobal g => Printable.Clip(g.FullName),
        PickledTensor t => $"a tensor {Printable.Clip($"[{string.Join(", ", t.Size)}]")}",
        StorageRef r => $"storage {Printable.Quote(r.Key)}",
        System.Numerics.BigInteger n => n.GetByteCount() > 16 ? $"an integer of {n.GetByteCount()} bytes" : n.ToString(System.Globalization.CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => Printable.Clip(value.ToString() ?? value.GetType().Name),
    };
}

/// <summary>A global the unpickler allows, as a value on its stack.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => $"{Module}.{Name}";
    public override string ToString() => Printable.Clip(FullName);
}

/// <summary>
/// A Python object vlsm does not build, the one placeholder of the reader: a TorchScript module
/// (NEWOBJ of a <c>__torch__.*</c> class) or, in <see cref="PickleMode.Lenient"/>, what NEWOBJ or
/// REDUCE of a foreign global would have made. Its class name and the state BUILD gave it; nothing
/// of its class is imported or run.
/// </summary>
internal sealed class PickleObject(string type)
{
    public string Type { get; } = type;
    public object? State { get; set; }
    public override string ToString() => $"an object of {Printable.Clip(Type)}";
}

/// <summary>What the unpickler accepts beyond a plain state dict.</summary>
internal enum PickleMode
{
    /// <summary>Only what a state dict needs.</summary>
    StateDict,

    /// <summary>Also a TorchScript module tree: <c>__torch__.*</c> classes (NEWOBJ/BUILD) and torch.jit._pickle's container tags.</summary>
    TorchScript,

    /// <summary>Also any other global, as an inert placeholder that is never imported or called (objects beside the state dict).</summary>
    Lenient,
}

/// <summary>A storage a tensor refers to: its key, dtype and element count; a legacy view starts <paramref name="Offset"/> elements into the storage of that key.</summary>
internal sealed record StorageRef(string Key, SafetensorsDtype Dtype, long Count, long Offset = 0);

internal sealed record PickledTensor(StorageRef Storage, long Offset, long[] Size, long[] Stride)
{
    public override string ToString() => PickleText.Show(this);
}

/// <summary>
/// A pickle interpreter for state dicts. It never imports or calls anything: the few globals a
/// state dict uses are recognised by name and built here (<c>collections.OrderedDict</c>,
/// <c>torch._utils._rebuild_tensor_v2</c>, <c>torch._utils._rebuild_tensor</c>,
/// <c>torch._utils._rebuild_parameter</c>, the typed <c>torch.*Storage</c> and
/// <c>torch.cuda.*Storage</c> classes in persistent ids); any other global or opcode stops the
/// load with an error that names it, unless <see cref="PickleMode"/> admits it as data
/// (<see cref="PickleObject"/>). Opcodes that only build data (strings, sets, POP, DUP) are read in every mode.
/// </summary>
internal sealed class RestrictedUnpickler
{
    private static readonly Dictionary<string, SafetensorsDtype> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = SafetensorsDtype.F32, ["DoubleStorage"] = SafetensorsDtype.F64, ["HalfStorage"] = SafetensorsDtype.F16,
        ["BFloat16Storage"] = SafetensorsDtype.BF16, ["LongStorage"] = SafetensorsDtype.I64, ["IntStorage"] = SafetensorsDtype.I32,
        ["ShortStorage"] = SafetensorsDtype.I16, ["CharStorage"] = SafetensorsDtype.I8, ["ByteStorage"] = SafetensorsDtype.U8,
        ["BoolStorage"] = SafetensorsDtype.BOOL,
    };

    private static readonly HashSet<string> Callables = new(StringComparer.Ordinal)
    {
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "torch._utils._rebuild_tensor",
    };

    /// <summary>torch.jit._pickle's functions: each returns its first argument (a container, with a type tag TorchScript uses).</summary>
    private static readonly HashSet<string> TypeTags = new(StringComparer.Ordinal)
    {
        "torch.jit._pickle.restore_type_tag", "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_tensorlist",
        "torch.jit._pickle.build_doublelist", "torch.jit._pickle.build_boollist",
    };

    private readonly string path;
    private readonly byte[] data;
    private readonly PickleMode mode;
    private readonly SortedSet<string> foreign = new(StringComparer.Ordinal);
    private readonly List<object?> stack = new();
    private readonly Stack<int> marks = new();
    private readonly Dictionary<long, object?> memo = new();
    private readonly Dictionary<string, StorageRef> storages = new(StringComparer.Ordinal);
    private int pos;
    private int at; // where the current opcode starts
    private long built; // estimated bytes of the values built so far (PickleLimits.MaxValueBytes)

    /// <param name="start">Where the pickle starts in <paramref name="data"/> (the legacy format is a stream of pickles).</param>
    public RestrictedUnpickler(string path, byte[] data, PickleMode mode = PickleMode.StateDict, int start = 0)
    {
        this.path = path;
        this.data = data;
        this.mode = mode;
        pos = start;
    }

    /// <summary>The globals that became inert placeholders (<see cref="PickleMode.Lenient"/>), sorted.</summary>
    public IReadOnlyList<string> ForeignGlobals => foreign.ToList();

    /// <summary>Where the pickle ended (after its STOP), once <see cref="Load"/> has returned.</summary>
    public int Position => pos;

    /// <summary>Every (root) storage the pickle referred to, by key.</summary>
    public IReadOnlyDictionary<string, StorageRef> Storages => storages;

    private bool IsModuleClass(PickleGlobal g) => mode == PickleMode.TorchScript && (g.Module == "__torch__" || g.Module.StartsWith("__torch__.", StringComparison.Ordinal));

    private bool IsInert(PickleGlobal g) => mode == PickleMode.Lenient && foreign.Contains(g.FullName);

    public object? Load()
    {
        while (true)
        {
            at = pos;
            byte op = U8();
            switch (op)
            {
                case 0x80: // PROTO
                    if (U8() > 4) Fail(at, "pickle protocol above 4");
                    break;
                case 0x95: // FRAME (protocol 4): a length prefix only
                    Take(8);
                    break;
                case (byte)'.': // STOP
                    if (stack.Count != 1) Fail(at, $"STOP with {stack.Count} values on the stack");
                    return stack[0];
                case (byte)'(': // MARK
                    if (marks.Count >= PickleLimits.MaxStack) Fail(at, $"more than {PickleLimits.MaxStack:N0} open MARKs");
                    Charge(4);
                    marks.Push(stack.Count);
                    break;
                case (byte)'}': Push(new PickleDict()); break; // EMPTY_DICT
                case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
                case (byte)')': Push(new PickleTuple([])); break; // EMPTY_TUPLE
                case (byte)'N': Push(null); break; // NONE
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'K': Push((long)U8()); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
                case 0x8a: Push(Long1(at)); break; // LONG1
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                case (byte)'X': Push(Utf8(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // BINUNICODE
                case 0x8d: Push(Utf8(BinaryPrimitives.ReadUInt64LittleEndian(Take(8)))); break; // BINUNICODE8
                case (byte)'T': Push(Utf8(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // BINSTRING (Python 2 str; torch.load decodes it as UTF-8)
                case (byte)'U': Push(Utf8(U8())); break; // SHORT_BINSTRING
                case 0x8b: Push(Long4(at)); break; // LONG4
                case (byte)'0': Pop(at); break; // POP
                case (byte)'1': PopToMark(at); break; // POP_MARK
                case (byte)'2': PushReference(Peek(at)); break; // DUP
                case 0x8f: Push(new List<object?>()); break; // EMPTY_SET (a set's items are kept as a list)
                case 0x90: // ADDITEMS
                {
                    var items = PopToMark(at);
                    AddTo(at, Peek(at), items);
                    break;
                }
                case 0x91: Push(PopToMark(at)); break; // FROZENSET
                case 0x8e: Push(Bytes(BinaryPrimitives.ReadUInt64LittleEndian(Take(8)))); break; // BINBYTES8
                case 0x8c: Push(Utf8(U8())); break; // SHORT_BINUNICODE
                case (byte)'B': Push(Bytes(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // BINBYTES
                case (byte)'C': Push(Bytes(U8())); break; // SHORT_BINBYTES
                case (byte)'t': Push(new PickleTuple(PopToMark(at).ToArray())); break; // TUPLE
                case 0x85: Push(new PickleTuple(PopMany(at, 1))); break; // TUPLE1
                case 0x86: Push(new PickleTuple(PopMany(at, 2))); break; // TUPLE2
                case 0x87: Push(new PickleTuple(PopMany(at, 3))); break; // TUPLE3
                case (byte)'q': Memoize(U8()); break; // BINPUT
                case (byte)'r': Memoize(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))); break; // LONG_BINPUT
                case 0x94: Memoize(memo.Count); break; // MEMOIZE
                case (byte)'h': PushReference(Recall(at, U8())); break; // BINGET
                case (byte)'j': PushReference(Recall(at, BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // LONG_BINGET
                case (byte)'a': // APPEND
                {
                    var item = Pop(at);
                    AddTo(at, Peek(at), [item]);
                    break;
                }
                case (byte)'e': // APPENDS
                {
                    var items = PopToMark(at);
                    AddTo(at, Peek(at), items);
                    break;
                }
                case (byte)'s': // SETITEM
                {
                    var value = Pop(at);
                    var key = Pop(at);
                    SetItem(at, Peek(at), key, value);
                    break;
                }
                case (byte)'u': // SETITEMS
                {
                    var items = PopToMark(at);
                    if (items.Count % 2 != 0) Fail(at, "SETITEMS with an odd number of values");
                    var target = Peek(at);
                    for (int i = 0; i < items.Count; i += 2) SetItem(at, target, items[i], items[i + 1]);
                    break;
                }
                case (byte)'c': // GLOBAL
                {
                    string module = Line(), name = Line();
                    Push(Global(at, module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop(at);
                    var module = Pop(at);
                    if (module is not string m || name is not string n) { Fail(at, "STACK_GLOBAL without two strings"); return null; }
                    if (m.Length + n.Length > PickleLimits.MaxStringBytes) Fail(at, "a STACK_GLOBAL name longer than a module path");
                    Push(Global(at, m, n));
                    break;
                }
                case (byte)'Q': // BINPERSID
                    Push(PersistentLoad(at, Pop(at)));
                    break;
                case (byte)'R': // REDUCE
                {
                    var args = Pop(at);
                    var callable = Pop(at);
                    Push(Reduce(at, callable, args));
                    break;
                }
                case (byte)'b': // BUILD
                {
                    var state = Pop(at); // for a dict: an OrderedDict's _metadata, not needed for the tensors
                    var target = Peek(at);
                    if (target is PickleObject o) o.State = state;
                    else if (target is not PickleDict && mode != PickleMode.Lenient) Fail(at, "BUILD on something other than a dict");
                    break;
                }
                case 0x81: // NEWOBJ: cls.__new__(cls, *args)
                {
                    _ = Pop(at);
                    Push(NewObject(at, Pop(at)));
                    break;
                }
                case 0x92: // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
                {
                    _ = Pop(at);
                    _ = Pop(at);
                    Push(NewObject(at, Pop(at)));
                    break;
                }
                default:
                    Fail(at, $"opcode 0x{op:x2} ('{(op is >= 0x20 and < 0x7f ? (char)op : '?')}'), which a state dict does not use");
                    break;
            }
        }
    }

    private object Global(int at, string module, string name)
    {
        string full = $"{module}.{name}";
        if (Callables.Contains(full)) return new PickleGlobal(module, name);
        if (module is "torch" or "torch.cuda" && StorageTypes.ContainsKey(name)) return new PickleGlobal(module, name);
        var g = new PickleGlobal(module, name);
        if (mode != PickleMode.StateDict && TypeTags.Contains(full)) return g;
        if (IsModuleClass(g)) return g;
        if (mode == PickleMode.Lenient)
        {
            foreign.Add(full);
            return g;
        }
        throw new VlsmException($"{path}: refused to load: the pickle asks for global {Printable.Quote(full)} (byte {at}), which a state dict does not need; "
            + "only collections.OrderedDict, torch._utils._rebuild_tensor(_v2), torch._utils._rebuild_parameter and torch(.cuda).*Storage are allowed. Nothing was run.");
    }

    /// <summary>
    /// A storage: <c>('storage', torch.&lt;Type&gt;Storage, key, location, size)</c> in the zip format;
    /// the legacy format adds view metadata, None or <c>(view_key, offset, view_size)</c>.
    /// </summary>
    private StorageRef PersistentLoad(int at, object? pid)
    {
        object? view = null;
        if (pid is not PickleTuple { Items: ["storage", PickleGlobal type, string key, string, long count, ..] items }
            || items.Length > 6 || !StorageTypes.TryGetValue(type.Name, out var dtype))
        {
            Fail(at, $"persistent id {PickleText.Show(pid)}, not ('storage', torch.<Type>Storage, key, location, size),");
            return null!;
        }
        if (items.Length == 6) view = items[5];
        if (count < 0) Fail(at, $"storage {Printable.Quote(key)} with a negative size");
        if (storages.TryGetValue(key, out var known) && (known.Dtype != dtype || known.Count != count))
            Fail(at, $"storage {Printable.Quote(key)} with two different types or sizes");
        storages[key] = new StorageRef(key, dtype, count);
        switch (view)
        {
            case null:
                return storages[key];
            case PickleTuple { Items: [string, long offset, long size] } when offset >= 0 && size >= 0 && offset <= count && size <= count - offset:
                return new StorageRef(key, dtype, size, offset);
            default:
                Fail(at, $"storage {Printable.Quote(key)} with view metadata {PickleText.Show(view)}, not (key, offset, size) within the storage");
                return null!;
        }
    }

    /// <summary>NEWOBJ: an OrderedDict is built empty; a TorchScript module class or (lenient) a foreign class gives a <see cref="PickleObject"/>; anything else is refused.</summary>
    private object NewObject(int at, object? cls)
    {
        if (cls is PickleGlobal { FullName: "collections.OrderedDict" }) return new PickleDict();
        if (cls is PickleGlobal g && (IsModuleClass(g) || IsInert(g))) return new PickleObject(g.FullName);
        Fail(at, $"NEWOBJ of {PickleText.Show(cls)}, which cannot be built here,");
        return null!;
    }

    private object? Reduce(int at, object? callable, object? args)
    {
        if (callable is PickleGlobal tag && TypeTags.Contains(tag.FullName) && mode != PickleMode.StateDict)
        {
            if (args is not PickleTuple { Items.Length: >= 1 } tagged) { Fail(at, $"{tag} without arguments"); return null; }
            return tagged.Items[0];
        }
        if (callable is PickleGlobal inert && IsInert(inert)) return new PickleObject(inert.FullName); // never called: what it would have made is a placeholder
        if (callable is not PickleGlobal g || !Callables.Contains(g.FullName))
        {
            Fail(at, $"REDUCE of {PickleText.Show(callable)}, which cannot be called here,");
            return null;
        }
        if (args is not PickleTuple t) { Fail(at, $"REDUCE arguments for {g} are not a tuple"); return null; }
        switch (g.FullName)
        {
            case "collections.OrderedDict":
                return OrderedDict(at, t);
            case "torch._utils._rebuild_tensor": // (storage, offset, size, stride): PyTorch before 0.4
                if (t.Items is not [StorageRef s0, long o0, PickleTuple size0, PickleTuple stride0] || size0.Items.Length != stride0.Items.Length
                    || !size0.Items.All(i => i is long) || !stride0.Items.All(i => i is long))
                {
                    Fail(at, "torch._utils._rebuild_tensor arguments are not (storage, offset, size, stride)");
                    return null;
                }
                return new PickledTensor(s0, o0, size0.Items.Select(i => (long)i!).ToArray(), stride0.Items.Select(i => (long)i!).ToArray());
            case "torch._utils._rebuild_parameter":
                if (t.Items is not [PickledTensor, ..]) Fail(at, "torch._utils._rebuild_parameter without a tensor");
                return t.Items[0];
            default: // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (t.Items is not [StorageRef storage, long offset, PickleTuple size, PickleTuple stride, ..] || t.Items.Length < 6
                    || size.Items.Length != stride.Items.Length || !size.Items.All(i => i is long) || !stride.Items.All(i => i is long))
                {
                    Fail(at, "torch._utils._rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)");
                    return null;
                }
                return new PickledTensor(storage, offset, size.Items.Select(i => (long)i!).ToArray(), stride.Items.Select(i => (long)i!).ToArray());
        }
    }

    /// <summary>OrderedDict() or, as Python 2 pickled it, OrderedDict([[key, value], ...]).</summary>
    private PickleDict OrderedDict(int at, PickleTuple args)
    {
        var dict = new PickleDict();
        if (args.Items.Length == 0) return dict;
        if (args.Items is not [List<object?> pairs]) { Fail(at, "collections.OrderedDict with arguments other than a list of pairs"); return dict; }
        foreach (var pair in pairs)
        {
            switch (pair)
            {
                case List<object?> { Count: 2 } l: SetItem(at, dict, l[0], l[1]); break;
                case PickleTuple { Items: [var k, var v] }: SetItem(at, dict, k, v); break;
                default: Fail(at, "collections.OrderedDict with an item that is not a (key, value) pair"); break;
            }
        }
        return dict;
    }

    private void SetItem(int at, object? target, object? key, object? value)
    {
        Charge(64);
        if (target is PickleObject && mode == PickleMode.Lenient) return; // items of an inert object are not kept
        if (target is not PickleDict d) { Fail(at, "SETITEM on something other than a dict"); return; }
        try
        {
            d.Set(key, value);
        }
        catch (InvalidDataException e)
        {
            Fail(at, e.Message);
        }
    }

    private void AddTo(int at, object? target, List<object?> items)
    {
        Charge(8L * items.Count);
        if (target is List<object?> list) list.AddRange(items);
        else if (target is not PickleObject || mode != PickleMode.Lenient) Fail(at, "APPEND on something other than a list"); // items of an inert object are not kept
    }

    private object? Recall(int at, long key)
    {
        if (!memo.TryGetValue(key, out var value)) Fail(at, $"memo entry {key} was never stored");
        return value;
    }

    /// <summary>LONG1: a little-endian two's-complement integer of up to 255 bytes; those longer than 8 bytes (torch.save's legacy magic number) as a BigInteger.</summary>
    private object Long1(int at)
    {
        int n = U8();
        if (n > 8) return new System.Numerics.BigInteger(Take(n), isUnsigned: false, isBigEndian: false);
        var bytes = Take(n);
        long value = 0;
        for (int i = n - 1; i >= 0; i--) value = (value << 8) | bytes[i];
        if (n is > 0 and < 8 && (bytes[n - 1] & 0x80) != 0) value -= 1L << (8 * n); // two's complement sign
        return value;
    }

    private System.Numerics.BigInteger Long4(int at)
    {
        uint n = BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        if (n > 1 << 16) Fail(at, $"an integer of {n} bytes");
        return new System.Numerics.BigInteger(Take((int)n), isUnsigned: false, isBigEndian: false);
    }

    private string Line()
    {
        int end = Array.IndexOf(data, (byte)'\n', pos, Math.Min(data.Length - pos, PickleLimits.MaxStringBytes + 1));
        if (end < 0 && data.Length - pos > PickleLimits.MaxStringBytes) Fail(at, $"a GLOBAL name longer than {PickleLimits.MaxStringBytes} bytes");
        if (end < 0) Take(data.Length - pos + 1); // a GLOBAL cut off by the end of the data
        string s = System.Text.Encoding.UTF8.GetString(data, pos, end - pos);
        pos = end + 1;
        return s;
    }

    /// <summary>A declared length of a string or bytes object, refused above <see cref="PickleLimits.MaxStringBytes"/> before anything is read or allocated.</summary>
    private int Length(ulong length, string what)
    {
        if (length > PickleLimits.MaxStringBytes)
            Fail(at, $"a {what} of {length} bytes (the limit is {PickleLimits.MaxStringBytes >> 20} MB; a state dict's strings are names)");
        return (int)length;
    }

    private string Utf8(ulong length) => System.Text.Encoding.UTF8.GetString(Take(Length(length, "string")));

    private byte[] Bytes(ulong length) => Take(Length(length, "bytes object")).ToArray();

    private byte U8() => Take(1)[0];

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || (long)pos + n > data.Length)
            throw new VlsmException($"{path}: data.pkl ends early (at byte {data.Length}); the checkpoint is truncated or damaged.");
        var span = data.AsSpan(pos, n);
        pos += n;
        return span;
    }

    /// <summary>Pushes a value this opcode built, charging its estimated size.</summary>
    private void Push(object? value)
    {
        Charge(8 + Size(value));
        PushSlot(value);
    }

    /// <summary>Pushes one more reference to a value that exists already (DUP, BINGET).</summary>
    private void PushReference(object? value)
    {
        Charge(8);
        PushSlot(value);
    }

    private void PushSlot(object? value)
    {
        if (stack.Count >= PickleLimits.MaxStack) Fail(at, $"more than {PickleLimits.MaxStack:N0} values on the stack");
        stack.Add(value);
    }

    private void Memoize(long key)
    {
        var value = Peek(at);
        if (!memo.ContainsKey(key)) Charge(64);
        memo[key] = value;
    }

    /// <summary>
    /// Counts <paramref name="bytes"/> more of what the pickle has built (references, containers'
    /// slots and memo entries included, and never given back), and refuses the file past
    /// <see cref="PickleLimits.MaxValueBytes"/>.
    /// </summary>
    private void Charge(long bytes)
    {
        built += bytes;
        if (built > PickleLimits.MaxValueBytes)
            Fail(at, $"more values than a state dict builds (over {PickleLimits.MaxValueBytes >> 20} MB of them)");
    }

    /// <summary>What a newly built value takes in memory, roughly and on the high side.</summary>
    private static long Size(object? value) => value switch
    {
        null => 0,
        string s => 32 + 2L * s.Length,
        byte[] b => 32 + b.LongLength,
        PickleTuple t => 48 + 8L * t.Items.Length,
        PickleDict => 200,
        List<object?> l => 64 + 8L * l.Count,
        PickleGlobal g => 120 + 2L * (g.Module.Length + g.Name.Length),
        PickledTensor t => 120 + 16L * t.Size.Length,
        System.Numerics.BigInteger n => 48 + n.GetByteCount(),
        _ => 48,
    };

    private object? Peek(int at)
    {
        if (stack.Count == 0 || (marks.Count > 0 && marks.Peek() == stack.Count)) Fail(at, "an empty stack");
        return stack[^1];
    }

    private object? Pop(int at)
    {
        var value = Peek(at);
        stack.RemoveAt(stack.Count - 1);
        return value;
    }

    private object?[] PopMany(int at, int n)
    {
        var items = new object?[n];
        for (int i = n - 1; i >= 0; i--) items[i] = Pop(at);
        return items;
    }

    private List<object?> PopToMark(int at)
    {
        if (marks.Count == 0) Fail(at, "no MARK before a list of values");
        int start = marks.Pop();
        var items = stack.GetRange(start, stack.Count - start);
        stack.RemoveRange(start, stack.Count - start);
        return items;
    }

    private void Fail(int at, string what) =>
        throw new VlsmException($"{path}: refused to load: data.pkl has {what} at byte {at}; only a plain state dict can be read. Nothing was run.");
}
