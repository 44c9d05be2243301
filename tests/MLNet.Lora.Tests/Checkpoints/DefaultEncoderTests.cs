using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Lora.Checkpoints;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Checkpoints;

/// <summary>Converts the embedded all-MiniLM-L6-v2 once into a temporary cache, shared by the tests of the class.</summary>
public sealed class DefaultEncoderFixture : IDisposable
{
    private readonly TemporaryFolder folder = new();

    public DefaultEncoderFixture()
    {
        Cache = new CheckpointCache(folder.Combine("cache"));
        var watch = Stopwatch.StartNew();
        Encoder = PretrainedEncoder.LoadDefault(Cache);
        ConversionTime = watch.Elapsed;
    }

    public CheckpointCache Cache { get; }

    public PretrainedEncoder Encoder { get; }

    public TimeSpan ConversionTime { get; }

    public void Dispose()
    {
        Encoder.Dispose();
        folder.Dispose();
    }
}

[Trait("Category", "Integration")]
public class DefaultEncoderTests(DefaultEncoderFixture fixture, ITestOutputHelper output) : IClassFixture<DefaultEncoderFixture>
{
    private static readonly string[] Sentences =
    [
        "Hello world",
        "The quick brown fox jumps over the lazy dog.",
        "LoRA adapts a frozen encoder with low-rank updates, so fine-tuning touches few weights.",
        "ok",
    ];

    [Fact]
    public void Default_HasTheExpectedShapeAndIdentity()
    {
        var encoder = fixture.Encoder;
        encoder.Config.Should().BeEquivalentTo(new
        {
            VocabSize = 30522, HiddenSize = 384, NumHiddenLayers = 6, NumAttentionHeads = 12, IntermediateSize = 1536,
            MaxPositionEmbeddings = 512, TypeVocabSize = 2, HiddenAct = "gelu", AddPoolingLayer = true, LayerNormEps = 1e-12,
        });
        encoder.Identity.Name.Should().Be("all-MiniLM-L6-v2");
        encoder.Identity.Source.Should().Be(EncoderSource.Default);
        encoder.Identity.Sha256.Should().Be(PretrainedEncoder.ComputeWeightsSha256(encoder.Model));
        encoder.Tokenizer.LowerCase.Should().BeTrue();
        encoder.ParameterCount.Should().Be(22_713_216);
        output.WriteLine($"First load (conversion): {fixture.ConversionTime.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public void LastHiddenState_MatchesOnnxRuntime_OnAPaddedBatch()
    {
        var encoder = fixture.Encoder;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var batch = encoder.Tokenizer.EncodeBatch(Sentences);
        long[] shape = batch.InputIds.shape;
        var (count, length) = ((int)shape[0], (int)shape[1]);
        long[] ids = batch.InputIds.data<long>().ToArray();
        long[] mask = batch.AttentionMask.data<long>().ToArray();
        long[] types = batch.TokenTypeIds.data<long>().ToArray();
        mask.Count(m => m == 0).Should().BePositive("the batch mixes lengths, so it is padded");
        float[] ours = encoder.Model.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).LastHiddenState.data<float>().ToArray();

        byte[] onnx;
        using (var stream = DefaultEncoderResources.Open(DefaultEncoderResources.ModelResource))
        using (var memory = new MemoryStream())
        {
            stream.CopyTo(memory);
            onnx = memory.ToArray();
        }
        using var session = new InferenceSession(onnx);
        int[] dims = [count, length];
        using var results = session.Run(
        [
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, dims)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(mask, dims)),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(types, dims)),
        ]);
        float[] reference = results.First(r => r.Name == "last_hidden_state").AsTensor<float>().ToArray();

        reference.Length.Should().Be(ours.Length);
        const int hidden = 384;
        double worst = 0;
        for (int position = 0; position < count * length; position++)
        {
            if (mask[position] == 0) continue;     // padded positions are not defined to agree
            for (int h = 0; h < hidden; h++)
                worst = Math.Max(worst, Math.Abs(ours[position * hidden + h] - reference[position * hidden + h]));
        }
        output.WriteLine($"Largest difference from ONNX Runtime on real tokens: {worst:E2}");
        worst.Should().BeLessThan(1e-4);
    }

    [Fact]
    public void Tokenizer_GivesTheIdsTheVocabularyImplies()
    {
        var encoder = fixture.Encoder;
        encoder.Tokenizer.Encode("hello world").InputIds.Should().Equal(101, 7592, 2088, 102);

        // Whole words of the vocabulary: each id is the word's line number in vocab.txt.
        var vocabulary = DefaultEncoderResources.ReadVocabulary();
        encoder.Vocabulary.Should().Equal(vocabulary);
        int Id(string token) => Array.IndexOf(vocabulary, token);
        foreach (var (text, tokens) in new[]
        {
            ("Hello, World!", new[] { "hello", ",", "world", "!" }),
            ("The weather is nice today.", ["the", "weather", "is", "nice", "today", "."]),
        })
        {
            int[] expected = [Id("[CLS]"), .. tokens.Select(Id), Id("[SEP]")];
            expected.Should().NotContain(-1);
            encoder.Tokenizer.Encode(text).InputIds.Should().Equal(expected, text);
        }
    }

    [Fact]
    public void SecondLoad_ComesFromTheCache()
    {
        int conversions = fixture.Cache.Conversions;
        var watch = Stopwatch.StartNew();
        using var again = PretrainedEncoder.LoadDefault(fixture.Cache);
        output.WriteLine($"Cached load: {watch.Elapsed.TotalMilliseconds:F0} ms (conversion took {fixture.ConversionTime.TotalMilliseconds:F0} ms)");

        fixture.Cache.Conversions.Should().Be(conversions, "nothing is converted again");
        fixture.Cache.Hits.Should().BeGreaterThanOrEqualTo(1);
        again.Identity.Should().Be(fixture.Encoder.Identity);
        TinyCheckpoints.ShouldHaveIdenticalWeights(again.Model, fixture.Encoder.Model);
    }
}
