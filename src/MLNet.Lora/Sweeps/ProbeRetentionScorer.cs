using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// A simple forgetting score for sweeps: how much accuracy a frozen linear probe for another task loses when it reads the
/// fine-tuned encoder's features instead of the base encoder's.
/// </summary>
/// <remarks>
/// <para>
/// At construction a linear probe (ML.NET's L-BFGS maximum entropy) is trained on the base encoder's pooled features of
/// half of a reference task's rows and scored on the other half: <see cref="BaseAccuracy"/>. <see cref="Score"/> feeds the
/// held-out half through the fine-tuned encoder (its adapters in place) and scores the same, unchanged probe: the drop
/// in accuracy is the forgetting, in accuracy units (0.05 = 5 points; negative when the adapters happen to help).
/// </para>
/// <para>
/// It measures representation drift as seen by a reader of the old features, which is what breaks other consumers of
/// a shared encoder. The full set of forgetting metrics (CKA, attention divergence, accuracy matrices) lives in
/// <c>MLNet.Lora.Forgetting</c>; any of them plugs into <see cref="LoraSweepOptions.ForgettingScorer"/> the same way.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// var probe = ProbeRetentionScorer.Fit(ml, encoder, agNews, maxRows: 600, maxSequenceLength: 64);
/// var options = new LoraSweepOptions { ForgettingScorer = probe.Score, ... };
/// </code>
/// </example>
public sealed class ProbeRetentionScorer
{
    private readonly MLContext ml;
    private readonly ITransformer probe;
    private readonly string[] testTexts;
    private readonly string[] testLabels;
    private readonly int maxSequenceLength;
    private readonly PoolingStrategy pooling;

    private ProbeRetentionScorer(MLContext ml, ITransformer probe, string[] testTexts, string[] testLabels, int maxSequenceLength,
        PoolingStrategy pooling, double baseAccuracy, int trainRows)
    {
        this.ml = ml;
        this.probe = probe;
        this.testTexts = testTexts;
        this.testLabels = testLabels;
        this.maxSequenceLength = maxSequenceLength;
        this.pooling = pooling;
        BaseAccuracy = baseAccuracy;
        TrainRows = trainRows;
    }

    /// <summary>The probe's accuracy on the held-out reference rows with the base encoder's features.</summary>
    public double BaseAccuracy { get; }

    /// <summary>Reference rows the probe was trained on.</summary>
    public int TrainRows { get; }

    /// <summary>Held-out reference rows scored each time.</summary>
    public int TestRows => testTexts.Length;

