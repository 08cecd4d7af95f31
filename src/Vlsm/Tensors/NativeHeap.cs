using System.Runtime.InteropServices;

namespace Vlsm.Tensors;

/// <summary>
/// Hands memory freed by libtorch back to the operating system. glibc keeps freed blocks in its
/// arenas, so after a one-off pass with other shapes (an epoch's validation, a checkpoint) the
/// resident size stays at that pass's high-water mark although nothing is in use: a training run's
/// RSS then climbs epoch by epoch for a while before it levels off. <c>malloc_trim</c> releases
/// the free pages of every arena; it takes about a millisecond, so it is called once per epoch.
/// </summary>
public static partial class NativeHeap
{
    private static bool unavailable;

    /// <summary>The variable that, set to <c>default</c>, leaves glibc's allocator settings alone.</summary>
    public const string Variable = "VLSM_MALLOC";

    /// <summary>What <see cref="KeepFreedMemory"/> did, for the platform report.</summary>
    public static string Setting { get; private set; } = "glibc defaults";

    /// <summary>
    /// Makes glibc keep the memory libtorch frees for the next allocation instead of returning it to
    /// the kernel at once. By default every block over 128 KB to 32 MB (glibc adapts the threshold) is
    /// a fresh mapping, and the top of the heap is given back whenever 64 MB are free there, so each
    /// training step maps its activations anew and the kernel zeroes them page by page: on this
    /// project's 2-core Zen 5 virtual machines a bf16 training step spent a fifth of its time in page
    /// faults, and elementwise operations ran 2-4x slower and far less evenly than on reused memory
    /// (bench/Vlsm.Bench --child layer_micro). Here no block is mapped on its own (all come from the
    /// heap, which glibc reuses) and the heap is not trimmed at free; the trainer still returns free
    /// pages once per epoch (<see cref="ReturnFreeMemory"/>), so the resident size stays at the
    /// working set's high-water mark. Skipped when the user set glibc's own variables (GLIBC_TUNABLES,
    /// MALLOC_*) or VLSM_MALLOC=default, and where the C library is not glibc.
    /// </summary>
#pragma warning disable CA2255 // a library module initializer on purpose: it must run before libtorch allocates
    [System.Runtime.CompilerServices.ModuleInitializer]
#pragma warning restore CA2255
    internal static void KeepFreedMemory()
    {
        if (!OperatingSystem.IsLinux()) return;
        if (Environment.GetEnvironmentVariable(Variable) == "default")
        {
            Setting = $"glibc defaults ({Variable}=default)";
            return;
        }
        var userSet = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .FirstOrDefault(k => k == "GLIBC_TUNABLES" || k.StartsWith("MALLOC_", StringComparison.Ordinal));
        if (userSet is not null)
        {
            Setting = $"glibc's, as {userSet} sets them";
            return;
        }
        try
        {
            // mallopt returns 1 on success; a refusal leaves that setting at glibc's default.
            bool kept = MallOpt(MmapMax, 0) == 1 & MallOpt(TrimThreshold, int.MaxValue) == 1 & MallOpt(TopPad, 64 << 20) == 1;
            Setting = kept ? "freed memory kept for reuse (no per-block mappings, no trim at free; returned once per epoch and after each large image)" : "glibc defaults (mallopt refused)";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            unavailable = true; // not glibc (musl): its allocator has no such settings
        }
    }

    // glibc's mallopt parameters (malloc.h).
    private const int TrimThreshold = -1, TopPad = -2, MmapMax = -4;

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int parameter, int value);

    /// <summary>Returns free native heap pages to the OS (glibc on Linux; a no-op elsewhere).</summary>
    public static void ReturnFreeMemory()
    {
        if (unavailable || !OperatingSystem.IsLinux()) return;
        try
        {
            MallocTrim(0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            unavailable = true; // a C library without malloc_trim (musl): nothing to release this way
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
