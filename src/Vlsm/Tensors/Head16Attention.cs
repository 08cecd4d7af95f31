using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Tensors;

/// <summary>
/// float32 self-attention for heads 16 wide (CLIPSeg's decoder: 64 channels in 4 heads), forward and
/// backward, on AVX-512, where a head's row is one 512-bit vector. libtorch's flash-attention kernel
/// runs such heads through blocks of small matrix products whose bookkeeping costs more than their
/// arithmetic: with the feature cache warm, the decoder's three attentions took about a fifth of a
/// shallow-adapter training step (3.5 ms forward and 7.5 ms backward each at batch 4, 485 tokens).
/// </summary>
/// <remarks>
/// Query rows are taken 16 at a time, one per vector lane, so one key's scores for the tile are one
/// vector: the scores, the softmax and its gradient are lane-wise, and every product is a fused
/// multiply-add with one broadcast operand, with no horizontal sums in the inner loops. The 16 vectors
/// a loop reuses are named locals so they stay in registers (an array would go through memory). The
/// softmax is exact (two passes over the keys, maximum first) in float32, as libtorch computes it.
/// The backward pass recomputes the probabilities from each row's saved log-sum-exp, as flash
/// attention does, so nothing of size tokens² outlives a tile.
/// </remarks>
internal static unsafe class Head16Attention
{
    public const int HeadDim = 16;
    private const int Lanes = 16;

    /// <summary>Keys summed in registers before a sum over keys is added to its running total.</summary>
    private const int Block = 64;

    /// <summary>head_dim^-0.5, exact in binary, so scaling q equals scaling the scores.</summary>
    private const float Scale = 0.25f;

    /// <summary>Whether this kernel computes <see cref="Attention.SelfAttention"/> for these inputs.</summary>
    public static bool Applies(Tensor qkv, long heads, Tensor? mask) =>
        mask is null && Vector512.IsHardwareAccelerated && Avx512F.IsSupported
        && qkv.dtype == ScalarType.Float32 && qkv.device_type == DeviceType.CPU
        && qkv.dim() == 3 && qkv.shape[2] == 3 * heads * HeadDim && qkv.shape[1] > 0
        && qkv.numel() * sizeof(float) <= int.MaxValue;

    /// <summary>
    /// Attention of a packed (B, L, 3·heads·16) projection: (B, L, heads·16). With <paramref name="logSumExp"/>
    /// (B·heads·L floats) it also keeps each row's log-sum-exp of scores, which <see cref="Backward"/> reads.
    /// </summary>
    public static Tensor Forward(Tensor qkv, long heads, float[]? logSumExp = null)
    {
        using var packed = qkv.contiguous();
        int b = (int)packed.shape[0], l = (int)packed.shape[1], h = (int)heads;
        var output = empty(b, l, h * HeadDim, ScalarType.Float32);
        fixed (byte* src = packed.bytes, dst = output.bytes)
        fixed (float* lsePtr = logSumExp)
        {
            var x = new Layout((float*)src, l, h);
            nint outAddress = (nint)dst, lseAddress = (nint)lsePtr;
            ForWorkers(b * h, l, 3, (unit, scratch) =>
            {
                int batch = unit / h, head = unit % h;
                float* scores = (float*)scratch, k = scores + (long)l * Lanes, v = k + (long)l * HeadDim;
                Compact(x.K(batch, head), x.Stride, l, k);
                Compact(x.V(batch, head), x.Stride, l, v);
                for (int r0 = 0; r0 < l; r0 += Lanes)
                    ForwardTile(x.Q(batch, head), x.Stride, k, v, l, new Rows(r0, Math.Min(Lanes, l - r0), h * HeadDim),
                        (float*)outAddress + ((long)batch * l * h + head) * HeadDim, lseAddress == 0 ? null : (float*)lseAddress + (long)unit * l, scores);
            });
        }
        return output;
    }

