using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
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

    /// <summary>
    /// Before Pooler pooling refused an encoder without a pooler, it pooled [CLS] there. Such a file (the version-1
    /// fixture, rewritten to say Pooler over the same encoder without its pooler) still loads, and scores as [CLS].
    /// </summary>
    [Fact]
    public void AnOldFileWithPoolerPoolingOverAnEncoderWithoutAPoolerScoresAsCls()
    {
        using var withPooler = TinyEncoders.Create(seed: 11);
        var withoutPooler = new BertModel(withPooler.Config with { AddPoolingLayer = false });
        using (TorchSharp.torch.no_grad())
        {
            var source = withPooler.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, parameter) in withoutPooler.named_parameters()) parameter.copy_(source[name]);
        }
        using var encoder = new PretrainedEncoder(withoutPooler, TinyEncoders.Tokenizer(),
            new EncoderIdentity("tiny-no-pooler", PretrainedEncoder.ComputeWeightsSha256(withoutPooler), EncoderSource.Default));

        string Rewritten(string pooling)
        {
            string path = Path.Combine(Path.GetTempPath(), $"mlnet-lora-v1-{pooling}-{Guid.NewGuid():N}.zip");
            File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "lora-v1.zip"), path);
            using var zip = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Update);
            var entry = zip.GetEntry("part-1/settings.json")!;
            string json;
            using (var reader = new StreamReader(entry.Open())) json = reader.ReadToEnd();
            json = json.Replace("\"Pooling\": \"Mean\"", $"\"Pooling\": \"{pooling}\"")
                .Replace("587649c32e261bceb497e1e4f09ae62835105b062f4bce4ce674dc3545115c02", encoder.Identity.Sha256);
            entry.Delete();
            using (var writer = new StreamWriter(zip.CreateEntry("part-1/settings.json").Open())) writer.Write(json);
            return path;
        }
        string pooler = Rewritten("Pooler"), cls = Rewritten("Cls");
        try
        {
            var ml = new MLContext(seed: 1);
            var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Text = "the movie was very good" }, new TextRow { Text = "a film" } });
            var expected = ml.Model.LoadWithAdapters(cls, out _, baseEncoder: encoder).Transform(data).GetColumn<float[]>("Score").ToArray();
            var actual = ml.Model.LoadWithAdapters(pooler, out _, baseEncoder: encoder).Transform(data).GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < expected.Length; i++) actual[i].Should().Equal(expected[i]);
        }
        finally
        {
            File.Delete(pooler);
            File.Delete(cls);
        }
    }
}
