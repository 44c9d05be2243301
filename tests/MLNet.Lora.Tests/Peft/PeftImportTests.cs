using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Tests.Checkpoints;
using MLNet.Lora.Tokenization;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Peft;

/// <summary>PEFT folders written by the tests (known A and B) load onto an encoder and compute W + scaling·B·A.</summary>
public class PeftImportTests : IDisposable
{
    internal static readonly string[] Texts = ["the movie was very good", "a film", "the plot is quite awful and boring", "red cat sleeps"];
    private readonly TemporaryFolder folder = new();

    public void Dispose() => folder.Dispose();

    internal static BertModelOutput Encode(BertModel encoder, BertTextTokenizer tokenizer, string[] texts)
    {
        var batch = TokenBatch.Collate(texts.Select(t => tokenizer.Encode(t, null, 32)).ToArray(), tokenizer.PadTokenId);
        return encoder.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
    }

    /// <summary>Loads <paramref name="writer"/>'s folder onto <paramref name="encoder"/> and checks hidden states and probabilities against the independently merged base.</summary>
    internal static void LoadsAsTheMergedBase(PeftFolderWriter writer, PretrainedEncoder encoder, string directory, bool pickle = false,
        PoolingStrategy? pooling = null, int? expectedModules = null)
    {
        writer.Write(directory, encoder.Model, pickle);
        using var model = LoraTextClassificationTransformer.LoadPeftAdapter(new MLContext(1), directory, encoder, pooling: pooling, maxSequenceLength: 32);
        using var reference = writer.MergedReference(encoder.Model);
        if (expectedModules is { } count) writer.Modules.Should().HaveCount(count);
        using var scope = NewDisposeScope();
        using var _ = no_grad();

        var adapted = Encode(model.Model.Encoder, encoder.Tokenizer, Texts);
        var expected = Encode(reference, encoder.Tokenizer, Texts);
        var unchanged = Encode(encoder.Model, encoder.Tokenizer, Texts);
        adapted.LastHiddenState.MaxAbsDiff(expected.LastHiddenState).Should().BeLessThan(1e-5);
        unchanged.LastHiddenState.MaxAbsDiff(expected.LastHiddenState).Should().BeGreaterThan(1e-3, "the adapter must change the outputs for the test to mean anything");

        // The head: BertForSequenceClassification's classifier over the pooler (or the pooling given).
        var features = (pooling ?? PoolingStrategy.Pooler) switch
        {
            PoolingStrategy.Pooler => expected.PooledOutput!,
            PoolingStrategy.Cls => expected.LastHiddenState[.., 0],
            _ => Pooling.MeanOverTokens(expected.LastHiddenState, TokenBatch.Collate(Texts.Select(t => encoder.Tokenizer.Encode(t, null, 32)).ToArray(), encoder.Tokenizer.PadTokenId).AttentionMask),
        };
        var probabilities = features.matmul(writer.HeadWeight.T).add(writer.HeadBias).softmax(-1);
        var actual = model.PredictProbabilities(Texts);
        for (int i = 0; i < Texts.Length; i++)
            actual[i].Zip(probabilities[i].data<float>().ToArray()).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5);
    }

    [Fact]
    public void AdapterOfBertForSequenceClassificationLoadsAsTheMergedBase()
    {
        using var encoder = TinyEncoders.Create();
        LoadsAsTheMergedBase(new PeftFolderWriter(), encoder, folder.Combine("seq-cls"), expectedModules: 4);
    }

    [Fact]
    public void AdapterOfABareBertModelInPickleFormatLoadsAsTheMergedBase()
    {
        using var encoder = TinyEncoders.Create();
        var writer = new PeftFolderWriter { EncoderPrefix = "", TargetModules = ["key", "dense"], Rank = 2, Alpha = 3 };
        LoadsAsTheMergedBase(writer, encoder, folder.Combine("bare-bin"), pickle: true, expectedModules: 8);
    }

    [Fact]
    public void RsLoraScalesByAlphaOverTheRootOfTheRank()
    {
        using var encoder = TinyEncoders.Create();
        var writer = new PeftFolderWriter { UseRsLora = true, Rank = 4, Alpha = 6 };
        LoadsAsTheMergedBase(writer, encoder, folder.Combine("rslora"));
        writer.Modules.Should().OnlyContain(m => Math.Abs(m.Scaling - 6 / 2.0) < 1e-12);
    }

    [Fact]
    public void RankAndAlphaPatternsSetEachLayersRankAndScale()
    {
        using var encoder = TinyEncoders.Create();
        var writer = new PeftFolderWriter
        {
            Rank = 4, Alpha = 8,
            RankPattern = new() { ["encoder.layer.1.attention.self.query"] = 2 },
            AlphaPattern = new() { ["value"] = 3 },
        };
        LoadsAsTheMergedBase(writer, encoder, folder.Combine("patterns"));
        var scalings = writer.Modules.ToDictionary(m => m.Path, m => (Rank: m.A.shape[0], m.Scaling));
        scalings["encoder.layer.1.attention.self.query"].Should().Be((2L, 8 / 2.0));
        scalings["encoder.layer.0.attention.self.query"].Should().Be((4L, 8 / 4.0));
        scalings["encoder.layer.0.attention.self.value"].Should().Be((4L, 3 / 4.0));

        using var model = LoraTextClassificationTransformer.LoadPeftAdapter(new MLContext(1), folder.Combine("patterns"), encoder);
        var layers = MLNet.Lora.Adapters.LoraInjector.Adapters(model.Model.Encoder).ToDictionary(f => f.Path);
        layers["encoder.layer.1.attention.self.query"].Layer.Scaling("default").Should().Be(4.0);
        layers["encoder.layer.1.attention.self.value"].Layer.Scaling("default").Should().Be(0.75);
        layers["encoder.layer.1.attention.self.query"].A.shape.Should().Equal(2, 32);
    }

    [Fact]
    public void AnImportedAdapterWithPerLayerRanksSavesAndLoadsAsAModelFile()
    {
        using var encoder = TinyEncoders.Create();
        var writer = new PeftFolderWriter { Rank = 4, RankPattern = new() { ["key"] = 2 }, AlphaPattern = new() { ["encoder.layer.0.attention.self.query"] = 1 }, TargetModules = ["query", "key"] };
        writer.Write(folder.Combine("zip-source"), encoder.Model);
        var ml = new MLContext(1);
        using var imported = LoraTextClassificationTransformer.LoadPeftAdapter(ml, folder.Combine("zip-source"), encoder, classNames: ["a", "b", "c"]);
        var data = ml.Data.LoadFromEnumerable(Texts.Select(t => new TextRow { Text = t }));
        string path = folder.Combine("imported.zip");
        ml.Model.SaveWithAdapters(imported, data.Schema, path);
        var loaded = ml.Model.LoadWithAdapters(path, out _, baseEncoder: encoder);

        var lora = ((IEnumerable<ITransformer>)loaded).OfType<LoraTextClassificationTransformer>().Single();
        lora.Settings.Lora.RankPattern.Should().BeEquivalentTo(new Dictionary<string, int> { ["key"] = 2 });
        lora.Settings.Classes!.Values.Should().Equal("a", "b", "c");
        var expected = imported.PredictProbabilities(Texts);
        var actual = lora.PredictProbabilities(Texts);
        for (int i = 0; i < Texts.Length; i++) actual[i].Should().Equal(expected[i]);
    }

    [Fact]
    public void WithoutAPoolerTheHuggingFaceHeadIsRefusedAndAnotherPoolingCanBeNamed()
    {
        using var withPooler = TinyEncoders.Create();
        string path = folder.Combine("no-pooler", "encoder");
        withPooler.SaveHuggingFaceFolder(path);
        File.Delete(Path.Combine(path, "model.safetensors"));
        using (var scope = NewDisposeScope())
            TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(Path.Combine(path, "pytorch_model.bin"),
                withPooler.Model.state_dict().Where(p => !p.Key.StartsWith("pooler.")).ToDictionary(p => p.Key, p => p.Value));
        using var encoder = PretrainedEncoder.FromHuggingFaceFolder(path);
        encoder.Config.AddPoolingLayer.Should().BeFalse();

        string adapter = folder.Combine("no-pooler", "adapter");
        new PeftFolderWriter().Write(adapter, encoder.Model);
        var act = () => LoraTextClassificationTransformer.LoadPeftAdapter(new MLContext(1), adapter, encoder);
        act.Should().Throw<NotSupportedException>().WithMessage("*has no pooler*pooler.dense*");
        LoadsAsTheMergedBase(new PeftFolderWriter(), encoder, adapter, pooling: PoolingStrategy.Cls);
    }
}
