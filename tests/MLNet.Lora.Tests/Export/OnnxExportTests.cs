using Google.Protobuf;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNet.Lora.Adapters;
using MLNet.Lora.Deployment;
using MLNet.Lora.Encoders;
using MLNet.Lora.Export;
using MLNet.Lora.Onnx;
using MLNet.Lora.Tests.Integration;
using MLNet.Lora.Training;
using Onnx;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Export;

/// <summary>Export to ONNX and scoring with MLNet.Lora.Onnx, on tiny random encoders.</summary>
public class OnnxExportTests(OnnxExportTests.Encoder fixture) : IClassFixture<OnnxExportTests.Encoder>, IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("mlnet-lora-onnx-").FullName;

    /// <summary>
    /// A tiny encoder of its own seed: bases are shared process-wide by SHA-256, so a seed-7 encoder here would lend its
    /// folder (deleted with this class) to other test classes' models over the same weights.
    /// </summary>
    public sealed class Encoder : IDisposable
    {
        private readonly string root = Directory.CreateTempSubdirectory("mlnet-lora-onnx-base-").FullName;

        public Encoder() => Value = TinyEncoders.CreateInFolder(root, seed: 23);

        public MLNet.Lora.Checkpoints.PretrainedEncoder Value { get; }

        public void Dispose()
        {
            Value.Dispose();
            Directory.Delete(root, recursive: true);
        }
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private (MLContext Ml, IDataView Train, ITransformer Model, LoraTextClassificationTransformer Lora) Fit(
        PoolingStrategy pooling = PoolingStrategy.Mean, FineTuningMode mode = FineTuningMode.Lora)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(64, seed: 1));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
            {
                Encoder = fixture.Value, Mode = mode, Pooling = pooling, Rank = 4, Alpha = 8, MaxEpochs = 2, BatchSize = 16,
                LearningRate = 2e-2, MaxSequenceLength = 16, Seed = 42,
            }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
            .Fit(train);
        var lora = ((IEnumerable<ITransformer>)model).OfType<LoraTextClassificationTransformer>().Single();
        return (ml, train, model, lora);
    }

    private static string[] Texts => [.. SyntheticData.Sentiment(40, seed: 9).Select(r => r.Text), "", "the the the movie was not really good but fine"];

    [Theory]
    [InlineData(PoolingStrategy.Mean, FineTuningMode.Lora)]
    [InlineData(PoolingStrategy.Cls, FineTuningMode.Lora)]
    [InlineData(PoolingStrategy.Pooler, FineTuningMode.Full)]
    public void TheExportedModelOnOnnxRuntimeAgreesWithTheTorchSharpTransformer(PoolingStrategy pooling, FineTuningMode mode)
    {
        var (_, _, _, lora) = Fit(pooling, mode);
        if (mode == FineTuningMode.Lora)
            LoraInjector.FindLoraLayers(lora.Model.Encoder).Should().OnlyContain(l => l.Layer.LoraB("default").abs().sum().item<float>() > 0, "training moved the adapters, so merging matters");
        string path = Path.Combine(folder, $"tiny-{pooling}.onnx");
        bool merged = lora.AdaptersMerged;
        lora.ExportOnnx(path);
        lora.AdaptersMerged.Should().Be(merged, "export leaves the transformer as it was");

        var expected = lora.PredictProbabilities(Texts);
        var ml = new MLContext();
        using var onnx = ml.Transforms.LoraOnnxTextClassification(path).Fit(ml.Data.LoadFromEnumerable(new TextRow[] { new() }));
        var actual = onnx.PredictProbabilities(Texts);
        for (int i = 0; i < Texts.Length; i++)
            actual[i].Zip(expected[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5, $"text {i} '{Texts[i]}'");
    }

    [Fact]
    public void TheFloatGraphUsesStandardOperatorsOfOpset17WithDynamicAxesAndTheContractsNames()
    {
        var (_, _, _, lora) = Fit();
        string path = Path.Combine(folder, "contract.onnx");
        lora.ExportOnnx(path);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        model.OpsetImport.Should().ContainSingle().Which.Should().Match<OperatorSetIdProto>(o => o.Domain == "" && o.Version >= 17);
        model.Graph.Node.Should().OnlyContain(n => n.Domain == "", "no contrib operators in the float32 graph");
        model.Graph.Input.Select(i => i.Name).Should().Equal("input_ids", "attention_mask", "token_type_ids");
        model.Graph.Output.Select(o => o.Name).Should().Equal("logits", "probabilities");
        foreach (var input in model.Graph.Input)
        {
            input.Type.TensorType.ElemType.Should().Be((int)TensorProto.Types.DataType.Int64);
            input.Type.TensorType.Shape.Dim.Select(d => d.DimParam).Should().Equal("batch", "sequence");
        }
        model.Graph.Output[1].Type.TensorType.Shape.Dim[1].DimValue.Should().Be(2);
        model.Graph.Initializer.Select(i => i.Name).Should().NotContain(n => n.Contains("lora_"), "adapters are merged into the weights");
    }

    [Fact]
    public void MetadataRoundTripsThroughTheFile()
    {
        var (_, _, _, lora) = Fit();
        string path = Path.Combine(folder, "metadata.onnx");
        lora.ExportOnnx(path);
        using var session = new InferenceSession(path);
        var metadata = OnnxModelMetadata.Read(session.ModelMetadata.CustomMetadataMap, path);
        var settings = lora.Settings;
        metadata.FormatVersion.Should().Be(OnnxModelMetadata.CurrentFormatVersion);
        metadata.Labels!.Type.Should().Be("Text");
        metadata.Labels.Values.Should().Equal(settings.Classes!.Values);
        metadata.ClassCount.Should().Be(2);
        metadata.Vocabulary.Should().Equal(TinyEncoders.Vocabulary);
        metadata.Tokenizer.LowerCase.Should().BeTrue();
        metadata.MaxLength.Should().Be(16);
        metadata.Pooling.Should().Be("mean");
        metadata.BaseEncoder.Name.Should().Be(settings.BaseEncoder.Name);
        metadata.BaseEncoder.Sha256.Should().Be(settings.BaseEncoder.Sha256);
        metadata.Columns.Text.Should().Be("Text");
        metadata.Quantization.Should().Be("none");
        metadata.PackageVersion.Should().NotBeNullOrWhiteSpace();
        var tokenizer = metadata.CreateTokenizer();
        tokenizer.Encode("the movie was great").InputIds.Should().Equal(lora.Tokenizer.Encode("the movie was great").InputIds);
    }

    [Fact]
    public void TheOnnxTransformerWorksWithEvaluateMapKeyToValueAndPredictionEngine()
    {
        var (ml, _, model, lora) = Fit();
        string path = Path.Combine(folder, "pipeline.onnx");
        ml.Model.ExportLoraToOnnx(model, path);
        var test = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(48, seed: 5));

        var scoring = ml.Transforms.LoraOnnxTextClassification(path, options: new LoraOnnxScoringOptions { BatchSize = 7 })
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var onnxModel = scoring.Fit(test);
        var expectedLabels = model.Transform(test).GetColumn<string>("PredictedLabel").ToArray();
        onnxModel.Transform(test).GetColumn<string>("PredictedLabel").Should().Equal(expectedLabels);

        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(test).Transform(test);
        using var onnxAlone = ml.Transforms.LoraOnnxTextClassification(path).Fit(keyed);
        var metrics = ml.MulticlassClassification.Evaluate(onnxAlone.Transform(keyed));
        var reference = ml.MulticlassClassification.Evaluate(lora.Transform(keyed));
        metrics.MicroAccuracy.Should().Be(reference.MicroAccuracy);
        metrics.LogLoss.Should().BeApproximately(reference.LogLoss, 1e-4);

        var engine = ml.Model.CreatePredictionEngine<TextRow, TextPrediction>(onnxModel);
        var prediction = engine.Predict(new TextRow { Text = "the film was really excellent" });
        prediction.PredictedLabel.Should().Be(lora.PredictProbabilities(["the film was really excellent"])[0][0] > 0.5 ? lora.Settings.Classes!.Values[0] : lora.Settings.Classes!.Values[1]);
        prediction.Score.Should().HaveCount(2).And.Subject.Sum().Should().BeApproximately(1f, 1e-5f);
    }

    [Fact]
    public void TheReadBackEncoderOfAnExportedFileIsTheMergedEncoder()
    {
        var (_, _, _, lora) = Fit();
        string path = Path.Combine(folder, "importable.onnx");
        lora.ExportOnnx(path);
        using var imported = MLNet.Lora.Checkpoints.OnnxBertImporter.Import(path);
        using var scope = NewDisposeScope();
        var batch = lora.Tokenizer.EncodeBatch(["the plot was boring", "a film"], maxLength: 16);
        lora.MergeAdapters();
        try
        {
            var expected = lora.Model.Encoder.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).LastHiddenState;
            var actual = imported.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).LastHiddenState;
            actual.allclose(expected, rtol: 1e-4, atol: 1e-5).Should().BeTrue();
        }
        finally
        {
            lora.UnmergeAdapters();
        }
    }

    [Fact]
    public void Int8WeightsArePerChannelSevenBitWithKnownValues()
    {
        // [out = 2, in = 3]: row 0's largest magnitude is 2 (scale 2/64), row 1's is 0.5 (scale 0.5/64).
        float[] weight = [1f, -2f, 0.5f, 0.25f, 0f, -0.5f];
        var (quantized, scales) = DynamicInt8Linear.Quantize(weight, outFeatures: 2, inFeatures: 3, limit: DynamicInt8Linear.ReducedRange);
        scales.Should().Equal(2f / 64, 0.5f / 64);
        quantized.Should().Equal(new sbyte[] { 32, 32, -64, 0, 16, -64 }, "stored [in, out]: column o holds output o");
        // Full range: 0.3 / (0.3 / 127) = 127; 0.1 / (0.3 / 127) = 42.33 rounds to 42.
        var (full, fullScales) = DynamicInt8Linear.Quantize([0.1f, -0.3f], outFeatures: 1, inFeatures: 2, limit: DynamicInt8Linear.FullRange);
        fullScales.Should().Equal(0.3f / 127);
        full.Should().Equal(new sbyte[] { 42, -127 });
    }

    [Fact]
    public void TheInt8ModelUsesDynamicQuantizationAndStaysCloseToFloat()
    {
        var (_, _, _, lora) = Fit();
        string fp32 = Path.Combine(folder, "f.onnx"), int8 = Path.Combine(folder, "q.onnx");
        lora.ExportOnnx(fp32);
        lora.ExportOnnx(int8, new OnnxExportOptions { Quantization = OnnxQuantization.DynamicInt8 });
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(int8)).Graph;
        graph.Node.Count(n => n.OpType == "MatMulInteger").Should().Be(2 * 6, "six linear layers per encoder layer");
        graph.Node.Count(n => n.OpType == "DynamicQuantizeLinear").Should().Be(2 * 6);
        var ml = new MLContext();
        var empty = ml.Data.LoadFromEnumerable(new TextRow[] { new() });
        using var f = ml.Transforms.LoraOnnxTextClassification(fp32).Fit(empty);
        using var q = ml.Transforms.LoraOnnxTextClassification(int8).Fit(empty);
        var expected = f.PredictProbabilities(Texts);
        var actual = q.PredictProbabilities(Texts);
        for (int i = 0; i < Texts.Length; i++)
            actual[i].Zip(expected[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 0.05, "int8 rounding moves probabilities a little");
    }

    [Fact]
    public void ExportingDivergedAdaptersFailsNamingTheFileAndWritesNothing()
    {
        var (_, _, _, lora) = Fit();
        lora.UnmergeAdapters();     // the fit left them merged for fast inference; the export merges them itself
        var layer = LoraInjector.FindLoraLayers(lora.Model.Encoder)[0].Layer;
        using (no_grad()) layer.LoraB("default").fill_(float.NaN);
        string path = Path.Combine(folder, "diverged.onnx");
        var act = () => lora.ExportOnnx(path);
        act.Should().Throw<InvalidOperationException>().WithMessage($"*'{path}'*diverged*");
        Directory.GetFiles(folder).Should().BeEmpty("no partial or temporary file is left");
        lora.AdaptersMerged.Should().BeFalse();
    }

    [Fact]
    public void ExportingIntoAMissingFolderFailsNamingThePath()
    {
        var (_, _, _, lora) = Fit();
        string path = Path.Combine(folder, "missing", "model.onnx");
        var act = () => lora.ExportOnnx(path);
        act.Should().Throw<DirectoryNotFoundException>().WithMessage($"*'{path}'*does not exist*");
        Directory.Exists(Path.Combine(folder, "missing")).Should().BeFalse();
    }

    [Fact]
    public void ExportLoraToOnnxRefusesAModelWithoutALoraTransformer()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(4, seed: 1));
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data);
        var act = () => ml.Model.ExportLoraToOnnx(model, Path.Combine(folder, "none.onnx"));
        act.Should().Throw<ArgumentException>().WithMessage("*no LoraTextClassificationTransformer*none.onnx*");
    }

    [Fact]
    public void ScoringAFileThatIsNotOnnxFailsNamingIt()
    {
        string path = Path.Combine(folder, "not-onnx.onnx");
        File.WriteAllText(path, "this is a text file, not a model");
        var act = () => Open(path);
        act.Should().Throw<InvalidDataException>().WithMessage($"*'{path}'*not a loadable ONNX model*");
    }

    [Fact]
    public void ScoringAMissingFileFailsNamingIt()
    {
        string path = Path.Combine(folder, "absent.onnx");
        var act = () => Open(path);
        act.Should().Throw<FileNotFoundException>().WithMessage($"*'{path}'*does not exist*");
    }

    [Fact]
    public void ScoringAForeignOnnxFileFailsNamingIt()
    {
        // A valid model written by another tool (y = Identity(x)), with no MLNet.Lora metadata.
        var model = new ModelProto { IrVersion = 8, ProducerName = "elsewhere", Graph = new GraphProto { Name = "identity" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        model.Graph.Node.Add(new NodeProto { OpType = "Identity", Input = { "x" }, Output = { "y" } });
        model.Graph.Input.Add(OnnxGraph.Value("x", TensorProto.Types.DataType.Float, "n"));
        model.Graph.Output.Add(OnnxGraph.Value("y", TensorProto.Types.DataType.Float, "n"));
        string path = Path.Combine(folder, "foreign.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        var act = () => Open(path);
        act.Should().Throw<InvalidDataException>().WithMessage($"*'{path}' was not exported by MLNet.Lora*mlnet_lora.format_version*");
    }

    [Theory]
    [InlineData("newer")]
    [InlineData("missing-entry")]
    public void ScoringAFileWithNewerOrIncompleteMetadataFailsNamingIt(string damage)
    {
        var (_, _, _, lora) = Fit();
        string path = Path.Combine(folder, $"{damage}.onnx");
        var model = LoraOnnxExporter.Build(lora, path, new OnnxExportOptions());
        if (damage == "newer")
            model.MetadataProps.Single(p => p.Key == OnnxModelMetadata.FormatVersionKey).Value = (OnnxModelMetadata.CurrentFormatVersion + 1).ToString();
        else
            model.MetadataProps.Remove(model.MetadataProps.Single(p => p.Key == "mlnet_lora.vocabulary"));
        File.WriteAllBytes(path, model.ToByteArray());
        var act = () => Open(path);
        act.Should().Throw<InvalidDataException>().WithMessage(damage == "newer"
            ? $"*'{path}' is format version {OnnxModelMetadata.CurrentFormatVersion + 1}, newer*update*"
            : $"*'{path}' lacks the 'mlnet_lora.vocabulary'*");
    }

    [Fact]
    public void ATextColumnThatIsNotTextFailsNamingTheColumn()
    {
        var (_, _, _, lora) = Fit();
        string path = Path.Combine(folder, "columns.onnx");
        lora.ExportOnnx(path);
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new NumberRow { Text = 3f } });
        var estimator = ml.Transforms.LoraOnnxTextClassification(path);
        estimator.Invoking(e => e.Fit(data)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*text column 'Text' must be a single text (string) value*");
        ml.Transforms.LoraOnnxTextClassification(path, "Body").Invoking(e => e.Fit(data)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*'Body' is not in the data*");
    }

    private static void Open(string path)
    {
        var ml = new MLContext();
        using var _ = ml.Transforms.LoraOnnxTextClassification(path).Fit(ml.Data.LoadFromEnumerable(new TextRow[] { new() }));
    }

    private sealed class NumberRow
    {
        public float Text { get; set; }
    }
}
