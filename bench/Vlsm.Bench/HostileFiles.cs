using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;

namespace Vlsm.Bench;

/// <summary>
/// Peak resident memory of <c>vlsm convert cris</c> on hostile .pth files (issue #19, bad 3): pickle
/// bombs of NONE, DUP and MARK opcodes, a 100 MB string, absurd declared lengths, memo and container
/// floods, deep nesting, a storage zip bomb and a stride-0 expansion. Each runs in a child
/// <c>vlsm</c> process (the built <c>src/Vlsm.Cli</c>), whose VmHWM is read from /proc while it runs;
/// the target is under 300 MB for every file, and each must be refused with exit code 2.
/// </summary>
internal static class HostileFiles
{
    public const long TargetMegabytes = 300;

    public static void Measure(JsonObject into)
    {
        string? root = CheckoutRoot();
        string? vlsm = root is null ? null : Path.Combine(root, "src", "Vlsm.Cli", "bin", "Release", "net10.0", "vlsm.dll");
        string? config = root is null ? null : Path.Combine(root, "..", "shared", "parity", "cris-tiny", "config.json");
        if (vlsm is null || !File.Exists(vlsm) || !File.Exists(config))
        {
            Console.WriteLine("hostile files: skipped (needs src/Vlsm.Cli built in Release and ../shared/parity/cris-tiny beside the checkout)");
            return;
        }
        string dir = Directory.CreateTempSubdirectory("vlsm-hostile-bench-").FullName;
        try
        {
            long worst = 0;
            var each = new JsonObject();
            foreach (var (name, write) in Files())
            {
                string file = Path.Combine(dir, name + ".pth");
                write(file);
                var (megabytes, exit, error) = PeakOfConvert(vlsm, file, config!, Path.Combine(dir, "out"));
                worst = Math.Max(worst, megabytes);
                each[name] = megabytes;
                Console.WriteLine($"convert on {name} ({new FileInfo(file).Length / 1024} KB): peak RSS {megabytes} MB, exit {exit}: {error[..Math.Min(error.Length, 150)]}");
                if (exit != 2) Console.WriteLine($"  NOT REFUSED CLEANLY (exit {exit})");
                File.Delete(file);
            }
            into["convert_hostile_peak_rss_mb"] = worst;
            into["convert_hostile_each_peak_rss_mb"] = each;
            Console.WriteLine($"hostile files: worst peak RSS {worst} MB (target under {TargetMegabytes} MB){(worst < TargetMegabytes ? "" : " — OVER TARGET")}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string? CheckoutRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "vlsm.sln"))) return dir.FullName;
        return null;
    }

    /// <summary>Runs <c>vlsm convert cris</c> and polls the child's VmHWM (its high-water mark, so a late read still sees the peak) until it exits.</summary>
    private static (long Megabytes, int Exit, string Error) PeakOfConvert(string vlsm, string checkpoint, string config, string outDir)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { vlsm, "convert", "cris", "--checkpoint", checkpoint, "--config", config, "--out", outDir }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        long peakKb = 0;
        while (!p.HasExited)
        {
            try
            {
                peakKb = Math.Max(peakKb, PeakRss.PeakKilobytesOf(p.Id));
            }
            catch (IOException)
            {
                break; // the process ended between the check and the read
            }
            Thread.Sleep(1);
        }
        p.WaitForExit();
        _ = stdout.Result;
        return (peakKb / 1024, p.ExitCode, stderr.Result.Trim());
    }

    private static IEnumerable<(string Name, Action<string> Write)> Files()
    {
        yield return ("none-bomb-100M", f => Zip(f, Pickle(Repeat("N"u8, 100_000_000)), deflate: true));
        yield return ("none-stored-60M", f => Zip(f, Pickle(Repeat("N"u8, 60_000_000))));
        yield return ("dup-stored-60M", f => Zip(f, Pickle("N"u8.ToArray(), Repeat("2"u8, 60_000_000))));
        yield return ("mark-stored-60M", f => Zip(f, Pickle(Repeat("("u8, 60_000_000), "}"u8.ToArray())));
        yield return ("string-100MB", f => Zip(f, Pickle([(byte)'X', .. BitConverter.GetBytes(100_000_000), .. Repeat("A"u8, 100_000_000)]), deflate: true));
        yield return ("string-declared-4GB", f => Zip(f, Pickle([(byte)'X', .. BitConverter.GetBytes(0xFFFFFFF0u), (byte)'A'])));
        yield return ("bytes8-declared-2^63", f => Zip(f, Pickle([0x8e, .. BitConverter.GetBytes(1UL << 63), (byte)'A'])));
        yield return ("strings-near-limit-60MB", f => Zip(f, Pickle("]"u8.ToArray(), Repeat([(byte)'X', .. BitConverter.GetBytes(1_000_000), .. Repeat("A"u8, 1_000_000), (byte)'a'], 60))));
        yield return ("memo-flood", f =>
        {
            var ops = new List<byte> { (byte)'N' };
            for (uint i = 0; i < 12_000_000; i++) ops.AddRange([(byte)'r', .. BitConverter.GetBytes(i)]);
            Zip(f, Pickle(ops.ToArray()));
        });
        yield return ("dict-flood", f => Zip(f, Pickle("]"u8.ToArray(), Repeat("}a"u8, 30_000_000))));
        yield return ("list-append-flood", f => Zip(f, Pickle("]"u8.ToArray(), Repeat("2a"u8, 30_000_000))));
        yield return ("nested-tuples", f => Zip(f, Pickle(")"u8.ToArray(), Repeat([0x85], 30_000_000), "Q"u8.ToArray())));
        yield return ("storage-bomb-1GB", f => Zip(f, TensorPickle(250_000_000, 1, 250_000_000), deflate: false, ("archive/data/0", new byte[1_000_000_000])));
        yield return ("stride0-expand-1.6GB", f => Zip(f, TensorPickle(400_000_000, 0, 1), deflate: false, ("archive/data/0", new byte[4])));
    }

    private static byte[] Pickle(params byte[][] parts) => [0x80, 2, .. parts.SelectMany(p => p), (byte)'.'];

    private static byte[] Repeat(ReadOnlySpan<byte> unit, int times)
    {
        var result = new byte[unit.Length * times];
        for (int i = 0; i < times; i++) unit.CopyTo(result.AsSpan(i * unit.Length));
        return result;
    }

    /// <summary>{"w": a float tensor of <paramref name="size"/> elements with stride <paramref name="stride"/> over storage 0 of <paramref name="storage"/> elements}.</summary>
    private static byte[] TensorPickle(long size, long stride, int storage)
    {
        var p = new List<byte>("}(X\u0001\0\0\0w"u8.ToArray());
        p.AddRange(Encoding.ASCII.GetBytes("ctorch._utils\n_rebuild_tensor_v2\n(("));
        p.AddRange([(byte)'X', 7, 0, 0, 0, .. "storage"u8]);
        p.AddRange(Encoding.ASCII.GetBytes("ctorch\nFloatStorage\n"));
        p.AddRange([(byte)'X', 1, 0, 0, 0, (byte)'0', (byte)'X', 3, 0, 0, 0, .. "cpu"u8]);
        p.AddRange([(byte)'J', .. BitConverter.GetBytes(storage), (byte)'t', (byte)'Q', (byte)'K', 0]);
        p.AddRange([(byte)'(', 0x8a, 8, .. BitConverter.GetBytes(size), (byte)'t', (byte)'(', 0x8a, 8, .. BitConverter.GetBytes(stride), (byte)'t', 0x89]);
        p.AddRange(Encoding.ASCII.GetBytes("ccollections\nOrderedDict\n"));
        p.AddRange(")RtRu"u8.ToArray());
        return Pickle(p.ToArray());
    }

    /// <summary>A torch.save-style zip; <paramref name="deflate"/> compresses data.pkl, and every extra entry is deflated (a zip bomb).</summary>
    private static void Zip(string path, byte[] pickle, bool deflate = false, params (string Entry, byte[] Bytes)[] more)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        void Add(string entry, byte[] bytes, bool compress)
        {
            using var s = zip.CreateEntry(entry, compress ? CompressionLevel.SmallestSize : CompressionLevel.NoCompression).Open();
            s.Write(bytes);
        }
        Add("archive/data.pkl", pickle, deflate);
        Add("archive/byteorder", "little"u8.ToArray(), false);
        foreach (var (entry, bytes) in more) Add(entry, bytes, true);
    }
}
