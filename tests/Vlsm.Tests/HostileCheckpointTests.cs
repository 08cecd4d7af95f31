using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Vlsm.IO;

namespace Vlsm.Tests;

/// <summary>
/// Hostile .pth files (issue #19, bad 3): the restricted reader refuses each before it allocates
/// what the file asks for, with one bounded line that escapes what it quotes. Memory itself is
/// measured in bench/ (HostileFiles); here each limit's refusal and its message are checked.
/// </summary>
public sealed class HostileCheckpointTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-hostile-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    /// <summary>A torch-style zip: archive/data.pkl (deflated when <paramref name="deflate"/>), byteorder, and the storages.</summary>
    private string Zip(string name, byte[] pickle, bool deflate = false, params (string Entry, byte[] Bytes, bool Deflate)[] more)
    {
        string file = Path.Combine(tmp, name);
        using var zip = ZipFile.Open(file, ZipArchiveMode.Create);
        void Add(string entry, byte[] bytes, bool compress)
        {
            using var s = zip.CreateEntry(entry, compress ? CompressionLevel.SmallestSize : CompressionLevel.NoCompression).Open();
            s.Write(bytes);
        }
        Add("archive/data.pkl", pickle, deflate);
        Add("archive/byteorder", Encoding.ASCII.GetBytes("little"), false);
        foreach (var (entry, bytes, compress) in more) Add(entry, bytes, compress);
        return file;
    }

    private static byte[] Pickle(params byte[][] parts) => [0x80, 2, .. parts.SelectMany(p => p), (byte)'.'];

    private static byte[] Repeat(byte[] unit, int times)
    {
        var result = new byte[unit.Length * times];
        for (int i = 0; i < times; i++) unit.CopyTo(result, i * unit.Length);
        return result;
    }

    private static byte[] Op(byte code, byte[] argument) => [code, .. argument];

    private static byte[] U32(uint n) => BitConverter.GetBytes(n);

    private static byte[] U64(ulong n) => BitConverter.GetBytes(n);

    /// <summary>Refused with a VlsmException naming the file, in one line no longer than <paramref name="maxLength"/>, with no raw control character.</summary>
    private static string Refused(string file, int maxLength = 600)
    {
        var e = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(file));
        Assert.Contains(Path.GetFileName(file), e.Message);
        Assert.True(e.Message.Length <= maxLength, $"{e.Message.Length} characters: {e.Message[..Math.Min(300, e.Message.Length)]}");
        Assert.DoesNotContain(e.Message, c => char.IsControl(c));
        return e.Message;
    }

    [Fact]
    public void APickleBombOfNoneOpcodesIsRefusedBeforeItIsDecompressed()
    {
        // The campaign's 102 KB file: 100M NONE opcodes, deflated (it took 2 GB). 80 MB here.
        var file = Zip("nones.pth", Pickle(Repeat([(byte)'N'], 80_000_000)), deflate: true);
        Assert.True(new FileInfo(file).Length < 1_000_000);
        string message = Refused(file);
        Assert.Contains("\"archive/data.pkl\" would decompress to 80000003 bytes", message);
        Assert.Contains("64 MB", message);
    }

    [Fact]
    public void StoredNoneOpcodesStopAtTheStackLimit()
    {
        var file = Zip("stored-nones.pth", Pickle(Repeat([(byte)'N'], 1_500_000)));
        Assert.Contains("more than 1,000,000 values on the stack at byte 1000002", Refused(file));
        var dups = Zip("dups.pth", Pickle([(byte)'N'], Repeat([(byte)'2'], 1_500_000)));
        Assert.Contains("more than 1,000,000 values on the stack", Refused(dups));
        var marks = Zip("marks.pth", Pickle(Repeat([(byte)'('], 1_500_000), [(byte)'}']));
        Assert.Contains("more than 1,000,000 open MARKs", Refused(marks));
    }

    [Fact]
    public void AHundredMegabyteStringIsRefusedAndNeverPrinted()
    {
        // Stored, 2 MB: over the string limit, under the archive limits; the old reader echoed it whole.
        var text = Repeat([(byte)'A'], 2_000_000);
        var file = Zip("bigstr.pth", Pickle([(byte)'X', .. U32(2_000_000), .. text]));
        string message = Refused(file, maxLength: 300);
        Assert.Contains("a string of 2000000 bytes (the limit is 1 MB", message);
        Assert.DoesNotContain("AAAAAAAAAA", message);
    }

    [Fact]
    public void ALargeStringThatIsTheWholePickleIsQuotedCut()
    {
        // Under the string limit, the pickle's root; the message quotes at most 80 characters of it.
        var file = Zip("root-string.pth", Pickle([(byte)'X', .. U32(500_000), .. Repeat([(byte)'B'], 500_000)]));
        string message = Refused(file, maxLength: 200);
        Assert.Contains("\"" + new string('B', 80) + "…\"", message);
    }

    public static IEnumerable<object[]> DeclaredLengths() =>
    [
        ["BINUNICODE", Op((byte)'X', U32(0xFFFFFFF0)), "a string of 4294967280 bytes"],
        ["BINUNICODE8", Op(0x8d, U64(1UL << 40)), "a string of 1099511627776 bytes"],
        ["BINUNICODE8 2^63", Op(0x8d, U64(1UL << 63)), "a string of 9223372036854775808 bytes"],
        ["BINSTRING", Op((byte)'T', U32(0x7FFFFFFF)), "a string of 2147483647 bytes"],
        ["BINBYTES", Op((byte)'B', U32(0xFFFFFFFF)), "a bytes object of 4294967295 bytes"],
        ["BINBYTES8", Op(0x8e, U64(ulong.MaxValue)), "a bytes object of 18446744073709551615 bytes"],
        ["LONG4", Op(0x8b, U32(0xFFFFFFFF)), "an integer of 4294967295 bytes"],
    ];

    [Theory]
    [MemberData(nameof(DeclaredLengths))]
    public void EveryOpcodeThatAllocatesByADeclaredLengthRefusesAnAbsurdOne(string opcode, byte[] ops, string expected)
    {
        var file = Zip($"{opcode.Replace(' ', '-')}.pth", Pickle(ops, [(byte)'A', (byte)'A']));
        Assert.Contains(expected, Refused(file));
    }

    [Fact]
    public void AFloodOfMemoEntriesOrContainersStopsAtTheValueBudget()
    {
        var memo = new List<byte> { (byte)'N' };
        for (uint i = 0; i < 3_000_000; i++) memo.AddRange([(byte)'r', .. U32(i)]);
        Assert.Contains("more values than a state dict builds (over 96 MB of them)", Refused(Zip("memo.pth", Pickle(memo.ToArray()))));

        var dicts = Pickle([(byte)']'], Repeat([(byte)'}', (byte)'a'], 2_000_000));
        Assert.Contains("more values than a state dict builds", Refused(Zip("dicts.pth", dicts)));
    }

    [Fact]
    public void ADeeplyNestedTupleInAMessageIsShownToTwoLevels()
    {
        // A persistent id nested a million tuples deep: describing it must neither recurse that deep nor print it all.
        var file = Zip("nested.pth", Pickle([(byte)')'], Repeat([0x85], 1_000_000), [(byte)'Q']));
        Assert.Contains("persistent id (((…)))", Refused(file));
    }

    [Fact]
    public void ControlCharactersAndNulsInQuotedValuesAreEscaped()
    {
        var file = Zip("ctrl.pth", Pickle([(byte)'c', .. Encoding.UTF8.GetBytes("\u001b[31mevil\0mod\u202e\n" + new string('B', 500) + "\n")]));
        string message = Refused(file);
        Assert.Contains("\"\\x1b[31mevil\\0mod\\u202e.BBB", message);
        Assert.Contains("B…\"", message);
        Assert.DoesNotContain('\u202e', message);
    }

    private static byte[] TensorPickle(long[] size, long[] stride, int storageElements)
    {
        var p = new List<byte> { (byte)'}', (byte)'(', (byte)'X', 1, 0, 0, 0, (byte)'w' };
        p.AddRange(Encoding.ASCII.GetBytes("ctorch._utils\n_rebuild_tensor_v2\n(("));
        p.AddRange([(byte)'X', 7, 0, 0, 0, .. "storage"u8]);
        p.AddRange(Encoding.ASCII.GetBytes("ctorch\nFloatStorage\n"));
        p.AddRange([(byte)'X', 1, 0, 0, 0, (byte)'0', (byte)'X', 3, 0, 0, 0, .. "cpu"u8]);
        p.AddRange([(byte)'J', .. BitConverter.GetBytes(storageElements), (byte)'t', (byte)'Q', (byte)'K', 0, (byte)'(']);
        foreach (var s in size) p.AddRange([0x8a, 8, .. BitConverter.GetBytes(s)]);
        p.AddRange([(byte)'t', (byte)'(']);
        foreach (var s in stride) p.AddRange([0x8a, 8, .. BitConverter.GetBytes(s)]);
        p.AddRange([(byte)'t', 0x89]);
        p.AddRange(Encoding.ASCII.GetBytes("ccollections\nOrderedDict\n"));
        p.AddRange([(byte)')', (byte)'R', (byte)'t', (byte)'R', (byte)'u']);
        return Pickle(p.ToArray());
    }

    [Fact]
    public void AStrideZeroViewCannotExpandOneStoredElementIntoGigabytes()
    {
        // One float stored, viewed as 400M of them (1.6 GB) by a stride of 0.
        var file = Zip("expand.pth", TensorPickle([400_000_000], [0], 1), more: ("archive/data/0", new byte[4], false));
        string message = Refused(file);
        Assert.Contains("tensor \"w\" would hold 1600000000 bytes", message);
        Assert.Contains("strides repeat stored elements", message);

        // Sizes whose product overflows 64 bits (the old reader wrapped to an empty tensor of shape [2^32, 2^32]).
        var overflow = Zip("overflow.pth", TensorPickle([1L << 32, 1L << 32], [0, 0], 1), more: ("archive/data/0", new byte[4], false));
        Assert.Contains("strides repeat stored elements", Refused(overflow));

        // A legitimate broadcast view within the budget is still read.
        var small = Zip("small.pth", TensorPickle([3, 2], [0, 1], 2), more: ("archive/data/0", Floats(1, 2), false));
        var t = Assert.Single(TorchCheckpoint.ReadStateDict(small));
        Assert.Equal(Floats(1, 2, 1, 2, 1, 2), t.Data);
    }

    private static byte[] Floats(params float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    [Fact]
    public void AStorageThatDecompressesFarBeyondTheFileIsRefusedBeforeDecompressing()
    {
        const int elements = 25_000_000; // 100 MB of zeros, deflated to about 100 KB
        var file = Zip("storage-bomb.pth", TensorPickle([elements], [1], elements), more: ("archive/data/0", new byte[4 * elements], true));
        Assert.True(new FileInfo(file).Length < 1_000_000);
        string message = Refused(file);
        Assert.Contains("entry \"archive/data/0\" would decompress to 100000000 bytes", message);
    }

    [Fact]
    public void TwoEntriesWithOneNameAreRefused()
    {
        // Python's zipfile (and so torch.load) reads the last archive/data.pkl; the old reader took the first.
        var good = TensorPickle([2], [1], 2);
        var file = Zip("dup.pth", good, more: [("archive/data/0", Floats(1, 2), false), ("archive/data.pkl", Pickle([(byte)'N']), false)]);
        string message = Refused(file);
        Assert.Contains("2 entries named \"archive/data.pkl\"", message);
    }

    [Fact]
    public void ASafetensorsHeaderWithAHostileNameGivesABoundedEscapedLine()
    {
        string key = "\u001b[2J" + new string('k', 100_000);
        string header = $"{{\"{key.Replace("\u001b", "\\u001b")}\": {{\"dtype\": \"\\u0007{new string('D', 5000)}\", \"shape\": [1], \"data_offsets\": [0, 4]}}}}";
        var bytes = Encoding.UTF8.GetBytes(header);
        string file = Path.Combine(tmp, "hostile.safetensors");
        File.WriteAllBytes(file, [.. BitConverter.GetBytes((long)bytes.Length), .. bytes, 0, 0, 0, 0]);
        var e = Assert.Throws<VlsmException>(() => SafetensorsFile.Open(file).Dispose());
        Assert.True(e.Message.Length < 600, e.Message[..300]);
        Assert.DoesNotContain(e.Message, c => char.IsControl(c));
        Assert.Contains("\\x1b[2Jkkk", e.Message);
    }

    [Fact]
    public void PrintableEscapesAndCuts()
    {
        Assert.Equal("\"a\\0b\\x1b\\n\\u202ec\"", Printable.Quote("a\0b\u001b\n\u202ec"));
        Assert.Equal(new string('x', 80) + "…", Printable.Clip(new string('x', 81)));
        Assert.Equal(new string('x', 80), Printable.Clip(new string('x', 80)));
        Assert.Equal("héllo 😀", Printable.Clip("héllo 😀"));
        Assert.Equal("\\ud800x", Printable.Clip("\ud800x"));
    }
}
