using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Vlsm.IO;

namespace Vlsm.Tests;

/// <summary>
/// Writes pickles the way PyTorch's writers do (protocol 2, memoised globals and strings, tensors as
/// <c>torch._utils._rebuild_tensor_v2</c> over persistent storages), for tests of the restricted
/// reader: TorchScript archives as libtorch's pickler lays out a module tree, and Lightning
/// checkpoints with objects beside the state dict.
/// </summary>
internal sealed class PickleWriter
{
    private readonly List<byte> bytes = [0x80, 2];
    private readonly Dictionary<string, int> globals = new(), strings = new();
    private int memo;

    public List<TorchTensor> Storages { get; } = new();

    /// <summary>Where each storage says it lives ("cpu", or "cuda:0" as OpenAI's CLIP archives say).</summary>
    public string Location { get; init; } = "cpu";

    public byte[] Finish()
    {
        bytes.Add((byte)'.');
        return bytes.ToArray();
    }

    public void Op(params byte[] ops) => bytes.AddRange(ops);

    private void Put()
    {
        int i = memo++;
        if (i < 256) Op((byte)'q', (byte)i);
        else
        {
            Op((byte)'r');
            bytes.AddRange(BitConverter.GetBytes(i));
        }
    }

    private void Get(int i)
    {
        if (i < 256) Op((byte)'h', (byte)i);
        else
        {
            Op((byte)'j');
            bytes.AddRange(BitConverter.GetBytes(i));
        }
    }

    public void Global(string module, string name)
    {
        string key = module + "\n" + name + "\n";
        if (globals.TryGetValue(key, out int at)) { Get(at); return; }
        Op((byte)'c');
        bytes.AddRange(Encoding.ASCII.GetBytes(key));
        globals[key] = memo;
        Put();
    }

    public void String(string text)
    {
        if (strings.TryGetValue(text, out int at)) { Get(at); return; }
        var b = Encoding.UTF8.GetBytes(text);
        Op((byte)'X');
        bytes.AddRange(BitConverter.GetBytes(b.Length));
        bytes.AddRange(b);
        strings[text] = memo;
        Put();
    }

    public void Int(long n)
    {
        if (n is >= 0 and < 256) Op((byte)'K', (byte)n);
        else if (n is >= 0 and < 65536) { Op((byte)'M'); bytes.AddRange(BitConverter.GetBytes((ushort)n)); }
        else if (n is >= int.MinValue and <= int.MaxValue) { Op((byte)'J'); bytes.AddRange(BitConverter.GetBytes((int)n)); }
        else { Op(0x8a, 8); bytes.AddRange(BitConverter.GetBytes(n)); }
    }

    public void Float(double x)
    {
        Op((byte)'G');
        var b = new byte[8];
        BinaryPrimitives.WriteDoubleBigEndian(b, x);
        bytes.AddRange(b);
    }

    public void Bool(bool b) => Op(b ? (byte)0x88 : (byte)0x89);

    public void None() => Op((byte)'N');

    /// <summary>A tensor with its own contiguous storage.</summary>
    public void Tensor(TorchTensor t)
    {
        string storage = t.Dtype switch
        {
            SafetensorsDtype.F16 => "HalfStorage", SafetensorsDtype.F32 => "FloatStorage", SafetensorsDtype.I64 => "LongStorage",
            SafetensorsDtype.BF16 => "BFloat16Storage", _ => throw new ArgumentException(t.Dtype.ToString()),
        };
        Global("torch._utils", "_rebuild_tensor_v2");
        Op((byte)'(', (byte)'(');
        String("storage");
        Global("torch", storage);
        String(Storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        String(Location);
        Int(t.Data.Length / SafetensorsDtypes.Size(t.Dtype));
        Op((byte)'t', (byte)'Q');
        Put();
        Storages.Add(t);
        Int(0);
        Op((byte)'(');
        foreach (var s in t.Shape) Int(s);
        Op((byte)'t', (byte)'(');
        long stride = 1;
        var strides = new long[t.Shape.Length];
        for (int i = t.Shape.Length - 1; i >= 0; i--) { strides[i] = stride; stride *= t.Shape[i]; }
        foreach (var s in strides) Int(s);
        Op((byte)'t');
        Bool(false);
        Global("collections", "OrderedDict");
        Op((byte)')', (byte)'R', (byte)'t', (byte)'R');
        Put();
    }

    /// <summary>A dict; <paramref name="ordered"/> builds it as <c>collections.OrderedDict()</c> as a state dict is.</summary>
    public void Dict(IEnumerable<(string Key, Action Value)> items, bool ordered = false)
    {
        if (ordered)
        {
            Global("collections", "OrderedDict");
            Op((byte)')', (byte)'R');
        }
        else Op((byte)'}');
        Put();
        Op((byte)'(');
        foreach (var (key, value) in items)
        {
            String(key);
            value();
        }
        Op((byte)'u');
    }

    /// <summary><c>cls.__new__(cls)</c> then BUILD with a dict of attributes, as copyreg and libtorch write objects.</summary>
    public void Object(string module, string name, IEnumerable<(string Key, Action Value)> attributes)
    {
        Global(module, name);
        Op((byte)')', 0x81);
        Dict(attributes);
        Op((byte)'b');
    }

    public static void WriteZip(string path, string archive, byte[] pickle, IReadOnlyList<TorchTensor> storages, IReadOnlyDictionary<string, byte[]>? extra = null)
    {
        if (File.Exists(path)) File.Delete(path);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        void Add(string entry, byte[] content)
        {
            using var s = zip.CreateEntry($"{archive}/{entry}", CompressionLevel.NoCompression).Open();
            s.Write(content);
        }
        Add("data.pkl", pickle);
        foreach (var (entry, content) in extra ?? new Dictionary<string, byte[]>()) Add(entry, content);
        Add("byteorder", Encoding.ASCII.GetBytes("little"));
        for (int i = 0; i < storages.Count; i++) Add($"data/{i}", storages[i].Data);
    }
}

/// <summary>A TorchScript module for <see cref="TorchScriptArchive"/>: its tensors (parameters or buffers) and submodules, in attribute order.</summary>
internal sealed class ScriptModuleNode
{
    public List<(string Name, object Value)> Attributes { get; } = new();
    public HashSet<string> Buffers { get; } = new();

