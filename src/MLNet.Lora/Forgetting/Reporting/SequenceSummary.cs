using System.Globalization;
using System.Text;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// One method's task-sequence runs over several seeds, summarized: each figure as its mean over runs with a 95 % interval
/// from a hierarchical bootstrap over seeds and test rows (<see cref="Summarize"/>).
/// </summary>
public sealed record SequenceSummary
{
    /// <summary>The method's name (<see cref="SequenceResult.Method"/>; the strategy's name when that is empty).</summary>
    public required string Method { get; init; }

    /// <summary>Task names in training order, shared by every run of the method.</summary>
    public required string[] Tasks { get; init; }

    /// <summary>Number of runs (seeds) summarized.</summary>
    public required int Runs { get; init; }

    /// <summary>Average accuracy after the last task (<see cref="AccuracyMatrix.AverageAccuracy"/>).</summary>
    public required MetricInterval AverageAccuracy { get; init; }

    /// <summary>Average forgetting, max convention (<see cref="AccuracyMatrix.AverageForgetting"/> with <see cref="ForgettingConvention.Max"/>).</summary>
    public required MetricInterval AverageForgetting { get; init; }

    /// <summary>Backward transfer (<see cref="AccuracyMatrix.BackwardTransfer"/>).</summary>
    public required MetricInterval BackwardTransfer { get; init; }

    /// <summary>Forward transfer against the start model's probe (<see cref="AccuracyMatrix.ForwardTransfer"/>).</summary>
    public required MetricInterval ForwardTransfer { get; init; }

    /// <summary>Accuracy on each task right after training on it (<see cref="AccuracyMatrix.NewTaskAccuracy"/>).</summary>
    public required MetricInterval NewTaskAccuracy { get; init; }

    /// <summary>Training time of a whole sequence in seconds (<see cref="SequenceResult.TrainingSeconds"/>, measurements excluded); its interval resamples runs only.</summary>
    public required MetricInterval TrainingSeconds { get; init; }

    /// <summary>
    /// Summarizes runs per method, in the order each method first appears in <paramref name="runs"/>.
    /// </summary>
    /// <remarks>
    /// <para>The mean of a figure is the mean over the method's runs of each run's figure, computed from its
    /// <see cref="SequenceResult.Accuracy"/> and <see cref="SequenceResult.Baseline"/>.</para>
    /// <para>The interval is the 2.5th to 97.5th percentile of a hierarchical bootstrap: each resample draws the method's runs
    /// (seeds) with replacement and, within each drawn run, each task's test rows with replacement (the same row indices for
    /// every cell of that task's column, and for its baseline when the baseline has as many rows), recomputes the accuracy
    /// matrix from <see cref="SequenceResult.RowCorrect"/> and <see cref="SequenceResult.BaselineRowCorrect"/>, the figure
    /// from it, and averages the figure over the drawn runs. Runs are resampled separately, since seeds may test on
    /// different rows. With a single run the interval reflects test-row sampling only, not seed-to-seed variation.
    /// <see cref="TrainingSeconds"/> is resampled over runs only, so it has zero width for one run.</para>
    /// <para>The result is deterministic for a given <paramref name="seed"/>; each method is resampled with its own
    /// <see cref="Random"/> seeded with it, so its interval does not depend on the other methods summarized with it.</para>
    /// </remarks>
    /// <param name="runs">Runs of one or more methods; each needs at least two tasks and per-row results.</param>
    /// <param name="resamples">Bootstrap resamples (at least 1; 2,000 is plenty for 95 % percentile intervals).</param>
    /// <param name="seed">Seed of the resampling's <see cref="Random"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="runs"/> or one of its elements is null.</exception>
    /// <exception cref="ArgumentException">
    /// No runs; runs of one method over different task lists; a run with fewer than two tasks, without per-row results, or with
    /// per-row results that do not match its accuracies.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="resamples"/> is less than 1.</exception>
    public static IReadOnlyList<SequenceSummary> Summarize(IReadOnlyList<SequenceResult> runs, int resamples = 2000, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(runs);
        ArgumentOutOfRangeException.ThrowIfLessThan(resamples, 1);
        if (runs.Count == 0) throw new ArgumentException("There are no runs to summarize.", nameof(runs));

        var groups = new List<(string Method, List<SequenceResult> Runs)>();
        foreach (var run in runs)
        {
            if (run is null) throw new ArgumentNullException(nameof(runs), "A run is null.");
            string method = MethodOf(run);
            var group = groups.Find(g => g.Method == method);
            if (group.Runs is null) groups.Add((method, [run]));
            else group.Runs.Add(run);
        }

        // A fresh generator per method, so a method's interval does not depend on which methods come before it.
        return groups.Select(g => SummarizeMethod(g.Method, g.Runs, resamples, new Random(seed))).ToList();
    }

