using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Forgetting;
using MLNet.Lora.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// A simple forgetting score for sweeps: how much accuracy a frozen linear probe for another task loses when it reads the
/// fine-tuned encoder's features instead of the base encoder's.
/// </summary>
/// <remarks>
/// <para>
/// At construction a linear probe (ML.NET's L-BFGS maximum entropy on standardised features, the same probe as
/// <c>ForgettingEvaluator</c>'s) is trained on the base encoder's pooled features of half of a reference task's rows and
/// scored on the other half: <see cref="BaseAccuracy"/>. <see cref="Score"/> feeds the
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
/// using var probe = ProbeRetentionScorer.Fit(ml, encoder, agNews, maxRows: 600, maxSequenceLength: 64);
/// var options = new LoraSweepOptions { ForgettingScorer = probe.Score, ... };
/// </code>
/// </example>
public sealed class ProbeRetentionScorer : IDisposable
{
    private const int BatchSize = 64;
    private readonly LinearProbe probe;
    private readonly EncodedText[] testItems;
    private readonly int[] testLabels;
    private readonly PoolingStrategy pooling;

    private ProbeRetentionScorer(LinearProbe probe, EncodedText[] testItems, int[] testLabels, PoolingStrategy pooling, double baseAccuracy, int trainRows)
    {
        this.probe = probe;
        this.testItems = testItems;
        this.testLabels = testLabels;
        this.pooling = pooling;
        BaseAccuracy = baseAccuracy;
        TrainRows = trainRows;
    }

    /// <summary>The probe's accuracy on the held-out reference rows with the base encoder's features.</summary>
    public double BaseAccuracy { get; }

    /// <summary>Reference rows the probe was trained on.</summary>
    public int TrainRows { get; }

    /// <summary>Held-out reference rows scored each time.</summary>
    public int TestRows => testItems.Length;

    /// <summary>
    /// Trains the probe on <paramref name="baseEncoder"/>'s features of a reference task: <paramref name="referenceTask"/>
    /// with a text and a label column (any label type), of which at most <paramref name="maxRows"/> rows are used, split
    /// in half (seeded) into probe training and scoring rows.
    /// </summary>
    public static ProbeRetentionScorer Fit(MLContext mlContext, PretrainedEncoder baseEncoder, IDataView referenceTask,
        string textColumnName = DefaultColumnNames.Text, string labelColumnName = DefaultColumnNames.Label,
        int maxRows = 1000, int maxSequenceLength = 128, PoolingStrategy pooling = PoolingStrategy.Mean, int seed = 1,
        float l2Regularization = 1f)
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

        var classes = order.Select(i => labels[i]).Distinct().Order(StringComparer.Ordinal).ToList();
        int[] ClassesOf(int[] rows) => rows.Select(i => classes.IndexOf(labels[i])).ToArray();
        EncodedText[] Encode(int[] rows) => rows.Select(i => baseEncoder.Tokenizer.Encode(texts[i], null, maxSequenceLength)).ToArray();
        var testItems = Encode(test);
        var testLabels = ClassesOf(test);

        using var scope = NewDisposeScope();
        var trainFeatures = EncoderFeatures.Pooled(baseEncoder.Model, baseEncoder.Tokenizer.PadTokenId, Encode(train), pooling, BatchSize, default);
        var testFeatures = EncoderFeatures.Pooled(baseEncoder.Model, baseEncoder.Tokenizer.PadTokenId, testItems, pooling, BatchSize, default);
        var probe = LinearProbe.Fit(mlContext, trainFeatures, ClassesOf(train), classes.Count, l2Regularization);
        return new ProbeRetentionScorer(probe, testItems, testLabels, pooling, probe.Accuracy(testFeatures, testLabels), train.Length);
    }

    /// <summary>Forgetting: <see cref="BaseAccuracy"/> minus the probe's accuracy on <paramref name="model"/>'s features (lower is better).</summary>
    public double Score(LoraTextClassificationTransformer model) => BaseAccuracy - AccuracyWith(model);

    /// <summary>The frozen probe's accuracy on the held-out reference rows, reading <paramref name="model"/>'s encoder's features.</summary>
    public double AccuracyWith(LoraTextClassificationTransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = NewDisposeScope();
        var features = EncoderFeatures.Pooled(model.Model.Encoder, model.Tokenizer.PadTokenId, testItems, pooling, BatchSize, default);
        return probe.Accuracy(features, testLabels);
    }

    /// <summary>Releases the probe's weights.</summary>
    public void Dispose() => probe.Dispose();

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
}
