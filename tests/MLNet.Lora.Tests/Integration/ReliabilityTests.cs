using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Forgetting;
using TorchSharp;
using TorchSharp.PyBridge;

namespace MLNet.Lora.Tests.Integration;

/// <summary>
/// The defects found by using the package as a hostile but realistic user would (issue 10): each test failed before
/// its fix.
/// </summary>
public class ReliabilityTests(TinyEncoderFixture fixture) : IClassFixture<TinyEncoderFixture>
{
    private LoraTextClassificationTrainer.Options Options(PretrainedEncoder? encoder = null) => new()
    {
        Encoder = encoder ?? fixture.Encoder,
        Rank = 4,
        MaxEpochs = 2,
        BatchSize = 16,
        LearningRate = 1e-2,
        MaxSequenceLength = 16,
        InferenceBatchSize = 8,
        Seed = 3,
    };

    private static (MLContext Ml, IDataView Train, ITransformer Model) Fit(LoraTextClassificationTrainer.Options options, IEnumerable<TextRow>? rows = null)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(rows ?? SyntheticData.Sentiment(120, seed: 1));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        return (ml, train, pipeline.Fit(train));
    }

    private string TempFile(string name) => Path.Combine(fixture.Root, $"{Guid.NewGuid():N}-{name}");

    private static float[][] Scores(MLContext ml, ITransformer model, IEnumerable<TextRow> rows) =>
        model.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score").ToArray();

    private static LoraTextClassificationTransformer Lora(ITransformer model) =>
        ((IEnumerable<ITransformer>)model).OfType<LoraTextClassificationTransformer>().Single();

    // 1. Disposing a PredictionEngine disposes the model it was built on (ML.NET's OwnsTransformer): the model must survive.
    [Fact]
    public void TheModelSurvivesTheEnginesBuiltOnIt()
    {
        var (ml, _, model) = Fit(Options());
        var row = new TextRow { Text = "the film was really great" };
        float[] first;
        using (var engine = ml.Model.CreatePredictionEngine<TextRow, TextPrediction>(model)) first = engine.Predict(row).Score;
        using (var engine = ml.Model.CreatePredictionEngine<TextRow, TextPrediction>(model)) engine.Predict(row).Score.Should().Equal(first);
        Scores(ml, model, [row])[0].Should().Equal(first);

        // An explicit Dispose frees the network; the next use rebuilds it from the kept weights and predicts the same.
        var lora = Lora(model);
        lora.Dispose();
        lora.Dispose();
        Scores(ml, model, [row])[0].Should().Equal(first);
        lora.AdaptersMerged.Should().BeTrue();
    }

    private sealed class IdRow
    {
        public int Id { get; set; }
        public string Text { get; set; } = "";
        public string Label { get; set; } = "";
    }

    private sealed class IdScore
    {
        public int Id { get; set; }
        public string Text { get; set; } = "";
        public float[] Score { get; set; } = [];
    }

    /// <summary>A generator that can be enumerated once, like a queue being drained.</summary>
    private sealed class OnceOnly<T>(IEnumerable<T> items) : IEnumerable<T>
    {
        private int enumerations;

        public IEnumerator<T> GetEnumerator() => Interlocked.Increment(ref enumerations) == 1
            ? items.GetEnumerator()
            : throw new InvalidOperationException("This stream can be read only once.");

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    // 2. A one-shot input stream: read once, every row keeps its own score and its own pass-through values.
    [Fact]
    public void AOneShotStreamIsReadOnceAndEveryRowKeepsItsScore()
    {
        var (ml, _, model) = Fit(Options());
        var texts = SyntheticData.Sentiment(300, seed: 5).Select((r, i) => i % 7 == 0 ? r.Text + " and the story was boring and not good" : r.Text).ToList();
        var rows = new OnceOnly<IdRow>(texts.Select((t, i) => new IdRow { Id = i, Text = t, Label = "positive" }));
        var scored = ml.Data.CreateEnumerable<IdScore>(model.Transform(ml.Data.LoadFromEnumerable(rows)), reuseRowObject: false).ToList();

        scored.Select(s => s.Id).Should().Equal(Enumerable.Range(0, texts.Count));
        scored.Select(s => s.Text).Should().Equal(texts);
        var expected = Lora(model).PredictProbabilities(texts);
        // Batches are composed differently (so padded differently): equal up to float rounding.
        for (int i = 0; i < texts.Count; i++)
            scored[i].Score.Zip(expected[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5, $"row {i} must carry its own score");
    }

    // 3. Validation data keyed by its own MapValueToKey numbers the classes differently: refused before training.
    [Fact]
    public void ValidationKeysOfAnotherMapperAreRefused()
    {
        var ml = new MLContext(1);
        var trainRows = SyntheticData.Topics(60, seed: 1);
        var train = ml.Data.LoadFromEnumerable(trainRows);
        var mapper = ml.Transforms.Conversion.MapValueToKey("Label").Fit(train);
        var trainer = ml.MulticlassClassification.Trainers.LoraTextClassification(Options());

        // The same classes first seen in another order.
        var reordered = ml.Data.LoadFromEnumerable(trainRows.OrderByDescending(r => r.Label));
        var ownKeys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(reordered).Transform(reordered);
        FluentActions.Invoking(() => trainer.Fit(mapper.Transform(train), ownKeys))
            .Should().Throw<ArgumentException>().WithMessage("*validation data's label column 'Label'*keys stand for*mapper fitted on the training data*");

        // One class more.
        var extra = ml.Data.LoadFromEnumerable(trainRows.Append(new TextRow { Text = "the space planet", Label = "science" }));
        var extraKeys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(extra).Transform(extra);
        FluentActions.Invoking(() => trainer.Fit(mapper.Transform(train), extraKeys))
            .Should().Throw<ArgumentException>().WithMessage("*it has 4 keys and the training data 3*");

        // The training data's own mapper is accepted.
        using var fitted = trainer.Fit(mapper.Transform(train), mapper.Transform(reordered));
        fitted.TrainingHistory.Should().NotBeEmpty();
    }

    private static byte[] Rewrite(byte[] zip, Func<string, byte[], byte[]> change)
    {
        using var input = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        var output = new MemoryStream();
        using (var archive = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var entry in input.Entries)
            {
                using var source = entry.Open();
                using var content = new MemoryStream();
                source.CopyTo(content);
                using var target = archive.CreateEntry(entry.FullName).Open();
                target.Write(change(entry.FullName, content.ToArray()));
            }
        }
        return output.ToArray();
    }

    // 4. Damaged files are refused, naming the file and the entry.
    [Fact]
    public void EveryDamagedEntryIsRefusedByName()
    {
        var (ml, train, model) = Fit(Options());
        string path = TempFile("model.zip");
        ml.Model.SaveWithAdapters(model, train.Schema, path);
        byte[] good = File.ReadAllBytes(path);
        string[] entries;
        using (var zip = ZipFile.OpenRead(path)) entries = zip.Entries.Select(e => e.FullName).ToArray();
        entries.Should().Contain(["mlnet-lora.json", "input-schema.zip", "part-1/weights.safetensors", "part-1/settings.json"]);

        foreach (string damaged in entries)
        {
            // A flipped byte in the middle of the entry's content, re-zipped with a matching CRC: only the manifest's
            // SHA-256 (or, for the manifest itself, its parser) can tell.
            byte[] bytes = Rewrite(good, (name, content) =>
            {
                if (name != damaged) return content;
                var copy = content.ToArray();
                if (name == "mlnet-lora.json") copy[0] = (byte)'X'; else copy[copy.Length / 2] ^= 0x10;
                return copy;
            });
            string target = TempFile($"damaged.zip");
            File.WriteAllBytes(target, bytes);
            FluentActions.Invoking(() => ml.Model.LoadWithAdapters(target, out _))
                .Should().Throw<InvalidDataException>($"entry {damaged} is damaged")
                .Where(e => e.Message.Contains(target) && e.Message.Contains($"'{damaged}'"), $"the error names the file and the entry {damaged}");
        }
    }

    // 4, and version 1: a file without hashes (as version 1 wrote them) still loads, but non-finite weights are refused.
    [Fact]
    public void Version1FilesLoadAndNonFiniteWeightsAreRefused()
    {
        var (ml, train, model) = Fit(Options());
        string path = TempFile("model.zip");
        ml.Model.SaveWithAdapters(model, train.Schema, path);
        byte[] AsVersion1(bool poison) => Rewrite(File.ReadAllBytes(path), (name, content) =>
        {
            if (name == "mlnet-lora.json")
            {
                var manifest = JsonNode.Parse(content)!.AsObject();
                manifest["FormatVersion"] = 1;
                manifest.Remove("Sha256");
                return Encoding.UTF8.GetBytes(manifest.ToJsonString());
            }
            if (name.EndsWith("weights.safetensors", StringComparison.Ordinal) && poison)
            {
                using var scope = torch.NewDisposeScope();
                var weights = Safetensors.LoadStateDict(new MemoryStream(content));
                weights["classifier.weight"][0, 0] = torch.tensor(float.NaN);
                var output = new MemoryStream();
                Safetensors.SaveStateDict(output, weights);
                return output.ToArray();
            }
            return content;
        });

        string v1 = TempFile("v1.zip");
        File.WriteAllBytes(v1, AsVersion1(poison: false));
        var loaded = ml.Model.LoadWithAdapters(v1, out _);
        var rows = SyntheticData.Sentiment(20, seed: 4);
        Scores(ml, loaded, rows).Should().BeEquivalentTo(Scores(ml, model, rows), o => o.WithStrictOrdering());

        string nan = TempFile("nan.zip");
        File.WriteAllBytes(nan, AsVersion1(poison: true));
        FluentActions.Invoking(() => ml.Model.LoadWithAdapters(nan, out _))
            .Should().Throw<InvalidDataException>().WithMessage("*'classifier.weight' in '*nan.zip', entry 'part-1/weights.safetensors' holds NaN or infinite values*");
    }

    // 5. Saving a disposed model writes a complete file (the model stays whole after Dispose); a failed save keeps the old file.
    [Fact]
    public void ADisposedModelSavesWholeAndAFailedSaveKeepsTheOldFile()
    {
        var (ml, train, model) = Fit(Options());
        var rows = SyntheticData.Sentiment(20, seed: 4);
        var expected = Scores(ml, model, rows);
        Lora(model).Dispose();
        string path = TempFile("disposed.zip");
        ml.Model.SaveWithAdapters(model, train.Schema, path);
        Scores(ml, ml.Model.LoadWithAdapters(path, out _), rows).Should().BeEquivalentTo(expected, o => o.WithStrictOrdering());

        // A target that is read-only is refused, unchanged, with its mode kept.
        if (OperatingSystem.IsWindows()) return;
        byte[] before = File.ReadAllBytes(path);
        const UnixFileMode readOnly = UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        File.SetUnixFileMode(path, readOnly);
        FluentActions.Invoking(() => ml.Model.SaveWithAdapters(model, train.Schema, path))
            .Should().Throw<UnauthorizedAccessException>().WithMessage($"*'{path}'*read-only*");
        File.ReadAllBytes(path).Should().Equal(before);
        File.GetUnixFileMode(path).Should().Be(readOnly);
    }

    // Smaller ones: the temporary file of a killed save is cleaned by the next save; an unwritable folder names the user's path.
    [Fact]
    public void StaleTemporaryFilesAreCleanedAndErrorsNameTheUsersPath()
    {
        var (ml, train, model) = Fit(Options());
        string path = TempFile("model.zip");
        string stale = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(stale, "half a model");
        File.SetLastWriteTimeUtc(stale, DateTime.UtcNow - TimeSpan.FromHours(1));
        ml.Model.SaveWithAdapters(model, train.Schema, path);
        File.Exists(stale).Should().BeFalse();
        File.Exists(path).Should().BeTrue();

        if (OperatingSystem.IsLinux())
        {
            const string unwritable = "/proc/model.zip";   // /proc refuses new files, even to root
            var error = FluentActions.Invoking(() => ml.Model.SaveWithAdapters(model, train.Schema, unwritable)).Should().Throw<Exception>().Which;
            (error is IOException or UnauthorizedAccessException).Should().BeTrue();
            error.Message.Should().StartWith($"Cannot write '{unwritable}'").And.NotContain(".tmp");
        }
    }

    // 6. A lone UTF-16 surrogate in one row: replaced by U+FFFD in training and scoring; no other row is lost.
    [Fact]
    public void ALoneSurrogateIsReplacedAndNoRowIsLost()
    {
        var rows = SyntheticData.Sentiment(120, seed: 1);
        rows[5].Text = "the film was \uD800 great";
        var (ml, _, model) = Fit(Options(), rows);

        var test = SyntheticData.Sentiment(1001, seed: 8);
        test[500].Text = "the plot \uDC00 is awful";
        var scores = Scores(ml, model, test);
        scores.Should().HaveCount(1001);
        scores[500].Should().Equal(Lora(model).PredictProbabilities(["the plot \uFFFD is awful"])[0]);
    }

    // 7. A maximum length beyond the encoder's positions is refused when the base is known, naming the option.
    [Fact]
    public void AMaxSequenceLengthBeyondThePositionsIsRefused()
    {
        var options = Options();
        options.MaxSequenceLength = 513;   // the tiny encoder has 64 positions
        FluentActions.Invoking(() => Fit(options))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*MaxSequenceLength is 513*64 positions (max_position_embeddings)*64 or less*");
    }

    // 8. Loaded models share their base (each load adds only its adapters) and are reclaimed once unreachable.
    [Fact]
    public void LoadedModelsShareTheBaseWhichIsReclaimedWithTheLastOne()
    {
        using var encoder = TinyEncoders.CreateInFolder(fixture.Root, seed: 4242);   // a base no other test uses
        FitSaveAndLoadTen(encoder);
        for (int i = 0; i < 5 && SharedBaseEncoder.IsLive(encoder.Identity.Sha256); i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        SharedBaseEncoder.IsLive(encoder.Identity.Sha256).Should().BeFalse("the shared base is reclaimed once no model uses it");
    }

    /// <summary>In a frame of its own, so that no local of the test keeps a model alive.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private void FitSaveAndLoadTen(PretrainedEncoder encoder)
    {
        var (ml, train, model) = Fit(Options(encoder));
        string path = TempFile("model.zip");
        ml.Model.SaveWithAdapters(model, train.Schema, path);
        var loaded = Enumerable.Range(0, 10).Select(i => Lora(ml.Model.LoadWithAdapters(path, out _))).ToList();
        SharedBaseEncoder.IsLive(encoder.Identity.Sha256).Should().BeTrue();
        var shared = Lora(model).BaseEncoder;
        loaded.Should().OnlyContain(l => shared.Shares(l.Model.Encoder) && l.Settings.BaseEncoder == encoder.Identity);
        // The frozen base stays bit-identical: the user's encoder and the shared weights hash as before the fit.
        PretrainedEncoder.ComputeWeightsSha256(encoder.Model).Should().Be(encoder.Identity.Sha256);
        using (var view = shared.CreateEncoder(frozen: true)) PretrainedEncoder.ComputeWeightsSha256(view).Should().Be(encoder.Identity.Sha256);
    }

    // A Concatenate'd text vector is named as a vector, with what to do instead.
    [Fact]
    public void ATextVectorIsNamedAsAVector()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(20, 1).Select(r => new PairRow { Text = r.Text, Second = r.Text, Label = r.Label }));
        var pipeline = ml.Transforms.Concatenate("Both", "Text", "Second")
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options { Encoder = fixture.Encoder, TextColumnName = "Both" }));
        FluentActions.Invoking(() => pipeline.Fit(data))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*'Both' must be a single text (string) value per row, but it is a vector of String*do not Concatenate*");
    }

    // A forgetting task too small to measure drift on is named.
    [Fact]
    public void ATooSmallForgettingTaskIsNamed()
    {
        var (ml, _, model) = Fit(Options());
        var lora = Lora(model);
        var reference = ComparedModel.FromEncoder(fixture.Encoder);
        var candidate = ComparedModel.FromTransformer(lora);
        FluentActions.Invoking(() => InternalDriftMeter.Compare(reference, candidate, "tiny-task", ["the film"], 16, 8, 0.1, CancellationToken.None))
            .Should().Throw<ArgumentException>().WithMessage("Task 'tiny-task' leaves 1 example(s)*");
    }
}
