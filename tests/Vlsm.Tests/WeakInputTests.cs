using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Vlsm.Imaging;
using Vlsm.IO;
using Vlsm.Models;
using Vlsm.Models.ClipSeg;

namespace Vlsm.Tests;

/// <summary>
/// Issue #19's weak cases in weights, adapters and images: non-finite weights, a dtype of the wrong
/// kind, adapter metadata errors and impossible PNG sizes are each refused in a line that names
/// the file and the tensor or field at fault.
/// </summary>
public sealed class WeakInputTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-weak-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static string ClipSegTiny => Path.Combine(Fixtures.Parity, "clipseg-tiny");

    private string CopyTiny(string name)
    {
        string dir = Path.Combine(tmp, name);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(ClipSegTiny)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    /// <summary>Rewrites a safetensors file: <paramref name="header"/> edits its header (JSON), <paramref name="data"/> its data bytes (offsets are into the data).</summary>
    private static void Rewrite(string path, Action<JsonObject>? header = null, Action<JsonObject, byte[]>? data = null)
    {
        var bytes = File.ReadAllBytes(path);
        long n = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        var json = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)n))!.AsObject();
        var body = bytes[(int)(8 + n)..];
        header?.Invoke(json);
        data?.Invoke(json, body);
        var text = Encoding.UTF8.GetBytes(json.ToJsonString());
        using var s = File.Create(path);
        var prefix = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(prefix, text.Length);
        s.Write(prefix);
        s.Write(text);
        s.Write(body);
    }

    private static void PutFloat(JsonObject header, byte[] body, string key, int index, float value)
    {
        long begin = header[key]!["data_offsets"]![0]!.GetValue<long>();
        BinaryPrimitives.WriteSingleLittleEndian(body.AsSpan((int)(begin + 4 * index)), value);
    }

    [Theory]
    [InlineData(float.NaN, "1 NaN and 0 infinite")]
    [InlineData(float.PositiveInfinity, "0 NaN and 1 infinite")]
    public void NonFiniteModelWeightsAreRefusedNamingTheTensor(float value, string expected)
    {
        string dir = CopyTiny("nan");
        const string Key = "decoder.film_mul.weight";
        Rewrite(Path.Combine(dir, "model.safetensors"), data: (h, body) => PutFloat(h, body, Key, 3, value));
        var e = Assert.Throws<VlsmException>(() => ClipSegLoader.Load(dir).Dispose());
        Assert.Contains($"model.safetensors: tensor \"{Key}\" holds {expected} values", e.Message);
    }

    [Fact]
    public void NonFiniteAdapterWeightsAreRefusedNamingTheTensor()
    {
        string file = Path.Combine(tmp, "adapter.safetensors");
        using (var adapted = new AdaptedClipSeg(ClipSegLoader.Load(ClipSegTiny), FineTuneSpec.Create(FineTuneMode.Dense, "vl", 4, 4)))
            AdapterFile.Save(file, adapted);
        string key;
        using (var f = SafetensorsFile.Open(file)) key = f.Names.First(n => f.Entry(n).Dtype == SafetensorsDtype.F32 && f.Entry(n).Shape.Length == 2);
        Rewrite(file, data: (h, body) => PutFloat(h, body, key, 0, float.NaN));
        using var model = ClipSegLoader.Load(ClipSegTiny);
        var e = Assert.Throws<VlsmException>(() => AdapterFile.Load(model, file));
        Assert.Contains($"adapter.safetensors: tensor \"{key}\" holds 1 NaN", e.Message);
    }

    [Fact]
    public void AnIntegerTensorDeclaredForAFloatWeightIsRefused()
    {
        string dir = CopyTiny("i32");
        const string Key = "decoder.film_add.weight";
        Rewrite(Path.Combine(dir, "model.safetensors"), header: h => h[Key]!["dtype"] = "I32");
        var e = Assert.Throws<VlsmException>(() => ClipSegLoader.Load(dir).Dispose());
        Assert.Contains($"tensor \"{Key}\" is stored as I32, but the model's is a floating-point weight", e.Message);
    }

    [Theory]
    [InlineData("bogus", null, "mode \"bogus\" is not one of shallow, dense, decoder, full")]
    [InlineData("dense", "", "parts must name at least one of v, l, c")]
    public void AdapterMetadataErrorsNameTheFile(string kind, string? parts, string expected)
    {
        string file = Path.Combine(tmp, "meta.safetensors");
        var metadata = new Dictionary<string, string> { ["kind"] = kind };
        if (parts is not null) metadata["parts"] = parts;
        SafetensorsWriter.Save(file, [new KeyValuePair<string, TorchSharp.torch.Tensor>("v_attn_adapters.0.fc1.weight", TorchSharp.torch.zeros(4, 48))], metadata);
        using var model = ClipSegLoader.Load(ClipSegTiny);
        var e = Assert.Throws<VlsmException>(() => AdapterFile.Load(model, file));
        Assert.StartsWith(file + ": metadata: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    /// <summary>A PNG signature and an IHDR chunk declaring <paramref name="width"/> x <paramref name="height"/>, then nothing.</summary>
    private string PngHeader(string name, uint width, uint height)
    {
        var bytes = new List<byte> { 137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13 };
        bytes.AddRange("IHDR"u8.ToArray());
        var size = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(size, width);
        BinaryPrimitives.WriteUInt32BigEndian(size.AsSpan(4), height);
        bytes.AddRange(size);
        bytes.AddRange([8, 2, 0, 0, 0, 0, 0, 0, 0]); // depth 8, RGB, no interlace, a CRC (unchecked here)
        string path = Path.Combine(tmp, name);
        File.WriteAllBytes(path, bytes.ToArray());
        return path;
    }

    [Theory]
    [InlineData(0u, 0u, "declares 0x0 pixels")]
    [InlineData(2147483648u, 16u, "declares 2147483648x16 pixels")]
    [InlineData(16u, 0u, "declares 16x0 pixels")]
    public void AnImpossiblePngSizeIsReportedAsSuch(uint width, uint height, string expected)
    {
        string path = PngHeader($"{width}x{height}.png", width, height);
        var e = Assert.Throws<VlsmException>(() => ImageCodec.DecodeRgb(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains("PNG sides must be 1 to 2147483647 pixels", e.Message);
        Assert.DoesNotContain("truncated", e.Message);
        var g = Assert.Throws<VlsmException>(() => ImageCodec.DecodeGray(path));
        Assert.Contains(expected, g.Message);
    }
}
