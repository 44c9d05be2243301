using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Tests.Checkpoints;

namespace MLNet.Lora.Tests.MultiAdapter;

/// <summary>A set over the real embedded all-MiniLM-L6-v2: two short fits, one mixed stream.</summary>
[Trait("Category", "Integration")]
public class DefaultModelAdapterSetTests(DefaultEncoderFixture fixture) : IClassFixture<DefaultEncoderFixture>
{
    [Fact]
    public void MixedBatchScoresEqualEachAdaptersOwnModel()
    {
        var ml = new MLContext(seed: 1);
        string root = Directory.CreateTempSubdirectory("mlnet-lora-default-set-").FullName;
        try
        {
            var tasks = new Dictionary<string, List<TextRow>>
            {
                ["sentiment"] = SyntheticData.Sentiment(32, seed: 4),
                ["topics"] = SyntheticData.Topics(32, seed: 5),
            };
            foreach (var (name, rows) in tasks)
            {
                var train = ml.Data.LoadFromEnumerable(rows);
                var model = ml.Transforms.Conversion.MapValueToKey("Label")
                    .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
                    {
                        Encoder = fixture.Encoder,
                        Rank = 4,
                        MaxEpochs = 1,
                        BatchSize = 16,
                        LearningRate = 1e-2,
                        MaxSequenceLength = 16,
                    }))
                    .Fit(train);
                ml.Model.SaveWithAdapters(model, train.Schema, Path.Combine(root, name + ".zip"));
            }

            using var set = new LoraAdapterSet(ml, fixture.Encoder);
            foreach (var name in tasks.Keys) set.Add(name, Path.Combine(root, name + ".zip"));
            var random = new Random(3);
            var stream = tasks.Values.SelectMany(r => r).Select(r => new MultiRow { Adapter = random.Next(2) == 0 ? "sentiment" : "topics", Text = r.Text })
                .OrderBy(_ => random.Next()).ToList();
            var scores = ml.Transforms.LoraMultiAdapterClassification(set).Transform(ml.Data.LoadFromEnumerable(stream)).GetColumn<float[]>("Score").ToArray();

            var texts = ml.Data.LoadFromEnumerable(stream.Select(r => new TextRow { Text = r.Text }));
            foreach (var name in tasks.Keys)
            {
                var alone = ml.Model.LoadWithAdapters(Path.Combine(root, name + ".zip"), out _, fixture.Encoder);
                var expected = alone.Transform(texts).GetColumn<float[]>("Score").ToArray();
                for (int i = 0; i < stream.Count; i++)
                    if (stream[i].Adapter == name)
                        scores[i].Zip(expected[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5);
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
