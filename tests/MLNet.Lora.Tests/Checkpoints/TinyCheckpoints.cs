using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Checkpoints;

/// <summary>A folder under the temporary folder, deleted on dispose.</summary>
internal sealed class TemporaryFolder : IDisposable
{
    public TemporaryFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mlnet-lora-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try
        {
            if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Tiny random encoders (hidden 32, 2 layers) with their own small vocabulary and sentences, for the checkpoint round-trip tests.</summary>
internal static class TinyCheckpoints
{
    public static readonly BertConfig Config = new()
    {
        VocabSize = 100,
        HiddenSize = 32,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        IntermediateSize = 64,
        MaxPositionEmbeddings = 64,
    };

    /// <summary>[PAD] [UNK] [CLS] [SEP] [MASK], a few words, the letters and their ## continuations: 5 + 12 + 26 + 26 = 69 tokens.</summary>
    public static readonly string[] Vocabulary =
    [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
        "the", "cat", "sat", "on", "mat", "hello", "world", "dog", "runs", ".", ",", "!",
        .. Enumerable.Range('a', 26).Select(c => ((char)c).ToString()),
        .. Enumerable.Range('a', 26).Select(c => "##" + (char)c),
    ];

    public static readonly string[] Sentences = ["the cat sat on the mat.", "hello world!", "a dog runs", "zebra"];

    /// <summary>A random tiny encoder with its vocabulary, in evaluation mode.</summary>
    public static PretrainedEncoder Create(long seed = 1, bool pooler = true, bool lowerCase = true, string name = "tiny-bert")
    {
        manual_seed(seed);
        var model = new BertModel(Config with { AddPoolingLayer = pooler });
        model.eval();
        var tokenizer = WordPieceVocabulary.CreateTokenizer(Vocabulary, lowerCase);
        var identity = new EncoderIdentity(name, PretrainedEncoder.ComputeWeightsSha256(model), EncoderSource.Default);
        return new PretrainedEncoder(model, tokenizer, identity, Vocabulary);
    }

    /// <summary>Runs the encoder on <see cref="Sentences"/> (a padded batch) and returns the last hidden state.</summary>
    public static float[] Run(PretrainedEncoder encoder)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var batch = encoder.Tokenizer.EncodeBatch(Sentences);
        return encoder.Model.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).LastHiddenState.data<float>().ToArray();
    }

    /// <summary>Whether every parameter of both models has the same name, shape and bits.</summary>
    public static void ShouldHaveIdenticalWeights(nn.Module actual, nn.Module expected)
    {
        var left = actual.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var right = expected.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        left.Keys.Should().BeEquivalentTo(right.Keys);
        foreach (var (name, tensor) in right)
        {
            left[name].shape.Should().Equal(tensor.shape, name);
            left[name].bytes.SequenceEqual(tensor.bytes).Should().BeTrue($"{name} should be bit-identical");
        }
    }
}
