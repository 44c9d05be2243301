using Microsoft.ML;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Training;

namespace MLNet.Lora.Tests.MultiAdapter;

/// <summary>
/// Three small adapters over one tiny encoder, fitted once per test class: two sentiment adapters (zips, one label set,
/// different target modules) and a three-topic adapter saved as a PEFT folder (other rank, modules and pooling).
/// </summary>
public sealed class AdapterFilesFixture : IDisposable
{
    private readonly Integration.TinyEncoderFixture tiny = new();

    public AdapterFilesFixture()
    {
        var ml = new MLContext(seed: 1);
        SentimentZip = Path.Combine(Root, "sentiment.zip");
        Save(ml, Fit(ml, SyntheticData.Sentiment(120, seed: 1), 4, LoraTargetModules.Query | LoraTargetModules.Value, PoolingStrategy.Mean, seed: 3), SentimentZip);
        SentimentKeyZip = Path.Combine(Root, "sentiment-key.zip");
        Save(ml, Fit(ml, SyntheticData.Sentiment(120, seed: 2), 2, LoraTargetModules.Query | LoraTargetModules.Key, PoolingStrategy.Mean, seed: 5), SentimentKeyZip);
        TopicsFolder = Path.Combine(Root, "topics-peft");
        var topics = Fit(ml, SyntheticData.Topics(120, seed: 3), 3, LoraTargetModules.All, PoolingStrategy.Cls, seed: 7);
        ((IEnumerable<ITransformer>)topics).OfType<LoraTextClassificationTransformer>().Single().SavePeftAdapter(TopicsFolder);
    }

    public string Root => tiny.Root;

    public PretrainedEncoder Encoder => tiny.Encoder;

    /// <summary>Sentiment, rank 4 on query and value, mean pooling.</summary>
    public string SentimentZip { get; }

    /// <summary>Sentiment, rank 2 on query and key, mean pooling.</summary>
    public string SentimentKeyZip { get; }

    /// <summary>Three topics, rank 3 on every linear layer, CLS pooling; a PEFT folder.</summary>
    public string TopicsFolder { get; }

    private ITransformer Fit(MLContext ml, List<TextRow> rows, int rank, LoraTargetModules modules, PoolingStrategy pooling, int seed)
    {
        var options = new LoraTextClassificationTrainer.Options
        {
            Encoder = Encoder,
            Rank = rank,
            TargetModules = modules,
            Pooling = pooling,
            MaxEpochs = 3,
            BatchSize = 16,
            LearningRate = 1e-2,
            MaxSequenceLength = 16,
            Seed = seed,
        };
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var data = ml.Data.LoadFromEnumerable(rows);
        return pipeline.Fit(data);
    }

    private static void Save(MLContext ml, ITransformer model, string path) =>
        ml.Model.SaveWithAdapters(model, ml.Data.LoadFromEnumerable(new List<TextRow>()).Schema, path);

    public void Dispose() => tiny.Dispose();
}
