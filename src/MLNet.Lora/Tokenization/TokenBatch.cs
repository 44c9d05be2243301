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
        var padded = PaddedIds.Pad(items, padTokenId, padToLength);
        long[] shape = [padded.Batch, padded.Sequence];
        return new TokenBatch(
            tensor(padded.InputIds, shape, device: device),
            tensor(padded.AttentionMask, shape, device: device),
            tensor(padded.TokenTypeIds, shape, device: device));
    }
}
