namespace Vlsm;

/// <summary>
/// An error the user can act on: bad input files, bad configuration, missing data.
/// The CLI prints only <see cref="Exception.Message"/>, so the message names the file or
/// setting, says what is wrong and what would fix it.
/// </summary>
public class VlsmException : Exception
{
    public VlsmException(string message) : base(message) { }

    public VlsmException(string message, Exception innerException) : base(message, innerException) { }
}
