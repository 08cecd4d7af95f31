namespace Vlsm;

/// <summary>
/// An error caused by the user's input (a file, a value, a model folder). The command line
/// prints only its message, so the message must name what is at fault and how to fix it.
/// </summary>
public class VlsmException : Exception
{
    public VlsmException(string message) : base(message) { }
    public VlsmException(string message, Exception inner) : base(message, inner) { }
}
