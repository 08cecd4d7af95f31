using System.IO.Compression;
using System.Text;
using Vlsm.IO;

namespace Vlsm.Tests;

/// <summary>The restricted reader of torch.save checkpoints: bitwise tensors, refused globals, clean errors.</summary>
public sealed class TorchCheckpointTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-torch-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string CrisTiny => Path.Combine(Fixtures.Parity, "cris-tiny");

    /// <summary>Each CRIS parity folder's distributed checkpoint (a .pth other than malicious.pth) with its folder.</summary>
    public static IEnumerable<object[]> CrisCheckpoints() =>
        CrisParityTests.ModelFolders()
            .SelectMany(o => Directory.GetFiles((string)o[0], "*.pth").Where(f => Path.GetFileName(f) != "malicious.pth"))
            .Select(f => new object[] { f });

    [Theory]
    [MemberData(nameof(CrisCheckpoints))]
    public void ACrisCheckpointHoldsExactlyTheTensorsOfItsModelSafetensors(string checkpoint)
    {
        var read = TorchCheckpoint.StripPrefix(TorchCheckpoint.ReadStateDict(checkpoint), "module.");
        using var expected = SafetensorsFile.Open(Path.Combine(Path.GetDirectoryName(checkpoint)!, "model.safetensors"));
        Assert.Equal(expected.Names.Order(StringComparer.Ordinal), read.Select(t => t.Name).Order(StringComparer.Ordinal));
        foreach (var t in read)
        {
            using var a = t.ToTensor();
            using var b = expected.Load(t.Name);
            Assert.True(Bitwise.Equal(a, b), t.Name);
        }
    }

    [Fact]
    public void CrisTinyCheckpointHasEveryParameterAndBatchNormCounter()
    {
        var read = TorchCheckpoint.ReadStateDict(Path.Combine(CrisTiny, "cris-tiny.pth"));
        Assert.Equal(302, read.Count);
        Assert.All(read, t => Assert.StartsWith("module.", t.Name));
        Assert.Equal(35, read.Count(t => t.Name.EndsWith(".num_batches_tracked") && t.Dtype == SafetensorsDtype.I64 && t.Shape.Length == 0));
        Assert.Contains(CrisCheckpoints(), o => (string)o[0] == Path.Combine(CrisTiny, "cris-tiny.pth"));
    }

    [Fact]
    public void MaliciousPickleIsRefusedNamingTheGlobalAndRunsNothing()
    {
        string marker = "/tmp/vlsm-pwned-by-pick";
        bool existed = File.Exists(marker);
        var e = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(Path.Combine(CrisTiny, "malicious.pth")));
        Assert.Contains("posix.system", e.Message);
        Assert.Contains("malicious.pth", e.Message);
        Assert.Equal(existed, File.Exists(marker));
    }

    /// <summary>A torch-style zip whose data.pkl is <paramref name="pickle"/> and whose storages are <paramref name="storages"/>.</summary>
    private string Checkpoint(string name, byte[] pickle, params (string Key, byte[] Bytes)[] storages)
    {
        string file = Path.Combine(tmp, name);
        using var zip = ZipFile.Open(file, ZipArchiveMode.Create);
        void Add(string entry, byte[] bytes)
        {
            using var s = zip.CreateEntry(entry, CompressionLevel.NoCompression).Open();
            s.Write(bytes);
        }
        Add("archive/data.pkl", pickle);
        Add("archive/byteorder", Encoding.ASCII.GetBytes("little"));
        foreach (var (key, bytes) in storages) Add("archive/data/" + key, bytes);
        return file;
    }

    private static byte[] Unicode(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        return [(byte)'X', .. BitConverter.GetBytes(b.Length), .. b];
    }

    /// <summary>{name: _rebuild_tensor_v2(FloatStorage key 0 of 6 elements, offset, size, stride, False, OrderedDict())}.</summary>
    private static byte[] OneTensorPickle(string name, int offset, int[] size, int[] stride)
    {
        var p = new List<byte> { 0x80, 2, (byte)'}', (byte)'(' };
        p.AddRange(Unicode(name));
        p.AddRange(Encoding.ASCII.GetBytes("ctorch._utils\n_rebuild_tensor_v2\n"));
        p.Add((byte)'(');
        p.Add((byte)'(');
        p.AddRange(Unicode("storage"));
        p.AddRange(Encoding.ASCII.GetBytes("ctorch\nFloatStorage\n"));
        p.AddRange(Unicode("0"));
        p.AddRange(Unicode("cpu"));
        p.AddRange([(byte)'K', 6, (byte)'t', (byte)'Q']);
        p.AddRange([(byte)'K', (byte)offset]);
        p.Add((byte)'(');
        foreach (var s in size) p.AddRange([(byte)'K', (byte)s]);
        p.Add((byte)'t');
        p.Add((byte)'(');
        foreach (var s in stride) p.AddRange([(byte)'K', (byte)s]);
        p.Add((byte)'t');
        p.Add(0x89);
        p.AddRange(Encoding.ASCII.GetBytes("ccollections\nOrderedDict\n"));
        p.AddRange([(byte)')', (byte)'R', (byte)'t', (byte)'R', (byte)'u', (byte)'.']);
        return p.ToArray();
    }

    private static byte[] Floats(params float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    [Fact]
    public void StorageOffsetAndStrideAreHonoured()
    {
        // Storage 0..5; a 2x2 view at offset 1 with strides (1, 2) (a transposed slice): [[1, 3], [2, 4]].
        var file = Checkpoint("strided.pth", OneTensorPickle("w", 1, [2, 2], [1, 2]), ("0", Floats(0, 1, 2, 3, 4, 5)));
        var t = Assert.Single(TorchCheckpoint.ReadStateDict(file));
        Assert.Equal("w", t.Name);
        Assert.Equal(new long[] { 2, 2 }, t.Shape);
        Assert.Equal(Floats(1, 3, 2, 4), t.Data);

        var contiguous = Checkpoint("slice.pth", OneTensorPickle("b", 2, [3], [1]), ("0", Floats(0, 1, 2, 3, 4, 5)));
        Assert.Equal(Floats(2, 3, 4), Assert.Single(TorchCheckpoint.ReadStateDict(contiguous)).Data);
    }

    [Fact]
    public void AViewPastItsStorageIsAnErrorNamingTheTensor()
    {
        var file = Checkpoint("past.pth", OneTensorPickle("w", 4, [2, 2], [2, 1]), ("0", Floats(0, 1, 2, 3, 4, 5)));
        var e = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(file));
        Assert.Contains("\"w\"", e.Message);
        Assert.Contains("past.pth", e.Message);
    }

    [Fact]
    public void AnUnknownOpcodeIsRefusedByName()
    {
        // INST ('i'), which imports and calls a class in one opcode.
        var file = Checkpoint("inst.pth", [0x80, 2, (byte)'(', (byte)'i', .. Encoding.ASCII.GetBytes("os\nsystem\n"), (byte)'.']);
        var e = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(file));
        Assert.Contains("opcode 0x69 ('i')", e.Message);
    }

    [Fact]
    public void TruncatedAndGarbageFilesGiveACleanErrorNamingTheFile()
    {
        var whole = File.ReadAllBytes(Path.Combine(CrisTiny, "cris-tiny.pth"));
        string truncated = Path.Combine(tmp, "truncated.pth");
        File.WriteAllBytes(truncated, whole[..(whole.Length / 2)]);
        var e1 = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(truncated));
        Assert.Contains("truncated.pth", e1.Message);

        string garbage = Path.Combine(tmp, "garbage.bin");
        File.WriteAllBytes(garbage, Encoding.ASCII.GetBytes("this is not a checkpoint at all"));
        var e2 = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(garbage));
        Assert.Contains("garbage.bin", e2.Message);
        Assert.Contains("not a torch.save zip checkpoint", e2.Message);

        // A pickle cut off in the middle of the archive's data.pkl.
        var pickle = OneTensorPickle("w", 0, [2], [1]);
        string cut = Checkpoint("cut.pth", pickle[..(pickle.Length - 9)], ("0", Floats(0, 1, 2, 3, 4, 5)));
        var e3 = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(cut));
        Assert.Contains("cut.pth", e3.Message);
        Assert.Contains("truncated", e3.Message);
    }
}
