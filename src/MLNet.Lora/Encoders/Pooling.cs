using static TorchSharp.torch;

namespace MLNet.Lora.Encoders;

/// <summary>How a sequence's token states become one vector.</summary>
public enum PoolingStrategy
{
    /// <summary>Mean of the last hidden states over real (non-pad) tokens; what sentence-transformers models such as all-MiniLM-L6-v2 were trained with.</summary>
    Mean,

    /// <summary>The last hidden state of <c>[CLS]</c>.</summary>
    Cls,

    /// <summary>
    /// BERT's pooler output (dense + tanh over <c>[CLS]</c>) from the checkpoint's <c>pooler.dense</c>: with the head's
    /// dropout and <c>classifier</c> this is exactly Hugging Face's <c>BertForSequenceClassification</c>, the model PEFT's
    /// sequence-classification adapters are trained on. Needs a checkpoint that carries the pooler (Hugging Face folders
    /// and ONNX exports that include <c>pooler.dense</c>); a model without one is refused rather than silently pooled otherwise.
    /// </summary>
    Pooler,
}

/// <summary>Pools encoder outputs into one vector per sequence.</summary>
internal static class Pooling
{
    /// <summary>Mean of <paramref name="hidden"/> [batch, seq, hidden] over positions where <paramref name="attentionMask"/> [batch, seq] is 1.</summary>
    public static Tensor MeanOverTokens(Tensor hidden, Tensor attentionMask)
    {
        Tensor mask = attentionMask.unsqueeze(-1).to(hidden.dtype);          // [batch, seq, 1]
        Tensor counts = mask.sum(1).clamp_min(1);                            // [batch, 1]
        return (hidden * mask).sum(1) / counts;                              // [batch, hidden]
    }

    /// <summary>Pools <paramref name="output"/> with <paramref name="strategy"/>: [batch, hidden].</summary>
    public static Tensor Pool(BertModelOutput output, Tensor attentionMask, PoolingStrategy strategy) => strategy switch
    {
        PoolingStrategy.Mean => MeanOverTokens(output.LastHiddenState, attentionMask),
        PoolingStrategy.Pooler => output.PooledOutput ?? throw new InvalidOperationException(NoPoolerMessage("The encoder")),
        _ => output.LastHiddenState[.., 0],
    };

    /// <summary>The error for <see cref="PoolingStrategy.Pooler"/> over an encoder without a pooler.</summary>
    internal static string NoPoolerMessage(string encoder) =>
        $"{encoder} has no pooler (its checkpoint carries no pooler.dense weights), so {nameof(PoolingStrategy)}.{nameof(PoolingStrategy.Pooler)}, " +
        "Hugging Face's BertForSequenceClassification head, cannot be reproduced. Use a checkpoint that includes the pooler, or " +
        $"{nameof(PoolingStrategy)}.{nameof(PoolingStrategy.Cls)} or {nameof(PoolingStrategy.Mean)}.";
}
