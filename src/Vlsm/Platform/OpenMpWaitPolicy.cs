using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vlsm.Platform;

/// <summary>
/// Makes libtorch's OpenMP threads sleep, not spin, while they wait, unless the user chose a policy
/// (OMP_WAIT_POLICY or GOMP_SPINCOUNT). libgomp's default spins before sleeping; when another process
/// takes a core, every parallel region then waits for a thread that is not running, and a training
/// step slowed 10x (pretraining the demo's model with one niced busy loop beside it: 64 s an epoch
/// spinning, 13 s sleeping, 6.5 s idle). libgomp reads the variable when it is loaded, with libtorch
/// on the first TorchSharp call, so it is set when this assembly is first used, through the C
/// library (.NET's own environment is not what a native library reads). The platform report lists it.
/// </summary>
internal static partial class OpenMpWaitPolicy
{
    public const string Variable = "OMP_WAIT_POLICY";
    public const string Passive = "PASSIVE";

#pragma warning disable CA2255 // a library module initializer on purpose: it must run before libtorch (and libgomp) load
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Apply()
    {
        if (!OperatingSystem.IsLinux()) return;
        if (Environment.GetEnvironmentVariable(Variable) is not null || Environment.GetEnvironmentVariable("GOMP_SPINCOUNT") is not null) return;
        try
        {
            if (SetEnv(Variable, Passive, 0) != 0) return;
            // .NET keeps its own copy of the environment: update it too, so reports and child processes see the policy.
            Environment.SetEnvironmentVariable(Variable, Passive);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // A C library without setenv: libgomp keeps its default.
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
