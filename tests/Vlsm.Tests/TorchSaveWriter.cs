using System.IO.Compression;
using System.Text;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// Writes tensors the way <c>torch.save</c> does (zip, pickle protocol 2, <c>_rebuild_tensor_v2</c>
/// over typed storages, <c>collections.OrderedDict</c>), optionally nested under a dict key as
/// Lightning nests <c>state_dict</c>, so converters can be tested on files of the distributed formats.
/// </summary>
internal static class TorchSaveWriter
{
    public static void Save(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, string? nestUnder = null)
    {
        var p = new List<byte> { 0x80, 2 };
        if (nestUnder is not null)
        {
            p.Add((byte)'}');
            Unicode(p, "epoch");
            Int(p, 3);
            p.Add((byte)'s');
            Unicode(p, nestUnder);
        }
        p.AddRange(Encoding.ASCII.GetBytes("ccollections\nOrderedDict\n"));
        p.AddRange([(byte)')', (byte)'R', (byte)'(']);
        var storages = new List<(string Key, byte[] Bytes)>();
        foreach (var (name, tensor) in tensors)
        {
            string key = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            using var contiguous = tensor.contiguous().cpu();
            string storage = contiguous.dtype switch
            {
                ScalarType.Float32 => "FloatStorage",
                ScalarType.Int64 => "LongStorage",
                _ => throw new ArgumentException($"{name}: {contiguous.dtype} is not written by this test helper"),
            };
            byte[] bytes = contiguous.dtype == ScalarType.Float32
                ? contiguous.data<float>().ToArray().SelectMany(BitConverter.GetBytes).ToArray()
                : contiguous.data<long>().ToArray().SelectMany(BitConverter.GetBytes).ToArray();
            storages.Add((key, bytes));
            Unicode(p, name);
            p.AddRange(Encoding.ASCII.GetBytes("ctorch._utils\n_rebuild_tensor_v2\n"));
            p.Add((byte)'(');
            p.Add((byte)'(');
            Unicode(p, "storage");
            p.AddRange(Encoding.ASCII.GetBytes($"ctorch\n{storage}\n"));
            Unicode(p, key);
            Unicode(p, "cpu");
            Int(p, (int)contiguous.numel());
            p.AddRange([(byte)'t', (byte)'Q']);
            Int(p, 0);
            p.Add((byte)'(');
            foreach (var s in contiguous.shape) Int(p, (int)s);
            p.Add((byte)'t');
            p.Add((byte)'(');
            foreach (var s in contiguous.stride()) Int(p, (int)s);
            p.Add((byte)'t');
            p.Add(0x89);
            p.AddRange(Encoding.ASCII.GetBytes("ccollections\nOrderedDict\n"));
            p.AddRange([(byte)')', (byte)'R', (byte)'t', (byte)'R']);
        }
        p.Add((byte)'u');
        if (nestUnder is not null) p.Add((byte)'s');
        p.Add((byte)'.');

        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        void Add(string entry, byte[] bytes)
        {
            using var s = zip.CreateEntry(entry, CompressionLevel.NoCompression).Open();
            s.Write(bytes);
        }
        Add("archive/data.pkl", p.ToArray());
        Add("archive/byteorder", Encoding.ASCII.GetBytes("little"));
        foreach (var (key, bytes) in storages) Add("archive/data/" + key, bytes);
    }

    private static void Unicode(List<byte> p, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        p.Add((byte)'X');
        p.AddRange(BitConverter.GetBytes(b.Length));
        p.AddRange(b);
    }

    private static void Int(List<byte> p, int v)
    {
        p.Add((byte)'J');
        p.AddRange(BitConverter.GetBytes(v));
    }
}
