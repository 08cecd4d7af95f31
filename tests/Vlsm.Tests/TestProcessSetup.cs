using System.Runtime.CompilerServices;

namespace Vlsm.Tests;

internal static class TestProcessSetup
{
    /// <summary>
    /// Runs vlsm's module initializers before any test touches libtorch, as the CLI and the server
    /// do by using vlsm first: MKL's float32 kernel choice (Vlsm.Platform.MklFloatKernels) must be
    /// arranged before the first float32 product, so every test runs the kernels users get.
    /// </summary>
#pragma warning disable CA2255 // a test-assembly module initializer on purpose: it must run before the first test
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void LoadVlsmFirst() => RuntimeHelpers.RunModuleConstructor(typeof(Vlsm.Platform.MklFloatKernels).Module.ModuleHandle);
}
