using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using CsCheck;
using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Tests;

public sealed class SafetensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vlsm-safetensors-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Temp(string name) => Path.Combine(_dir, name);

    private static byte[] Bytes(Tensor t) => t.bytes.ToArray();

    /// <summary>A file from raw parts, as another writer (or a corrupted disk) might produce it.</summary>
    private static byte[] Raw(string header, int dataLength, ulong? declaredHeaderLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataLength];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredHeaderLength ?? (ulong)json.Length);
        json.CopyTo(bytes, 8);
        for (var i = 0; i < dataLength; i++)
        {
            bytes[8 + json.Length + i] = (byte)(i * 37 + 11);
        }
        return bytes;
    }

    private string WriteRaw(string name, byte[] bytes)
    {
        var path = Temp(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static Tensor Sample(ScalarType dtype, long[] shape) => dtype switch
    {
        ScalarType.Bool => randint(0, 2, shape).to_type(ScalarType.Bool),
        ScalarType.Byte => randint(0, 256, shape).to_type(ScalarType.Byte),
        ScalarType.Int8 => randint(-128, 128, shape).to_type(ScalarType.Int8),
        ScalarType.Int16 or ScalarType.Int32 => randint(-30000, 30000, shape).to_type(dtype),
        ScalarType.Int64 => randint(long.MinValue / 2, long.MaxValue / 2, shape, ScalarType.Int64),
        _ => (randn(shape, ScalarType.Float64) * 1000).to_type(dtype),
    };

    public static TheoryData<ScalarType> AllDtypes() =>
    [
        ScalarType.Float64, ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int64,
        ScalarType.Int32, ScalarType.Int16, ScalarType.Int8, ScalarType.Byte, ScalarType.Bool,
    ];

    // ---- round trips ----

    [Theory]
    [MemberData(nameof(AllDtypes))]
    public void EveryDtypeRoundTripsBitwiseWithMetadata(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var path = Temp($"{dtype}.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["matrix"] = Sample(dtype, [3, 5]),
            ["scalar"] = Sample(dtype, []),
            ["empty"] = Sample(dtype, [2, 0, 4]),
            ["cube"] = Sample(dtype, [2, 3, 4]),
        };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["prompts"] = "[\"a polyp\", \"ünïcödé 中文 \\\"q\\\"\"]" };

        SafetensorsWriter.Save(path, tensors, metadata);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["matrix", "scalar", "empty", "cube"], file.Names);
        Assert.Equal(metadata, file.Metadata);
        foreach (var (name, expected) in tensors)
        {
            Assert.True(file.Contains(name));
            var entry = file.Entry(name);
            Assert.Equal(expected.shape, entry.Shape);
            using var actual = file.Load(name);
            Assert.Equal(dtype, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            Assert.Equal(DeviceType.CPU, actual.device_type);
            Assert.Equal(Bytes(expected), Bytes(actual));
        }
    }

    [Fact]
    public void WriterLaysOutAPaddedHeaderAndContiguousOffsets()
    {
        using var scope = NewDisposeScope();
        var path = Temp("layout.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, Tensor>
        {
            ["a"] = ones(3, ScalarType.Float32),
            ["b"] = ones(new long[] { 2, 2 }, ScalarType.Int64),
            ["c"] = ones(1, ScalarType.Bool),
        });
        var bytes = File.ReadAllBytes(path);
        var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + n) % 8);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        using var json = JsonDocument.Parse(header);
        Assert.Matches(@"^\{[^ ]*\} *$", header); // compact JSON, then space padding
        Assert.Equal("[0,12]", json.RootElement.GetProperty("a").GetProperty("data_offsets").GetRawText());
        Assert.Equal("[12,44]", json.RootElement.GetProperty("b").GetProperty("data_offsets").GetRawText());
        Assert.Equal("[44,45]", json.RootElement.GetProperty("c").GetProperty("data_offsets").GetRawText());
        Assert.Equal("\"I64\"", json.RootElement.GetProperty("b").GetProperty("dtype").GetRawText());
        Assert.False(json.RootElement.TryGetProperty("__metadata__", out _));
        Assert.Equal(8 + n + 45, bytes.Length);
    }

    [Fact]
    public void WriterHandlesNonContiguousAndGradTensorsAndLeavesThemAlone()
    {
        using var scope = NewDisposeScope();
        var path = Temp("views.safetensors");
        var m = arange(12, ScalarType.Float32).reshape(3, 4);
        var transposed = m.t();
        var grad = randn(2, 2).requires_grad_(true);
        SafetensorsWriter.Save(path, [new("t", transposed), new("g", grad)]);

        using var file = SafetensorsFile.Open(path);
        using var t = file.Load("t");
        Assert.Equal(new long[] { 4, 3 }, t.shape);
        Assert.Equal(transposed.contiguous().data<float>().ToArray(), t.data<float>().ToArray());
        using var g = file.Load("g");
        Assert.False(g.requires_grad);
        Assert.Equal(grad.detach().data<float>().ToArray(), g.data<float>().ToArray());
        // The caller's tensors are still usable.
        Assert.Equal(1f, transposed[1, 0].item<float>()); // m[0, 1]
        Assert.True(grad.requires_grad);
    }

    [Fact]
    public void LoadConvertsToARequestedDtype()
    {
        using var scope = NewDisposeScope();
        var path = Temp("half.safetensors");
        var values = new float[] { 1.5f, -2f, 0.25f, 1024f };
        SafetensorsWriter.Save(path, new Dictionary<string, Tensor>
        {
            ["h"] = tensor(values).to_type(ScalarType.Float16),
            ["bf"] = tensor(values).to_type(ScalarType.BFloat16),
            ["d"] = tensor(values).to_type(ScalarType.Float64),
        });
        using var file = SafetensorsFile.Open(path);
        foreach (var name in new[] { "h", "bf", "d" })
        {
            using var t = file.Load(name, ScalarType.Float32);
            Assert.Equal(ScalarType.Float32, t.dtype);
            Assert.Equal(values, t.data<float>().ToArray());
        }
        using var asInt = file.Load("h", ScalarType.Int64);
        Assert.Equal(new long[] { 1, -2, 0, 1024 }, asInt.data<long>().ToArray());
    }

    [Fact]
    public void LoadAllConvertsFloatsAndKeepsIntegersAndBools()
    {
        using var scope = NewDisposeScope();
        var path = Temp("mixed.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, Tensor>
        {
            ["f16"] = ones(2, ScalarType.Float16),
            ["bf16"] = ones(2, ScalarType.BFloat16),
            ["f64"] = ones(2, ScalarType.Float64),
            ["i64"] = ones(2, ScalarType.Int64),
            ["u8"] = ones(2, ScalarType.Byte),
            ["b"] = ones(2, ScalarType.Bool),
        });
        using var file = SafetensorsFile.Open(path);

        var converted = file.LoadAll(ScalarType.Float32);
        Assert.Equal(["f16", "bf16", "f64", "i64", "u8", "b"], converted.Keys);
        Assert.Equal(
            [ScalarType.Float32, ScalarType.Float32, ScalarType.Float32, ScalarType.Int64, ScalarType.Byte, ScalarType.Bool],
            converted.Values.Select(t => t.dtype));

        var asStored = file.LoadAll();
        Assert.Equal(
            [ScalarType.Float16, ScalarType.BFloat16, ScalarType.Float64, ScalarType.Int64, ScalarType.Byte, ScalarType.Bool],
            asStored.Values.Select(t => t.dtype));
    }

    [Fact]
    public void LoadedTensorsOutliveTheFile()
    {
        using var scope = NewDisposeScope();
        var path = Temp("outlive.safetensors");
        SafetensorsWriter.Save(path, [new("x", arange(6, ScalarType.Float32))]);
        Tensor x;
        using (var file = SafetensorsFile.Open(path))
        {
            x = file.Load("x");
        }
        File.Delete(path);
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5 }, x.data<float>().ToArray());
    }

    [Fact]
    public void EntryOfAnUnknownTensorNamesFileAndTensor()
    {
        using var scope = NewDisposeScope();
        var path = Temp("names.safetensors");
        SafetensorsWriter.Save(path, [new("decoder.layer.0.weight", ones(1))]);
        using var file = SafetensorsFile.Open(path);
        Assert.False(file.Contains("decoder.layer.1.weight"));
        var e = Assert.Throws<VlsmException>(() => file.Entry("decoder.layer.1.weight"));
        Assert.Contains(path, e.Message);
        Assert.Contains("'decoder.layer.1.weight'", e.Message);
        Assert.Contains("'decoder.layer.0.weight'", e.Message); // a hint at what is there
        var e2 = Assert.Throws<VlsmException>(() => file.Load("nope"));
        Assert.Contains(path, e2.Message);
        Assert.Contains("'nope'", e2.Message);
    }

    [Fact]
    public void SaveRefusesBadInputAndKeepsTheOldFile()
    {
        using var scope = NewDisposeScope();
        var path = Temp("keep.safetensors");
        SafetensorsWriter.Save(path, [new("x", ones(2))]);
        var before = File.ReadAllBytes(path);

        var complexDtype = Assert.Throws<VlsmException>(() =>
            SafetensorsWriter.Save(path, [new("ok", ones(2)), new("z", zeros(2, ScalarType.ComplexFloat32))]));
        Assert.Contains(path, complexDtype.Message);
        Assert.Contains("'z'", complexDtype.Message);

        var twice = Assert.Throws<VlsmException>(() => SafetensorsWriter.Save(path, [new("a", ones(1)), new("a", ones(1))]));
        Assert.Contains("'a'", twice.Message);
        Assert.Throws<VlsmException>(() => SafetensorsWriter.Save(path, [new("__metadata__", ones(1))]));
        Assert.Throws<VlsmException>(() => SafetensorsWriter.Save(path, [new("", ones(1))]));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(["keep.safetensors"], Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    // ---- files from other writers ----

    [Fact]
    public void ReadsUnpaddedHeadersUnorderedOffsetsAndEmptySpans()
    {
        using var scope = NewDisposeScope();
        // Data for "b" comes before "a"; "e" and "f" are empty and share an offset; no padding; trailing bytes.
        const string header = """
            {"a":{"dtype":"I16","shape":[2],"data_offsets":[4,8]},
             "b":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]},
             "e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},
             "f":{"dtype":"F64","shape":[0],"data_offsets":[4,4]},
             "__metadata__":null}
            """;
        var path = WriteRaw("foreign.safetensors", Raw(header, 10));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["a", "b", "e", "f"], file.Names);
        Assert.Empty(file.Metadata);
        using var a = file.Load("a");
        using var b = file.Load("b");
        var raw = Raw(header, 10).AsSpan(8 + Encoding.UTF8.GetByteCount(header));
        Assert.Equal(raw[4..8].ToArray(), Bytes(a));
        Assert.Equal(raw[..4].ToArray(), Bytes(b));
        Assert.Equal(new long[] { 0, 3 }, file.Load("e").shape);
        var entry = file.Entry("a");
        Assert.Equal(("a", SafetensorsDtype.I16, 4L, 8L), (entry.Name, entry.Dtype, entry.Begin, entry.End));
        Assert.Equal(new long[] { 2 }, entry.Shape);
    }

    [Fact]
    public void BoolBytesOtherThanZeroOrOneReadAsTrue()
    {
        using var scope = NewDisposeScope();
        var bytes = Raw("""{"m":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]}}""", 4);
        var data = bytes.AsSpan(bytes.Length - 4);
        data[0] = 0; data[1] = 1; data[2] = 2; data[3] = 255;
        using var file = SafetensorsFile.Open(WriteRaw("bool.safetensors", bytes));
        using var m = file.Load("m");
        Assert.Equal(new[] { false, true, true, true }, m.data<bool>().ToArray());
        Assert.Equal(new byte[] { 0, 1, 1, 1 }, Bytes(m));
    }

    // ---- the real fixtures ----

    [Fact]
    public void ReadsTheClipsegTinyReference()
    {
        using var scope = NewDisposeScope();
        var path = Path.Combine(Fixtures.Parity, "clipseg-tiny", "reference.safetensors");
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(
            ["attention_mask", "input_ids", "conditional_embeddings", "logits", "pixel_values",
             "vision_hidden_states.2", "vision_hidden_states.3", "vision_hidden_states.4"],
            file.Names);
        var prompts = JsonSerializer.Deserialize<string[]>(file.Metadata["prompts"])!;
        Assert.Equal(["a polyp", "a round pink polyp in the center of the image"], prompts);

        var ids = file.Entry("input_ids");
        Assert.Equal((SafetensorsDtype.I64, 208L, 416L), (ids.Dtype, ids.Begin, ids.End));
        Assert.Equal(new long[] { 2, 13 }, file.Entry("input_ids").Shape);
        Assert.Equal(new long[] { 2, 16 }, file.Entry("conditional_embeddings").Shape);
        Assert.Equal(new long[] { 2, 24, 24 }, file.Entry("logits").Shape);
        Assert.Equal(new long[] { 2, 3, 48, 48 }, file.Entry("pixel_values").Shape);
        Assert.Equal(new long[] { 2, 37, 48 }, file.Entry("vision_hidden_states.3").Shape);

        var all = file.LoadAll();
        Assert.Equal(ScalarType.Int64, all["input_ids"].dtype);
        Assert.Equal(
            new long[] { 49406, 320, 6833, 335, 49407, 49407, 49407, 49407, 49407, 49407, 49407, 49407, 49407,
                         49406, 320, 2522, 3360, 6833, 335, 530, 518, 2119, 539, 518, 2867, 49407 },
            all["input_ids"].data<long>().ToArray());
        Assert.Equal(new long[] { 5, 13 }, all["attention_mask"].sum(1).data<long>().ToArray());

        // Values checked independently with Python's struct module.
        var logits = all["logits"];
        Assert.Equal(ScalarType.Float32, logits.dtype);
        Assert.Equal(-0.024318326264619827f, logits[0, 0, 0].item<float>());
        Assert.Equal(0.008584719151258469f, logits[1, 23, 23].item<float>());
        Assert.Equal(50.8004126679, logits.to_type(ScalarType.Float64).sum().item<double>(), 1e-6);
        var pixels = all["pixel_values"];
        Assert.Equal(-0.13201288878917694f, pixels[0, 0, 0, 0].item<float>());
        Assert.Equal(-0.6034279465675354f, pixels.flatten()[12345].item<float>());
        Assert.True(all.Values.All(t => !t.is_floating_point() || t.isfinite().all().item<bool>()));
    }

    [Theory]
    [InlineData("clipseg-tiny/model.safetensors")]
    [InlineData("clipseg-geometry/model.safetensors")]
    [InlineData("clipseg-adapter-base/model.safetensors")]
    [InlineData("clipseg-adapter-base/adapters/dense-vlc.adapter.safetensors")]
    [InlineData("cris-tiny/model.safetensors")]
    [InlineData("cris-tiny/reference.safetensors")]
    public void LoadsEveryTensorOfTheFixtureModels(string relative)
    {
        using var scope = NewDisposeScope();
        var path = Path.Combine(Fixtures.Parity, relative);
        using var file = SafetensorsFile.Open(path);
        var all = file.LoadAll(ScalarType.Float32);
        Assert.Equal(file.Names, all.Keys);
        foreach (var (name, t) in all)
        {
            var entry = file.Entry(name);
            Assert.Equal(entry.Shape, t.shape);
            Assert.Equal(entry.Dtype == SafetensorsDtype.F32 ? ScalarType.Float32 : ScalarType.Int64, t.dtype);
            if (t.is_floating_point())
            {
                Assert.True(t.isfinite().all().item<bool>(), $"{name} has non-finite values");
            }
        }
        Assert.Equal(new FileInfo(path).Length, 8 + HeaderLength(path) + all.Values.Sum(t => t.numel() * t.element_size()));
    }

    private static long HeaderLength(string path)
    {
        using var s = File.OpenRead(path);
        Span<byte> b = stackalloc byte[8];
        s.ReadExactly(b);
        return (long)BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    // ---- bad input: each error names the file, and the tensor where one is at fault ----

    private VlsmException OpenFails(byte[] bytes, string? tensor = null, string? says = null)
    {
        var path = WriteRaw($"bad-{Guid.NewGuid():N}.safetensors", bytes);
        var e = Assert.Throws<VlsmException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        if (tensor is not null)
        {
            Assert.Contains($"'{tensor}'", e.Message);
        }
        if (says is not null)
        {
            Assert.Contains(says, e.Message);
        }
        return e;
    }

    private const string Good = """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";

    [Fact]
    public void TruncatedFile()
    {
        OpenFails([], says: "0 bytes");
        OpenFails([1, 0, 0, 0, 0], says: "5 bytes");
        var full = Raw(Good, 8);
        OpenFails(full[..20], says: "runs past the end");
        OpenFails(full[..^1], tensor: "w", says: "past the end of the data section");
    }

    [Fact]
    public void MissingFile()
    {
        var path = Temp("missing.safetensors");
        var e = Assert.Throws<VlsmException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void HeaderLengthPastTheEnd()
    {
        OpenFails(Raw(Good, 8, declaredHeaderLength: 1000), says: "runs past the end of the file");
        OpenFails(Raw(Good, 8, declaredHeaderLength: ulong.MaxValue), says: "runs past the end of the file");
    }

    [Fact]
    public void HeaderNotJson()
    {
        OpenFails(Raw("{\"w\": {\"dtype\": F32}}", 8), says: "not valid JSON");
        OpenFails(Raw("[1, 2, 3]", 0), says: "array, not an object");
        OpenFails(Raw("{}{}", 0), says: "not valid JSON");
        var invalidUtf8 = Raw("{\"x\":1}  ", 0);
        invalidUtf8[10] = 0xFF;
        OpenFails(invalidUtf8, says: "UTF-8");
    }

    [Fact]
    public void EntryMissingFields()
    {
        OpenFails(Raw("""{"w":{"shape":[2],"data_offsets":[0,8]}}""", 8), "w", "'dtype'");
        OpenFails(Raw("""{"w":{"dtype":"F32","data_offsets":[0,8]}}""", 8), "w", "'shape'");
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[2]}}""", 8), "w", "'data_offsets'");
        OpenFails(Raw("""{"w":[1,2]}""", 8), "w", "not an object");
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}""", 8), "w", "not 2");
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}""", 8), "w", "not an integer");
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}""", 8), "w", "'shape'");
    }

    [Fact]
    public void UnknownDtype()
    {
        OpenFails(Raw("""{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}""", 2), "w", "'F8_E4M3'");
        OpenFails(Raw("""{"w":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}""", 8), "w", "unsupported dtype");
        OpenFails(Raw("""{"w":{"dtype":1,"shape":[2],"data_offsets":[0,8]}}""", 8), "w", "'dtype'");
    }

    [Fact]
    public void NegativeShape() =>
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", 8), "w", "negative");

    [Fact]
    public void OffsetsOutOfRange()
    {
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8), "w", "past the end of the data section");
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 8), "w", "past the end of the data section");
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}""", 8), "w", "begin after");
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}""", 8), "w", "negative");
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999]}}""", 8), "w", "not an integer");
    }

    [Fact]
    public void OverlappingOffsets()
    {
        var e = OpenFails(Raw("""
            {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
             "b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}
            """, 12), "a", "overlap");
        Assert.Contains("'b'", e.Message);
        // A span inside a longer one that began earlier.
        OpenFails(Raw("""
            {"big":{"dtype":"U8","shape":[12],"data_offsets":[0,12]},
             "small":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},
             "other":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}
            """, 12), "big", "overlap");
    }

    [Fact]
    public void ShapeSizeMismatch()
    {
        OpenFails(Raw("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8), "w", "needs 12 bytes");
        OpenFails(Raw("""{"w":{"dtype":"F64","shape":[4611686018427387904, 4],"data_offsets":[0,8]}}""", 8), "w", "too large");
    }

    [Fact]
    public void BadMetadata()
    {
        OpenFails(Raw("""{"__metadata__":{"epoch":3}}""", 0), says: "'epoch'");
        OpenFails(Raw("""{"__metadata__":["a"]}""", 0), says: "__metadata__");
    }

    [Fact]
    public void DuplicateTensorName() =>
        OpenFails(Raw("""
            {"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},
             "w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}
            """, 2), "w", "twice");

    // ---- properties ----

    private const string NameAlphabet = "abcxyz019._-/ \"\\é中";

    private static readonly SafetensorsDtype[] Dtypes = Enum.GetValues<SafetensorsDtype>();

    private sealed record Spec(SafetensorsDtype Dtype, long[] Shape, byte[] Data);

    private static readonly Gen<string> GenName =
        Gen.Int[0, NameAlphabet.Length - 1].Array[1, 10].Select(ix => new string(ix.Select(i => NameAlphabet[i]).ToArray()));

    private static readonly Gen<Spec> GenSpec =
        from dtype in Gen.OneOf(Dtypes)
        from shape in Gen.Long[0, 4].Array[0, 3]
        let count = shape.Aggregate(1L, (a, b) => a * b) * SafetensorsDtypes.Size(dtype)
        from data in Gen.Byte.Array[(int)count]
        select new Spec(dtype, shape, dtype == SafetensorsDtype.BOOL ? data.Select(b => (byte)(b & 1)).ToArray() : data);

    private static readonly Gen<(List<(string, Spec)>, Dictionary<string, string>)> GenFile =
        from names in GenName.Array[0, 6]
        from specs in GenSpec.Array[names.Length]
        from keys in GenName.Array[0, 3]
        from values in GenName.Array[keys.Length]
        let unique = names.Distinct().ToList()
        select (unique.Zip(specs).Where(p => p.First != "__metadata__").ToList(),
                keys.Zip(values).DistinctBy(p => p.First).ToDictionary(p => p.First, p => p.Second));

    [Fact]
    public void RandomTensorDictionariesRoundTripBitwise()
    {
        GenFile.Sample((tensors, metadata) =>
        {
            using var scope = NewDisposeScope();
            var path = Temp($"prop-{Guid.NewGuid():N}.safetensors");
            var inputs = tensors.Select(p =>
            {
                var t = empty(p.Item2.Shape, SafetensorsDtypes.ToScalarType(p.Item2.Dtype));
                if (p.Item2.Data.Length > 0)
                {
                    p.Item2.Data.CopyTo(t.bytes);
                }
                return new KeyValuePair<string, Tensor>(p.Item1, t);
            }).ToList();

            SafetensorsWriter.Save(path, inputs, metadata);

            using var file = SafetensorsFile.Open(path);
            Assert.Equal(tensors.Select(p => p.Item1), file.Names);
            Assert.Equal(metadata, file.Metadata);
            var loaded = file.LoadAll();
            foreach (var (name, spec) in tensors)
            {
                Assert.Equal(spec.Shape, loaded[name].shape);
                Assert.Equal(SafetensorsDtypes.ToScalarType(spec.Dtype), loaded[name].dtype);
                Assert.Equal(spec.Data, spec.Data.Length == 0 ? [] : Bytes(loaded[name]));
            }
            File.Delete(path);
        }, iter: 200, threads: 1);
    }

    private byte[] ValidFileForMutation()
    {
        var path = Temp("valid.safetensors");
        using (NewDisposeScope())
        {
            SafetensorsWriter.Save(path, new Dictionary<string, Tensor>
            {
                ["w"] = randn(2, 3),
                ["ids"] = tensor(new long[] { 1, 2, 3 }),
                ["mask"] = tensor(new[] { true, false }),
                ["h"] = ones(2, ScalarType.Float16),
                ["e"] = zeros(0, 2),
            }, new Dictionary<string, string> { ["k"] = "v" });
        }
        var bytes = File.ReadAllBytes(path);
        File.Delete(path);
        return bytes;
    }

    /// <summary>Opens and loads everything; the only failure allowed is a VlsmException naming the file.</summary>
    /// <returns>Whether the file loaded.</returns>
    private bool LoadsOrExplains(byte[] bytes)
    {
        var path = Temp($"mut-{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, bytes);
        try
        {
            using var scope = NewDisposeScope();
            using var file = SafetensorsFile.Open(path);
            foreach (var name in file.Names)
            {
                file.Load(name);
            }
            file.LoadAll(ScalarType.Float32);
            return true;
        }
        catch (VlsmException e)
        {
            Assert.Contains(path, e.Message);
            return false;
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void EveryTruncationLoadsOrThrowsVlsmException()
    {
        var valid = ValidFileForMutation();
        for (var length = 0; length < valid.Length; length++)
        {
            Assert.False(LoadsOrExplains(valid[..length]), $"truncated to {length} bytes, the file still loaded");
        }
        Assert.True(LoadsOrExplains(valid));
    }

    [Fact]
    public void RandomByteMutationsLoadOrThrowVlsmException()
    {
        var valid = ValidFileForMutation();
        var headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        // Replacement bytes biased towards JSON structure, so that many mutants still parse.
        var interesting = "{}[]\":,-0123456789 eE.\\"u8.ToArray().Concat(new byte[] { 0, 0x80, 0xFF, (byte)'F', (byte)'I' }).ToArray();
        var mutation =
            from count in Gen.Int[1, 4]
            from edits in Gen.Select(
                Gen.Int[0, 5].SelectMany(k => k < 4 ? Gen.Int[8, headerEnd - 1] : k == 4 ? Gen.Int[0, 7] : Gen.Int[headerEnd, valid.Length - 1]),
                Gen.Int[0, 3].SelectMany(k => k < 3 ? Gen.OneOf(interesting) : Gen.Byte)).Array[count]
            from truncate in Gen.Int[0, 4].SelectMany(k => k < 4 ? Gen.Const(valid.Length) : Gen.Int[0, valid.Length])
            select (edits, truncate);
        var (loaded, refused) = (0, 0);
        mutation.Sample((edits, truncate) =>
        {
            var bytes = (byte[])valid.Clone();
            foreach (var (at, value) in edits)
            {
                bytes[at] = value;
            }
            if (LoadsOrExplains(bytes[..truncate]))
            {
                loaded++;
            }
            else
            {
                refused++;
            }
        }, iter: 1500, threads: 1);
        // Both outcomes occur, so the property says something about each.
        Assert.InRange(loaded, 1, int.MaxValue);
        Assert.InRange(refused, 1, int.MaxValue);
    }

    // ---- large tensors are copied in chunks (exercised here with tiny chunks) ----

    [Theory]
    [InlineData(8)]   // two floats per chunk
    [InlineData(12)]  // three
    [InlineData(5)]   // not a multiple of the element size: rounds down to one float
    [InlineData(1)]   // smaller than an element: still one element per chunk
    public void ChunkedCopiesMatchASingleCopy(long chunkBytes)
    {
        using var scope = torch.NewDisposeScope();
        var source = torch.randn(7, 3);
        var expected = source.bytes.ToArray();

        var copy = torch.empty(7, 3);
        var pinned = GCHandle.Alloc(expected, GCHandleType.Pinned);
        try
        {
            TensorBytes.CopyInto(copy, pinned.AddrOfPinnedObject(), expected.Length, chunkBytes);
        }
        finally
        {
            pinned.Free();
        }
        Assert.Equal(expected, copy.bytes.ToArray());

        using var stream = new MemoryStream();
        TensorBytes.WriteTo(source, stream, chunkBytes);
        Assert.Equal(expected, stream.ToArray());
    }
}
