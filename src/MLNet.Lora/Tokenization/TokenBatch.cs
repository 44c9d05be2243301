using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tokenization;

/// <summary>
/// A padded batch of encoded texts, padded to its longest item (not to the maximum length).
/// The tensors live in the dispose scope that was current when the batch was made.
/// </summary>
/// <param name="InputIds">[batch, seq] int64, padding id where <paramref name="AttentionMask"/> is 0.</param>
/// <param name="AttentionMask">[batch, seq] int64: 1 for real tokens, 0 for padding.</param>
/// <param name="TokenTypeIds">[batch, seq] int64 segment ids.</param>
public sealed record TokenBatch(Tensor InputIds, Tensor AttentionMask, Tensor TokenTypeIds)
{
    /// <summary>Number of items.</summary>
    public long Count => InputIds.shape[0];

    /// <summary>Pads <paramref name="items"/> to the longest of them and moves the batch to <paramref name="device"/>.</summary>
    public static TokenBatch Collate(IReadOnlyList<EncodedText> items, int padTokenId, Device? device = null) =>
        Collate(items, padTokenId, device, padToLength: null);

    /// <summary>As <see cref="Collate(IReadOnlyList{EncodedText}, int, Device?)"/>, but padded to at least <paramref name="padToLength"/> tokens when given.</summary>
    internal static TokenBatch Collate(IReadOnlyList<EncodedText> items, int padTokenId, Device? device, int? padToLength)
    {
        if (items.Count == 0) throw new ArgumentException("A batch needs at least one item.", nameof(items));
        int batch = items.Count;
        int seq = Math.Max(items.Max(i => i.Length), padToLength ?? 0);
        var ids = new long[batch * seq];
        var mask = new long[batch * seq];
        var types = new long[batch * seq];
        Array.Fill(ids, padTokenId);
        for (int b = 0; b < batch; b++)
        {
            var item = items[b];
            int row = b * seq;
            for (int t = 0; t < item.Length; t++)
            {
                ids[row + t] = item.InputIds[t];
                types[row + t] = item.TokenTypeIds[t];
                mask[row + t] = 1;
            }
        }
        long[] shape = [batch, seq];
        return new TokenBatch(
            tensor(ids, shape, device: device),
            tensor(mask, shape, device: device),
            tensor(types, shape, device: device));
    }
}
