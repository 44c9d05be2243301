using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Adapters;
using MLNet.Lora.MultiAdapter;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.MultiAdapter;

public sealed class MultiRow
{
    public string Adapter { get; set; } = "";
    public string Text { get; set; } = "";
}

public sealed class MultiPrediction
{
    public float[] Score { get; set; } = [];
    public string PredictedLabel { get; set; } = "";
    public int PredictedLabelIndex { get; set; }
}

public class LoraAdapterSetTests(AdapterFilesFixture files) : IClassFixture<AdapterFilesFixture>
{
    private readonly MLContext ml = new(seed: 1);

    private LoraAdapterSet NewSet(params (string Name, string Path)[] adapters)
    {
        var set = new LoraAdapterSet(ml, files.Encoder);
        foreach (var (name, path) in adapters) set.Add(name, path);
        return set;
    }

    private (string Name, string Path)[] All =>
        [("sentiment", files.SentimentZip), ("sentiment-key", files.SentimentKeyZip), ("topics", files.TopicsFolder)];

    /// <summary>Texts of both tasks, each row for one of the adapters, shuffled.</summary>
    private static List<MultiRow> MixedRows(int count, int seed, params string[] adapters)
    {
        var texts = SyntheticData.Sentiment(count, seed).Concat(SyntheticData.Topics(count, seed + 1)).Select(r => r.Text).ToList();
        var random = new Random(seed);
        return texts.Select(t => new MultiRow { Adapter = adapters[random.Next(adapters.Length)], Text = t }).OrderBy(_ => random.Next()).ToList();
    }

    /// <summary>What each adapter's own single model scores for <paramref name="rows"/>' texts, by adapter.</summary>
    private Dictionary<string, (float[][] Scores, string[] Labels)> Alone(List<MultiRow> rows)
    {
        var data = ml.Data.LoadFromEnumerable(rows.Select(r => new TextRow { Text = r.Text }));
        var result = new Dictionary<string, (float[][], string[])>();
        foreach (var (name, path) in All)
        {
            var model = Directory.Exists(path)
                ? LoraTextClassificationTransformer.LoadPeftAdapter(ml, path, files.Encoder)
                : ml.Model.LoadWithAdapters(path, out _);
            var scored = model.Transform(data);
            var scores = scored.GetColumn<float[]>("Score").ToArray();
            var labels = Directory.Exists(path)
                ? scored.GetColumn<uint>("PredictedLabel").Select(k => ((LoraTextClassificationTransformer)model).Settings.Classes!.Values[k - 1]).ToArray()
                : scored.GetColumn<string>("PredictedLabel").ToArray();
            result[name] = (scores, labels);
            (model as IDisposable)?.Dispose();
        }
        return result;
    }

    private static void ShouldMatch(float[] actual, float[] expected, double tolerance = 1e-5)
    {
        actual.Should().HaveCount(expected.Length);
        for (int i = 0; i < expected.Length; i++) Math.Abs(actual[i] - expected[i]).Should().BeLessThan((float)tolerance);
    }

    [Fact]
    public void MixedBatchScoresEqualEachAdaptersOwnModel()
    {
        using var set = NewSet(All);
        set.InferenceBatchSize = 16;
        var rows = MixedRows(40, seed: 4, "sentiment", "sentiment-key", "topics");
        var alone = Alone(rows);
        var scored = ml.Transforms.LoraMultiAdapterClassification(set).Transform(ml.Data.LoadFromEnumerable(rows));
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        var labels = scored.GetColumn<string>("PredictedLabel").ToArray();
        var indices = scored.GetColumn<int>("PredictedLabelIndex").ToArray();
        for (int i = 0; i < rows.Count; i++)
        {
            var (expected, expectedLabels) = alone[rows[i].Adapter];
            ShouldMatch(scores[i], expected[i]);
            labels[i].Should().Be(expectedLabels[i]);
            scores[i][indices[i]].Should().Be(scores[i].Max());
        }
        scores.Select(s => s.Length).Distinct().Should().BeEquivalentTo([2, 3]);
    }

    [Fact]
    public void OneAdapterBatchIsExactlyTheSingleModel()
    {
        using var set = NewSet(All);
        var rows = MixedRows(40, seed: 5, "sentiment");
        var expected = Alone(rows)["sentiment"].Scores;
        var scores = ml.Transforms.LoraMultiAdapterClassification(set).Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score").ToArray();
        // Same batches, same operations (the routing unit test shows the layer's output is bit for bit the same; libtorch's
        // kernels may still round the last bit differently between two networks' buffers).
        for (int i = 0; i < rows.Count; i++) ShouldMatch(scores[i], expected[i], 1e-6);
    }

