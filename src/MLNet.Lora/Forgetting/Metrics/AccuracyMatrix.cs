namespace MLNet.Lora.Forgetting;

/// <summary>
/// The accuracy matrix of a continual-learning run over T tasks, R[i][j] = accuracy on task j after training
/// through task i, and the standard summaries derived from it.
/// </summary>
/// <remarks>
/// References: D. Lopez-Paz, M. Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017
/// (average accuracy, backward and forward transfer); A. Chaudhry et al., "Riemannian Walk for Incremental
/// Learning", ECCV 2018 (forgetting). Tasks are indexed from 0; T−1 is the last one.
/// </remarks>
public sealed class AccuracyMatrix
{
    private readonly double[][] _r;
    private readonly double[]? _baseline;

    /// <summary>Creates the matrix; the arrays are copied.</summary>
    /// <param name="accuracies">Square T × T (T ≥ 1) jagged array; R[i][j] = accuracy on task j after training through task i, each in [0, 1].</param>
    /// <param name="baseline">
    /// Optional accuracies b[j] in [0, 1] of the untrained or reference model on each task, length T; needed only by <see cref="ForwardTransfer"/>.
    /// </param>
    /// <exception cref="ArgumentNullException"><paramref name="accuracies"/> or one of its rows is null.</exception>
    /// <exception cref="ArgumentException">The matrix is empty or not square, the baseline's length is not T, or a value is outside [0, 1] or NaN.</exception>
    public AccuracyMatrix(double[][] accuracies, double[]? baseline = null)
    {
        ArgumentNullException.ThrowIfNull(accuracies);
        int t = accuracies.Length;
        if (t == 0) throw new ArgumentException("The matrix needs at least one task.", nameof(accuracies));
        _r = new double[t][];
        for (int i = 0; i < t; i++)
        {
            var row = accuracies[i] ?? throw new ArgumentNullException(nameof(accuracies), $"Row {i} is null.");
            if (row.Length != t) throw new ArgumentException($"The matrix must be square ({t} × {t}); row {i} has {row.Length} entries.", nameof(accuracies));
            for (int j = 0; j < t; j++) RequireAccuracy(row[j], nameof(accuracies), $"R[{i}][{j}]");
            _r[i] = (double[])row.Clone();
        }

        if (baseline is not null)
        {
            if (baseline.Length != t) throw new ArgumentException($"The baseline needs one accuracy per task ({t}); got {baseline.Length}.", nameof(baseline));
            for (int j = 0; j < t; j++) RequireAccuracy(baseline[j], nameof(baseline), $"b[{j}]");
            _baseline = (double[])baseline.Clone();
        }
    }

    /// <summary>Number of tasks T.</summary>
    public int TaskCount => _r.Length;

    /// <summary>Whether baseline accuracies were given, so that <see cref="ForwardTransfer"/> is defined.</summary>
    public bool HasBaseline => _baseline is not null;

    /// <summary>Accuracy on task <paramref name="onTask"/> after training through task <paramref name="afterTask"/>.</summary>
    /// <param name="afterTask">Row index i, 0 ≤ i &lt; T.</param>
    /// <param name="onTask">Column index j, 0 ≤ j &lt; T.</param>
    public double this[int afterTask, int onTask] => _r[afterTask][onTask];

    /// <summary>Average accuracy after the last task: (1/T) Σ_j R[T−1][j].</summary>
    public double AverageAccuracy => _r[^1].Average();

    /// <summary>
    /// New-task accuracy (plasticity): (1/T) Σ_i R[i][i], the accuracy on each task right after training on it. Read beside
    /// <see cref="AverageForgetting"/>: a method can forget little only because it barely learns each new task.
    /// </summary>
    public double NewTaskAccuracy
    {
        get
        {
            double sum = 0;
            for (int i = 0; i < TaskCount; i++) sum += _r[i][i];
            return sum / TaskCount;
        }
    }

