using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Lora.Integration;
using MLNet.Lora.Native;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// A sweep run as independent processes: each runs one shard of a <see cref="LoraSweepPlan"/> and writes one result
/// file per trial into a shared folder; a merge step reads them into the <see cref="LoraSweepResult"/> that the
/// in-process <see cref="LoraSweep"/> returns for the same plan and seed. Nothing else is shared: no coordinator, no
/// network between the processes, which is what a Kubernetes Indexed Job (one pod per <c>JOB_COMPLETION_INDEX</c>),
/// a Slurm array or a batch of cloud jobs provides. See docs/scale-out.md.
/// </summary>
public static class ShardedSweep
{
    /// <summary>
    /// Runs the trials of shard <paramref name="shard"/> that have no result yet in <paramref name="resultsFolder"/>, each
    /// through the same code as <see cref="LoraSweep.Run"/>, and writes each trial's model and result atomically as it
    /// finishes. A trial already done is skipped, so a retried process resumes where the killed one stopped.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="plan">The plan (every shard reads the same one).</param>
    /// <param name="shard">0-based shard index (a pod's <c>JOB_COMPLETION_INDEX</c>).</param>
    /// <param name="trainData">The training data (the plan's <see cref="LoraSweepPlan.Data"/> files, read the same way by every shard).</param>
    /// <param name="validationData">The validation data.</param>
    /// <param name="resultsFolder">The shared results folder, created if missing.</param>
    /// <param name="progress">Receives the trials' progress, as <see cref="LoraSweepOptions.Progress"/> does.</param>
    /// <param name="cancellationToken">Stops the shard; the trial in training leaves no result.</param>
    /// <exception cref="InvalidDataException">A result file in the folder belongs to another sweep.</exception>
    public static ShardRunSummary RunShard(MLContext mlContext, LoraSweepPlan plan, int shard, IDataView trainData, IDataView validationData,
        string resultsFolder, IProgress<LoraSweepProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(trainData);
        ArgumentNullException.ThrowIfNull(validationData);
        ArgumentException.ThrowIfNullOrWhiteSpace(resultsFolder);
        var trials = plan.TrialsOfShard(shard);
        Directory.CreateDirectory(resultsFolder);
        var options = plan.CreateOptions();
        options.Progress = progress;
        options.CancellationToken = cancellationToken;
        string fingerprint = plan.Fingerprint;

        var host = MLContextAccess.EnvironmentOf(mlContext).Register("LoraSweep");
        using var channel = host.Start($"Shard {shard}");
        var done = new List<LoraSweepTrial>();
        var todo = new List<PlannedTrial>();
        foreach (var planned in trials)
        {
            if (TrialResultFile.Read(resultsFolder, planned.Number, plan.SweepId, fingerprint) is { } finished) done.Add(finished);
            else todo.Add(planned);
        }
        channel.Info(MessageSensitivity.None, $"{plan}: shard {shard} has {trials.Count} trials, {done.Count} already done, {todo.Count} to run; {TorchRuntime.Threads}.");
        var clock = Stopwatch.StartNew();
        var ran = new List<LoraSweepTrial>();
        if (todo.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var runner = SweepTrialRunner.Create(mlContext, options, trainData, validationData, plan.Seed, channel);
            foreach (var planned in todo)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var fitted = runner.Run(planned.Settings, planned.Epochs, planned.Number, plan.PlannedTrials, planned.Rung, channel);
                // The model first, the result last: a result file always has its model beside it.
                if (fitted.Model is not null) runner.Save(fitted.Model, TrialResultFile.ModelPath(resultsFolder, planned.Number));
                TrialResultFile.Write(resultsFolder, fitted.Trial, plan.SweepId, fingerprint);
                ran.Add(fitted.Trial);
            }
        }
        return new ShardRunSummary(shard, ran, done, clock.Elapsed);
    }

    /// <summary>
    /// Reads every trial of <paramref name="plan"/>'s sweep (this round and the earlier ones) from
    /// <paramref name="resultsFolder"/> into the result an in-process sweep returns: trials in number order, the Pareto
    /// front, the best trial and its model (loaded with <c>LoadWithAdapters</c>; the result owns it).
    /// <see cref="LoraSweepResult.Elapsed"/> is the trials' training time summed.
    /// </summary>
    /// <exception cref="InvalidOperationException">A trial of the round has no result yet (its shard is named), or every trial failed.</exception>
    public static LoraSweepResult Merge(MLContext mlContext, LoraSweepPlan plan, string resultsFolder)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(plan);
        var trials = ReadAll(plan, resultsFolder, upToRung: plan.Rung);
        var options = plan.CreateOptions();
        var best = SweepRanking.Best(trials, options.Metric)
            ?? throw new InvalidOperationException($"Every trial of the LoRA sweep failed; the first error: {trials.FirstOrDefault(t => t.Error is not null)?.Error}");
        var marked = SweepRanking.Mark(trials, options.Metric, best.Number);

        string modelPath = TrialResultFile.ModelPath(resultsFolder, best.Number);
        if (!File.Exists(modelPath))
            throw new InvalidOperationException($"The best trial's model '{modelPath}' is missing (its result file is there): rerun shard {ShardOf(plan, best)} after deleting '{TrialResultFile.JsonPath(resultsFolder, best.Number)}'.");
        var model = mlContext.Model.LoadWithAdapters(modelPath, out _);
        var lora = FindLora(model) ?? throw new InvalidDataException($"'{modelPath}' holds no LoRA text classification transformer.");
        return new LoraSweepResult(marked, options.Metric, options.Strategy, model, lora,
            TimeSpan.FromTicks(marked.Sum(t => t.TrainingTime.Ticks)));
    }

    /// <summary>
    /// Successive halving: the next round's plan from this round's results: its best trials (the share the plan keeps,
    /// ranked as <see cref="LoraSweep.Run"/> ranks them) with more epochs, numbered on from every trial so far.
    /// </summary>
    /// <exception cref="InvalidOperationException">This is the last round (merge instead), a trial has no result yet, or every trial failed.</exception>
    public static LoraSweepPlan Promote(LoraSweepPlan plan, string resultsFolder)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.Rung + 1 >= plan.Rounds.Count)
            throw new InvalidOperationException($"{plan} is the sweep's last round: there is nothing to promote to; merge the results instead.");
        var all = ReadAll(plan, resultsFolder, upToRung: plan.Rung);
        var round = all.Where(t => t.Rung == plan.Rung).ToList();
        var metric = plan.CreateOptions().Metric;
        var survivors = SweepRanking.Survivors(round, plan.Rounds[plan.Rung + 1].Count, metric);
        if (survivors.Count == 0)
            throw new InvalidOperationException($"Every trial of round {plan.Rung} failed; nothing can be promoted. The first error: {round.FirstOrDefault(t => t.Error is not null)?.Error}");
        return plan.NextRound(survivors.Select(t => t.Settings).ToList(), all.Max(t => t.Number) + 1);
    }

    /// <summary>
    /// Every result of the sweep up to <paramref name="upToRung"/>: this plan's trials must all be there; earlier rounds'
    /// results are the files of the same sweep with lower numbers. A trial is promoted when a later round trains its settings.
    /// </summary>
    private static List<LoraSweepTrial> ReadAll(LoraSweepPlan plan, string resultsFolder, int upToRung)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(resultsFolder);
        if (!Directory.Exists(resultsFolder))
            throw new DirectoryNotFoundException($"The results folder '{resultsFolder}' does not exist: run the shards (`mlnet-lora sweep run`) first.");
        string fingerprint = plan.Fingerprint;
        var planned = plan.Trials;
        var missing = planned.Where(t => !File.Exists(TrialResultFile.JsonPath(resultsFolder, t.Number))).ToList();
        if (missing.Count > 0)
            throw new InvalidOperationException($"{missing.Count} of {planned.Count} trials of {plan} have no result in '{resultsFolder}' yet: " +
                string.Join(", ", missing.Select(t => $"#{t.Number} (shard {t.Shard})")) + ". Run (or rerun) those shards; finished trials are skipped.");
        int firstOfRound = planned.Min(t => t.Number);
        var trials = Enumerable.Range(1, planned.Max(t => t.Number))
            .Select(n => TrialResultFile.Read(resultsFolder, n, plan.SweepId, fingerprint))
            .OfType<LoraSweepTrial>()
            .Where(t => t.Rung <= upToRung && (t.Rung < plan.Rung || t.Number >= firstOfRound))
            .ToList();
        for (int i = 0; i < trials.Count; i++)
        {
            var trial = trials[i];
            bool promoted = trials.Any(t => t.Rung == trial.Rung + 1 && t.Settings == trial.Settings);
            if (promoted) trials[i] = trial with { Promoted = true };
        }
        return trials;
    }

    private static int ShardOf(LoraSweepPlan plan, LoraSweepTrial trial) =>
        plan.Trials.FirstOrDefault(t => t.Number == trial.Number)?.Shard ?? (trial.Number - 1) % plan.Shards;

    private static LoraTextClassificationTransformer? FindLora(ITransformer model) => model switch
    {
        LoraTextClassificationTransformer lora => lora,
        IEnumerable<ITransformer> chain => chain.Select(FindLora).FirstOrDefault(l => l is not null),
        _ => null,
    };
}

/// <summary>What one shard of a sharded sweep did.</summary>
/// <param name="Shard">The shard index.</param>
/// <param name="Ran">Trials trained now.</param>
/// <param name="Skipped">Trials whose results were already in the folder (a retried shard resumes).</param>
/// <param name="Elapsed">Wall time of this run.</param>
public sealed record ShardRunSummary(int Shard, IReadOnlyList<LoraSweepTrial> Ran, IReadOnlyList<LoraSweepTrial> Skipped, TimeSpan Elapsed)
{
    /// <inheritdoc/>
    public override string ToString() => $"shard {Shard}: {Ran.Count} trials run, {Skipped.Count} already done (skipped), {Elapsed.TotalSeconds:F1} s";
}
