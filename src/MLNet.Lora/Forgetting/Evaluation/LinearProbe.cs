using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// A linear probe: multinomial logistic regression (ML.NET's L-BFGS maximum entropy trainer) on standardised pooled
/// features. Once fitted it is a fixed function of the features, so it can be applied unchanged to another model's
/// features (the frozen probe) or turned into a differentiable head for gradient-based measures.
/// </summary>
/// <remarks>
/// Reference for probing: G. Alain, Y. Bengio, "Understanding intermediate layers using linear classifier probes",
/// ICLR 2017 workshop. Standardisation (mean and standard deviation of the training features) is part of the probe, so
/// the frozen probe also keeps the reference's scale.
/// </remarks>
internal sealed class LinearProbe : IDisposable
{
    private readonly MLContext ml;
    private readonly ITransformer transformer;
    private readonly float[] mean;
    private readonly float[] scale;
    private readonly Tensor weight;   // [classes, hidden], standardisation folded in
    private readonly Tensor bias;     // [classes]

    private LinearProbe(MLContext ml, ITransformer transformer, float[] mean, float[] scale, Tensor weight, Tensor bias, int classCount)
    {
        this.ml = ml;
        this.transformer = transformer;
        this.mean = mean;
        this.scale = scale;
        this.weight = weight;
        this.bias = bias;
        ClassCount = classCount;
    }

    public int ClassCount { get; }

    /// <summary>Fits a probe on <paramref name="features"/> [n, d] (float32, CPU) with 0-based <paramref name="labels"/>.</summary>
    public static LinearProbe Fit(MLContext ml, Tensor features, IReadOnlyList<int> labels, int classCount, float l2Regularization)
    {
        var x = ToRows(features);
        int d = (int)features.shape[1];
        var mean = new float[d];
        var scale = new float[d];
        for (int j = 0; j < d; j++)
        {
            double m = 0, s = 0;
            foreach (var row in x) m += row[j];
            m /= x.Length;
            foreach (var row in x) s += (row[j] - m) * (row[j] - m);
            mean[j] = (float)m;
            // A constant feature carries no information; a unit scale keeps it at 0 instead of dividing by 0.
            double sd = Math.Sqrt(s / x.Length);
            scale[j] = sd > 1e-6 ? (float)sd : 1f;
        }

        var data = Load(ml, Standardise(x, mean, scale), labels, classCount, d);
        var trainer = ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options
        {
            LabelColumnName = "Label",
            FeatureColumnName = "Features",
            L2Regularization = l2Regularization,
            NumberOfThreads = 1,          // one thread: the same result on every run
            MaximumNumberOfIterations = 500,
        });
        var fitted = trainer.Fit(data);

        VBuffer<float>[] rows = [];
        fitted.Model.GetWeights(ref rows, out int k);
        var biases = fitted.Model.GetBiases().ToArray();
        var w = new float[k * d];
        var b = new float[k];
        for (int c = 0; c < k; c++)
        {
            var dense = rows[c].DenseValues().ToArray();
            double shift = 0;
            for (int j = 0; j < d; j++)
            {
                // w·((x − μ)/σ) + b = (w/σ)·x + (b − Σ w μ/σ)
                w[c * d + j] = dense[j] / scale[j];
                shift += dense[j] * mean[j] / scale[j];
            }
            b[c] = (float)(biases[c] - shift);
        }
        var weight = tensor(w, [k, d]).DetachFromDisposeScope();
        var bias = tensor(b, [k]).DetachFromDisposeScope();
        return new LinearProbe(ml, fitted, mean, scale, weight, bias, classCount);
    }

    /// <summary>Accuracy on <paramref name="features"/> as ML.NET scores it (the fitted transformer's predicted labels).</summary>
    public double Accuracy(Tensor features, IReadOnlyList<int> labels) => Share(Correct(features, labels));

    /// <summary>Per row of <paramref name="features"/>, whether the probe predicts its label.</summary>
    public bool[] Correct(Tensor features, IReadOnlyList<int> labels)
    {
        var data = Load(ml, Standardise(ToRows(features), mean, scale), labels, ClassCount, (int)features.shape[1]);
        var predicted = transformer.Transform(data).GetColumn<uint>("PredictedLabel").ToArray();
        return predicted.Select((key, i) => key == labels[i] + 1).ToArray();   // key k is class k − 1
    }

    /// <summary>The share of true values.</summary>
    public static double Share(IReadOnlyCollection<bool> correct) => correct.Count == 0 ? double.NaN : correct.Count(c => c) / (double)correct.Count;

    /// <summary>Differentiable logits [batch, classes] of the probe for features [batch, d] on any device.</summary>
    public Tensor Logits(Tensor features) =>
        features.matmul(weight.to(features.dtype, features.device).t()) + bias.to(features.dtype, features.device);

    public void Dispose()
    {
        weight.Dispose();
        bias.Dispose();
    }

    private static float[][] ToRows(Tensor features)
    {
        if (features.dim() != 2) throw new ArgumentException($"Expected features [n, d]; got [{string.Join(", ", features.shape)}].", nameof(features));
        int n = (int)features.shape[0], d = (int)features.shape[1];
        using var cpu = features.detach().to(float32).cpu().contiguous();
        var flat = cpu.data<float>().ToArray();
        var rows = new float[n][];
        for (int i = 0; i < n; i++) rows[i] = flat.AsSpan(i * d, d).ToArray();
        return rows;
    }

    private static float[][] Standardise(float[][] rows, float[] mean, float[] scale) =>
        rows.Select(r => r.Select((v, j) => (v - mean[j]) / scale[j]).ToArray()).ToArray();

    private static IDataView Load(MLContext ml, float[][] rows, IReadOnlyList<int> labels, int classCount, int d)
    {
        if (labels.Count != rows.Length) throw new ArgumentException($"{labels.Count} labels for {rows.Length} feature rows.", nameof(labels));
        var schema = SchemaDefinition.Create(typeof(ProbeRow));
        schema[nameof(ProbeRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, d);
        schema[nameof(ProbeRow.Label)].ColumnType = new KeyDataViewType(typeof(uint), classCount);
        // A key member of an in-memory row holds the 0-based class index; ML.NET reads it as key value index + 1.
        var items = rows.Select((r, i) => new ProbeRow { Features = r, Label = (uint)labels[i] }).ToList();
        var data = ml.Data.LoadFromEnumerable(items, schema);
        // That mapping is not documented: check it on the first row rather than train on shifted labels.
        uint first = data.GetColumn<uint>("Label").First();
        if (first != labels[0] + 1)
            throw new InvalidOperationException($"ML.NET read class index {labels[0]} as key {first}, not {labels[0] + 1}; this ML.NET version maps in-memory keys differently.");
        return data;
    }

    private sealed class ProbeRow
    {
        public float[] Features { get; set; } = [];
        public uint Label { get; set; }
    }
}
