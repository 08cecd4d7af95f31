namespace Vlsm.Models;

/// <summary>
/// A module that keeps tensors derived from its weights (stacked or resized copies). They are
/// rebuilt after <see cref="ClearCache"/>, which <see cref="StateDictLoader"/> calls after loading
/// weights and models call after changing dtypes.
/// </summary>
public interface IDerivedTensorCache
{
    /// <summary>Drops the derived tensors; call after the weights' values or dtype change.</summary>
    void ClearCache();
}
