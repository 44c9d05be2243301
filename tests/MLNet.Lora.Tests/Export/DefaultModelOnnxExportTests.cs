using Microsoft.ML;
using MLNet.Lora.Export;
using MLNet.Lora.Tests.Checkpoints;

namespace MLNet.Lora.Tests.Export;

/// <summary>Export of a short fit on the real embedded all-MiniLM-L6-v2, scored by ONNX Runtime through MLNet.Lora.Onnx.</summary>
[Trait("Category", "Integration")]
public class DefaultModelOnnxExportTests(DefaultEncoderFixture fixture) : IClassFixture<DefaultEncoderFixture>, IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("mlnet-lora-onnx-default-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public void Fp32AgreesTo1e4WithIdenticalLabelsAndInt8AgreesOnAtLeast97PercentOfLabels()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(64, seed: 4));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
            {
                Encoder = fixture.Encoder, Rank = 8, MaxEpochs = 1, BatchSize = 16, MaxSequenceLength = 32, Seed = 1,
            }))
            .Fit(train);
        var lora = ((IEnumerable<ITransformer>)model).OfType<LoraTextClassificationTransformer>().Single();
        string fp32 = Path.Combine(folder, "model.onnx"), int8 = Path.Combine(folder, "model.int8.onnx");
        ml.Model.ExportLoraToOnnx(model, fp32);
        ml.Model.ExportLoraToOnnx(model, int8, new OnnxExportOptions { Quantization = OnnxQuantization.DynamicInt8 });
        new FileInfo(int8).Length.Should().BeLessThan(new FileInfo(fp32).Length * 2 / 3, "the encoder's linear layers are stored as int8");

        // Held-out sentences of both tasks plus free text the fit never saw, of varied lengths.
        string[] texts =
        [
            .. SyntheticData.Sentiment(150, seed: 11).Select(r => r.Text),
            .. SyntheticData.Topics(40, seed: 12).Select(r => r.Text),
            "An utterly charming, funny and moving film that I would happily watch again.",
            "Two hours of my life I will never get back; the dialogue is wooden and the plot makes no sense at all.",
            "It is a movie.", "", "not bad", "not good", "The acting was fine but the story dragged in the middle.",
            "A masterpiece.", "Dreadful.", "I laughed, I cried, I left the cinema smiling.",
        ];
        var expected = lora.PredictProbabilities(texts);
        var empty = ml.Data.LoadFromEnumerable(new TextRow[] { new() });
        using var f = ml.Transforms.LoraOnnxTextClassification(fp32).Fit(empty);
        using var q = ml.Transforms.LoraOnnxTextClassification(int8).Fit(empty);
        var fromFp32 = f.PredictProbabilities(texts);
        var fromInt8 = q.PredictProbabilities(texts);

        double maxDifference = 0;
        int sameInt8 = 0;
        for (int i = 0; i < texts.Length; i++)
        {
            for (int c = 0; c < 2; c++) maxDifference = Math.Max(maxDifference, Math.Abs(fromFp32[i][c] - expected[i][c]));
            ArgMax(fromFp32[i]).Should().Be(ArgMax(expected[i]), $"fp32 predicts the same label for '{texts[i]}'");
            if (ArgMax(fromInt8[i]) == ArgMax(expected[i])) sameInt8++;
        }
        maxDifference.Should().BeLessThan(1e-4);
        ((double)sameInt8 / texts.Length).Should().BeGreaterThanOrEqualTo(0.97, $"{sameInt8} of {texts.Length} int8 labels agree");
    }

    private static int ArgMax(float[] values) => values[1] > values[0] ? 1 : 0;
}