    /// <summary>The gradient of the packed projection, from the forward pass's input and results and the output's gradient.</summary>
    public static Tensor Backward(Tensor qkv, Tensor output, float[] logSumExp, Tensor gradOutput, long heads)
    {
        using var packed = qkv.contiguous();
        using var o = output.contiguous();
        using var dO = gradOutput.contiguous();
        int b = (int)packed.shape[0], l = (int)packed.shape[1], h = (int)heads;
        var dqkv = empty(packed.shape, ScalarType.Float32);
        fixed (byte* src = packed.bytes, oPtr = o.bytes, dOPtr = dO.bytes, dst = dqkv.bytes)
        fixed (float* lsePtr = logSumExp)
        {
            var x = new Layout((float*)src, l, h);
            var dx = new Layout((float*)dst, l, h);
            nint oAddress = (nint)oPtr, dOAddress = (nint)dOPtr, lseAddress = (nint)lsePtr;
            // A (sample, head) per work item: its keys' gradients are sums over all its query tiles.
            ForWorkers(b * h, l, 6, (unit, scratch) =>
            {
                int batch = unit / h, head = unit % h;
                long merged = ((long)batch * l * h + head) * HeadDim, size = (long)l * Lanes;
                var buffers = new Buffers((float*)scratch, size);
                Compact(x.K(batch, head), x.Stride, l, buffers.K);
                Compact(x.V(batch, head), x.Stride, l, buffers.V);
                new Span<float>(buffers.DK, (int)(2 * size)).Clear(); // DK and DV
                for (int r0 = 0; r0 < l; r0 += Lanes)
                    BackwardTile(x.Q(batch, head), dx.Q(batch, head), x.Stride, l, new Rows(r0, Math.Min(Lanes, l - r0), h * HeadDim),
                        (float*)oAddress + merged, (float*)dOAddress + merged, (float*)lseAddress + (long)unit * l, buffers);
                Spread(buffers.DK, l, dx.K(batch, head), x.Stride);
                Spread(buffers.DV, l, dx.V(batch, head), x.Stride);
            });
        }
        return dqkv;
    }

    /// <summary>Where q, k and v of a (sample, head) live in a packed (B, L, 3, heads, 16) buffer.</summary>
    private readonly struct Layout(float* data, int tokens, int heads)
    {
        public readonly int Stride = 3 * heads * HeadDim;
        public float* Q(int batch, int head) => data + (long)batch * tokens * Stride + head * HeadDim;
        public float* K(int batch, int head) => Q(batch, head) + heads * HeadDim;
        public float* V(int batch, int head) => Q(batch, head) + 2 * heads * HeadDim;
    }

    /// <summary>
    /// A (sample, head)'s keys and values copied to (tokens, 16) rows one after another, and its
    /// keys' and values' gradients summed there: in the packed layout a head's rows are 768 bytes
    /// apart, so the 485 rows a loop walks fell into a sixteenth of the L1 cache's sets and were read
    /// from L2; the dk and dv loops ran 4 to 5 times slower than their arithmetic.
    /// </summary>
    private readonly struct Buffers(float* scratch, long size)
    {
        public readonly float* Probabilities = scratch, ScoreGradients = scratch + size;
        public readonly float* K = scratch + 2 * size, V = scratch + 3 * size, DK = scratch + 4 * size, DV = scratch + 5 * size;
    }

    private static void Compact(float* rows, int stride, int count, float* into)
    {
        for (int j = 0; j < count; j++) Vector512.Load(rows + (long)j * stride).Store(into + j * HeadDim);
    }

    private static void Spread(float* rows, int count, float* into, int stride)
    {
        for (int j = 0; j < count; j++) Vector512.Load(rows + j * HeadDim).Store(into + (long)j * stride);
    }

    /// <summary>A tile's query rows (First..First+Count-1) and the row stride of the heads-merged (B, L, heads·16) tensors.</summary>
    private readonly record struct Rows(int First, int Count, int MergedStride);

