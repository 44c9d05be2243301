using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Tests.Checkpoints;

namespace MLNet.Lora.Tests.Integration;

/// <summary>The trainer on the real embedded all-MiniLM-L6-v2: a short fit, save, load.</summary>
[Trait("Category", "Integration")]
public class DefaultModelTrainingTests(DefaultEncoderFixture fixture) : IClassFixture<DefaultEncoderFixture>
{
    [Fact]
    public void ARank8AdapterFileIsUnderOnePercentOfTheBaseAndLoadsBackFromTheCache()
    {
        var ml = new MLContext(seed: 1);
        var rows = SyntheticData.Sentiment(48, seed: 4);
        var train = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
            {
                CacheDirectory = fixture.Cache.Root,
                Rank = 8,
                MaxEpochs = 1,
                BatchSize = 16,
                MaxSequenceLength = 32,
            }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var model = pipeline.Fit(train);

        string path = Path.Combine(Path.GetTempPath(), $"mlnet-lora-default-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.SaveWithAdapters(model, train.Schema, path);
            long baseBytes = fixture.Encoder.ParameterCount * sizeof(float);
            new FileInfo(path).Length.Should().BeLessThan(baseBytes / 100, "rank 8 on query and value is a small fraction of 22.7M weights");

            var loaded = ml.Model.LoadWithAdapters(path, out _, cacheDirectory: fixture.Cache.Root);
            var expected = model.Transform(train).GetColumn<float[]>("Score").ToArray();
            var actual = loaded.Transform(train).GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < expected.Length; i++)
                actual[i].Zip(expected[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
