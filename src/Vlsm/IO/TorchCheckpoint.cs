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
/// Reads state dicts from <c>torch.save</c> zip checkpoints (<c>.pth</c>, <c>.pt</c>, HF
/// <c>pytorch_model.bin</c>) without Python and without running anything the file says: the
/// pickle is interpreted by <see cref="RestrictedUnpickler"/>, which knows only the opcodes and
/// globals a state dict needs and refuses any other by name. Tensor bytes come from the archive's
/// <c>data/N</c> entries, honouring each tensor's storage offset, size and stride.
/// </summary>
public static class TorchCheckpoint
{
    /// <summary>Keys under which training scripts nest the state dict in a larger checkpoint dict.</summary>
    private static readonly string[] NestingKeys = ["state_dict", "model", "model_state_dict", "module", "net"];

    /// <summary>The tensors of the checkpoint's state dict, in the order the file stores them.</summary>
    /// <exception cref="VlsmException">
    /// The file is missing, not a torch zip checkpoint, truncated, uses a global or opcode outside
    /// the state-dict subset (named in the message), or holds something other than a dict of tensors.
    /// </exception>
    public static IReadOnlyList<TorchTensor> ReadStateDict(string path) =>
        Read(path, PickleMode.StateDict, (root, _, _) => FindStateDict(path, root), out _);

    /// <summary>
    /// The state dict of a checkpoint that also pickles other objects beside it, such as a PyTorch
    /// Lightning <c>.ckpt</c> whose <c>hyper_parameters</c> hold a loss object or a
    /// <c>functools.partial</c>: those objects become inert placeholders (their classes are never
    /// imported, nothing is called) and <paramref name="foreignGlobals"/> names them. The state dict
    /// itself must still be plain tensors.
    /// </summary>
    /// <exception cref="VlsmException">As <see cref="ReadStateDict(string)"/>, but for other globals.</exception>
    public static IReadOnlyList<TorchTensor> ReadStateDictBesideObjects(string path, out IReadOnlyList<string> foreignGlobals) =>
        Read(path, PickleMode.Lenient, (root, _, _) => FindStateDict(path, root), out foreignGlobals);

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
    public static IReadOnlyList<TorchTensor> ReadTorchScript(string path) =>
        Read(path, PickleMode.TorchScript, (root, zip, prefix) => ModuleTensors(path, root, DeclaredTensors(path, zip, prefix)), out _);

    private static IReadOnlyList<TorchTensor> Read(string path, PickleMode mode, Func<object?, ZipArchive, string, PickleDict> tensors, out IReadOnlyList<string> foreignGlobals)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new VlsmException($"{path}: checkpoint file not found.");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            CheckMagic(path, stream);
            using var zip = new ZipArchive(stream, ZipArchiveMode.Read);
            var pickle = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                ?? throw new VlsmException($"{path}: a zip file without <name>/data.pkl; not a torch.save checkpoint.");
            string prefix = pickle.FullName[..^"data.pkl".Length];
            if (zip.GetEntry(prefix + "byteorder") is { } order)
            {
                string text = System.Text.Encoding.ASCII.GetString(ReadEntry(path, order)).Trim();
                if (text != "little")
                    throw new VlsmException($"{path}: byteorder is \"{text}\"; only little-endian checkpoints are supported.");
            }
            var unpickler = new RestrictedUnpickler(path, ReadEntry(path, pickle), mode);
            object? root = unpickler.Load();
            foreignGlobals = unpickler.ForeignGlobals;
            return Materialise(path, zip, prefix, tensors(root, zip, prefix));
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

    /// <summary>Removes <paramref name="prefix"/> (e.g. DataParallel's <c>module.</c>) when every key starts with it.</summary>
    public static IReadOnlyList<TorchTensor> StripPrefix(IReadOnlyList<TorchTensor> tensors, string prefix) =>
        tensors.Count > 0 && tensors.All(t => t.Name.StartsWith(prefix, StringComparison.Ordinal))
            ? tensors.Select(t => t with { Name = t.Name[prefix.Length..] }).ToList()
            : tensors;

