namespace Vlsm;

/// <summary>Runs <paramref name="undo"/> when disposed: the result of a "do this until disposed" override.</summary>
internal sealed class OnDispose(Action undo) : IDisposable
{
    public void Dispose() => undo();
}
