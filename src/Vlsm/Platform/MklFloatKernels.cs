using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;

namespace Vlsm.Platform;

/// <summary>
/// Lets MKL run its Intel-tuned float32 kernels on AMD CPUs: AVX-512 where the CPU has it (Zen 4,
/// Zen 5), AVX2 otherwise (Zen 1-3). libtorch computes float32 matrix products (linear, mm, bmm) with
/// the MKL it links statically, and MKL picks its kernels by asking <c>mkl_serv_intel_cpu_true()</c>
/// first: on an AMD CPU the answer is no and it takes its AVX2 "zen" path whatever the CPU offers.
/// On this project's Zen 5 machines that path runs a (1940 x 768) by (768 x 512) product at 140-170
/// GFLOP/s on 2 threads, the AVX-512 path at 290-360; on a Zen 3 machine (AVX2 only) the zen path ran
/// it at 102-115 and MKL's Intel AVX2 path at 137-142, and the decoder's (1940 x 64) by (64 x 2048)
/// product at 52-70 against 127-141 (scratch measurements, bench/ has the end-to-end figures). Both
/// paths agree with float64 to float32 rounding (tests/Vlsm.Tests/MklFloatKernelsTests.cs).
///
/// The question reaches MKL through libtorch_cpu.so's procedure linkage table, so the answer can be
/// changed by pointing that one table entry at a 6-byte function that returns 1 — what the widely
/// used LD_PRELOAD workaround does, without needing the variable at process start. MKL asks once,
/// at its first call, and keeps the answer: the entry has to change after libtorch is loaded and
/// before the first float32 product. The module initializer does it at once if libtorch is loaded,
/// or else from TorchSharp's native-library resolver, which .NET consults before TorchSharp's first
/// call into libtorch. MKL still checks each instruction set itself (AMX, AVX512-FP16 stay off on
/// AMD; AVX-512 stays off on a CPU without it). Only on Linux x64, only on AMD CPUs with AVX2 and
/// FMA; VLSM_MKL=default leaves MKL's own choice. <see cref="Setting"/> says what happened, for
/// `vlsm env` and the bench.
/// </summary>
public static unsafe partial class MklFloatKernels
{
    /// <summary>Set to <c>default</c>, this variable leaves MKL's own kernel choice alone.</summary>
    public const string Variable = "VLSM_MKL";

    private const string QuestionSymbol = "mkl_serv_intel_cpu_true";
    private const string Library = "libtorch_cpu.so";
    private static readonly string[] Avx512Flags = ["avx512f", "avx512dq", "avx512bw", "avx512vl"];
    private static readonly string[] Avx2Flags = ["avx2", "fma"];

    private static readonly Lock Gate = new();
    private static bool pending;

    /// <summary>The Intel path's width (<see cref="IntelPathWidth"/>), named from the flags <see cref="Arrange"/> reads once for its check.</summary>
    private static string pathWidth = "";

    /// <summary>What vlsm did about MKL's float32 kernels, in words.</summary>
    public static string Setting { get; private set; } = "MKL's own choice";

    /// <summary>True once MKL runs its Intel code path because of vlsm (not when MKL chose it itself, on Intel CPUs).</summary>
    public static bool IntelPathOnAmd => MklCpuCode is not null;