    private static void CheckMagic(string path, FileStream stream)
    {
        Span<byte> head = stackalloc byte[4];
        int n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        stream.Position = 0;
        if (n == 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return;
        if (n >= 2 && head[0] == 0x80)
            throw new VlsmException($"{path}: a legacy (PyTorch < 1.6) checkpoint, which is not supported; re-save it with torch.save from PyTorch 1.6 or later.");
        throw new VlsmException($"{path}: not a torch.save zip checkpoint (it does not start with a zip header).");
    }

    private static byte[] ReadEntry(string path, ZipArchiveEntry entry)
    {
        if (entry.Length > Array.MaxLength)
            throw new VlsmException($"{path}: entry {entry.FullName} holds {entry.Length} bytes, more than one array can hold.");
        var bytes = new byte[entry.Length];
        using var s = entry.Open();
        int read = s.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
        if (read != bytes.Length)
            throw new VlsmException($"{path}: entry {entry.FullName} is truncated ({read} of {bytes.Length} bytes).");
        return bytes;
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
    private static Dictionary<string, HashSet<string>> DeclaredTensors(string path, ZipArchive zip, string prefix)
    {
        var declared = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        string codeRoot = prefix + "code/";
        foreach (var entry in zip.Entries.Where(e => e.FullName.StartsWith(codeRoot, StringComparison.Ordinal) && e.FullName.EndsWith(".py", StringComparison.Ordinal)))
        {
            string module = entry.FullName[codeRoot.Length..^".py".Length].Replace('/', '.');
            string? current = null;
            foreach (var line in System.Text.Encoding.UTF8.GetString(ReadEntry(path, entry)).Split('\n'))
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
        void Walk(PickleObject m, string prefix)
        {
            if (!open.Add(m)) throw new VlsmException($"{path}: module {prefix.TrimEnd('.')} contains itself; the archive is damaged.");
            if (m.State is not PickleDict attributes)
                throw new VlsmException($"{path}: module {(prefix.Length == 0 ? "(root)" : prefix.TrimEnd('.'))} of type {m.Type} has no attribute dict ({Describe(m.State)}).");
            foreach (var (key, value) in attributes.Items)
            {
                if (key is not string name) throw new VlsmException($"{path}: attribute {Describe(key)} of {m.Type} is not a string.");
                if (value is PickledTensor)
                {
                    if (!declared.TryGetValue(m.Type, out var stateNames) || stateNames.Contains(name)) result.Set(prefix + name, value);
                }
                else if (value is PickleObject child) Walk(child, prefix + name + ".");
            }
            open.Remove(m);
        }
        Walk(module, "");
        if (result.Items.Count == 0) throw new VlsmException($"{path}: the TorchScript module holds no tensors.");
        return result;
    }

    private static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"\"{s}\"",
        PickleDict => "a dict",
        PickleTuple => "a tuple",
        List<object?> => "a list",
        PickleObject o => $"an object of {o.Type}",
        _ => value.ToString() ?? value.GetType().Name,
    };

    private static List<TorchTensor> Materialise(string path, ZipArchive zip, string prefix, PickleDict dict)
    {
        var storages = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var result = new List<TorchTensor>(dict.Items.Count);
        foreach (var (key, value) in dict.Items)
        {
            if (key is not string name) throw new VlsmException($"{path}: state-dict key {Describe(key)} is not a string.");
            var t = (PickledTensor)value!;
            if (!storages.TryGetValue(t.Storage.Key, out var data))
            {
                var entry = zip.GetEntry($"{prefix}data/{t.Storage.Key}")
                    ?? throw new VlsmException($"{path}: tensor \"{name}\" refers to storage {t.Storage.Key}, which the archive lacks ({prefix}data/{t.Storage.Key}).");
                data = ReadEntry(path, entry);
                long needed = t.Storage.Count * SafetensorsDtypes.Size(t.Storage.Dtype);
                if (data.LongLength < needed)
                    throw new VlsmException($"{path}: storage {t.Storage.Key} holds {data.LongLength} bytes, fewer than its {t.Storage.Count} elements need ({needed}).");
                storages[t.Storage.Key] = data;
            }
            result.Add(new TorchTensor(name, t.Storage.Dtype, t.Size, Gather(path, name, t, data)));
        }
        return result;
    }

    /// <summary>The tensor's elements in row-major order: a slice when it is contiguous, else an element-by-element gather.</summary>
    private static byte[] Gather(string path, string name, PickledTensor t, byte[] storage)
    {
        int size = SafetensorsDtypes.Size(t.Storage.Dtype);
        long count = 1, last = t.Offset;
        bool contiguous = true;
        long expected = 1;
        for (int i = t.Size.Length - 1; i >= 0; i--)
        {
            if (t.Size[i] < 0 || t.Stride[i] < 0)
                throw new VlsmException($"{path}: tensor \"{name}\" has a negative size or stride.");
            count *= t.Size[i];
            if (t.Size[i] > 1 && t.Stride[i] != expected) contiguous = false;
            expected *= t.Size[i];
            if (t.Size[i] > 0) last += (t.Size[i] - 1) * t.Stride[i];
        }
        if (count == 0) return [];
        if (t.Offset < 0 || last >= t.Storage.Count)
            throw new VlsmException($"{path}: tensor \"{name}\" (offset {t.Offset}, size [{string.Join(", ", t.Size)}], stride [{string.Join(", ", t.Stride)}]) reaches past its storage of {t.Storage.Count} elements.");
        if (count * size > Array.MaxLength)
            throw new VlsmException($"{path}: tensor \"{name}\" holds {count * size} bytes, more than one array can hold.");
        if (contiguous) return storage.AsSpan(checked((int)(t.Offset * size)), checked((int)(count * size))).ToArray();

        var result = new byte[count * size];
        var index = new long[t.Size.Length];
        for (long n = 0; n < count; n++)
        {
            long element = t.Offset;
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
    public override string ToString() => $"({string.Join(", ", Items)})";
}

/// <summary>A global the unpickler allows, as a value on its stack.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => $"{Module}.{Name}";
    public override string ToString() => FullName;
}

/// <summary>An object built by NEWOBJ (a TorchScript module, or an inert placeholder): its class name and the state BUILD gave it. Nothing of its class runs.</summary>
internal sealed class PickleObject(string type)
{
    public string Type { get; } = type;
    public object? State { get; set; }
    public override string ToString() => $"an object of {Type}";
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

internal sealed record StorageRef(string Key, SafetensorsDtype Dtype, long Count);

internal sealed record PickledTensor(StorageRef Storage, long Offset, long[] Size, long[] Stride)
{
    public override string ToString() => $"a tensor [{string.Join(", ", Size)}]";
}

/// <summary>
/// A pickle interpreter for state dicts. It never imports or calls anything: the few globals a
/// state dict uses are recognised by name and built here (<c>collections.OrderedDict</c>,
/// <c>torch._utils._rebuild_tensor_v2</c>, <c>torch._utils._rebuild_parameter</c>, the typed
/// <c>torch.*Storage</c> classes in persistent ids); any other global or opcode stops the load
/// with an error that names it.
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
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
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
    private int pos;

    public RestrictedUnpickler(string path, byte[] data, PickleMode mode = PickleMode.StateDict)
    {
        this.path = path;
        this.data = data;
        this.mode = mode;
    }

    /// <summary>The globals that became inert placeholders (<see cref="PickleMode.Lenient"/>).</summary>
    public IReadOnlyList<string> ForeignGlobals => foreign.ToList();

    private bool IsModuleClass(PickleGlobal g) => mode == PickleMode.TorchScript && (g.Module == "__torch__" || g.Module.StartsWith("__torch__.", StringComparison.Ordinal));

    private bool IsInert(PickleGlobal g) => mode == PickleMode.Lenient && foreign.Contains(g.FullName);

    public object? Load()
    {
        while (true)
        {
            int at = pos;
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
                case 0x8c: Push(Utf8(U8())); break; // SHORT_BINUNICODE
                case (byte)'B': Push(Take(checked((int)BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))).ToArray()); break; // BINBYTES
                case (byte)'C': Push(Take(U8()).ToArray()); break; // SHORT_BINBYTES
                case (byte)'t': Push(new PickleTuple(PopToMark(at).ToArray())); break; // TUPLE
                case 0x85: Push(new PickleTuple(PopMany(at, 1))); break; // TUPLE1
                case 0x86: Push(new PickleTuple(PopMany(at, 2))); break; // TUPLE2
                case 0x87: Push(new PickleTuple(PopMany(at, 3))); break; // TUPLE3
                case (byte)'q': memo[U8()] = Peek(at); break; // BINPUT
                case (byte)'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek(at); break; // LONG_BINPUT
                case 0x94: memo[memo.Count] = Peek(at); break; // MEMOIZE
                case (byte)'h': Push(Recall(at, U8())); break; // BINGET
                case (byte)'j': Push(Recall(at, BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // LONG_BINGET
                case (byte)'a': // APPEND
                {
                    var item = Pop(at);
                    AsList(at, Peek(at)).Add(item);
                    break;
                }
                case (byte)'e': // APPENDS
                {
                    var items = PopToMark(at);
                    AsList(at, Peek(at)).AddRange(items);
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
                case 0x81: // NEWOBJ: cls.__new__(cls, *args), here only an inert object
                {
                    _ = Pop(at);
                    Push(NewObject(at, Pop(at)));
                    break;
                }
                case 0x92 when mode == PickleMode.Lenient: // NEWOBJ_EX
                {
                    _ = Pop(at);
                    _ = Pop(at);
                    Push(NewObject(at, Pop(at)));
                    break;
                }
                case (byte)'0' when mode == PickleMode.Lenient: _ = Pop(at); break; // POP
                case (byte)'1' when mode == PickleMode.Lenient: _ = PopToMark(at); break; // POP_MARK
                case (byte)'2' when mode == PickleMode.Lenient: Push(Peek(at)); break; // DUP
                case 0x8f when mode == PickleMode.Lenient: Push(new List<object?>()); break; // EMPTY_SET, as a list
                case 0x90 when mode == PickleMode.Lenient: // ADDITEMS
                {
                    var items = PopToMark(at);
                    AsList(at, Peek(at)).AddRange(items);
                    break;
                }
                case 0x91 when mode == PickleMode.Lenient: Push(PopToMark(at)); break; // FROZENSET, as a list
                case (byte)'U' when mode == PickleMode.Lenient: Push(Take(U8()).ToArray()); break; // SHORT_BINSTRING
                case (byte)'T' when mode == PickleMode.Lenient: Push(Take(checked((int)BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))).ToArray()); break; // BINSTRING
                case 0x8d when mode == PickleMode.Lenient: Push(Utf8(checked((long)BinaryPrimitives.ReadUInt64LittleEndian(Take(8))))); break; // BINUNICODE8
                case 0x8e when mode == PickleMode.Lenient: Push(Take(checked((int)BinaryPrimitives.ReadUInt64LittleEndian(Take(8)))).ToArray()); break; // BINBYTES8
                case 0x8b when mode == PickleMode.Lenient: // LONG4: an integer too large for a state dict; kept as its bytes
                    Push(Take(checked((int)BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))).ToArray());
                    break;
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
        if (module == "torch" && StorageTypes.ContainsKey(name)) return new PickleGlobal(module, name);
        var g = new PickleGlobal(module, name);
        if (mode != PickleMode.StateDict && TypeTags.Contains(full)) return g;
        if (IsModuleClass(g)) return g;
        if (mode == PickleMode.Lenient)
        {
            foreign.Add(full);
            return g;
        }
        throw new VlsmException($"{path}: refused to load: the pickle asks for global {full} (byte {at}), which a state dict does not need; "
            + "only collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and torch.*Storage are allowed. Nothing was run.");
    }

    private StorageRef PersistentLoad(int at, object? pid)
    {
        if (pid is not PickleTuple { Items: ["storage", PickleGlobal type, string key, string, long count] } || !StorageTypes.TryGetValue(type.Name, out var dtype))
        {
            Fail(at, $"persistent id {pid} is not ('storage', torch.<Type>Storage, key, location, size)");
            return null!;
        }
        if (count < 0) Fail(at, $"storage {key} has a negative size");
        return new StorageRef(key, dtype, count);
    }

    private object NewObject(int at, object? cls)
    {
        if (cls is PickleGlobal g && (IsModuleClass(g) || IsInert(g))) return new PickleObject(g.FullName);
        Fail(at, $"NEWOBJ of {cls ?? "None"}, which cannot be built here");
        return null!;
    }

    private object? Reduce(int at, object? callable, object? args)
    {
        if (callable is PickleGlobal tag && TypeTags.Contains(tag.FullName) && mode != PickleMode.StateDict)
        {
            if (args is not PickleTuple { Items.Length: >= 1 } tagged) { Fail(at, $"{tag} without arguments"); return null; }
            return tagged.Items[0];
        }
        if (callable is PickleGlobal inert && IsInert(inert)) return new PickleObject(inert.FullName);
        if (callable is not PickleGlobal g || !Callables.Contains(g.FullName))
        {
            Fail(at, $"REDUCE calls {callable ?? "None"}, which cannot be called here");
            return null;
        }
        if (args is not PickleTuple t) { Fail(at, $"REDUCE arguments for {g} are not a tuple"); return null; }
        switch (g.FullName)
        {
            case "collections.OrderedDict":
                if (t.Items.Length != 0) Fail(at, "collections.OrderedDict with arguments");
                return new PickleDict();
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

    private void SetItem(int at, object? target, object? key, object? value)
    {
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

    private List<object?> AsList(int at, object? target)
    {
        if (target is List<object?> list) return list;
        if (target is PickleObject && mode == PickleMode.Lenient) return []; // items of an inert object are not kept
        Fail(at, "APPEND on something other than a list");
        return null!;
    }

    private object? Recall(int at, long key)
    {
        if (!memo.TryGetValue(key, out var value)) Fail(at, $"memo entry {key} was never stored");
        return value;
    }

    private long Long1(int at)
    {
        int n = U8();
        if (n > 8) Fail(at, $"an integer of {n} bytes");
        var bytes = Take(n);
        long value = 0;
        for (int i = n - 1; i >= 0; i--) value = (value << 8) | bytes[i];
        if (n is > 0 and < 8 && (bytes[n - 1] & 0x80) != 0) value -= 1L << (8 * n); // two's complement sign
        return value;
    }

    private string Line()
    {
        int end = Array.IndexOf(data, (byte)'\n', pos);
        if (end < 0) Take(data.Length - pos + 1); // a GLOBAL cut off by the end of the data
        string s = System.Text.Encoding.UTF8.GetString(data, pos, end - pos);
        pos = end + 1;
        return s;
    }

    private string Utf8(long length) => System.Text.Encoding.UTF8.GetString(Take(checked((int)length)));

    private byte U8() => Take(1)[0];

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || pos + n > data.Length)
            throw new VlsmException($"{path}: data.pkl ends early (at byte {data.Length}); the checkpoint is truncated or damaged.");
        var span = data.AsSpan(pos, n);
        pos += n;
        return span;
    }

    private void Push(object? value) => stack.Add(value);

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