    [Fact]
    public void RoutingOfOneAdapterIsTheActiveAdapterPathAndGatheredRowsMatchIt()
    {
        random.manual_seed(2);
        using var layer = new LoraLinear(nn.Linear(6, 5));
        layer.AddAdapter("a", new LoraConfig { Rank = 2, Alpha = 4 });
        layer.AddAdapter("b", new LoraConfig { Rank = 3, Alpha = 3 });
        using (no_grad())
        {
            layer.LoraB("a").normal_();
            layer.LoraB("b").normal_();
        }
        layer.eval();
        using var input = randn(4, 3, 6);
        layer.SetActiveAdapter("a");
        using var onlyA = layer.forward(input);
        layer.SetActiveAdapter("b");
        using var onlyB = layer.forward(input);
        layer.SetActiveAdapter(null);

        Tensor Routed(params (string, Tensor?)[] groups)
        {
            using var _ = new AdapterRouting(groups).Use();
            return layer.forward(input);
        }
        using var whole = Routed(("a", null));
        whole.data<float>().ToArray().Should().Equal(onlyA.data<float>().ToArray());
        using var rowsA = tensor(new long[] { 0, 2 });
        using var rowsB = tensor(new long[] { 1, 3 });
        using var mixed = Routed(("a", rowsA), ("b", rowsB));
        mixed.index_select(0, rowsA).allclose(onlyA.index_select(0, rowsA), rtol: 0, atol: 1e-6).Should().BeTrue();
        mixed.index_select(0, rowsB).allclose(onlyB.index_select(0, rowsB), rtol: 0, atol: 1e-6).Should().BeTrue();
        AdapterRouting.Current.Should().BeNull();
    }

    [Fact]
    public void PredictionEngineScoresOneRowWithItsAdapter()
    {
        using var set = NewSet(All);
        var rows = MixedRows(6, seed: 6, "sentiment", "topics");
        var alone = Alone(rows);
        var scorer = ml.Transforms.LoraMultiAdapterClassification(set);
        using (var engine = ml.Model.CreatePredictionEngine<MultiRow, MultiPrediction>(scorer))
            for (int i = 0; i < rows.Count; i++)
            {
                var prediction = engine.Predict(rows[i]);
                ShouldMatch(prediction.Score, alone[rows[i].Adapter].Scores[i]);
                prediction.PredictedLabel.Should().Be(alone[rows[i].Adapter].Labels[i]);
            }
        // Disposing the engine disposed the transformer; the set is the caller's and still serves.
        set.Names.Should().HaveCount(3);
        scorer.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score").Should().HaveCount(rows.Count);
    }