    /// <summary>Tensor attributes that are neither parameters nor buffers (not in the state dict).</summary>
    public HashSet<string> Plain { get; } = new();

    /// <summary>The module tree of a flat state dict: "a.b.c" is tensor c of submodule b of submodule a.</summary>
    public static ScriptModuleNode FromStateDict(IEnumerable<TorchTensor> tensors, Func<string, bool>? isBuffer = null)
    {
        var root = new ScriptModuleNode();
        foreach (var t in tensors)
        {
            var parts = t.Name.Split('.');
            var node = root;
            foreach (var part in parts[..^1])
            {
                var child = node.Attributes.FirstOrDefault(a => a.Name == part).Value as ScriptModuleNode;
                if (child is null)
                {
                    child = new ScriptModuleNode();
                    node.Attributes.Add((part, child));
                }
                node = child;
            }
            node.Attributes.Add((parts[^1], t));
            if (isBuffer?.Invoke(t.Name) == true) node.Buffers.Add(parts[^1]);
        }
        return root;
    }
}

/// <summary>
/// TorchScript archives (torch.jit.save's layout: data.pkl, code/__torch__/*.py with each class's
/// __parameters__, __buffers__ and attribute types, constants.pkl, version, data/N), so libtorch's
/// own torch.jit.load accepts them.
/// </summary>
internal static class TorchScriptArchive
{
    public static void Write(string path, ScriptModuleNode root, string location = "cpu", string archive = "archive")
    {
        var writer = new PickleWriter { Location = location };
        var classes = new StringBuilder();
        int count = 0;
        // Writes the module at the pickle's current position (NEWOBJ, its attribute dict, BUILD) and its class definition; returns the class name.
        string Emit(ScriptModuleNode node)
        {
            string name = $"Module{count++}";
            var declarations = new StringBuilder();
            var parameters = new List<string>();
            var buffers = new List<string>();
            writer.Global("__torch__.model", name);
            writer.Op((byte)')', 0x81);
            var attributes = new List<(string Key, Action Value)> { ("training", () => writer.Bool(false)) };
            foreach (var (attribute, value) in node.Attributes)
            {
                if (value is TorchTensor t)
                {
                    if (!node.Plain.Contains(attribute)) (node.Buffers.Contains(attribute) ? buffers : parameters).Add(attribute);
                    declarations.Append($"  __annotations__[\"{attribute}\"] = Tensor\n");
                    attributes.Add((attribute, () => writer.Tensor(t)));
                }
                else
                {
                    attributes.Add((attribute, () => declarations.Append($"  __annotations__[\"{attribute}\"] = __torch__.model.{Emit((ScriptModuleNode)value)}\n")));
                }
            }
            writer.Dict(attributes);
            writer.Op((byte)'b');
            classes.Append($"class {name}(Module):\n  __parameters__ = [{string.Join("", parameters.Select(p => $"\"{p}\", "))}]\n"
                + $"  __buffers__ = [{string.Join("", buffers.Select(b => $"\"{b}\", "))}]\n  training : bool\n{declarations}");
            return name;
        }
        Emit(root);
        var pickle = writer.Finish();
        PickleWriter.WriteZip(path, archive, pickle, writer.Storages, new Dictionary<string, byte[]>
        {
            ["code/__torch__/model.py"] = Encoding.UTF8.GetBytes(classes.ToString()),
            ["constants.pkl"] = [0x80, 2, (byte)')', (byte)'.'],
            ["version"] = Encoding.ASCII.GetBytes("3\n"),
        });
    }
}
