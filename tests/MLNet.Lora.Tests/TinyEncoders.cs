using System.Text;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;
using TorchSharp;

namespace MLNet.Lora.Tests;

/// <summary>Tiny random-weight encoders and a matching vocabulary, for fast tests.</summary>
internal static class TinyEncoders
{
    /// <summary>Words of the tiny vocabulary (after the five special tokens).</summary>
    public static readonly string[] Words =
    [
        "the", "a", "movie", "film", "was", "is", "very", "really", "quite", "plot", "story", "acting",
        "good", "great", "excellent", "wonderful", "fine", "bad", "awful", "terrible", "boring", "poor",
        "red", "blue", "green", "cat", "dog", "bird", "runs", "sleeps", "eats", "and", "but", "not",
        "sports", "game", "team", "market", "stock", "price", "science", "space", "planet", "news",
    ];

    public static string VocabularyText =>
        string.Join('\n', new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Concat(Words)) + "\n";

    public static BertConfig Config(int layers = 2, int hidden = 32, int heads = 4) => new()
    {
        VocabSize = 5 + Words.Length,
        HiddenSize = hidden,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        IntermediateSize = hidden * 2,
        MaxPositionEmbeddings = 64,
    };

    public static BertTextTokenizer Tokenizer() =>
        BertTextTokenizer.FromVocabulary(new MemoryStream(Encoding.UTF8.GetBytes(VocabularyText)), lowerCase: true);

    public static PretrainedEncoder Create(int seed = 7, int layers = 2, int hidden = 32, int heads = 4)
    {
        torch.random.manual_seed(seed);
        var model = new BertModel(Config(layers, hidden, heads));
        var identity = new EncoderIdentity($"tiny-bert-{seed}", PretrainedEncoder.ComputeWeightsSha256(model), EncoderSource.Default);
        return new PretrainedEncoder(model, Tokenizer(), identity);
    }
}