    /// <summary>
    /// Trains the probe on <paramref name="baseEncoder"/>'s features of a reference task: <paramref name="referenceTask"/>
    /// with a text and a label column (any label type), of which at most <paramref name="maxRows"/> rows are used, split
    /// in half (seeded) into probe training and scoring rows.
    /// </summary>
    public static ProbeRetentionScorer Fit(MLContext mlContext, PretrainedEncoder baseEncoder, IDataView referenceTask,
        string textColumnName = DefaultColumnNames.Text, string labelColumnName = DefaultColumnNames.Label,
        int maxRows = 1000, int maxSequenceLength = 128, PoolingStrategy pooling = PoolingStrategy.Mean, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(baseEncoder);
        ArgumentNullException.ThrowIfNull(referenceTask);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 4);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequenceLength, 8);

        var (texts, labels) = ReadRows(referenceTask, textColumnName, labelColumnName);
        var order = Enumerable.Range(0, texts.Count).ToArray();
        new Random(seed).Shuffle(order);
        order = order.Take(maxRows).ToArray();
        int half = order.Length / 2;
        var train = order[..half];
        var test = order[half..];
        if (train.Select(i => labels[i]).Distinct().Count() < 2)
            throw new ArgumentException($"The reference task needs at least two classes in column '{labelColumnName}'.", nameof(referenceTask));

        var encoderModel = baseEncoder.Model;
        bool wasTraining = encoderModel.training;
        encoderModel.eval();
        float[][] trainFeatures, testFeatures;
        try
        {
            trainFeatures = Features(encoderModel, baseEncoder.Tokenizer, train.Select(i => texts[i]).ToArray(), maxSequenceLength, pooling);
            testFeatures = Features(encoderModel, baseEncoder.Tokenizer, test.Select(i => texts[i]).ToArray(), maxSequenceLength, pooling);
        }
        finally
        {
            encoderModel.train(wasTraining);
        }

        var testLabels = test.Select(i => labels[i]).ToArray();
        var trainData = ToDataView(mlContext, trainFeatures, train.Select(i => labels[i]).ToArray());
        var probe = mlContext.Transforms.Conversion.MapValueToKey("Label")
            .Append(mlContext.MulticlassClassification.Trainers.LbfgsMaximumEntropy("Label", "Features"))
            .Fit(trainData);
        return new ProbeRetentionScorer(mlContext, probe, test.Select(i => texts[i]).ToArray(), testLabels, maxSequenceLength, pooling,
            ProbeAccuracy(mlContext, probe, testFeatures, testLabels), train.Length);
    }

    /// <summary>Forgetting: <see cref="BaseAccuracy"/> minus the probe's accuracy on <paramref name="model"/>'s features (lower is better).</summary>
    public double Score(LoraTextClassificationTransformer model) => BaseAccuracy - AccuracyWith(model);

    /// <summary>The frozen probe's accuracy on the held-out reference rows, reading <paramref name="model"/>'s encoder's features.</summary>
    public double AccuracyWith(LoraTextClassificationTransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var encoder = model.Model.Encoder;
        bool wasTraining = encoder.training;
        encoder.eval();
        try
        {
            return ProbeAccuracy(ml, probe, Features(encoder, model.Tokenizer, testTexts, maxSequenceLength, pooling), testLabels);
        }
        finally
        {
            encoder.train(wasTraining);
        }
    }

    private static double ProbeAccuracy(MLContext ml, ITransformer probe, float[][] features, string[] labels)
    {
        var scored = probe.Transform(ToDataView(ml, features, labels));
        return ml.MulticlassClassification.Evaluate(scored, "Label").MicroAccuracy;
    }

    /// <summary>Pooled features of <paramref name="texts"/>, in batches of 64, on the encoder's device.</summary>
    private static float[][] Features(BertModel encoder, Tokenization.BertTextTokenizer tokenizer, string[] texts, int maxLength, PoolingStrategy pooling)
    {
        var device = encoder.parameters().First().device;
        var result = new float[texts.Length][];
        const int batchSize = 64;
        for (int start = 0; start < texts.Length; start += batchSize)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var chunk = texts.AsSpan(start, Math.Min(batchSize, texts.Length - start)).ToArray();
            var batch = tokenizer.EncodeBatch(chunk, null, maxLength, device);
            var output = encoder.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
            var pooled = Pooling.Pool(output, batch.AttentionMask, pooling).to(float32).cpu();
            int width = (int)pooled.shape[1];
            float[] flat = pooled.data<float>().ToArray();
            for (int r = 0; r < chunk.Length; r++) result[start + r] = flat.AsSpan(r * width, width).ToArray();
        }
        return result;
    }

    private static (List<string> Texts, List<string> Labels) ReadRows(IDataView data, string textColumn, string labelColumn)
    {
        var text = data.Schema.GetColumnOrNull(textColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(data), $"The reference task has no text column '{textColumn}'. Columns: {string.Join(", ", data.Schema.Select(c => c.Name))}.");
        var label = data.Schema.GetColumnOrNull(labelColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(data), $"The reference task has no label column '{labelColumn}'. Columns: {string.Join(", ", data.Schema.Select(c => c.Name))}.");
        if (text.Type is not TextDataViewType)
            throw new ArgumentOutOfRangeException(nameof(data), $"The reference task's text column '{textColumn}' must be text, but it is {text.Type}.");
        // Any label type: read it as text through ML.NET's conversion, so that strings, numbers and keys all work.
        var asText = data.Schema[labelColumn].Type is TextDataViewType ? data
            : new MLContext().Transforms.Conversion.ConvertType("__label_text", labelColumn, DataKind.String).Fit(data).Transform(data);
        string labelName = asText == data ? labelColumn : "__label_text";
        var texts = new List<string>();
        var labels = new List<string>();
        using var cursor = asText.GetRowCursor([asText.Schema[textColumn], asText.Schema[labelName]]);
        var getText = cursor.GetGetter<ReadOnlyMemory<char>>(asText.Schema[textColumn]);
        var getLabel = cursor.GetGetter<ReadOnlyMemory<char>>(asText.Schema[labelName]);
        ReadOnlyMemory<char> t = default, l = default;
        while (cursor.MoveNext())
        {
            getText(ref t);
            getLabel(ref l);
            if (l.IsEmpty) continue;
            texts.Add(t.ToString());
            labels.Add(l.ToString());
        }
        if (texts.Count < 4) throw new ArgumentException($"The reference task has {texts.Count} labelled rows; a probe needs at least 4.", nameof(data));
        return (texts, labels);
    }

    private static IDataView ToDataView(MLContext ml, float[][] features, string[] labels)
    {
        int width = features[0].Length;
        var definition = SchemaDefinition.Create(typeof(ProbeRow));
        definition[nameof(ProbeRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, width);
        return ml.Data.LoadFromEnumerable(features.Select((f, i) => new ProbeRow { Features = f, Label = labels[i] }), definition);
    }

    private sealed class ProbeRow
    {
        public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
    }
}
