using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Encoders;

/// <summary>
/// Inverted dropout (each element kept with probability 1 − p and scaled by 1 / (1 − p)), as <c>F.dropout</c>, but
/// with the keep mask drawn by a vectorised counter-based generator on the CPU. libtorch draws CPU dropout masks
/// one element at a time from its Mersenne Twister (about 5 ns per element; on non-Intel CPUs it skips its MKL
/// path), which made dropout about 40% of a training forward pass of the default encoder; this draws the same
/// Bernoulli masks at a fraction of a nanosecond per element.
/// </summary>
/// <remarks>
/// Each call takes a 64-bit key from torch's default generator, so <c>torch.manual_seed</c> makes masks reproducible
/// (they differ from <c>F.dropout</c>'s, as any two generators' do). Element i is kept when
/// hash(i, key) ≥ p · 2³², with a two-round 32-bit integer hash; the mask is a bool tensor (what backward keeps, one
/// byte per element, as libtorch's own dropout keeps). Other devices, other dtypes and small tensors use <c>F.dropout</c>.
/// </remarks>
internal static class FastDropout
{
    /// <summary>Below this many elements the native dropout is as fast.</summary>
    private const long MinElements = 4096;

    /// <summary>Mask bytes filled per parallel task (a multiple of the vector loop's 32).</summary>
    private const int ChunkSize = 1 << 20;

    /// <summary>Dropout of <paramref name="input"/> with probability <paramref name="p"/> when <paramref name="training"/>; the input itself otherwise.</summary>
    public static Tensor Apply(Tensor input, double p, bool training)
    {
        if (!training || p <= 0) return input;
        Tensor kept = KeepOrZero(input, p, out double scale);
        return scale == 1 ? kept : kept.mul_(scale);
    }

    /// <summary>
    /// Dropout without the final scaling: each element kept or zeroed, and the factor 1 / (1 − p) the caller must still
    /// apply, so that it can apply it to a smaller tensor (attention scales its [seq, headSize] output, not the [seq, seq]
    /// probabilities). Where the fast path does not apply this is <c>F.dropout</c> itself and <paramref name="scale"/> is 1.
    /// </summary>
    public static Tensor KeepOrZero(Tensor input, double p, out double scale)
    {
        long count = input.numel();
        if (p >= 1 || input.device_type != DeviceType.CPU || input.dtype != ScalarType.Float32 || count < MinElements || count > int.MaxValue)
        {
            scale = 1;
            return F.dropout(input, p, training: true);
        }
        scale = 1.0 / (1.0 - p);
        using var mask = KeepMask(input.shape, p);
        using var zero = zeros([], dtype: input.dtype);
        return where(mask, input, zero);
    }

    /// <summary>A bool tensor of <paramref name="shape"/>: true with probability 1 − <paramref name="p"/>.</summary>
    internal static Tensor KeepMask(long[] shape, double p)
    {
        ulong key = NextKey();
        var mask = empty(shape, dtype: ScalarType.Bool);
        int count = checked((int)mask.numel());
        uint threshold = (uint)Math.Min(uint.MaxValue, Math.Round(p * 4294967296.0));
        byte[] buffer = ArrayPool<byte>.Shared.Rent(count);
        try
        {
            // Element i's bit depends on i and the key alone, so chunks fill in parallel with the same result.
            int chunks = (count + ChunkSize - 1) / ChunkSize;
            if (chunks == 1) Fill(buffer.AsSpan(0, count), key, threshold);
            else Parallel.For(0, chunks, c =>
            {
                int start = c * ChunkSize;
                Fill(buffer.AsSpan(start, Math.Min(ChunkSize, count - start)), key, threshold, (uint)start);
            });
            mask.bytes = buffer.AsSpan(0, count);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return mask;
    }

    /// <summary>64 random bits from torch's default CPU generator (so that <c>manual_seed</c> governs the masks).</summary>
    private static ulong NextKey()
    {
        using var bits = randint(int.MinValue, int.MaxValue, [2], dtype: ScalarType.Int64);
        var pair = bits.data<long>();
        return ((ulong)(uint)pair[0] << 32) | (uint)pair[1];
    }

    /// <summary>destination[i] = hash(first + i, key) ≥ threshold ? 1 : 0: element first + i of the whole mask.</summary>
    internal static void Fill(Span<byte> destination, ulong key, uint threshold, uint first = 0)
    {
        uint keyLow = (uint)key + first, keyHigh = (uint)(key >> 32);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var lowKey = Vector256.Create(keyLow);
            var highKey = Vector256.Create(keyHigh);
            var limit = Vector256.Create(threshold);
            var one = Vector256.Create(1u);
            var step = Vector256.Create(8u);
            var counter = Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7);
            for (; i + 32 <= destination.Length; i += 32)
            {
                var a = Keep(counter, lowKey, highKey, limit, one); counter += step;
                var b = Keep(counter, lowKey, highKey, limit, one); counter += step;
                var c = Keep(counter, lowKey, highKey, limit, one); counter += step;
                var d = Keep(counter, lowKey, highKey, limit, one); counter += step;
                var bytes = Vector256.Narrow(Vector256.Narrow(a, b), Vector256.Narrow(c, d));
                bytes.StoreUnsafe(ref destination[i]);
            }
        }
        for (; i < destination.Length; i++)
            destination[i] = Hash(Hash((uint)i + keyLow) ^ keyHigh) >= threshold ? (byte)1 : (byte)0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Keep(Vector256<uint> counter, Vector256<uint> lowKey, Vector256<uint> highKey, Vector256<uint> limit, Vector256<uint> one)
    {
        var h = Hash(Hash(counter + lowKey) ^ highKey);
        return Vector256.GreaterThanOrEqual(h, limit) & one;
    }

    /// <summary>A 32-bit integer hash with low bias (Wellons' lowbias32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Hash(uint x)
    {
        x ^= x >> 16;
        x *= 0x7feb352d;
        x ^= x >> 15;
        x *= 0x846ca68b;
        x ^= x >> 16;
        return x;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Hash(Vector256<uint> x)
    {
        x ^= Vector256.ShiftRightLogical(x, 16);
        x *= Vector256.Create(0x7feb352du);
        x ^= Vector256.ShiftRightLogical(x, 15);
        x *= Vector256.Create(0x846ca68bu);
        x ^= Vector256.ShiftRightLogical(x, 16);
        return x;
    }
}