    [Fact]
    public void AddingRemovingAndEvictingWhileFourThreadsScore()
    {
        using var set = NewSet(("topics", files.TopicsFolder));
        long largest = set.Statistics.LoadedBytes;   // the topic adapter adapts every layer: the larger
        set.Add("sentiment", files.SentimentZip);
        set.InferenceBatchSize = 8;
        var rows = MixedRows(24, seed: 7, "sentiment", "topics");
        var alone = Alone(rows);
        // Room for one adapter at a time (more only while a batch needs them): switching adapters evicts and reloads.
        set.MemoryLimitBytes = largest;
        var scorer = ml.Transforms.LoraMultiAdapterClassification(set);
        var data = ml.Data.LoadFromEnumerable(rows);
        var errors = new System.Collections.Concurrent.ConcurrentBag<Exception>();
        using var stop = new CancellationTokenSource();
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            try
            {
                for (int round = 0; round < 3; round++)
                {
                    var scores = scorer.Transform(data).GetColumn<float[]>("Score").ToArray();
                    for (int i = 0; i < rows.Count; i++) ShouldMatch(scores[i], alone[rows[i].Adapter].Scores[i]);
                }
            }
            catch (Exception e)
            {
                errors.Add(e);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        int changes = 0;
        while (threads.Any(t => t.IsAlive) || changes < 2)
        {
            set.Add("extra", files.SentimentKeyZip);
            set.Remove("extra");
            changes++;
        }
        threads.ForEach(t => t.Join());
        errors.Should().BeEmpty();
        set.Names.Should().Equal("sentiment", "topics");
        var statistics = set.Statistics;
        statistics.Evictions.Should().BeGreaterThan(0);
        statistics.Misses.Should().BeGreaterThan(0);
        statistics.Hits.Should().BeGreaterThan(0);
        statistics.LoadedBytes.Should().BeLessThanOrEqualTo(set.MemoryLimitBytes!.Value);
    }

    [Fact]
    public void RemovingAnAdapterLetsOpenCursorsFinishAndNewOnesRefuseIt()
    {
        using var set = NewSet(All);
        set.InferenceBatchSize = 4;
        var rows = MixedRows(40, seed: 8, "topics");
        var alone = Alone(rows);
        var scored = ml.Transforms.LoraMultiAdapterClassification(set).Transform(ml.Data.LoadFromEnumerable(rows));
        var scoreColumn = scored.Schema["Score"];
        using (var cursor = scored.GetRowCursor([scoreColumn]))
        {
            var getter = cursor.GetGetter<VBuffer<float>>(scoreColumn);
            cursor.MoveNext().Should().BeTrue();
            set.Remove("topics");
            set.Names.Should().NotContain("topics");
            int i = 0;
            VBuffer<float> value = default;
            do
            {
                getter(ref value);
                ShouldMatch(value.DenseValues().ToArray(), alone["topics"].Scores[i++]);
            } while (cursor.MoveNext());
            i.Should().Be(rows.Count);
        }
        var act = () => scored.GetColumn<float[]>("Score").ToArray();
        act.Should().Throw<KeyNotFoundException>().WithMessage("*'Adapter'*'topics'*'sentiment', 'sentiment-key'*");
        set.Statistics.LoadedCount.Should().Be(2);
    }

    [Fact]
    public void UnknownAdapterNamesTheRowsValueAndTheKnownNamesOrFallsBack()
    {
        using var set = NewSet(("sentiment", files.SentimentZip));
        var rows = new List<MultiRow> { new() { Adapter = "sentiment", Text = "the film was good" }, new() { Adapter = "sentimnet", Text = "the plot is bad" } };
        var data = ml.Data.LoadFromEnumerable(rows);
        var act = () => ml.Transforms.LoraMultiAdapterClassification(set).Transform(data).GetColumn<float[]>("Score").ToArray();
        act.Should().Throw<KeyNotFoundException>().WithMessage("Row 1: column 'Adapter' names an adapter the set does not have. No adapter named 'sentimnet'*adapters are: 'sentiment'.");

        var withFallback = ml.Transforms.LoraMultiAdapterClassification(set, fallbackAdapterName: "sentiment").Transform(data).GetColumn<float[]>("Score").ToArray();
        withFallback.Should().HaveCount(2);
        var missingFallback = () => ml.Transforms.LoraMultiAdapterClassification(set, fallbackAdapterName: "other");
        missingFallback.Should().Throw<KeyNotFoundException>().WithMessage("The fallback adapter*'other'*'sentiment'*");
    }

    [Fact]
    public void BadInputIsRefusedClearly()
    {
        using var set = NewSet(("sentiment", files.SentimentZip));
        var twice = () => set.Add("sentiment", files.SentimentKeyZip);
        twice.Should().Throw<ArgumentException>().WithMessage("*already has an adapter named 'sentiment'*");
        var missing = () => set.Add("x", Path.Combine(files.Root, "nothing.zip"));
        missing.Should().Throw<FileNotFoundException>().WithMessage("*nothing.zip*");
        var unknown = () => set.Remove("nope");
        unknown.Should().Throw<KeyNotFoundException>().WithMessage("*'nope'*'sentiment'*");

        long bytes = set.Statistics.LoadedBytes;
        var tooSmall = () => set.MemoryLimitBytes = bytes - 1;
        tooSmall.Should().Throw<ArgumentOutOfRangeException>().WithMessage($"*smaller than adapter 'sentiment' ({bytes} bytes)*");
        var zero = () => set.MemoryLimitBytes = 0;
        zero.Should().Throw<ArgumentOutOfRangeException>();
        set.MemoryLimitBytes = bytes;
        var larger = () => set.Add("topics", files.TopicsFolder);   // the topic adapter targets every layer: larger
        larger.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*'topics'*more than the set's memory bound*");

        var noAdapterColumn = () => ml.Transforms.LoraMultiAdapterClassification(set).GetOutputSchema(ml.Data.LoadFromEnumerable(new List<TextRow>()).Schema);
        noAdapterColumn.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*adapter column 'Adapter' is not in the data*");
    }

    [Fact]
    public void AdapterOverAnotherBaseIsRefused()
    {
        using var other = TinyEncoders.Create(seed: 8);
        using var set = new LoraAdapterSet(ml, other);
        var act = () => set.Add("sentiment", files.SentimentZip);
        act.Should().Throw<InvalidOperationException>().WithMessage($"*SHA-256 {files.Encoder.Identity.Sha256}*SHA-256 {other.Identity.Sha256}*");
        set.Names.Should().BeEmpty();
    }

    [Fact]
    public void LinearOfOneAdapterWithWeightOneIsThatAdapter()
    {
        using var set = NewSet(("sentiment", files.SentimentZip));
        set.Combine("copy", [("sentiment", 1.0)], AdapterCombination.Linear);
        var original = set.DeltaWeights("sentiment");
        var copy = set.DeltaWeights("copy");
        copy.Keys.Should().BeEquivalentTo(original.Keys);
        foreach (var (path, delta) in original) copy[path].allclose(delta, rtol: 0, atol: 1e-5).Should().BeTrue(path);

        var rows = MixedRows(10, seed: 9, "sentiment");
        var scored = ml.Transforms.LoraMultiAdapterClassification(set).Transform(ml.Data.LoadFromEnumerable(rows.Concat(rows.Select(r => new MultiRow { Adapter = "copy", Text = r.Text })).ToList()))
            .GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < rows.Count; i++) ShouldMatch(scored[rows.Count + i], scored[i]);
    }

