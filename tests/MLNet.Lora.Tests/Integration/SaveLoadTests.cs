using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Training;

namespace MLNet.Lora.Tests.Integration;

public class SaveLoadTests(TinyEncoderFixture fixture) : IClassFixture<TinyEncoderFixture>
{
    private LoraTextClassificationTrainer.Options Options(PretrainedEncoder encoder, FineTuningMode mode = FineTuningMode.Lora) => new()
    {
        Encoder = encoder,
        Mode = mode,
        Rank = 4,
        MaxEpochs = 3,
        BatchSize = 16,
        LearningRate = 1e-2,
        MaxSequenceLength = 16,
        Seed = 3,
    };

    private static (MLContext Ml, IDataView Train, ITransformer Model) Fit(LoraTextClassificationTrainer.Options options)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(120, seed: 1));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        return (ml, train, pipeline.Fit(train));
    }

    private string TempFile(string name) => Path.Combine(fixture.Root, $"{Guid.NewGuid():N}-{name}");

    [Theory]
    [InlineData(FineTuningMode.Lora)]
    [InlineData(FineTuningMode.Full)]
    [InlineData(FineTuningMode.HeadOnly)]
    public void SaveThenLoadPredictsTheSame(FineTuningMode mode)
    {
        var (ml, train, model) = Fit(Options(fixture.Encoder, mode));
        string path = TempFile("model.zip");
        ml.Model.SaveWithAdapters(model, train.Schema, path);

        var loaded = ml.Model.LoadWithAdapters(path, out var schema);
        schema.Select(c => c.Name).Should().Equal(train.Schema.Select(c => c.Name));
        var test = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(50, seed: 9));
        var expected = model.Transform(test).GetColumn<float[]>("Score").ToArray();
        var actual = loaded.Transform(test).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < expected.Length; i++)
            actual[i].Zip(expected[i]).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 1e-5);
        loaded.Transform(test).GetColumn<string>("PredictedLabel").Should().Equal(model.Transform(test).GetColumn<string>("PredictedLabel"));

        var engine = ml.Model.CreatePredictionEngine<TextRow, TextPrediction>(loaded);
        engine.Predict(new TextRow { Text = "the movie was very good" }).Score.Should().HaveCount(2);
    }

    private sealed class NumericRow
    {
        public string Text { get; set; } = "";
        public int Label { get; set; }
    }

    [Fact]
    public void NumericLabelsComeBackAsNumbersAfterLoading()
    {
        var ml = new MLContext(seed: 1);
        var rows = SyntheticData.Sentiment(120, seed: 1).Select(r => new NumericRow { Text = r.Text, Label = r.Label == "positive" ? 5 : -3 }).ToList();
        var train = ml.Data.LoadFromEnumerable(rows);
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(Options(fixture.Encoder)))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
            .Fit(train);
        string path = TempFile("numeric.zip");
        ml.Model.SaveWithAdapters(model, train.Schema, path);
        var loaded = ml.Model.LoadWithAdapters(path, out _);

        var expected = model.Transform(train).GetColumn<int>("PredictedLabel").ToArray();
        expected.Should().OnlyContain(v => v == 5 || v == -3);
        loaded.Transform(train).GetColumn<int>("PredictedLabel").Should().Equal(expected);
    }

    [Fact]
    public void TheAdapterFileIsUnderOnePercentOfTheBase()
    {
        // A base dominated by its embeddings, like real checkpoints (30522 x 32 embedding rows).
        using var big = TinyEncoders.CreateInFolder(Path.Combine(fixture.Root, "big"), seed: 11, vocabSize: 30522);
        var (ml, train, model) = Fit(Options(big));
        string path = TempFile("model.zip");
        ml.Model.SaveWithAdapters(model, train.Schema, path);
        long baseBytes = big.ParameterCount * sizeof(float);
        new FileInfo(path).Length.Should().BeLessThan(baseBytes / 100);
    }

    [Fact]
    public void MLNetsOwnSaveNamesSaveWithAdapters()
    {
        var (ml, train, model) = Fit(Options(fixture.Encoder));
        var act = () => ml.Model.Save(model, train.Schema, TempFile("plain.zip"));
        act.Should().Throw<Exception>().Which.ToString().Should().Contain("SaveWithAdapters");
    }

    [Fact]
    public void AFailedSaveLeavesTheExistingFileIntact()
    {
        var (ml, train, model) = Fit(Options(fixture.Encoder));
        string path = TempFile("model.zip");
        ml.Model.SaveWithAdapters(model, train.Schema, path);
        byte[] before = File.ReadAllBytes(path);

        var wrongSchema = ml.Data.LoadFromEnumerable(new[] { new { Other = "x", Label = "y" } }).Schema;
        var act = () => ml.Model.SaveWithAdapters(model, wrongSchema, path);
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*'Text'*");
        File.ReadAllBytes(path).Should().Equal(before);
        Directory.GetFiles(Path.GetDirectoryName(path)!, "*.tmp").Should().BeEmpty();
    }

    [Fact]
    public void LoadingFailsClearlyWhenTheBaseIsMissingOrDifferent()
    {
        string root = Path.Combine(fixture.Root, "movable");
        string path = TempFile("model.zip");
        var ml = SaveAndDrop();
        Directory.Delete(root, recursive: true);
        // A base that some live model uses is found in memory; once none does, only its recorded source can give it.
        string sha;
        using (var twin = TinyEncoders.Create(seed: 21)) sha = twin.Identity.Sha256;
        for (int i = 0; i < 5 && SharedBaseEncoder.TryGet(sha) is not null; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        var missing = () => ml.Model.LoadWithAdapters(path, out _);
        missing.Should().Throw<InvalidOperationException>().WithMessage("*tiny-bert-21*could not be loaded*baseEncoder*");

        using var other = TinyEncoders.Create(seed: 22);
        var different = () => ml.Model.LoadWithAdapters(path, out _, baseEncoder: other);
        different.Should().Throw<InvalidOperationException>().WithMessage("*SHA-256*exact base*");

        using var same = TinyEncoders.Create(seed: 21);
        var loaded = ml.Model.LoadWithAdapters(path, out _, baseEncoder: same);
        loaded.Should().NotBeNull("the same weights under another identity are accepted");

        MLContext SaveAndDrop()
        {
            using var encoder = TinyEncoders.CreateInFolder(root, seed: 21);
            var (ml, train, model) = Fit(Options(encoder));
            ml.Model.SaveWithAdapters(model, train.Schema, path);
            return ml;
        }
    }

    [Fact]
    public void LoadingAFileThatIsNotAModelSaysSo()
    {
        var ml = new MLContext();
        string path = TempFile("notes.zip");
        File.WriteAllText(path, "not a zip");
        var act = () => ml.Model.LoadWithAdapters(path, out _);
        act.Should().Throw<InvalidDataException>().WithMessage("*not a model saved with SaveWithAdapters*");
    }
}