    /// <summary>
    /// Runs <paramref name="body"/> for items 0..count-1 on up to libtorch's thread count of workers in
    /// contiguous ranges (neighbouring tiles share a head's keys in the caches), each worker with its
    /// own scratch of <paramref name="buffers"/> (tokens x 16) float buffers.
    /// </summary>
    private static void ForWorkers(int count, int tokens, int buffers, Action<int, nint> body)
    {
        int workers = Math.Max(1, Math.Min(count, torch.get_num_threads()));
        nuint bytes = (nuint)((long)buffers * tokens * Lanes * sizeof(float));
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, worker =>
        {
            void* scratch = NativeMemory.AlignedAlloc(bytes, 64);
            try
            {
                int start = (int)((long)count * worker / workers), end = (int)((long)count * (worker + 1) / workers);
                for (int item = start; item < end; item++) body(item, (nint)scratch);
            }
            finally
            {
                NativeMemory.AlignedFree(scratch);
            }
        });
    }

    /// <summary>
    /// e^x for x in float32's normal range, within 2 ulp (Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, a
    /// degree-6 polynomial for e^r, times 2^n); below -87 it gives about 1e-38 instead of 0.
    /// Vector512.Exp is a call that widens to double: 4x slower here, and the call spills every
    /// accumulator of the loop around it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Exp(Vector512<float> x)
    {
        x = Avx512F.Min(Avx512F.Max(x, Vector512.Create(-87f)), Vector512.Create(88f));
        var n = Avx512F.RoundScale(x * Vector512.Create(1.44269504088896341f), 0); // nearest
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(1.9875691500e-4f), r, Vector512.Create(1.3981999507e-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073e-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894e-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459e-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201e-1f));
        var e = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        return Avx512F.Scale(e, n);
    }

    /// <summary>A tile's rows of a (·, 16) matrix with row stride <paramref name="stride"/>, times <paramref name="scale"/>, as 16 vectors: row-major (vector r = row r) or transposed (vector d = channel d, lane r = row r); missing rows are 0.</summary>
    private static void Gather(float* first, long stride, int rows, float scale, float* into, bool transposed)
    {
        new Span<float>(into, Lanes * HeadDim).Clear();
        for (int r = 0; r < rows; r++)
            for (int d = 0; d < HeadDim; d++)
                into[transposed ? d * Lanes + r : r * HeadDim + d] = first[r * stride + d] * scale;
    }

    /// <summary>
    /// into[j] = Σ_d columns[d] · rows[j][d] for each of <paramref name="count"/> rows (16 floats each):
    /// columns are 16 vectors, so into[j] is a vector too; with <paramref name="add"/> it is added to
    /// what into[j] held. Scores (columns: the tile's q transposed, rows: keys), dO·vᵀ, and the tile's
    /// terms of dk and dv (columns: its q or dO rows, rows: score gradients or probabilities).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Products(float* columns, float* rows, int count, float* into, bool add)
    {
        var c0 = Vector512.Load(columns + 0); var c1 = Vector512.Load(columns + 16); var c2 = Vector512.Load(columns + 32); var c3 = Vector512.Load(columns + 48);
        var c4 = Vector512.Load(columns + 64); var c5 = Vector512.Load(columns + 80); var c6 = Vector512.Load(columns + 96); var c7 = Vector512.Load(columns + 112);
        var c8 = Vector512.Load(columns + 128); var c9 = Vector512.Load(columns + 144); var c10 = Vector512.Load(columns + 160); var c11 = Vector512.Load(columns + 176);
        var c12 = Vector512.Load(columns + 192); var c13 = Vector512.Load(columns + 208); var c14 = Vector512.Load(columns + 224); var c15 = Vector512.Load(columns + 240);
        for (int j = 0; j < count; j++)
        {
            float* row = rows + j * HeadDim;
            var s0 = c0 * Vector512.Create(row[0]); var s1 = c1 * Vector512.Create(row[1]); var s2 = c2 * Vector512.Create(row[2]); var s3 = c3 * Vector512.Create(row[3]);
            s0 = Vector512.FusedMultiplyAdd(c4, Vector512.Create(row[4]), s0); s1 = Vector512.FusedMultiplyAdd(c5, Vector512.Create(row[5]), s1); s2 = Vector512.FusedMultiplyAdd(c6, Vector512.Create(row[6]), s2); s3 = Vector512.FusedMultiplyAdd(c7, Vector512.Create(row[7]), s3);
            s0 = Vector512.FusedMultiplyAdd(c8, Vector512.Create(row[8]), s0); s1 = Vector512.FusedMultiplyAdd(c9, Vector512.Create(row[9]), s1); s2 = Vector512.FusedMultiplyAdd(c10, Vector512.Create(row[10]), s2); s3 = Vector512.FusedMultiplyAdd(c11, Vector512.Create(row[11]), s3);
            s0 = Vector512.FusedMultiplyAdd(c12, Vector512.Create(row[12]), s0); s1 = Vector512.FusedMultiplyAdd(c13, Vector512.Create(row[13]), s1); s2 = Vector512.FusedMultiplyAdd(c14, Vector512.Create(row[14]), s2); s3 = Vector512.FusedMultiplyAdd(c15, Vector512.Create(row[15]), s3);
            var s = (s0 + s1) + (s2 + s3);
            if (add) s += Vector512.Load(into + j * Lanes);
            s.Store(into + j * Lanes);
        }
    }

    /// <summary>
    /// into[d] += Σ_j weights[j] · rows[j][d] (weights[j] and into[d] vectors, lane r: row r), summed in
    /// registers per block of rows and then into <paramref name="into"/>, which keeps float32's rounding
    /// near that of libtorch's blocked sums. Probabilities times values, score gradients times keys.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedSums(float* weights, float* rows, int count, float* into)
    {
        for (int j0 = 0; j0 < count; j0 += Block)
        {
            var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
            var a4 = Vector512<float>.Zero; var a5 = Vector512<float>.Zero; var a6 = Vector512<float>.Zero; var a7 = Vector512<float>.Zero;
            var a8 = Vector512<float>.Zero; var a9 = Vector512<float>.Zero; var a10 = Vector512<float>.Zero; var a11 = Vector512<float>.Zero;
            var a12 = Vector512<float>.Zero; var a13 = Vector512<float>.Zero; var a14 = Vector512<float>.Zero; var a15 = Vector512<float>.Zero;
            for (int j = j0, end = Math.Min(count, j0 + Block); j < end; j++)
            {
                var w = Vector512.Load(weights + j * Lanes);
                float* row = rows + j * HeadDim;
                a0 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[0]), a0); a1 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[1]), a1); a2 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[2]), a2); a3 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[3]), a3);
                a4 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[4]), a4); a5 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[5]), a5); a6 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[6]), a6); a7 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[7]), a7);
                a8 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[8]), a8); a9 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[9]), a9); a10 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[10]), a10); a11 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[11]), a11);
                a12 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[12]), a12); a13 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[13]), a13); a14 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[14]), a14); a15 = Vector512.FusedMultiplyAdd(w, Vector512.Create(row[15]), a15);
            }
            (a0 + Vector512.Load(into + 0)).Store(into + 0); (a1 + Vector512.Load(into + 16)).Store(into + 16);
            (a2 + Vector512.Load(into + 32)).Store(into + 32); (a3 + Vector512.Load(into + 48)).Store(into + 48);
            (a4 + Vector512.Load(into + 64)).Store(into + 64); (a5 + Vector512.Load(into + 80)).Store(into + 80);
            (a6 + Vector512.Load(into + 96)).Store(into + 96); (a7 + Vector512.Load(into + 112)).Store(into + 112);
            (a8 + Vector512.Load(into + 128)).Store(into + 128); (a9 + Vector512.Load(into + 144)).Store(into + 144);
            (a10 + Vector512.Load(into + 160)).Store(into + 160); (a11 + Vector512.Load(into + 176)).Store(into + 176);
            (a12 + Vector512.Load(into + 192)).Store(into + 192); (a13 + Vector512.Load(into + 208)).Store(into + 208);
            (a14 + Vector512.Load(into + 224)).Store(into + 224); (a15 + Vector512.Load(into + 240)).Store(into + 240);
        }
    }

    private static void ForwardTile(float* q, int qStride, float* k, float* v, int tokens, Rows rows, float* output, float* lse, float* scores)
    {
        float* t = stackalloc float[Lanes * HeadDim];
        Gather(q + (long)rows.First * qStride, qStride, rows.Count, Scale, t, transposed: true);
        Products(t, k, tokens, scores, add: false);
        var max = Vector512.Create(float.NegativeInfinity);
        for (int j = 0; j < tokens; j++) max = Avx512F.Max(max, Vector512.Load(scores + j * Lanes));
        // The probabilities, in place, and their sum.
        var sum = Vector512<float>.Zero;
        for (int j0 = 0; j0 < tokens; j0 += Block)
        {
            var blockSum = Vector512<float>.Zero;
            for (int j = j0, end = Math.Min(tokens, j0 + Block); j < end; j++)
            {
                var p = Exp(Vector512.Load(scores + j * Lanes) - max);
                p.Store(scores + j * Lanes);
                blockSum += p;
            }
            sum += blockSum;
        }
        new Span<float>(t, Lanes * HeadDim).Clear();
        WeightedSums(scores, v, tokens, t);
        var inverse = Vector512<float>.One / sum;
        for (int r = 0; r < rows.Count; r++)
        {
            float* row = output + (long)(rows.First + r) * rows.MergedStride;
            for (int d = 0; d < HeadDim; d++) row[d] = t[d * Lanes + r] * inverse[r];
            if (lse != null) lse[rows.First + r] = max[r] + MathF.Log(sum[r]);
        }
    }

    /// <summary>
    /// One tile's share of the gradients: its rows of dq, and its terms of every key's dk and dv
    /// (added to what earlier tiles of the same head left there).
    /// </summary>
    private static void BackwardTile(float* qHead, float* dqHead, int qStride, int tokens, Rows rows, float* output, float* dOutput, float* lse, in Buffers buffers)
    {
        float* probabilities = buffers.Probabilities, scoreGradients = buffers.ScoreGradients; // (tokens, 16) each, lane r: row r
        float* qRows = stackalloc float[Lanes * HeadDim];
        float* t = stackalloc float[Lanes * HeadDim];
        float* dORows = stackalloc float[Lanes * HeadDim];
        float* rowLse = stackalloc float[Lanes];
        float* rowD = stackalloc float[Lanes];
        float* q = qHead + (long)rows.First * qStride;
        float* dOFirst = dOutput + (long)rows.First * rows.MergedStride, oFirst = output + (long)rows.First * rows.MergedStride;
        Gather(q, qStride, rows.Count, Scale, qRows, transposed: false);
        Gather(dOFirst, rows.MergedStride, rows.Count, 1, dORows, transposed: false);
        for (int r = 0; r < Lanes; r++)
        {
            // A missing row's probabilities are exp(-inf) = 0, so it adds nothing to dk or dv.
            rowLse[r] = r < rows.Count ? lse[rows.First + r] : float.PositiveInfinity;
            float dot = 0;
            if (r < rows.Count)
                for (int d = 0; d < HeadDim; d++) dot += dOFirst[(long)r * rows.MergedStride + d] * oFirst[(long)r * rows.MergedStride + d];
            rowD[r] = dot; // rowsum(dP ⊙ P) = dO · O
        }
        // The probabilities, again.
        Gather(q, qStride, rows.Count, Scale, t, transposed: true);
        Products(t, buffers.K, tokens, probabilities, add: false);
        var lseV = Vector512.Load(rowLse);
        for (int j = 0; j < tokens; j++) Exp(Vector512.Load(probabilities + j * Lanes) - lseV).Store(probabilities + j * Lanes);
        // The scores' gradients: dS = P ⊙ (dO·vᵀ − D).
        Gather(dOFirst, rows.MergedStride, rows.Count, 1, t, transposed: true);
        Products(t, buffers.V, tokens, scoreGradients, add: false);
        var dV = Vector512.Load(rowD);
        for (int j = 0; j < tokens; j++)
            (Vector512.Load(probabilities + j * Lanes) * (Vector512.Load(scoreGradients + j * Lanes) - dV)).Store(scoreGradients + j * Lanes);
        // dq = scale · dS·k, transposed (vector d: channel d of every row).
        new Span<float>(t, Lanes * HeadDim).Clear();
        WeightedSums(scoreGradients, buffers.K, tokens, t);
        float* dq = dqHead + (long)rows.First * qStride;
        for (int r = 0; r < rows.Count; r++)
            for (int d = 0; d < HeadDim; d++) dq[(long)r * qStride + d] = t[d * Lanes + r] * Scale;
        // dk += dSᵀ·(scale·q) and dv += Pᵀ·dO: key j gets the tile's rows weighted by its score gradients and probabilities.
        Products(qRows, scoreGradients, tokens, buffers.DK, add: true);
        Products(dORows, probabilities, tokens, buffers.DV, add: true);
    }
}
