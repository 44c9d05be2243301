using System.Runtime.InteropServices;

namespace MLNet.Lora.Training;

/// <summary>
/// Batches whose items have similar lengths, so that padding to the longest item of a batch wastes little:
/// shuffle, cut into windows of many batches, sort each window by length, cut into batches, shuffle the batches.
/// </summary>
internal static class LengthGroupedBatches
{
    /// <summary>How many batches one sorting window spans; wider windows pad less but mix less.</summary>
    public const int WindowBatches = 50;

    /// <summary>Index batches over items of the given <paramref name="lengths"/>; every index appears once.</summary>
    public static List<int[]> Create(IReadOnlyList<int> lengths, int batchSize, Random random, bool groupByLength = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        int[] order = Enumerable.Range(0, lengths.Count).ToArray();
        random.Shuffle(order);

        var batches = new List<int[]>();
        int window = groupByLength ? batchSize * WindowBatches : batchSize;
        for (int start = 0; start < order.Length; start += window)
        {
            var slice = order.AsSpan(start, Math.Min(window, order.Length - start)).ToArray();
            if (groupByLength) Array.Sort(slice, (a, b) => lengths[b].CompareTo(lengths[a]));
            for (int b = 0; b < slice.Length; b += batchSize)
                batches.Add(slice.AsSpan(b, Math.Min(batchSize, slice.Length - b)).ToArray());
        }
        random.Shuffle(CollectionsMarshal.AsSpan(batches));
        return batches;
    }
}
