using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Vlsm.Tensors.KeptScalars;

namespace Vlsm.Training;

/// <summary>
/// AdamW with PyTorch's update rule (decoupled weight decay, bias-corrected moments). Written
/// here rather than using TorchSharp's so its state is plain tensors we can checkpoint with the
/// run and restore bit for bit on resume. Moments are float32 whatever the parameter dtype.
/// Float32 parameters are updated in one pass over parameter, gradient and moments
/// (<see cref="FusedUpdate"/>) instead of eight tensor operations, each a pass over memory: in full
/// fine-tuning the optimizer was a fifth of the step.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly IReadOnlyList<(string Name, Parameter Parameter)> parameters;
    private readonly Dictionary<string, (Tensor ExpAvg, Tensor ExpAvgSq)> state = new();

    public AdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, double lr, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 1e-3)
    {
        this.parameters = parameters.ToList();
        LearningRate = lr;
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
    }

    public double LearningRate { get; set; }
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    public long Step { get; private set; }

    public IEnumerable<Parameter> Parameters => parameters.Select(p => p.Parameter);

    public void ZeroGrad()
    {
        foreach (var (_, p) in parameters)
        {
            if (p.grad is { } g)
            {
                g.Dispose();
                p.grad = null;
            }
        }
    }

    /// <summary>One update of every parameter that has a gradient.</summary>
    public void StepOnce()
    {
        Step++;
        double bias1 = 1 - Math.Pow(Beta1, Step);
        double bias2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, Step));
        double stepSize = LearningRate / bias1;
        using var _ = no_grad();
        foreach (var (name, p) in parameters)
        {
            if (p.grad is not { } grad) continue;
            using var scope = NewDisposeScope();
            if (!state.TryGetValue(name, out var s))
            {
                s = (zeros_like(p, dtype: ScalarType.Float32).DetachFromDisposeScope(), zeros_like(p, dtype: ScalarType.Float32).DetachFromDisposeScope());
                state[name] = s;
            }
            if (FusedUpdate.Applies(p, grad))
            {
                FusedUpdate.Run(p, grad, s.ExpAvg, s.ExpAvgSq, new FusedUpdate.Factors(
                    Decay: (float)(1 - LearningRate * WeightDecay), MeanWeight: (float)(1 - Beta1), Beta2: (float)Beta2,
                    OneMinusBeta2: (float)(1 - Beta2), Bias2Sqrt: (float)bias2Sqrt, Eps: (float)Eps, MinusStepSize: (float)(-stepSize)));
                continue;
            }
            var g = grad.to(ScalarType.Float32);
            var w = p.to(ScalarType.Float32);
            Times_(w, 1 - LearningRate * WeightDecay);
            s.ExpAvg.lerp_(g, 1 - Beta1); // a 0-dim tensor weight, owned by the dispose scope
            using (var value = (1 - Beta2).ToScalar()) Times_(s.ExpAvgSq, Beta2).addcmul_(g, g, value);
            var denom = PlusScalar_(DividedBy_(s.ExpAvgSq.sqrt(), bias2Sqrt), Eps);
            using (var value = (-stepSize).ToScalar()) w.addcdiv_(s.ExpAvg, denom, value);
            // For float32 parameters w aliases p and the update is already in place.
            if (p.dtype != ScalarType.Float32) p.copy_(w);
        }
    }

    /// <summary>Moments keyed <c>NAME.exp_avg</c> / <c>NAME.exp_avg_sq</c>, for checkpoints.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> StateTensors() =>
        state.OrderBy(kv => kv.Key, StringComparer.Ordinal).SelectMany(kv => new[]
        {
            new KeyValuePair<string, Tensor>(kv.Key + ".exp_avg", kv.Value.ExpAvg),
            new KeyValuePair<string, Tensor>(kv.Key + ".exp_avg_sq", kv.Value.ExpAvgSq),
        });

    /// <summary>
    /// Restores moments saved by <see cref="StateTensors"/>. A parameter without saved moments had no
    /// gradient yet (e.g. logit_scale in full mode never reaches the loss), just as PyTorch keeps no
    /// state for it; saved moments for a name this optimizer does not know mean another model.
    /// </summary>
    public void Restore(long step, IReadOnlyDictionary<string, Tensor> tensors)
    {
        DisposeState();
        Step = step;
        var known = parameters.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var key in tensors.Keys)
        {
            string owner = key.EndsWith(".exp_avg_sq", StringComparison.Ordinal) ? key[..^".exp_avg_sq".Length]
                : key.EndsWith(".exp_avg", StringComparison.Ordinal) ? key[..^".exp_avg".Length] : key;
            if (!known.Contains(owner))
                throw new VlsmException($"optimizer state has moments for \"{owner}\", which this model does not train; the run's checkpoint does not match this model.");
        }
        foreach (var (name, p) in parameters)
        {
            bool hasMean = tensors.TryGetValue(name + ".exp_avg", out var m), hasVariance = tensors.TryGetValue(name + ".exp_avg_sq", out var v);
            if (hasMean != hasVariance)
                throw new VlsmException($"optimizer state for \"{name}\" has only one of exp_avg and exp_avg_sq; the checkpoint is damaged.");
            if (!hasMean) continue;
            if (!m!.shape.SequenceEqual(p.shape))
                throw new VlsmException($"optimizer state for \"{name}\" has shape [{string.Join(", ", m.shape)}], the parameter [{string.Join(", ", p.shape)}].");
            state[name] = (m.to(ScalarType.Float32).clone(), v!.to(ScalarType.Float32).clone());
        }
    }

    private void DisposeState()
    {
        foreach (var (m, v) in state.Values)
        {
            m.Dispose();
            v.Dispose();
        }
        state.Clear();
    }

    public void Dispose() => DisposeState();
}

