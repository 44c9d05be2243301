using MLNet.Lora.Encoders;
using MLNet.Lora.Tests.Checkpoints;
using Xunit.Abstractions;

namespace MLNet.Lora.Tests.Peft;

/// <summary>A PEFT adapter written by the test loads onto the real default encoder (all-MiniLM-L6-v2) as the merged base.</summary>
[Trait("Category", "Integration")]
public class DefaultModelPeftTests(DefaultEncoderFixture fixture, ITestOutputHelper output) : IClassFixture<DefaultEncoderFixture>, IDisposable
{
    private readonly TemporaryFolder folder = new();

    public void Dispose() => folder.Dispose();

    [Fact]
    public void AnAdapterOnTheDefaultModelLoadsAsTheMergedBase()
    {
        var encoder = fixture.Encoder;
        output.WriteLine($"pooler: {encoder.Config.AddPoolingLayer}");
        var writer = new PeftFolderWriter { Rank = 8, Alpha = 16, TargetModules = ["query", "value"], Classes = 2 };
        PeftImportTests.LoadsAsTheMergedBase(writer, encoder, folder.Combine("minilm"),
            pooling: encoder.Config.AddPoolingLayer ? null : PoolingStrategy.Mean, expectedModules: 12);
    }

    [Fact]
    public void AnExportFromTheDefaultModelNamesItsHuggingFaceBase()
    {
        var encoder = fixture.Encoder;
        new PeftFolderWriter { Rank = 2, Classes = 2 }.Write(folder.Combine("python"), encoder.Model);
        var ml = new Microsoft.ML.MLContext(1);
        using var model = LoraTextClassificationTransformer.LoadPeftAdapter(ml, folder.Combine("python"), encoder);
        model.SavePeftAdapter(folder.Combine("exported"));
        using var config = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(folder.Combine("exported"), "adapter_config.json")));
        config.RootElement.GetProperty("base_model_name_or_path").GetString().Should().Be("sentence-transformers/all-MiniLM-L6-v2");
        File.ReadAllText(Path.Combine(folder.Combine("exported"), "README.md")).Should().Contain("the outputs match MLNet.Lora's", "the head reads the pooler");

        using var again = LoraTextClassificationTransformer.LoadPeftAdapter(ml, folder.Combine("exported"), encoder);
        var expected = model.PredictProbabilities(PeftImportTests.Texts);
        var actual = again.PredictProbabilities(PeftImportTests.Texts);
        for (int i = 0; i < expected.Length; i++) actual[i].Should().Equal(expected[i]);
    }
}
