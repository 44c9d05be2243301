using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace MLNet.Lora.Tests.Integration;

public class TrainerValidationTests(TinyEncoderFixture fixture) : IClassFixture<TinyEncoderFixture>
{
    private LoraTextClassificationTrainer.Options Options() => new()
    {
        Encoder = fixture.Encoder,
        Rank = 2,
        MaxEpochs = 1,
        BatchSize = 8,
        MaxSequenceLength = 16,
        Seed = 1,
    };

    private static IDataView Keyed(MLContext ml, IEnumerable<TextRow> rows)
    {
        var data = ml.Data.LoadFromEnumerable(rows);
        return ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
    }

    private Action Fitting(IDataView data, Action<LoraTextClassificationTrainer.Options>? change = null)
    {
        var options = Options();
        change?.Invoke(options);
        return () => new MLContext(1).MulticlassClassification.Trainers.LoraTextClassification(options).Fit(data);
    }

    [Fact]
    public void AMissingTextColumnIsNamed()
    {
        var ml = new MLContext(1);
        var data = Keyed(ml, SyntheticData.Sentiment(20, 1));
        Fitting(data, o => o.TextColumnName = "Review").Should().Throw<ArgumentOutOfRangeException>().WithMessage("*text column 'Review' is not in the data*");
    }

    [Fact]
    public void AMistypedTextColumnIsNamed()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(new[] { new { Text = 1.5f, Label = "a" }, new { Text = 2f, Label = "b" } });
        data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        Fitting(data).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*text column 'Text' must be a single text (string) value*");
    }

    [Fact]
    public void ALabelThatIsNotAKeySaysUseMapValueToKey()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(20, 1));
        Fitting(data).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*'Label' must be a key type*MapValueToKey(\"Label\")*");
        var pipeline = ml.Transforms.CopyColumns("Copy", "Text").Append(ml.MulticlassClassification.Trainers.LoraTextClassification(Options()));
        var viaPipeline = () => pipeline.Fit(data);
        viaPipeline.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*MapValueToKey*");
    }

    [Fact]
    public void AnEmptyTrainingSetIsRejected()
    {
        var ml = new MLContext(1);
        var keyed = Keyed(ml, SyntheticData.Sentiment(20, 1));
        var empty = ml.Data.SkipRows(keyed, 1000);
        Fitting(empty).Should().Throw<ArgumentException>().WithMessage("*no rows with a label in column 'Label'*");
    }

    [Fact]
    public void ASingleClassIsRejected()
    {
        var ml = new MLContext(1);
        var data = Keyed(ml, SyntheticData.Sentiment(40, 1).Where(r => r.Label == "positive"));
        Fitting(data).Should().Throw<ArgumentException>().WithMessage("*single class*");
    }

    [Fact]
    public void NullAndOverlongTextsAreHandled()
    {
        var ml = new MLContext(1);
        var messages = new List<string>();
        ml.Log += (_, e) => messages.Add(e.Message);
        var rows = SyntheticData.Sentiment(30, 1);
        rows[0].Text = null!;
        rows[1].Text = "";
        rows[2].Text = string.Join(' ', Enumerable.Repeat("the movie was very good", 20));
        var data = Keyed(ml, rows);
        var model = ml.MulticlassClassification.Trainers.LoraTextClassification(Options()).Fit(data);
        messages.Should().Contain(m => m.Contains("1 of 30 training texts were longer than 16 tokens and were truncated"));
        model.Transform(data).GetColumn<float[]>("Score").Should().HaveCount(30).And.OnlyContain(s => s.All(float.IsFinite));
    }

    [Theory]
    [InlineData(nameof(LoraTextClassificationTrainer.Options.Rank), 0)]
    [InlineData(nameof(LoraTextClassificationTrainer.Options.Alpha), 0)]
    [InlineData(nameof(LoraTextClassificationTrainer.Options.BatchSize), 0)]
    [InlineData(nameof(LoraTextClassificationTrainer.Options.MaxEpochs), -1)]
    public void NonPositiveSettingsAreNamed(string option, int value)
    {
        var options = Options();
        typeof(LoraTextClassificationTrainer.Options).GetField(option)!.SetValue(options, option == "Alpha" ? (object)(double)value : value);
        var act = () => new MLContext(1).MulticlassClassification.Trainers.LoraTextClassification(options);
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage($"*Options.{option}*");
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(-0.1)]
    public void AnAttentionDropoutOutsideZeroToOneIsNamed(double value)
    {
        var options = Options();
        options.AttentionDropout = value;
        var act = () => new MLContext(1).MulticlassClassification.Trainers.LoraTextClassification(options);
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Options.AttentionDropout*");
    }

    [Fact]
    public void AttentionDropoutChangesTheTrainedCopyNotTheSharedEncoder()
    {
        var ml = new MLContext(1);
        var data = Keyed(ml, SyntheticData.Sentiment(20, 1));
        double before = fixture.Encoder.Model.AttentionDropout;
        var options = Options();
        options.AttentionDropout = before / 2;
        using var model = ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(data);
        fixture.Encoder.Model.AttentionDropout.Should().Be(before);
    }

    [Fact]
    public void GradientCheckpointingTrainsTheSameModel()
    {
        var ml = new MLContext(1);
        var data = Keyed(ml, SyntheticData.Sentiment(40, 1));
        float[][] Scores(bool checkpoint)
        {
            var options = Options();
            options.GradientCheckpointing = checkpoint;
            using var model = ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(data);
            return model.Transform(data).GetColumn<float[]>("Score").ToArray();
        }
        var plain = Scores(false);
        var checkpointed = Scores(true);
        for (int i = 0; i < plain.Length; i++)
            checkpointed[i].Should().Equal(plain[i], (a, b) => Math.Abs(a - b) < 1e-4, "checkpointing changes memory, not the gradients");
    }

    [Fact]
    public void ARankLargerThanTheLayerIsNamed()
    {
        var ml = new MLContext(1);
        var data = Keyed(ml, SyntheticData.Sentiment(20, 1));
        Fitting(data, o => o.Rank = 64).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Rank 64 exceeds*");
    }
}
