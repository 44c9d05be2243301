using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Adapters;
using MLNet.Lora.Training;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Integration;

public class LoraTrainerTests(TinyEncoderFixture fixture) : IClassFixture<TinyEncoderFixture>
{
    private LoraTextClassificationTrainer.Options Options(FineTuningMode mode = FineTuningMode.Lora) => new()
    {
        Encoder = fixture.Encoder,
        Mode = mode,
        Rank = 4,
        Alpha = 8,
        MaxEpochs = 10,
        BatchSize = 16,
        LearningRate = mode == FineTuningMode.Full ? 3e-3 : 2e-2,
        MaxSequenceLength = 16,
        Seed = 42,
    };

    private static IEstimator<ITransformer> Pipeline(MLContext ml, LoraTextClassificationTrainer.Options options) =>
        ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

    private static (MLContext Ml, IDataView Train, IDataView Test) Data(int trainCount = 240)
    {
        var ml = new MLContext(seed: 1);
        return (ml, ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(trainCount, seed: 1)), ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(100, seed: 2)));
    }

    private static LoraTextClassificationTransformer LoraPart(ITransformer model) =>
        ((IEnumerable<ITransformer>)model).OfType<LoraTextClassificationTransformer>().Single();

    [Fact]
    public void LearnsASeparableTaskAndEvaluatesWithMLNetMetrics()
    {
        var (ml, train, test) = Data();
        var model = Pipeline(ml, Options()).Fit(train);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        metrics.MacroAccuracy.Should().BeGreaterThanOrEqualTo(0.9);
        metrics.LogLoss.Should().BeLessThan(0.5, "Score holds softmax probabilities");

        var lora = LoraPart(model);
        lora.TrainingHistory.Should().HaveCount(10);
        lora.TrainingHistory[^1].TrainingLoss.Should().BeLessThan(lora.TrainingHistory[0].TrainingLoss);
    }

    [Fact]
    public void LoraKeepsTheBaseBitIdenticalAndTrainsOnlyAdaptersAndHead()
    {
        var (ml, train, _) = Data(120);
        var original = fixture.Encoder.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var lora = LoraPart(Pipeline(ml, Options()).Fit(train));

        foreach (var (name, parameter) in lora.Model.Encoder.named_parameters())
        {
            if (name.Contains(".lora_")) continue;
            var baseName = name.Replace(".base_layer", "");
            parameter.Identical(original[baseName]).Should().BeTrue($"{name} is a frozen base weight");
            parameter.requires_grad.Should().BeFalse(name);
        }
        fixture.Encoder.Model.named_parameters().All(p => p.parameter.Identical(original[p.name])).Should().BeTrue("the caller's encoder is never touched");
        LoraInjector.AdapterState(lora.Model.Encoder).Values.Any(t => t.abs().sum().item<float>() > 0).Should().BeTrue("the adapters trained");
        lora.TrainedParameterCount.Should().Be(2 * 2 * (4 * 32 + 32 * 4) + (32 * 2 + 2));
    }

    [Fact]
    public void FullModeChangesTheBaseAndHeadOnlyChangesOnlyTheHead()
    {
        var (ml, train, _) = Data(120);
        var original = fixture.Encoder.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

        var full = LoraPart(Pipeline(ml, Options(FineTuningMode.Full)).Fit(train));
        full.Model.Encoder.named_parameters().Count(p => !p.parameter.Identical(original[p.name])).Should().BeGreaterThan(10);

        var head = LoraPart(Pipeline(ml, Options(FineTuningMode.HeadOnly)).Fit(train));
        head.Model.Encoder.named_parameters().All(p => p.parameter.Identical(original[p.name])).Should().BeTrue();
        LoraInjector.FindLoraLayers(head.Model.Encoder).Should().BeEmpty();
    }

    [Fact]
    public void MergedAdaptersPredictTheSameAsUnmerged()
    {
        var (ml, train, test) = Data(120);
        var lora = LoraPart(Pipeline(ml, Options()).Fit(train));
        lora.AdaptersMerged.Should().BeTrue("MergeAdaptersAfterTraining is on by default");
        string[] texts = ["the movie was very good", "the plot is quite awful", "a film"];
        var merged = lora.PredictProbabilities(texts);
        lora.UnmergeAdapters();
        var unmerged = lora.PredictProbabilities(texts);
        for (int i = 0; i < texts.Length; i++)
            merged[i].Zip(unmerged[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5);
    }

    [Fact]
    public void TheSameSeedGivesTheSamePredictions()
    {
        float[][] Run()
        {
            var (ml, train, test) = Data(120);
            var model = Pipeline(ml, Options()).Fit(train);
            return model.Transform(test).GetColumn<float[]>("Score").ToArray();
        }
        var first = Run();
        var second = Run();
        second.Should().BeEquivalentTo(first, o => o.WithStrictOrdering());
    }

    [Fact]
    public void PredictionEngineMatchesBatchScoring()
    {
        var (ml, train, test) = Data(120);
        var model = Pipeline(ml, Options()).Fit(train);
        var scored = model.Transform(test);
        var batch = scored.GetColumn<float[]>("Score").ToArray();
        var labels = scored.GetColumn<string>("PredictedLabel").ToArray();
        var engine = ml.Model.CreatePredictionEngine<TextRow, TextPrediction>(model);
        var rows = SyntheticData.Sentiment(100, seed: 2);
        for (int i = 0; i < rows.Count; i++)
        {
            var prediction = engine.Predict(rows[i]);
            prediction.Score.Zip(batch[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5);
            prediction.PredictedLabel.Should().Be(labels[i]);
        }
        engine.Predict(new TextRow { Text = "the film was really great" }).PredictedLabel.Should().Be("positive");
    }

    [Fact]
    public void OneEnginePerThreadGivesTheSameAnswersConcurrently()
    {
        var (ml, train, _) = Data(120);
        var model = Pipeline(ml, Options()).Fit(train);
        var rows = SyntheticData.Sentiment(200, seed: 3);
        var reference = ml.Model.CreatePredictionEngine<TextRow, TextPrediction>(model);
        var expected = rows.Select(r => reference.Predict(r).Score).ToArray();

        var results = new float[4][][];
        Parallel.For(0, 4, t =>
        {
            var engine = ml.Model.CreatePredictionEngine<TextRow, TextPrediction>(model);   // one engine per thread
            results[t] = rows.Select(r => engine.Predict(r).Score).ToArray();
        });
        foreach (var result in results) result.Should().BeEquivalentTo(expected, o => o.WithStrictOrdering());
    }

    [Fact]
    public void ThousandsOfPredictionsLeakNoTensors()
    {
        var (ml, train, _) = Data(120);
        var model = Pipeline(ml, Options()).Fit(train);
        var engine = ml.Model.CreatePredictionEngine<TextRow, TextPrediction>(model);
        var row = new TextRow { Text = "the film was really great" };
        for (int i = 0; i < 50; i++) engine.Predict(row);   // warm up

        long before = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 3000; i++) engine.Predict(row);
        long after = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        after.Should().Be(before, "every prediction disposes what it creates");
    }

    [Fact]
    public void CrossValidationWorks()
    {
        var (ml, train, _) = Data(150);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(train).Transform(train);
        var results = ml.MulticlassClassification.CrossValidate(data, ml.MulticlassClassification.Trainers.LoraTextClassification(Options()), numberOfFolds: 3);
        results.Should().HaveCount(3);
        results.Average(r => r.Metrics.MicroAccuracy).Should().BeGreaterThan(0.8);
    }

    [Fact]
    public void ReportsProgressCallsTheEpochHookAndCanBeCancelled()
    {
        var (ml, train, _) = Data(120);
        var reports = new List<LoraTrainingProgress>();
        var epochs = new List<int>();
        var options = Options();
        options.Progress = new SynchronousProgress<LoraTrainingProgress>(reports.Add);
        options.EpochEnded = context => { epochs.Add(context.Epoch); context.StopTraining = context.Epoch == 2; };
        options.ValidationFraction = 0.2;
        Pipeline(ml, options).Fit(train);
        epochs.Should().Equal(1, 2);
        reports.Where(r => r.IsEpochEnd).Should().HaveCount(2).And.OnlyContain(r => r.ValidationAccuracy != null);

        using var cancellation = new CancellationTokenSource();
        var cancelled = Options();
        cancelled.CancellationToken = cancellation.Token;
        cancelled.EpochEnded = _ => cancellation.Cancel();
        var act = () => Pipeline(ml, cancelled).Fit(train);
        act.Should().Throw<OperationCanceledException>();
    }

    [Fact]
    public void DivergenceEndsTrainingWithAClearMessage()
    {
        var (ml, train, _) = Data(120);
        var options = Options();
        options.LearningRate = 1e30;
        options.MaxGradientNorm = 0;
        var act = () => Pipeline(ml, options).Fit(train);
        act.Should().Throw<InvalidOperationException>().WithMessage("*diverged*learning rate*");
    }

    [Fact]
    public void PairTasksUseTheSecondTextColumn()
    {
        var ml = new MLContext(seed: 1);
        var random = new Random(5);
        string[] animals = ["cat", "dog", "bird"], colours = ["red", "blue", "green"];
        var rows = Enumerable.Range(0, 200).Select(_ =>
        {
            bool same = random.Next(2) == 0;
            string first = animals[random.Next(3)];
            return new PairRow { Text = $"the {first}", Second = same ? $"a {animals[random.Next(3)]}" : $"a {colours[random.Next(3)]}", Label = same ? "same" : "different" };
        }).ToList();
        var options = Options();
        options.SecondTextColumnName = "Second";
        var model = Pipeline(ml, options).Fit(ml.Data.LoadFromEnumerable(rows));
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(ml.Data.LoadFromEnumerable(rows)));
        metrics.MicroAccuracy.Should().BeGreaterThan(0.9);
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
