using MLNet.Lora.Training;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// A <see cref="ForgettingBudget"/>'s measure: the mean drop, over retention tasks, of probe accuracy against the model
/// the check was fitted on (the frozen probe applied unchanged, or a probe refitted at each check).
/// </summary>
internal sealed class ProbeRetentionCheck : IRetentionCheck, IDisposable
{
    private readonly List<RetentionBaseline> baselines;
    private readonly RetentionProbe probe;
    private readonly Tokenization.BertTextTokenizer tokenizer;
    private readonly CancellationToken cancellationToken;

    private ProbeRetentionCheck(List<RetentionBaseline> baselines, RetentionProbe probe, Tokenization.BertTextTokenizer tokenizer, CancellationToken cancellationToken)
    {
        this.baselines = baselines;
        this.probe = probe;
        this.tokenizer = tokenizer;
        this.cancellationToken = cancellationToken;
    }

    /// <summary>Fits the reference probes of <paramref name="tasks"/> on <paramref name="reference"/> (the model before training).</summary>
    public static ProbeRetentionCheck Fit(ForgettingMeasurements measurements, ComparedModel reference, IReadOnlyList<TaskData> tasks, RetentionProbe probe,
        CancellationToken cancellationToken)
    {
        if (tasks.Count == 0) throw new ArgumentException("A forgetting budget needs at least one retention task.", nameof(tasks));
        var baselines = new List<RetentionBaseline>();
        try
        {
            foreach (var task in tasks) baselines.Add(RetentionBaseline.Fit(measurements.Context, measurements.Options, reference, task, cancellationToken));
            return new ProbeRetentionCheck(baselines, probe, reference.Tokenizer, cancellationToken);
        }
        catch
        {
            foreach (var b in baselines) b.Dispose();
            throw;
        }
    }

    public double Drop(TextClassificationModel model)
    {
        var candidate = ComparedModel.FromModel(model, tokenizer, "check");
        return baselines.Average(b =>
        {
            var (frozen, refit) = b.Measure(candidate, probe == RetentionProbe.Refit, cancellationToken);
            return b.ReferenceAccuracy - (refit ?? frozen);
        });
    }

    public void Dispose()
    {
        foreach (var b in baselines) b.Dispose();
    }
}
