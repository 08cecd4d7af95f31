namespace Vlsm;

/// <summary>Defaults shared by several commands, so that they agree.</summary>
public static class Defaults
{
    /// <summary>
    /// The seed every command uses unless given one (train, prompts' split, demo): 1, the demo's
    /// seed, whose numbers the README's table shows.
    /// </summary>
    public const int Seed = 1;
}
