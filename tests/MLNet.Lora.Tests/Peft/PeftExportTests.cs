using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Training;
using MLNet.Lora.Peft;
using MLNet.Lora.Tests.Checkpoints;
using MLNet.Lora.Tests.Integration;

namespace MLNet.Lora.Tests.Peft;

/// <summary>SavePeftAdapter writes PEFT's files exactly, and what it writes comes back as the same model.</summary>
public class PeftExportTests(TinyEncoderFixture fixture) : IClassFixture<TinyEncoderFixture>, IDisposable
{
    private readonly TemporaryFolder folder = new();

    public void Dispose() => folder.Dispose();

    private LoraTextClassificationTransformer Fit(LoraTargetModules targets = LoraTargetModules.Query | LoraTargetModules.Value, string? initialAdapter = null,
        double learningRate = 1e-2, int rows = 80, PoolingStrategy pooling = PoolingStrategy.Mean)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(rows, seed: 1)))
            .Transform(ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(rows, seed: 1)));
        return ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
        {
            Encoder = fixture.Encoder, Rank = 4, Alpha = 8, TargetModules = targets, MaxEpochs = 2, BatchSize = 16,
            LearningRate = learningRate, MaxSequenceLength = 16, Seed = 3, InitialAdapter = initialAdapter, Pooling = pooling,
        }).Fit(data);
    }

    [Fact]
    public void KeysShapesConfigAndMetadataAreWhatPeftWrites()
    {
        using var model = Fit();
        string directory = folder.Combine("export");
        model.SavePeftAdapter(directory);

        Directory.GetFiles(directory).Select(Path.GetFileName).Should().BeEquivalentTo(
            ["adapter_config.json", "adapter_model.safetensors", "README.md", "mlnet_lora.json"]);
        var (tensors, metadata) = SafetensorsFile.ReadHeader(Path.Combine(directory, "adapter_model.safetensors"));
        metadata.Should().Equal(new Dictionary<string, string> { ["format"] = "pt" });
        var expected = new Dictionary<string, long[]>
        {
            ["base_model.model.classifier.weight"] = [2, 32],
            ["base_model.model.classifier.bias"] = [2],
        };
        foreach (int layer in new[] { 0, 1 })
            foreach (string module in new[] { "query", "value" })
            {
                expected[$"base_model.model.bert.encoder.layer.{layer}.attention.self.{module}.lora_A.weight"] = [4, 32];
                expected[$"base_model.model.bert.encoder.layer.{layer}.attention.self.{module}.lora_B.weight"] = [32, 4];
            }
        tensors.Keys.Should().BeEquivalentTo(expected.Keys);
        foreach (var (key, shape) in expected)
        {
            tensors[key].Shape.Should().Equal(shape, key);
            tensors[key].DType.Should().Be("F32");
        }

        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "adapter_config.json")));
        var root = config.RootElement;
        root.GetProperty("peft_type").GetString().Should().Be("LORA");
        root.GetProperty("task_type").GetString().Should().Be("SEQ_CLS");
        root.GetProperty("r").GetInt32().Should().Be(4);
        root.GetProperty("lora_alpha").GetDouble().Should().Be(8);
        root.GetProperty("lora_dropout").GetDouble().Should().Be(0.05);
        root.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()).Should().Equal("query", "value");
        root.GetProperty("use_rslora").GetBoolean().Should().BeFalse();
        root.GetProperty("bias").GetString().Should().Be("none");
        root.GetProperty("fan_in_fan_out").GetBoolean().Should().BeFalse();
        root.GetProperty("modules_to_save").EnumerateArray().Select(e => e.GetString()).Should().Equal("classifier");
        // A base from a folder is named by its folder; tiny encoders made in memory (shared by SHA-256 with other tests) by their name.
        root.GetProperty("base_model_name_or_path").GetString().Should().Be(model.Settings.BaseEncoder.Source.Path ?? model.Settings.BaseEncoder.Name);
        root.GetProperty("rank_pattern").EnumerateObject().Should().BeEmpty();
        root.GetProperty("alpha_pattern").EnumerateObject().Should().BeEmpty();

        File.ReadAllText(Path.Combine(directory, "README.md")).Should().StartWith("---\nbase_model: ").And.Contain("library_name: peft");
        using var sidecar = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "mlnet_lora.json")));
        sidecar.RootElement.GetProperty("pooling").GetString().Should().Be("mean");
    }

    [Fact]
    public void ExportThenImportScoresTheSame()
    {
        using var model = Fit();
        string directory = folder.Combine("round-trip");
        model.SavePeftAdapter(directory);
        var ml = new MLContext(seed: 1);
        using var imported = LoraTextClassificationTransformer.LoadPeftAdapter(ml, directory, fixture.Encoder);
        imported.Settings.Pooling.Should().Be(PoolingStrategy.Mean, "mlnet_lora.json records the pooling");
        imported.Settings.Classes.Should().BeEquivalentTo(model.Settings.Classes);

        var test = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(40, seed: 9));
        var expected = model.Transform(test).GetColumn<float[]>("Score").ToArray();
        var unmerged = imported.Transform(test).GetColumn<float[]>("Score").ToArray();
        imported.MergeAdapters();
        var merged = imported.Transform(test).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < expected.Length; i++)
        {
            merged[i].Should().Equal(expected[i], "merged adapters compute W + ΔW from the same factors");
            unmerged[i].Zip(expected[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5);
        }
        imported.Transform(test).GetColumn<uint>("PredictedLabel").Should().Equal(model.Transform(test).GetColumn<uint>("PredictedLabel"));

        // Writing again needs overwrite.
        var again = () => imported.SavePeftAdapter(directory);
        again.Should().Throw<IOException>().WithMessage("*overwrite*");
        imported.SavePeftAdapter(directory, overwrite: true);
    }

    [Fact]
    public void AFitCanStartFromAnExportedAdapter()
    {
        using var first = Fit();
        string directory = folder.Combine("initial");
        first.SavePeftAdapter(directory);
        // A learning rate too small to move anything: the new fit must start (and so end) where the adapter was.
        using var resumed = Fit(targets: LoraTargetModules.Key, initialAdapter: directory, learningRate: 1e-30);
        resumed.Settings.Lora.TargetModules.Should().Be(LoraTargetModules.Query | LoraTargetModules.Value, "the adapter's config replaces the options'");
        using var fresh = Fit(learningRate: 1e-30);
        var texts = PeftImportTests.Texts;
        var expected = first.PredictProbabilities(texts);
        var actual = resumed.PredictProbabilities(texts);
        var untrained = fresh.PredictProbabilities(texts);
        for (int i = 0; i < texts.Length; i++)
        {
            actual[i].Zip(expected[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5);
            untrained[i].Zip(expected[i]).Should().Contain(p => Math.Abs(p.First - p.Second) > 1e-4);
        }
    }

    [Fact]
    public void AFitRefusesAnAdapterOfAnotherBase()
    {
        using var first = Fit();
        string directory = folder.Combine("other-base");
        first.SavePeftAdapter(directory);
        using var other = TinyEncoders.Create(seed: 31);   // the same shapes, other weights
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(20, 1)))
            .Transform(ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(20, 1)));
        var trainer = ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
        {
            Encoder = other, MaxEpochs = 1, MaxSequenceLength = 16, InitialAdapter = directory,
        });
        trainer.Invoking(t => t.Fit(data)).Should().Throw<InvalidOperationException>().WithMessage($"'{directory}' was trained on base encoder*SHA-256*exact base*");
    }

    [Fact]
    public void OnlyLoraModelsExport()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(20, 1)))
            .Transform(ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(20, 1)));
        using var head = ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
        {
            Encoder = fixture.Encoder, Mode = FineTuningMode.HeadOnly, MaxEpochs = 1, MaxSequenceLength = 16, Seed = 1,
        }).Fit(data);
        var act = () => head.SavePeftAdapter(folder.Combine("head-only"));
        act.Should().Throw<InvalidOperationException>().WithMessage("*HeadOnly*");
    }

    [Fact]
    public void EveryTargetModuleSetSurvivesAdapterConfigJson()
    {
        for (int bits = 1; bits <= (int)LoraTargetModules.All; bits++)
        {
            var targets = (LoraTargetModules)bits;
            string json = PeftAdapterConfig.Write(new LoraConfig { TargetModules = targets }, "base");
            PeftAdapterConfig.Read(json, "adapter_config.json", layerCount: 3).TargetModules.Should().Be(targets, json);
        }
        PeftAdapterConfig.TargetModulesJson(LoraTargetModules.All).ToJsonString()
            .Should().Be("""["query","key","value","intermediate.dense","output.dense"]""");
        PeftAdapterConfig.TargetModulesJson(LoraTargetModules.Query | LoraTargetModules.Output).ToJsonString()
            .Should().Contain("output\\\\.dense").And.StartWith("\"");
    }
}
