using System.Text.Json;
using System.Text.Json.Serialization;

namespace MLNet.Lora.Encoders;

/// <summary>
/// Shape and hyper-parameters of a BERT-family encoder, named as in Hugging Face's <c>config.json</c>
/// so that a checkpoint folder's configuration reads straight into it.
/// </summary>
public sealed record BertConfig
{
    /// <summary>Number of tokens in the vocabulary.</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 30522;

    /// <summary>Width of every hidden state.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 384;

    /// <summary>Number of transformer layers.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 6;

    /// <summary>Number of attention heads per layer; must divide <see cref="HiddenSize"/>.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;

    /// <summary>Width of the feed-forward block.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 1536;

    /// <summary>Longest sequence the position embeddings cover.</summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 512;

    /// <summary>Number of segment (token type) ids.</summary>
    [JsonPropertyName("type_vocab_size")] public int TypeVocabSize { get; init; } = 2;

    /// <summary>Epsilon of every LayerNorm.</summary>
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-12;

    /// <summary>Dropout after embeddings and each residual branch, while training.</summary>
    [JsonPropertyName("hidden_dropout_prob")] public double HiddenDropoutProb { get; init; } = 0.1;

    /// <summary>Dropout on attention probabilities, while training.</summary>
    [JsonPropertyName("attention_probs_dropout_prob")] public double AttentionProbsDropoutProb { get; init; } = 0.1;

    /// <summary>Feed-forward activation: <c>gelu</c> (erf form, as BERT) or <c>gelu_new</c>/<c>gelu_pytorch_tanh</c> (tanh form).</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "gelu";

    /// <summary>Id of the padding token.</summary>
    [JsonPropertyName("pad_token_id")] public int PadTokenId { get; init; }

    /// <summary>Whether the model has BERT's pooler (dense + tanh over the [CLS] state).</summary>
    [JsonIgnore] public bool AddPoolingLayer { get; init; } = true;

    /// <summary>Width of one attention head.</summary>
    [JsonIgnore] public int HeadSize => HiddenSize / NumAttentionHeads;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent field.</summary>
    public BertConfig Validate()
    {
        Positive(VocabSize, nameof(VocabSize));
        Positive(HiddenSize, nameof(HiddenSize));
        Positive(NumHiddenLayers, nameof(NumHiddenLayers));
        Positive(NumAttentionHeads, nameof(NumAttentionHeads));
        Positive(IntermediateSize, nameof(IntermediateSize));
        Positive(MaxPositionEmbeddings, nameof(MaxPositionEmbeddings));
        Positive(TypeVocabSize, nameof(TypeVocabSize));
        if (HiddenSize % NumAttentionHeads != 0)
            throw new ArgumentException($"{nameof(HiddenSize)} ({HiddenSize}) must be a multiple of {nameof(NumAttentionHeads)} ({NumAttentionHeads}).");
        if (HiddenAct is not ("gelu" or "gelu_new" or "gelu_pytorch_tanh" or "relu"))
            throw new ArgumentException($"{nameof(HiddenAct)} '{HiddenAct}' is not supported; use gelu, gelu_new, gelu_pytorch_tanh or relu.");
        return this;
    }

    /// <summary>Reads a Hugging Face <c>config.json</c>.</summary>
    public static BertConfig FromJson(string json, string sourceForErrors = "config.json")
    {
        try
        {
            var config = JsonSerializer.Deserialize<BertConfig>(json)
                ?? throw new InvalidDataException($"'{sourceForErrors}' holds no configuration.");
            return config.Validate();
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{sourceForErrors}' is not a valid BERT config.json: {e.Message}", e);
        }
    }

    /// <summary>Writes this configuration in Hugging Face's <c>config.json</c> form.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, new JsonSerializerOptions { WriteIndented = true });

    private static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentException($"{name} must be positive (was {value}).");
    }
}