    /// <summary>MKL's own code for the kernels it chose (from mkl_serv_cpu_detect), asked once vlsm has arranged the Intel path; null otherwise.</summary>
    public static int? MklCpuCode { get; private set; }

#pragma warning disable CA2255 // a library module initializer on purpose: it must act before libtorch's first float32 product
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Arrange()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            Setting = "MKL's own choice (not Linux x64)";
            return;
        }
        if (Environment.GetEnvironmentVariable(Variable) == "default")
        {
            Setting = $"MKL's own choice ({Variable}=default)";
            return;
        }
        string? reason;
        try
        {
            var cpu = CpuFlags();
            reason = NotApplicable(cpu);
            pathWidth = IntelPathWidth(cpu.Flags);
        }
        catch (Exception e)
        {
            reason = $"could not read the CPU's description: {e.Message}"; // a module initializer must not throw
        }
        if (reason is not null)
        {
            Setting = $"MKL's own choice ({reason})";
            return;
        }
        lock (Gate)
        {
            if (!TryFindLibTorch(out var loaded)) return;
            if (loaded is not null)
            {
                Patch(loaded);
                return;
            }
            pending = true;
            Setting = "MKL's own choice (libtorch not loaded yet)";
        }
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, (_, _, _) =>
            {
                if (Volatile.Read(ref pending)) PatchIfLoaded();
                return IntPtr.Zero; // resolve as usual
            });
        }
        catch (InvalidOperationException)
        {
            // Someone else resolves TorchSharp's libraries; MKL keeps its own choice.
            lock (Gate)
            {
                pending = false;
                Setting = "MKL's own choice (TorchSharp's library resolver was already taken)";
            }
        }
    }

    /// <summary>Why the Intel path does not apply to a CPU with these /proc/cpuinfo vendor and flags, or null when it does.</summary>
    internal static string? NotApplicable((string? Vendor, IReadOnlySet<string> Flags) cpu)
    {
        if (cpu.Vendor != "AuthenticAMD") return cpu.Vendor is null ? "CPU vendor unknown" : $"{cpu.Vendor}: MKL chooses by instruction set there";
        var missing = Avx2Flags.Where(f => !cpu.Flags.Contains(f)).ToList();
        return missing.Count == 0 ? null : $"AMD CPU without {string.Join(", ", missing)}";
    }

    /// <summary>
    /// The widest kernels MKL's Intel path runs on a CPU with these flags: "AVX-512" with AVX512 F, DQ,
    /// BW and VL (what MKL's AVX-512 kernels need), else "AVX2". How vlsm names the path; MKL decides itself.
    /// </summary>
    internal static string IntelPathWidth(IReadOnlySet<string> flags) => Avx512Flags.All(flags.Contains) ? "AVX-512" : "AVX2";

    internal static (string? Vendor, IReadOnlySet<string> Flags) CpuFlags()
    {
        var cpu = CpuDescription.Read();
        return (cpu.Vendor, cpu.InstructionSets.ToHashSet(StringComparer.Ordinal));
    }

    private static void PatchIfLoaded()
    {
        lock (Gate)
        {
            if (!pending) return;
            if (!TryFindLibTorch(out var loaded)) pending = false;
            else if (loaded is not null)
            {
                pending = false;
                Patch(loaded);
            }
        }
    }

    /// <summary>
    /// <see cref="LibTorchPath"/>, or false with the reason in <see cref="Setting"/> when this process's
    /// mappings cannot be read: it runs in a module initializer and while .NET binds TorchSharp's
    /// native calls, where nothing may escape (every use of the library would fail).
    /// </summary>
    private static bool TryFindLibTorch(out string? path)
    {
        try
        {
            path = LibTorchPath();
            return true;
        }
        catch (Exception e)
        {
            path = null;
            Setting = $"MKL's own choice (could not read this process's mappings: {e.Message})";
            return false;
        }
    }

    /// <summary>The path of the libtorch_cpu.so mapped into this process, or null before it is loaded.</summary>
    internal static string? LibTorchPath()
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            int slash = line.IndexOf('/');
            if (slash >= 0 && line.EndsWith("/" + Library, StringComparison.Ordinal)) return line[slash..];
        }
        return null;
    }

    private static void Patch(string libTorch)
    {
        try
        {
            Setting = Redirect(libTorch);
        }
        catch (Exception e)
        {
            // Any failure (an unexpected ELF layout, a mapping line it cannot parse) leaves MKL's own
            // choice: this runs while .NET binds TorchSharp's native calls, and must never break them.
            Setting = $"MKL's own choice (could not arrange the Intel path: {e.Message})";
        }
    }

    /// <summary>Points libtorch's table entry for MKL's CPU question at a function that answers yes, then lets MKL choose.</summary>
    private static string Redirect(string path)
    {
        var (slotOffset, symbolValue) = FindJumpSlot(path, QuestionSymbol)
            ?? throw new InvalidDataException($"{path} has no procedure-linkage entry for {QuestionSymbol}");
        nint handle = NativeLibrary.Load(path); // already loaded: only a reference count
        nint question = NativeLibrary.GetExport(handle, QuestionSymbol);
        nint loadBias = question - (nint)symbolValue;
        nint* slot = (nint*)(loadBias + (nint)slotOffset);
        if (!IsWritable((nint)slot)) return "MKL's own choice (libtorch's linkage table is read-only here)";
        // Bound lazily, the entry holds the address of the function itself only after its first call:
        // MKL has asked already and keeps its answer, so changing the entry now would change nothing.
        if (*slot == question) return "MKL's own choice (MKL had chosen its kernels before vlsm was loaded)";

        // mov eax, 1; ret — in a page of its own, made executable once written; it lives as long as the process.
        nint page = MemoryMap(0, 4096, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (page == -1) return "MKL's own choice (no memory for the answer)";
        ReadOnlySpan<byte> answerYes = [0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3];
        answerYes.CopyTo(new Span<byte>((void*)page, answerYes.Length));
        if (MemoryProtect(page, 4096, ProtRead | ProtExec) != 0) return "MKL's own choice (could not make the answer executable)";
        Volatile.Write(ref *slot, page);

        // Ask now, so the choice is made (and reported) before any product runs.
        var detect = (delegate* unmanaged<int>)NativeLibrary.GetExport(handle, "mkl_serv_cpu_detect");
        int code = detect();
        MklCpuCode = code;
        return $"{pathWidth} on this AMD CPU (MKL's Intel code path, CPU code {code}; {Variable}=default keeps MKL's zen path)";
    }

    /// <summary>
    /// The GOT offset of the R_X86_64_JUMP_SLOT relocation of <paramref name="symbol"/> in the
    /// shared object at <paramref name="path"/>, and the symbol's value, read from its section headers.
    /// </summary>
    /// <remarks>
    /// The file is mapped, not read: libtorch's symbol names alone are 7 MB and it has about 50,000
    /// relocations, and this runs at the start of every process that loads libtorch. Reading the
    /// tables took 40-60 ms, a seek and small read per relocation 160-240 ms; mapped, only the pages
    /// touched are read, and the whole search takes 7-22 ms. The method is compiled optimized at once:
    /// it runs once, and as tier-0 code its loop took 20-120 ms.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static (ulong SlotOffset, ulong SymbolValue)? FindJumpSlot(string path, string symbol)
    {
        using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        var handle = view.SafeMemoryMappedViewHandle;
        byte* start = null;
        handle.AcquirePointer(ref start);
        try
        {
            ulong length = handle.ByteLength;
            ReadOnlySpan<byte> At(ulong offset, ulong size) => offset <= length && size <= length - offset
                ? new ReadOnlySpan<byte>(start + offset, checked((int)size))
                : throw new InvalidDataException($"{path}: a table lies outside the file");

            var header = At(0, 64);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != 0x464C457F || header[4] != 2) throw new InvalidDataException($"{path} is not a 64-bit ELF file");
            ulong sectionTable = BinaryPrimitives.ReadUInt64LittleEndian(header[0x28..]);
            int entrySize = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3A..]);
            int count = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3C..]);
            int namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3E..]);
            if (entrySize < 64 || namesIndex >= count) throw new InvalidDataException($"{path}: unexpected section headers");
            // A section header: name (4), type (4), flags (8), address (8), offset (8), size (8), link (4), ...
            ReadOnlySpan<byte> Section(int index) => At(sectionTable + (ulong)(index * entrySize), 64);
            ReadOnlySpan<byte> Contents(int index) => At(BinaryPrimitives.ReadUInt64LittleEndian(Section(index)[24..]), BinaryPrimitives.ReadUInt64LittleEndian(Section(index)[32..]));
            int Link(int index) => (int)BinaryPrimitives.ReadUInt32LittleEndian(Section(index)[40..]);
            static bool Named(ReadOnlySpan<byte> table, uint at, ReadOnlySpan<byte> nameAndZero) => at < table.Length && table[(int)at..].StartsWith(nameAndZero);

            const uint Rela = 4;
            const uint JumpSlot = 7;
            var sectionNames = Contents(namesIndex);
            int plt = -1;
            for (int i = 0; i < count && plt < 0; i++)
                if (BinaryPrimitives.ReadUInt32LittleEndian(Section(i)[4..]) == Rela && Named(sectionNames, BinaryPrimitives.ReadUInt32LittleEndian(Section(i)), ".rela.plt\0"u8))
                    plt = i;
            if (plt < 0) return null;
            int symbols = Link(plt);
            var symbolTable = Contents(symbols);
            var symbolNames = Contents(Link(symbols));
            var relocations = Contents(plt);
            byte[] wanted = Encoding.ASCII.GetBytes(symbol + "\0");
            for (int at = 0; at + 24 <= relocations.Length; at += 24)
            {
                ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(relocations[at..]), info = BinaryPrimitives.ReadUInt64LittleEndian(relocations[(at + 8)..]);
                if ((info & 0xFFFFFFFF) != JumpSlot) continue;
                // A symbol: name (4), info, other, section index (4), value (8), size (8).
                var entry = symbolTable.Slice(checked((int)(info >> 32) * 24), 24);
                if (Named(symbolNames, BinaryPrimitives.ReadUInt32LittleEndian(entry), wanted))
                    return (offset, BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]));
            }
            return null;
        }
        finally
        {
            handle.ReleasePointer();
        }
    }

    private static bool IsWritable(nint address)
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            int dash = line.IndexOf('-'), space = line.IndexOf(' ');
            ulong start = Convert.ToUInt64(line[..dash], 16), end = Convert.ToUInt64(line[(dash + 1)..space], 16);
            if ((ulong)address >= start && (ulong)address < end) return line[space + 2] == 'w';
        }
        return false;
    }

    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 0x02, MapAnonymous = 0x20;

    [LibraryImport("libc", EntryPoint = "mmap")]
    private static partial nint MemoryMap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "mprotect")]
    private static partial int MemoryProtect(nint address, nuint length, int protection);
}
