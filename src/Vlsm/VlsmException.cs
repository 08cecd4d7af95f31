namespace Vlsm;

/// <summary>An error the user can act on (bad file, bad option); the CLI prints its message as one line.</summary>
public class VlsmException : Exception
{
    public VlsmException(string message) : base(message) { }

    public VlsmException(string message, Exception inner) : base(message, inner) { }
}
