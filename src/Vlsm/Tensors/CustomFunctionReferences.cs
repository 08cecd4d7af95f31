using static TorchSharp.torch;

namespace Vlsm.Tensors;

/// <summary>
/// Releases the managed references TorchSharp's custom autograd functions leave behind, which would
/// otherwise keep whole activations alive until the training step's dispose scope ends (a bf16 step
/// of dense adapters would hold every layer's gradients at once): the forward pass's own output
/// object (libtorch's wrapped output is what the caller uses), and the gradients a backward pass
/// returns (libtorch has taken its own references by the time the next backward call starts).
/// One instance per function type; each thread keeps its own lists.
/// </summary>
internal sealed class CustomFunctionReferences
{
    [ThreadStatic] private static Dictionary<CustomFunctionReferences, List<Tensor>>? forwardOutputs;
    [ThreadStatic] private static Dictionary<CustomFunctionReferences, List<Tensor>>? returnedGradients;

    private static List<Tensor> Of(ref Dictionary<CustomFunctionReferences, List<Tensor>>? table, CustomFunctionReferences key)
    {
        table ??= new();
        if (!table.TryGetValue(key, out var list)) table[key] = list = [];
        return list;
    }

    /// <summary>In forward: remembers the output object to release after apply returns.</summary>
    public Tensor Output(Tensor output)
    {
        Of(ref forwardOutputs, this).Add(output);
        return output;
    }

    /// <summary>After apply: releases the forward pass's output objects.</summary>
    public void ReleaseOutputs() => Release(Of(ref forwardOutputs, this));

    /// <summary>
    /// A backward pass: <paramref name="gradients"/> computed from the saved variables, which are then
    /// freed, as is <paramref name="gradOutput"/> once they are computed (the pass owns both wrappers);
    /// the gradients are remembered for release as <see cref="Returned"/> says.
    /// </summary>
    public List<Tensor> Backward(autograd.AutogradContext ctx, Tensor gradOutput, Func<IReadOnlyList<Tensor>, List<Tensor>> gradients)
    {
        var saved = ctx.get_saved_variables();
        try
        {
            var result = gradients(saved);
            gradOutput.Dispose();
            return Returned(result);
        }
        finally
        {
            foreach (var t in saved) t?.Dispose();
        }
    }

    /// <summary>In backward: releases the previous call's gradients and remembers these.</summary>
    public List<Tensor> Returned(List<Tensor> gradients)
    {
        var list = Of(ref returnedGradients, this);
        Release(list);
        list.AddRange(gradients.Where(g => g is not null));
        return gradients;
    }

    private static void Release(List<Tensor> list)
    {
        foreach (var t in list) t.Dispose();
        list.Clear();
    }
}
