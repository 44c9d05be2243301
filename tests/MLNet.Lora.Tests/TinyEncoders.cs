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

    public static string[] Vocabulary => ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", .. Words];

    public static string VocabularyText => string.Join('\n', Vocabulary) + "\n";

    /// <param name="vocabSize">Embedding rows; more than the tokenizer's words makes a base whose size, as in real
    /// models, is dominated by its embeddings.</param>
    public static BertConfig Config(int layers = 2, int hidden = 32, int heads = 4, int? vocabSize = null) => new()
    {
        VocabSize = vocabSize ?? 5 + Words.Length,
        HiddenSize = hidden,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        IntermediateSize = hidden * 2,
        MaxPositionEmbeddings = 64,
    };

    public static BertTextTokenizer Tokenizer() =>
        BertTextTokenizer.FromVocabulary(new MemoryStream(Encoding.UTF8.GetBytes(VocabularyText)), lowerCase: true);

    public static PretrainedEncoder Create(int seed = 7, int layers = 2, int hidden = 32, int heads = 4, int? vocabSize = null)
    {
        torch.random.manual_seed(seed);
        var model = new BertModel(Config(layers, hidden, heads, vocabSize));
        var identity = new EncoderIdentity($"tiny-bert-{seed}", PretrainedEncoder.ComputeWeightsSha256(model), EncoderSource.Default);
        return new PretrainedEncoder(model, Tokenizer(), identity, Vocabulary);
    }

    /// <summary>A tiny encoder saved as a Hugging Face folder under <paramref name="root"/> and loaded back, so its identity names a source that can be found again.</summary>
    public static PretrainedEncoder CreateInFolder(string root, int seed = 7, int? vocabSize = null)
    {
        string folder = Path.Combine(root, $"tiny-bert-{seed}");
        using (var encoder = Create(seed, vocabSize: vocabSize)) encoder.SaveHuggingFaceFolder(folder, overwrite: true);
        return PretrainedEncoder.FromHuggingFaceFolder(folder);
    }
}
