using System.Buffers.Binary;
using System.Text;
using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Tests;

public sealed class NpyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vlsm-npy-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Temp(string name) => Path.Combine(_dir, name);

    [Fact]
    public void Float32RoundTrips()
    {
        using var scope = NewDisposeScope();
        var path = Temp("x.npy");
        var x = randn(2, 3, 4);
        Npy.Save(path, x);
        var (shape, data) = Npy.ReadFloat32(path);
        Assert.Equal(new long[] { 2, 3, 4 }, shape);
        Assert.Equal(x.data<float>().ToArray(), data);
    }

    [Fact]
    public void HeaderIsNumpyFormat10AlignedTo64()
    {
        using var scope = NewDisposeScope();
        var path = Temp("h.npy");
        Npy.Save(path, arange(6, ScalarType.Float32).reshape(2, 3));
        var bytes = File.ReadAllBytes(path);

        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, bytes[..8]);
        var headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        var dataStart = 10 + headerLength;
        Assert.Equal(0, dataStart % 64);
        var header = Encoding.ASCII.GetString(bytes, 10, headerLength);
        Assert.StartsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", header);
        Assert.EndsWith("\n", header);
        Assert.Equal("", header[61..^1].Trim(' '));
        Assert.Equal(dataStart + 6 * 4, bytes.Length);
        Assert.Equal(5f, BitConverter.ToSingle(bytes, dataStart + 5 * 4));
    }

    [Theory]
    [InlineData(new long[] { 5 }, "(5,)")]
    [InlineData(new long[] { }, "()")]
    [InlineData(new long[] { 0, 4 }, "(0, 4)")]
    [InlineData(new long[] { 1, 3, 352, 352 }, "(1, 3, 352, 352)")]
    public void ShapesAreWrittenAsPythonTuples(long[] dims, string tuple)
    {
        using var scope = NewDisposeScope();
        var path = Temp("s.npy");
        Npy.Save(path, ones(dims));
        var bytes = File.ReadAllBytes(path);
        Assert.Contains($"'shape': {tuple}, }}", Encoding.ASCII.GetString(bytes, 10, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8))));
        var (shape, data) = Npy.ReadFloat32(path);
        Assert.Equal(dims, shape);
        Assert.Equal(dims.Aggregate(1L, (a, b) => a * b), data.Length);
        Assert.All(data, v => Assert.Equal(1f, v));
    }

    [Fact]
    public void OtherDtypesAndViewsAreConvertedToFloat32()
    {
        using var scope = NewDisposeScope();
        var path = Temp("c.npy");
        Npy.Save(path, tensor(new long[] { 1, -2, 3, 4 }).reshape(2, 2).t());
        var (shape, data) = Npy.ReadFloat32(path);
        Assert.Equal(new long[] { 2, 2 }, shape);
        Assert.Equal(new float[] { 1, 3, -2, 4 }, data);

        Npy.Save(path, tensor(new[] { 0.5, 1e-3 }).to_type(ScalarType.BFloat16));
        Assert.Equal(new[] { 0.5f, (float)tensor(1e-3).to_type(ScalarType.BFloat16).to_type(ScalarType.Float32).item<float>() },
            Npy.ReadFloat32(path).data);
    }

    [Fact]
    public void ReadsNumpysOwnLayoutWithGrowthSpaceAndFloat64()
    {
        // NumPy >= 1.24 pads the header for in-place growth; float64 is converted on read.
        var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }" + new string(' ', 60);
        var total = (10 + header.Length + 1 + 63) / 64 * 64;
        header = header.PadRight(total - 10 - 1) + "\n";
        var bytes = new byte[total + 3 * 8];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }.CopyTo(bytes, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)header.Length);
        Encoding.ASCII.GetBytes(header).CopyTo(bytes, 10);
        for (var i = 0; i < 3; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(total + 8 * i), i + 0.5);
        }
        var path = Temp("numpy.npy");
        File.WriteAllBytes(path, bytes);
        var (shape, data) = Npy.ReadFloat32(path);
        Assert.Equal(new long[] { 3 }, shape);
        Assert.Equal(new[] { 0.5f, 1.5f, 2.5f }, data);
    }

    [Fact]
    public void SaveIsAtomic()
    {
        using var scope = NewDisposeScope();
        var path = Temp("a.npy");
        Npy.Save(path, ones(2));
        var before = File.ReadAllBytes(path);
        Assert.Throws<VlsmException>(() => Npy.Save(path, zeros(2, ScalarType.ComplexFloat32)));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(["a.npy"], Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void BadFilesThrowVlsmExceptionNamingTheFile()
    {
        using var scope = NewDisposeScope();
        var good = Temp("good.npy");
        Npy.Save(good, ones(2, 2));
        var valid = File.ReadAllBytes(good);

        void Fails(byte[] bytes, string says)
        {
            var path = Temp($"bad-{Guid.NewGuid():N}.npy");
            File.WriteAllBytes(path, bytes);
            var e = Assert.Throws<VlsmException>(() => Npy.ReadFloat32(path));
            Assert.Contains(path, e.Message);
            Assert.Contains(says, e.Message);
        }

        Fails([], "magic");
        Fails("PK\x03\x04 not numpy"u8.ToArray(), "magic");
        Fails(valid[..9], "header length");
        Fails(valid[..40], "runs past the end");
        Fails(valid[..^4], "needs 16 data bytes");
        var f16 = (byte[])valid.Clone();
        Encoding.ASCII.GetBytes("<f2").CopyTo(f16, 10 + "{'descr': '".Length);
        Fails(f16, "'<f2'");
        var fortran = Encoding.Latin1.GetBytes(Encoding.Latin1.GetString(valid).Replace("False", "True "));
        Fails(fortran, "Fortran");

        var missing = Temp("missing.npy");
        Assert.Contains(missing, Assert.Throws<VlsmException>(() => Npy.ReadFloat32(missing)).Message);
    }
}