    /// <summary>Forgetting of task <paramref name="task"/> after the last training step (positive = accuracy lost).</summary>
    /// <param name="task">Task index j, 0 ≤ j &lt; T−1 (the last task cannot have been forgotten yet).</param>
    /// <param name="convention">
    /// <see cref="ForgettingConvention.Max"/>: max over j ≤ l &lt; T−1 of R[l][j] − R[T−1][j] (only rows after task j was
    /// trained: entries above the diagonal measure a task before it is learnt, sometimes with a probe, and are no
    /// knowledge that could be forgotten);
    /// <see cref="ForgettingConvention.First"/>: R[j][j] − R[T−1][j].
    /// </param>
    /// <exception cref="InvalidOperationException">T &lt; 2.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="task"/> is outside [0, T−2], or the convention is unknown.</exception>
    public double Forgetting(int task, ForgettingConvention convention = ForgettingConvention.Max)
    {
        RequireTwoTasks(nameof(Forgetting));
        int last = TaskCount - 1;
        if (task < 0 || task >= last)
            throw new ArgumentOutOfRangeException(nameof(task), task, $"Forgetting is defined for tasks 0..{last - 1}.");
        double reference = convention switch
        {
            ForgettingConvention.Max => Enumerable.Range(task, last - task).Max(l => _r[l][task]),
            ForgettingConvention.First => _r[task][task],
            _ => throw new ArgumentOutOfRangeException(nameof(convention), convention, "Unknown forgetting convention."),
        };
        return reference - _r[last][task];
    }

    /// <summary>Average forgetting: (1/(T−1)) Σ_{j &lt; T−1} <see cref="Forgetting"/>(j, convention).</summary>
    /// <param name="convention">Which reference accuracy each task is compared with.</param>
    /// <exception cref="InvalidOperationException">T &lt; 2.</exception>
    public double AverageForgetting(ForgettingConvention convention = ForgettingConvention.Max)
    {
        RequireTwoTasks(nameof(AverageForgetting));
        return Enumerable.Range(0, TaskCount - 1).Average(j => Forgetting(j, convention));
    }

    /// <summary>
    /// Backward transfer (Lopez-Paz &amp; Ranzato 2017): (1/(T−1)) Σ_{i &lt; T−1} (R[T−1][i] − R[i][i]).
    /// Negative values mean later training hurt earlier tasks.
    /// </summary>
    /// <exception cref="InvalidOperationException">T &lt; 2.</exception>
    public double BackwardTransfer
    {
        get
        {
            RequireTwoTasks(nameof(BackwardTransfer));
            int last = TaskCount - 1;
            return Enumerable.Range(0, last).Average(i => _r[last][i] - _r[i][i]);
        }
    }

    /// <summary>
    /// Forward transfer (Lopez-Paz &amp; Ranzato 2017): (1/(T−1)) Σ_{i ≥ 1} (R[i−1][i] − b[i]), how much training on earlier
    /// tasks helps a task before it is trained on, relative to the baseline accuracies b.
    /// </summary>
    /// <exception cref="InvalidOperationException">No baseline was given, or T &lt; 2.</exception>
    public double ForwardTransfer
    {
        get
        {
            if (_baseline is null)
                throw new InvalidOperationException(
                    "Forward transfer needs the baseline accuracies b[j] of the untrained or reference model; pass them to the AccuracyMatrix constructor.");
            RequireTwoTasks(nameof(ForwardTransfer));
            var b = _baseline;
            return Enumerable.Range(1, TaskCount - 1).Average(i => _r[i - 1][i] - b[i]);
        }
    }

    private void RequireTwoTasks(string metric)
    {
        if (TaskCount < 2) throw new InvalidOperationException($"{metric} needs at least two tasks; this matrix has {TaskCount}.");
    }

    private static void RequireAccuracy(double value, string parameter, string label)
    {
        // The negated form also rejects NaN.
        if (!(value >= 0.0 && value <= 1.0))
            throw new ArgumentException($"{label} = {value} is not an accuracy in [0, 1].", parameter);
    }
}
