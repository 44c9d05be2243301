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
}
