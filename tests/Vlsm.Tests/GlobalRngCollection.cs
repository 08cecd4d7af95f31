namespace Vlsm.Tests;

/// <summary>
/// Tests that compare two training runs bit for bit. Training draws dropout masks and adapter
/// initialisations from libtorch's process-wide generator, which tests of other classes reseed
/// and draw from when they run in parallel; this collection runs on its own.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalRngCollection
{
    public const string Name = "global torch RNG";
}
