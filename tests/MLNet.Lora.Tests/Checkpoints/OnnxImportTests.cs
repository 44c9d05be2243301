using MLNet.Lora.Checkpoints;

namespace MLNet.Lora.Tests.Checkpoints;

public class OnnxImportTests
{
    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Import_RestoresTheWeightsAndInfersTheConfig(bool reshapeHint, bool scaleHint)
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create();
        string path = folder.Combine("tiny.onnx");
        SyntheticOnnx.Write(original.Model, path, reshapeHint, scaleHint);

        using var model = OnnxBertImporter.Import(path);
        model.Config.Should().Be(TinyCheckpoints.Config);
        TinyCheckpoints.ShouldHaveIdenticalWeights(model, original.Model);
    }

    [Fact]
    public void Import_WithoutHeadHints_AsksForTheOverride_AndUsesIt()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create(pooler: false);
        string path = folder.Combine("tiny.onnx");
        SyntheticOnnx.Write(original.Model, path, reshapeHint: false, scaleHint: false);

        FluentActions.Invoking(() => OnnxBertImporter.Import(path))
            .Should().Throw<InvalidDataException>().WithMessage($"Cannot infer the number of attention heads of '{path}'*numAttentionHeads*");
        using var model = OnnxBertImporter.Import(path, numAttentionHeads: 4);
        model.Config.NumAttentionHeads.Should().Be(4);
        model.Config.AddPoolingLayer.Should().BeFalse();
        TinyCheckpoints.ShouldHaveIdenticalWeights(model, original.Model);

        FluentActions.Invoking(() => OnnxBertImporter.Import(path, numAttentionHeads: 5))
            .Should().Throw<ArgumentException>().WithMessage("*not a multiple of 5 attention heads*");
    }

    [Fact]
    public void MissingTensor_IsNamedWithTheFile()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create();
        string path = folder.Combine("x.onnx");
        SyntheticOnnx.Write(original.Model, path, drop: "encoder.layer.1.output.LayerNorm.weight");

        FluentActions.Invoking(() => OnnxBertImporter.Import(path))
            .Should().Throw<InvalidDataException>().WithMessage($"encoder.layer.1.output.LayerNorm.weight is missing from '{path}'*");
    }

    [Fact]
    public void CorruptFile_GivesInvalidDataNamingTheFile()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create();
        string path = folder.Combine("x.onnx");
        SyntheticOnnx.Write(original.Model, path);
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);

        FluentActions.Invoking(() => OnnxBertImporter.Import(path))
            .Should().Throw<InvalidDataException>().WithMessage($"'{path}' is not a readable ONNX model*");
        FluentActions.Invoking(() => PretrainedEncoder.FromOnnx(path, WriteVocabulary(folder), cache: new CheckpointCache(folder.Combine("cache"))))
            .Should().Throw<InvalidDataException>().WithMessage($"'{path}' is not a readable ONNX model*");
    }

    internal static string WriteVocabulary(TemporaryFolder folder)
    {
        string path = folder.Combine("vocab.txt");
        File.WriteAllText(path, string.Join("\n", TinyCheckpoints.Vocabulary) + "\n");
        return path;
    }
}