    /// <summary>
    /// A Markdown table with one row per summary: method, ACC, forgetting, BWT, FWT and new-task accuracy as
    /// "mean [lower, upper]" in accuracy points (× 100, one decimal), and the training time per sequence in seconds (no decimals).
    /// </summary>
    /// <param name="summaries">The summaries, usually from <see cref="Summarize"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="summaries"/> or one of its elements is null.</exception>
    public static string ToMarkdownTable(IReadOnlyList<SequenceSummary> summaries)
    {
        ArgumentNullException.ThrowIfNull(summaries);
        var table = new StringBuilder()
            .AppendLine("| method | ACC | forgetting | BWT | FWT | new-task acc | training time (s) |")
            .AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var s in summaries)
        {
            if (s is null) throw new ArgumentNullException(nameof(summaries), "A summary is null.");
            table.Append(CultureInfo.InvariantCulture,
                $"| {s.Method.Replace("|", "\\|", StringComparison.Ordinal)} | {Points(s.AverageAccuracy)} | {Points(s.AverageForgetting)} | {Points(s.BackwardTransfer)} | {Points(s.ForwardTransfer)} | {Points(s.NewTaskAccuracy)} | {s.TrainingSeconds.ToString("0")} |")
                .AppendLine();
        }

        return table.ToString();
    }

    private static string Points(MetricInterval interval) => interval.Scale(100).ToString("0.0");

    private static string MethodOf(SequenceResult run) => string.IsNullOrEmpty(run.Method) ? run.Strategy.ToString() : run.Method;

    private const string RunsParameter = "runs";

    // The figures bootstrapped from the accuracy matrix, in this order; the training time is handled apart.
    private const int MatrixFigures = 5;

    private static void Figures(AccuracyMatrix m, double[] into)
    {
        into[0] = m.AverageAccuracy;
        into[1] = m.AverageForgetting(ForgettingConvention.Max);
        into[2] = m.BackwardTransfer;
        into[3] = m.ForwardTransfer;
        into[4] = m.NewTaskAccuracy;
    }

    private static SequenceSummary SummarizeMethod(string method, List<SequenceResult> runs, int resamples, Random random)
    {
        var tasks = runs[0].Tasks;
        var rows = new RunRows[runs.Count];
        for (int k = 0; k < runs.Count; k++)
        {
            if (!runs[k].Tasks.SequenceEqual(tasks))
                throw new ArgumentException(
                    $"Method '{method}' has runs over different task lists: [{string.Join(", ", tasks)}] (seed {runs[0].Seed}) and " +
                    $"[{string.Join(", ", runs[k].Tasks)}] (seed {runs[k].Seed}); summarize each sequence separately.", nameof(runs));
            rows[k] = RunRows.From(method, runs[k]);
        }

        // Means: each run's own figures, from its recorded matrix.
        var figures = new double[MatrixFigures];
        var means = new double[MatrixFigures];
        double meanSeconds = 0;
        foreach (var run in runs)
        {
            Figures(run.ToAccuracyMatrix(), figures);
            for (int f = 0; f < MatrixFigures; f++) means[f] += figures[f] / runs.Count;
            meanSeconds += run.TrainingSeconds / runs.Count;
        }

        // Bootstrap: per resample, draw runs, then rows within each drawn run, and average the drawn runs' figures.
        int t = tasks.Length;
        var samples = new double[MatrixFigures][];
        for (int f = 0; f < MatrixFigures; f++) samples[f] = new double[resamples];
        var seconds = new double[resamples];
        var r = Enumerable.Range(0, t).Select(_ => new double[t]).ToArray();
        var b = new double[t];
        for (int s = 0; s < resamples; s++)
        {
            double secondsSum = 0;
            for (int k = 0; k < runs.Count; k++)
            {
                int drawn = random.Next(runs.Count);
                secondsSum += runs[drawn].TrainingSeconds;
                rows[drawn].Resample(random, r, b);
                Figures(new AccuracyMatrix(r, b), figures);
                for (int f = 0; f < MatrixFigures; f++) samples[f][s] += figures[f];
            }

            for (int f = 0; f < MatrixFigures; f++) samples[f][s] /= runs.Count;
            seconds[s] = secondsSum / runs.Count;
        }

        return new SequenceSummary
        {
            Method = method,
            Tasks = (string[])tasks.Clone(),
            Runs = runs.Count,
            AverageAccuracy = Interval(means[0], samples[0]),
            AverageForgetting = Interval(means[1], samples[1]),
            BackwardTransfer = Interval(means[2], samples[2]),
            ForwardTransfer = Interval(means[3], samples[3]),
            NewTaskAccuracy = Interval(means[4], samples[4]),
            TrainingSeconds = Interval(meanSeconds, seconds),
        };
    }

    private static MetricInterval Interval(double mean, double[] samples)
    {
        Array.Sort(samples);
        return new MetricInterval(mean, Percentile(samples, 0.025), Percentile(samples, 0.975));
    }

    // Linear interpolation between closest ranks of sorted values.
    private static double Percentile(double[] sorted, double p)
    {
        double position = p * (sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
    }

    /// <summary>One run's per-row correctness as 0/1 bytes per column, ready to resample.</summary>
    private sealed class RunRows
    {
        // Cells[j][i][row]: row of task j correct in R[i][j]. Baseline[j][row]: correct in b[j].
        private readonly byte[][][] _cells;
        private readonly byte[][] _baseline;

        private RunRows(byte[][][] cells, byte[][] baseline) => (_cells, _baseline) = (cells, baseline);

        public static RunRows From(string method, SequenceResult run)
        {
            int t = run.Tasks.Length;
            string which = $"The run of method '{method}' with seed {run.Seed}";
            if (t < 2) throw new ArgumentException($"{which} has {t} task(s); forgetting and transfer need at least two.", RunsParameter);
            if (run.RowCorrect is null || run.BaselineRowCorrect is null)
                throw new ArgumentException(
                    $"{which} has no per-row results (RowCorrect / BaselineRowCorrect): it was saved before per-row results were recorded. " +
                    "Re-run it to get intervals.", RunsParameter);
            if (run.RowCorrect.Length != t || run.BaselineRowCorrect.Length != t || run.Accuracy.Length != t
                || run.Accuracy.Any(row => row?.Length != t) || run.Baseline.Length != t)
                throw new ArgumentException($"{which} has {t} tasks but its accuracies or per-row results do not have one entry per task.", RunsParameter);

            var cells = new byte[t][][];
            var baseline = new byte[t][];
            for (int j = 0; j < t; j++)
            {
                cells[j] = new byte[t][];
                for (int i = 0; i < t; i++)
                {
                    var correct = run.RowCorrect[i]?.Length == t ? run.RowCorrect[i][j] : null;
                    if (correct is null || correct.Length == 0)
                        throw new ArgumentException($"{which} has no per-row results for cell R[{i}][{j}].", RunsParameter);
                    if (correct.Length != run.RowCorrect[0][j].Length)
                        throw new ArgumentException(
                            $"{which} has {correct.Length} rows in cell R[{i}][{j}] but {run.RowCorrect[0][j].Length} in R[0][{j}]; every cell of a column must hold the same test rows.",
                            RunsParameter);
                    cells[j][i] = ToBytes(correct, run.Accuracy[i][j], $"{which}: R[{i}][{j}]");
                }

                var baseRows = run.BaselineRowCorrect[j];
                if (baseRows is null || baseRows.Length == 0)
                    throw new ArgumentException($"{which} has no per-row results for baseline b[{j}].", RunsParameter);
                baseline[j] = ToBytes(baseRows, run.Baseline[j], $"{which}: b[{j}]");
            }

            return new RunRows(cells, baseline);
        }

        /// <summary>Fills <paramref name="r"/> and <paramref name="b"/> with accuracies on rows drawn with replacement.</summary>
        public void Resample(Random random, double[][] r, double[] b)
        {
            int t = _cells.Length;
            Span<int> counts = stackalloc int[t + 1];
            for (int j = 0; j < t; j++)
            {
                var column = _cells[j];
                var baseRows = _baseline[j];
                int n = column[0].Length;
                bool sharedRows = baseRows.Length == n;
                counts.Clear();
                for (int d = 0; d < n; d++)
                {
                    int row = random.Next(n);
                    for (int i = 0; i < t; i++) counts[i] += column[i][row];
                    if (sharedRows) counts[t] += baseRows[row];
                }

                if (!sharedRows)
                    for (int d = 0; d < baseRows.Length; d++) counts[t] += baseRows[random.Next(baseRows.Length)];

                for (int i = 0; i < t; i++) r[i][j] = (double)counts[i] / n;
                b[j] = (double)counts[t] / baseRows.Length;
            }
        }

        private static byte[] ToBytes(bool[] correct, double accuracy, string cell)
        {
            var bytes = new byte[correct.Length];
            int hits = 0;
            for (int k = 0; k < correct.Length; k++)
                if (correct[k]) { bytes[k] = 1; hits++; }

            // The mean uses the recorded accuracy and the interval the rows: they must describe the same evaluation.
            double fraction = (double)hits / correct.Length;
            if (Math.Abs(fraction - accuracy) > 1e-9)
                throw new ArgumentException(
                    $"{cell}: the per-row results give accuracy {fraction:0.######} but the recorded accuracy is {accuracy:0.######}; they must come from the same evaluation.",
                    RunsParameter);
            return bytes;
        }
    }
}