    [Fact]
    public void ConcatenateOfTwoAdaptersIsTheSumOfTheirUpdates()
    {
        using var set = NewSet(("sentiment", files.SentimentZip), ("sentiment-key", files.SentimentKeyZip));
        set.Combine("both", [("sentiment", 1.0), ("sentiment-key", 1.0)], AdapterCombination.Concatenate);
        var a = set.DeltaWeights("sentiment");
        var b = set.DeltaWeights("sentiment-key");
        var both = set.DeltaWeights("both");
        both.Keys.Should().BeEquivalentTo(a.Keys.Union(b.Keys));   // query, key and value
        foreach (var (path, delta) in both)
        {
            var expected = a.TryGetValue(path, out var fromA) ? (b.TryGetValue(path, out var fromB) ? fromA.add(fromB) : fromA) : b[path];
            delta.allclose(expected, rtol: 0, atol: 1e-5).Should().BeTrue(path);
        }

        // Linear of the two at rank = sum of ranks is the same update, factored by SVD.
        set.Combine("sum", [("sentiment", 1.0), ("sentiment-key", 1.0)], AdapterCombination.Linear);
        foreach (var (path, delta) in set.DeltaWeights("sum")) delta.allclose(both[path], rtol: 0, atol: 1e-5).Should().BeTrue(path);
    }

    [Fact]
    public void TiesOnConstructedVectorsGivesThePapersResult()
    {
        using var t1 = tensor(new float[] { 1, -2, 3, 0.1f });
        using var t2 = tensor(new float[] { -3, -1, 2, 0.2f });
        using var t3 = tensor(new float[] { 0.5f, 4, -1, -0.1f });
        // No trimming: elected signs (-, +, +, +) from the sums (-1.5, 1, 4, 0.2); the agreeing entries averaged.
        ShouldMatch(AdapterArithmetic.Ties([t1, t2, t3], [1, 1, 1], density: 1).data<float>().ToArray(), [-3f, 4f, 2.5f, 0.15f], 1e-6);
        // Density 0.5 keeps the two largest of each: (0, -2, 3, 0), (-3, 0, 2, 0), (0, 4, -1, 0); sums (-3, 2, 4, 0).
        AdapterArithmetic.Ties([t1, t2, t3], [1, 1, 1], density: 0.5).data<float>().ToArray()
            .Should().Equal(-3f, 4f, 2.5f, 0f);
        // Weights scale each trimmed vector before the election: (2, -4, 6, 0.2) and (-3, -1, 2, 0.2) sum to (-1, -5, 8, 0.4).
        ShouldMatch(AdapterArithmetic.Ties([t1, t2], [2, 1], density: 1).data<float>().ToArray(), [-3f, -2.5f, 4f, 0.2f], 1e-6);
    }

    [Fact]
    public void CombinationsAreRefusedAcrossLabelSetsAndForUnknownParts()
    {
        using var set = NewSet(("sentiment", files.SentimentZip), ("topics", files.TopicsFolder));
        var labels = () => set.Combine("mix", [("sentiment", 0.5), ("topics", 0.5)], AdapterCombination.Ties);
        labels.Should().Throw<ArgumentException>().WithMessage("*'sentiment'*'topics'*different label sets*");
        var unknown = () => set.Combine("mix", [("sentiment", 0.5), ("nope", 0.5)], AdapterCombination.Linear);
        unknown.Should().Throw<KeyNotFoundException>().WithMessage("Cannot combine: No adapter named 'nope'*");
        var empty = () => set.Combine("mix", [], AdapterCombination.Linear);
        empty.Should().Throw<ArgumentException>();
        var nan = () => set.Combine("mix", [("sentiment", double.NaN)], AdapterCombination.Linear);
        nan.Should().Throw<ArgumentException>().WithMessage("*'sentiment'*finite*");
        set.Names.Should().Equal("sentiment", "topics");
    }
}
