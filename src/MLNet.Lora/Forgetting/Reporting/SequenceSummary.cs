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

    /// <summary>
    /// Null for a method's own figures (<see cref="Summarize"/>). Otherwise the reference method of <see cref="Compare"/>,
    /// and every figure is this method's minus the reference's, paired by seed and test row.
    /// </summary>
    public string? RelativeTo { get; init; }

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
        var groups = Group(runs, resamples);

        // A fresh generator per method, so a method's interval does not depend on which methods come before it.
        return groups.Select(g => SummarizeMethod(g.Method, g.Runs, null, resamples, new Random(seed))).ToList();
    }

    /// <summary>The runs by method, in the order each method first appears.</summary>
    private static List<(string Method, List<SequenceResult> Runs)> Group(IReadOnlyList<SequenceResult> runs, int resamples)
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

        return groups;
    }

    /// <summary>
    /// Each method's figures minus those of <paramref name="reference"/>, paired: the difference is taken within each seed,
    /// and the bootstrap draws the same seeds and, within a seed, the same test rows for both methods. Pairing removes
    /// what the methods share (an easy seed, an easy test row), so a difference can be clear where the two methods'
    /// own intervals (<see cref="Summarize"/>) overlap.
    /// </summary>
    /// <remarks>
    /// Every method needs runs for exactly the reference's seeds, one per seed, over the same tasks, with as many test rows
    /// per task as the reference's run of that seed (as <see cref="ForgettingEvaluator.RunSequences"/> records: all methods
    /// of a run share its test rows). The result lists the other methods in the order they first appear, each with
    /// <see cref="RelativeTo"/> set; it is deterministic for a given <paramref name="seed"/>.
    /// </remarks>
    /// <param name="runs">Runs of the reference and of the methods to compare with it.</param>
    /// <param name="reference">The method every other is compared with (its <see cref="SequenceResult.Method"/>).</param>
    /// <param name="resamples">Bootstrap resamples (at least 1).</param>
    /// <param name="seed">Seed of the resampling's <see cref="Random"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="runs"/>, one of its elements or <paramref name="reference"/> is null.</exception>
    /// <exception cref="ArgumentException">
    /// The reference has no runs; a method's seeds differ from the reference's or repeat; tasks or test-row counts differ;
    /// or a run fails the checks of <see cref="Summarize"/>.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="resamples"/> is less than 1.</exception>
    public static IReadOnlyList<SequenceSummary> Compare(IReadOnlyList<SequenceResult> runs, string reference, int resamples = 2000, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(reference);
        var groups = Group(runs, resamples);
        var baseline = groups.Find(g => g.Method == reference).Runs
            ?? throw new ArgumentException($"There are no runs of the reference method '{reference}'. Methods: {string.Join(", ", groups.Select(g => $"'{g.Method}'"))}.", nameof(reference));
        var seeds = baseline.Select(r => r.Seed).ToList();
        return groups.Where(g => g.Method != reference).Select(g =>
        {
            var paired = seeds.Select(s => g.Runs.Count(r => r.Seed == s) == 1 ? g.Runs.Single(r => r.Seed == s) : null).ToList();
            if (paired.Contains(null) || g.Runs.Count != seeds.Count || seeds.Distinct().Count() != seeds.Count)
                throw new ArgumentException(
                    $"Method '{g.Method}' has runs for seeds [{string.Join(", ", g.Runs.Select(r => r.Seed))}] and '{reference}' for [{string.Join(", ", seeds)}]; " +
                    "a paired comparison needs one run per seed, for the same seeds.", nameof(runs));
            return SummarizeMethod(g.Method, paired!, (reference, baseline), resamples, new Random(seed));
        }).ToList();
    }

    /// <summary>
    /// A Markdown table with one row per summary: method, ACC, forgetting, BWT, FWT and new-task accuracy as
    /// "mean [lower, upper]" in accuracy points (× 100, one decimal), and the training time per sequence in seconds (no decimals).
    /// Differences from <see cref="Compare"/> get "Δ" headers and a first column named after their reference.
    /// </summary>
    /// <param name="summaries">The summaries, usually from <see cref="Summarize"/> or <see cref="Compare"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="summaries"/> or one of its elements is null.</exception>
    /// <exception cref="ArgumentException">The summaries are relative to different references (or some to none).</exception>
    public static string ToMarkdownTable(IReadOnlyList<SequenceSummary> summaries)
    {
        ArgumentNullException.ThrowIfNull(summaries);
        if (summaries.Any(s => s is null)) throw new ArgumentNullException(nameof(summaries), "A summary is null.");
        var references = summaries.Select(s => s.RelativeTo).Distinct().ToList();
        if (references.Count > 1)
            throw new ArgumentException($"The summaries mix figures relative to {string.Join(", ", references.Select(r => r is null ? "none" : $"'{r}'"))}; put each reference in a table of its own.", nameof(summaries));
        string? reference = references.FirstOrDefault();
        string d = reference is null ? "" : "Δ ";
        string method = reference is null ? "method" : $"method − {Escape(reference)}";
        var table = new StringBuilder()
            .AppendLine($"| {method} | {d}ACC | {d}forgetting | {d}BWT | {d}FWT | {d}new-task acc | {d}training time (s) |")
            .AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var s in summaries)
        {
            table.Append(CultureInfo.InvariantCulture,
                $"| {Escape(s.Method)} | {Points(s.AverageAccuracy)} | {Points(s.AverageForgetting)} | {Points(s.BackwardTransfer)} | {Points(s.ForwardTransfer)} | {Points(s.NewTaskAccuracy)} | {s.TrainingSeconds.ToString("0")} |")
                .AppendLine();
        }

        return table.ToString();
    }

    private static string Escape(string cell) => cell.Replace("|", "\\|", StringComparison.Ordinal);

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

    /// <summary>
    /// The method's figures over <paramref name="runs"/>; with a <paramref name="reference"/> (runs aligned by index, one
    /// seed each), the differences from it, with both methods' rows drawn alike.
    /// </summary>
    private static SequenceSummary SummarizeMethod(string method, List<SequenceResult> runs, (string Method, List<SequenceResult> Runs)? reference,
        int resamples, Random random)
    {
        var tasks = runs[0].Tasks;
        var rows = new RunRows[runs.Count];
        var referenceRows = new RunRows?[runs.Count];
        for (int k = 0; k < runs.Count; k++)
        {
            if (!runs[k].Tasks.SequenceEqual(tasks))
                throw new ArgumentException(
                    $"Method '{method}' has runs over different task lists: [{string.Join(", ", tasks)}] (seed {runs[0].Seed}) and " +
                    $"[{string.Join(", ", runs[k].Tasks)}] (seed {runs[k].Seed}); summarize each sequence separately.", nameof(runs));
            rows[k] = RunRows.From(method, runs[k]);
            if (reference is not var (name, referenceRuns)) continue;
            if (!referenceRuns[k].Tasks.SequenceEqual(tasks))
                throw new ArgumentException($"Methods '{method}' and '{name}' ran over different task lists (seed {runs[k].Seed}); compare runs of one sequence.", nameof(runs));
            referenceRows[k] = RunRows.From(name, referenceRuns[k]);
            if (!rows[k].SameRowCounts(referenceRows[k]!))
                throw new ArgumentException($"Methods '{method}' and '{name}' were tested on different numbers of rows (seed {runs[k].Seed}); a paired comparison needs the same test rows.", nameof(runs));
        }

        // Means: each run's own figures, from its recorded matrix (minus its reference run's).
        var figures = new double[MatrixFigures];
        var subtracted = new double[MatrixFigures];
        var means = new double[MatrixFigures];
        double meanSeconds = 0;
        for (int k = 0; k < runs.Count; k++)
        {
            Figures(runs[k].ToAccuracyMatrix(), figures);
            if (reference is { } rf) Figures(rf.Runs[k].ToAccuracyMatrix(), subtracted);
            for (int f = 0; f < MatrixFigures; f++) means[f] += (figures[f] - subtracted[f]) / runs.Count;
            meanSeconds += (runs[k].TrainingSeconds - (reference?.Runs[k].TrainingSeconds ?? 0)) / runs.Count;
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
                var draw = rows[drawn].Draw(random);
                rows[drawn].Accuracies(draw, r, b);
                Figures(new AccuracyMatrix(r, b), figures);
                secondsSum += runs[drawn].TrainingSeconds;
                if (referenceRows[drawn] is { } other)
                {
                    other.Accuracies(draw, r, b);
                    Figures(new AccuracyMatrix(r, b), subtracted);
                    secondsSum -= reference!.Value.Runs[drawn].TrainingSeconds;
                }

                for (int f = 0; f < MatrixFigures; f++) samples[f][s] += figures[f] - subtracted[f];
            }

            for (int f = 0; f < MatrixFigures; f++) samples[f][s] /= runs.Count;
            seconds[s] = secondsSum / runs.Count;
        }

        return new SequenceSummary
        {
            Method = method,
            Tasks = (string[])tasks.Clone(),
            Runs = runs.Count,
            RelativeTo = reference?.Method,
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

        /// <summary>Whether <paramref name="other"/> has as many test rows per task (and baseline) as this run.</summary>
        public bool SameRowCounts(RunRows other) =>
            _cells.Length == other._cells.Length
            && _cells.Zip(other._cells).All(c => c.First[0].Length == c.Second[0].Length)
            && _baseline.Zip(other._baseline).All(c => c.First.Length == c.Second.Length);

        /// <summary>
        /// Test rows drawn with replacement: per task, as many as it has (Rows), and for a baseline measured on other rows,
        /// as many of those (BaselineRows; null where the baseline reads the task's own rows).
        /// </summary>
        public (int[][] Rows, int[]?[] BaselineRows) Draw(Random random)
        {
            int t = _cells.Length;
            var rows = new int[t][];
            var baselineRows = new int[]?[t];
            for (int j = 0; j < t; j++)
            {
                int n = _cells[j][0].Length;
                rows[j] = new int[n];
                for (int d = 0; d < n; d++) rows[j][d] = random.Next(n);
                int m = _baseline[j].Length;
                if (m == n) continue;
                baselineRows[j] = new int[m];
                for (int d = 0; d < m; d++) baselineRows[j]![d] = random.Next(m);
            }

            return (rows, baselineRows);
        }

        /// <summary>Fills <paramref name="r"/> and <paramref name="b"/> with accuracies on the rows of <paramref name="draw"/>.</summary>
        public void Accuracies((int[][] Rows, int[]?[] BaselineRows) draw, double[][] r, double[] b)
        {
            int t = _cells.Length;
            for (int j = 0; j < t; j++)
            {
                var column = _cells[j];
                var rows = draw.Rows[j];
                for (int i = 0; i < t; i++)
                {
                    int hits = 0;
                    foreach (int row in rows) hits += column[i][row];
                    r[i][j] = (double)hits / rows.Length;
                }

                var baseRows = draw.BaselineRows[j] ?? rows;
                int baseHits = 0;
                foreach (int row in baseRows) baseHits += _baseline[j][row];
                b[j] = (double)baseHits / baseRows.Length;
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
