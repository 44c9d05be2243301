using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;
using MLNet.Lora.Training;

namespace MLNet.Lora.Tests.Integration;

/// <summary>Model files written by earlier versions still load and predict what they predicted then.</summary>
public class FormatVersionTests
{
    private sealed record Expected(string[] Texts, float[][] Scores, string[] PredictedLabels);

    /// <summary>
    /// Fixtures/lora-v1.zip: format 1, written before the adapter state was found by structure, by a LoRA fit (rank 2,
    /// alpha 4, query and value, merged after training) over <c>TinyEncoders.Create(seed: 11)</c>; its scores were
    /// recorded then in lora-v1.expected.json.
    /// </summary>
    [Fact]
    public void AVersion1ZipLoadsAndPredictsAsRecorded()
    {
        string fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures");
        var expected = JsonSerializer.Deserialize<Expected>(File.ReadAllText(Path.Combine(fixtures, "lora-v1.expected.json")))!;
        using var encoder = TinyEncoders.Create(seed: 11);
        var ml = new MLContext(seed: 1);
        var model = ml.Model.LoadWithAdapters(Path.Combine(fixtures, "lora-v1.zip"), out var schema, baseEncoder: encoder);
        schema.Select(c => c.Name).Should().Equal("Text", "Label");

        var data = ml.Data.LoadFromEnumerable(expected.Texts.Select(t => new TextRow { Text = t, Label = "positive" }));
        var scored = model.Transform(data);
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < scores.Length; i++)
            scores[i].Zip(expected.Scores[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5);
        scored.GetColumn<string>("PredictedLabel").Should().Equal(expected.PredictedLabels);
        ((IEnumerable<ITransformer>)model).OfType<LoraTextClassificationTransformer>().Single().AdaptersMerged.Should().BeTrue();
    }

    /// <summary>The keys the zip stores the trained weights under are what format 1 wrote, now found by structure.</summary>
    [Fact]
    public void TrainedWeightsKeepVersion1sKeys()
    {
        using var zip = System.IO.Compression.ZipFile.OpenRead(Path.Combine(AppContext.BaseDirectory, "Fixtures", "lora-v1.zip"));
        using var buffer = new MemoryStream();
        using (var entry = zip.GetEntry("part-1/weights.safetensors")!.Open()) entry.CopyTo(buffer);
        buffer.Position = 0;
        using var scope = TorchSharp.torch.NewDisposeScope();
        var saved = TorchSharp.PyBridge.Safetensors.LoadStateDict(buffer);

        using var encoder = TinyEncoders.Create(seed: 11);
        var config = new LoraConfig { Rank = 2, Alpha = 4, TargetModules = LoraTargetModules.Query | LoraTargetModules.Value };
        LoraInjector.Inject(encoder.Model, config);
        using var model = new TextClassificationModel(encoder.Model, 2, PoolingStrategy.Mean);
        var trained = model.TrainedWeights(FineTuningMode.Lora);
        trained.Keys.Should().BeEquivalentTo(saved.Keys);
        foreach (var (key, tensor) in trained) tensor.shape.Should().Equal(saved[key].shape, key);
    }
}