/// <summary>
/// AdamW's update for one float32 parameter in a single pass, element by element, in the order of
/// the tensor operations it replaces (decay; the mean's lerp as a fused multiply-add; the variance's
/// multiply-add; the bias-corrected denominator; the step), in float. Elementwise, so the result does
/// not depend on how the work is split between threads.
/// </summary>
internal static class FusedUpdate
{
    public readonly record struct Factors(float Decay, float MeanWeight, float Beta2, float OneMinusBeta2, float Bias2Sqrt, float Eps, float MinusStepSize);

    /// <summary>Elements per parallel chunk: large enough that scheduling is noise, small enough to share a big tensor between cores.</summary>
    private const int Chunk = 1 << 16;

    public static bool Applies(Tensor parameter, Tensor grad) =>
        parameter.dtype == ScalarType.Float32 && grad.dtype == ScalarType.Float32
        && parameter.device_type == DeviceType.CPU && grad.device_type == DeviceType.CPU
        && parameter.is_contiguous() && grad.is_contiguous()
        && parameter.numel() == grad.numel() && parameter.numel() * sizeof(float) <= int.MaxValue;

    public static unsafe void Run(Tensor parameter, Tensor grad, Tensor mean, Tensor variance, Factors f)
    {
        long n = parameter.numel();
        if (n == 0) return;
        fixed (byte* w = parameter.bytes, g = grad.bytes, m = mean.bytes, v = variance.bytes)
        {
            nint pw = (nint)w, pg = (nint)g, pm = (nint)m, pv = (nint)v;
            long chunks = (n + Chunk - 1) / Chunk;
            if (chunks == 1)
            {
                Update((float*)pw, (float*)pg, (float*)pm, (float*)pv, (int)n, f);
                return;
            }
            Parallel.For(0L, chunks, c =>
            {
                long start = c * Chunk;
                int count = (int)Math.Min(Chunk, n - start);
                Update((float*)pw + start, (float*)pg + start, (float*)pm + start, (float*)pv + start, count, f);
            });
        }
    }

    private static unsafe void Update(float* w, float* g, float* m, float* v, int n, Factors f)
    {
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            int width = System.Numerics.Vector<float>.Count;
            var decay = new System.Numerics.Vector<float>(f.Decay);
            var meanWeight = new System.Numerics.Vector<float>(f.MeanWeight);
            var beta2 = new System.Numerics.Vector<float>(f.Beta2);
            var oneMinusBeta2 = new System.Numerics.Vector<float>(f.OneMinusBeta2);
            var bias2Sqrt = new System.Numerics.Vector<float>(f.Bias2Sqrt);
            var eps = new System.Numerics.Vector<float>(f.Eps);
            var minusStep = new System.Numerics.Vector<float>(f.MinusStepSize);
            for (; i <= n - width; i += width)
            {
                var gi = System.Numerics.Vector.Load(g + i);
                var wi = System.Numerics.Vector.Load(w + i) * decay;
                var mi = System.Numerics.Vector.Load(m + i);
                mi = System.Numerics.Vector.FusedMultiplyAdd(meanWeight, gi - mi, mi);
                var vi = System.Numerics.Vector.Load(v + i) * beta2 + oneMinusBeta2 * gi * gi;
                var denom = System.Numerics.Vector.SquareRoot(vi) / bias2Sqrt + eps;
                wi += minusStep * mi / denom;
                System.Numerics.Vector.Store(mi, m + i);
                System.Numerics.Vector.Store(vi, v + i);
                System.Numerics.Vector.Store(wi, w + i);
            }
        }
        for (; i < n; i++)
        {
            float gi = g[i];
            float wi = w[i] * f.Decay;
            float mi = MathF.FusedMultiplyAdd(f.MeanWeight, gi - m[i], m[i]);
            float vi = v[i] * f.Beta2 + f.OneMinusBeta2 * gi * gi;
            float denom = MathF.Sqrt(vi) / f.Bias2Sqrt + f.Eps;
            m[i] = mi;
            v[i] = vi;
            w[i] = wi + f.MinusStepSize * mi / denom;
        }
    }
}
