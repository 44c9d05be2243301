using Microsoft.ML;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// What a sweep found: every trial (settings, metrics, size, time, forgetting), the Pareto front, and the best fitted
/// model. Disposing the result disposes <see cref="BestModel"/>'s network.
/// </summary>
public sealed class LoraSweepResult : IDisposable
{
    internal LoraSweepResult(IReadOnlyList<LoraSweepTrial> trials, SweepMetric metric, SweepStrategy strategy,
        ITransformer bestModel, LoraTextClassificationTransformer bestLora, TimeSpan elapsed)
    {
        Trials = trials;
        Metric = metric;
        Strategy = strategy;
        BestModel = bestModel;
        BestLoraTransformer = bestLora;
        Elapsed = elapsed;
    }

    /// <summary>Every trial, in the order trained.</summary>
    public IReadOnlyList<LoraSweepTrial> Trials { get; }

    /// <summary>The trials on the Pareto front (<see cref="LoraSweepTrial.IsParetoOptimal"/>).</summary>
    public IReadOnlyList<LoraSweepTrial> ParetoFront => Trials.Where(t => t.IsParetoOptimal).ToList();

    /// <summary>The trial with the best <see cref="Metric"/> (ties: fewer trainable parameters, then more epochs).</summary>
    public LoraSweepTrial BestTrial => Trials.Single(t => t.IsBest);

    /// <summary>The best trial's fitted model, ready for <c>Transform</c>, <c>PredictionEngine</c> or <c>SaveWithAdapters</c>.</summary>
    public ITransformer BestModel { get; }

    /// <summary>The LoRA transformer inside <see cref="BestModel"/>.</summary>
    public LoraTextClassificationTransformer BestLoraTransformer { get; }

    /// <summary>The metric that ranked the trials.</summary>
    public SweepMetric Metric { get; }

    /// <summary>The strategy used.</summary>
    public SweepStrategy Strategy { get; }

    /// <summary>Wall time of the whole sweep.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>Writes every trial to a CSV file (atomically; columns in <see cref="SweepReports.CsvColumns"/>).</summary>
    public void SaveCsv(string path) => SweepReports.SaveCsv(Trials, path);

    /// <summary>A text table of the trials, one line each.</summary>
    public override string ToString() => SweepReports.Table(Trials);

    /// <summary>Disposes the best model's network.</summary>
    public void Dispose() => BestLoraTransformer.Dispose();
}
