using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Text.RegularExpressions;
using SkiaSharp;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary><c>vlsm serve</c> in a child process on a free loopback port, as a user starts it.</summary>
internal sealed partial class ServeProcess : IDisposable
{
    private readonly Process process;
    private readonly System.Text.StringBuilder output = new();

    public ServeProcess(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "vlsm.dll"));
        psi.ArgumentList.Add("serve");
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--port");
        psi.ArgumentList.Add("0");
        process = Process.Start(psi)!;
        var url = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.AppendLine(e.Data);
            if (ServingLine().Match(e.Data) is { Success: true } m) url.TrySetResult(m.Groups[1].Value);
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var exited = process.WaitForExitAsync();
        if (Task.WhenAny(url.Task, exited, Task.Delay(TimeSpan.FromMinutes(3))).GetAwaiter().GetResult() != url.Task)
        {
            Dispose();
            throw new InvalidOperationException($"vlsm serve did not start:\n{Output}");
        }
        BaseUrl = url.Task.Result;
    }

    /// <summary>http://127.0.0.1:PORT, without a trailing slash.</summary>
    public string BaseUrl { get; }

    public string Output { get { lock (output) return output.ToString(); } }

    [GeneratedRegex(@"^serving \d+ model\(s\) at (http://[^/ ]+)/")]
    private static partial Regex ServingLine();

    public void Dispose()
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.WaitForExit(10_000);
        process.Dispose();
    }
}

/// <summary>Images to upload, in the formats the API accepts.</summary>
internal static class UploadImages
{
    /// <summary>A smooth colour pattern with a bright disc, so masks have structure.</summary>
    public static RgbImage Pattern(int width, int height)
    {
        var image = new RgbImage(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 3;
                bool disc = (x - width / 3) * (x - width / 3) + (y - height / 2) * (y - height / 2) < width * height / 16;
                image.Pixels[i] = (byte)(disc ? 240 : x * 255 / width);
                image.Pixels[i + 1] = (byte)(disc ? 120 : y * 255 / height);
                image.Pixels[i + 2] = (byte)(disc ? 160 : 60);
            }
        return image;
    }

    public static byte[] Png(int width, int height) => ImageCodec.EncodePng(Pattern(width, height));

    public static byte[] Jpeg(int width, int height)
    {
        var rgb = Pattern(width, height);
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 3;
                bitmap.SetPixel(x, y, new SKColor(rgb.Pixels[i], rgb.Pixels[i + 1], rgb.Pixels[i + 2]));
            }
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 95);
        return data.ToArray();
    }

    /// <summary>A 16-bit grayscale PNG (colour type 0, bit depth 16), written by hand as scanners write them.</summary>
    public static byte[] Gray16Png(int width, int height)
    {
        var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);
            for (int x = 0; x < width; x++)
            {
                int v = (x * 65535 / Math.Max(1, width - 1) + y * 97) & 0xFFFF;
                raw.WriteByte((byte)(v >> 8));
                raw.WriteByte((byte)v);
            }
        }
        var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true)) raw.WriteTo(z);
        var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header, width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 16; // bit depth
        header[9] = 0;  // grayscale
        Chunk(png, "IHDR", header);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var length = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        s.Write(length);
        var typed = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(typed);
        var crc = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typed));
        s.Write(crc);
    }
}
