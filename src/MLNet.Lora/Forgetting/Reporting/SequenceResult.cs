using MLNet.Lora.Training;
using System.Text.Json.Serialization;

namespace MLNet.Lora.Forgetting;

/// <summary>A task sequence trained with one <see cref="SequenceStrategy"/>: its accuracy matrix, the summaries, and what happened inside.</summary>
public sealed record SequenceResult
{
    /// <summary>How the sequence was trained.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<SequenceStrategy>))]
    public SequenceStrategy Strategy { get; init; }

    /// <summary>The method's name in reports: the strategy and the options that limit forgetting (see <see cref="SequenceMethod"/>).</summary>
    public string Method { get; init; } = "";

    /// <summary>The seed the run was trained with (<see cref="ForgettingEvaluator.Options.Seed"/>).</summary>
    public int Seed { get; init; }

    /// <summary>Task names in training order.</summary>
    public required string[] Tasks { get; init; }

    /// <summary>
    /// R[i][j]: accuracy on task j's test rows after training through task i. On and below the diagonal (j ≤ i) task j's own
    /// trained head is used. Above it (j &gt; i) task j has no head yet, so R[i][j] is the accuracy of a linear probe fitted
    /// on the encoder after task i: how much earlier training helps task j before it is trained.
    /// </summary>
    public required double[][] Accuracy { get; init; }

    /// <summary>b[j]: accuracy of a linear probe on the untouched start model's features for task j (the forward-transfer baseline).</summary>
    public required double[] Baseline { get; init; }

    /// <summary>
    /// Per cell R[i][j], whether each of task j's test rows (in the same order in every cell of column j) was classified
    /// correctly: what bootstrap intervals over test rows resample (<see cref="SequenceSummary"/>). Null in reports saved
    /// before it was recorded.
    /// </summary>
    public bool[][][]? RowCorrect { get; init; }

    /// <summary>Per task j, whether the start model's probe classified each test row correctly (the rows of b[j]).</summary>
    public bool[][]? BaselineRowCorrect { get; init; }

    /// <summary>Average accuracy after the last task, (1/T) Σ_j R[T−1][j].</summary>
    public double AverageAccuracy { get; init; }

    /// <summary>Average forgetting, max convention (Chaudhry et al. 2018): mean over j &lt; T−1 of max_{l&lt;T−1} R[l][j] − R[T−1][j].</summary>
    public double AverageForgetting { get; init; }

    /// <summary>Average forgetting, first convention (Avalanche): mean over j &lt; T−1 of R[j][j] − R[T−1][j].</summary>
    public double AverageForgettingFirst { get; init; }

    /// <summary>Backward transfer (Lopez-Paz &amp; Ranzato 2017): mean over i &lt; T−1 of R[T−1][i] − R[i][i]; negative = forgetting.</summary>
    public double BackwardTransfer { get; init; }

    /// <summary>Forward transfer (Lopez-Paz &amp; Ranzato 2017): mean over i ≥ 1 of R[i−1][i] − b[i], with b = <see cref="Baseline"/>.</summary>
    public double ForwardTransfer { get; init; }

    /// <summary>Per step j and earlier task i: how much training task j moved task i's accuracy.</summary>
    public required IReadOnlyList<StepForgetting> Steps { get; init; }

    /// <summary>Per task, right after training it: the curvature of its loss (own head) over the parameters that trained.</summary>
    public required IReadOnlyList<SharpnessResult> Sharpness { get; init; }

    /// <summary>Before each step j ≥ 1: conflict between the earlier tasks' loss (own heads) and task j's loss (linear probe on the current features).</summary>
    public required IReadOnlyList<GradientConflictResult> GradientConflicts { get; init; }

    /// <summary>Per earlier task i: the model right after task i against the final model, on task i's test inputs (each evaluated as task i is).</summary>
    public required IReadOnlyList<InternalComparison> Drift { get; init; }

    /// <summary>Per task, what the method's forgetting budget did (null for the first task, and for methods without a budget).</summary>
    public IReadOnlyList<ForgettingBudgetOutcome?> Budgets { get; init; } = [];

    /// <summary>Parameters that trained for each task (encoder part; heads excluded).</summary>
    public required long[] TrainedParameters { get; init; }

    /// <summary>Wall time of the tasks' training alone (replay, penalties and budget checks included; accuracy and the other measurements not).</summary>
    public double TrainingSeconds { get; init; }

    /// <summary>Wall time of the whole sequence, measurements included (a first task shared with another method counts as if it ran here).</summary>
    public double Seconds { get; init; }

    /// <summary>The matrix as an <see cref="AccuracyMatrix"/>, with <see cref="Baseline"/>.</summary>
    public AccuracyMatrix ToAccuracyMatrix() => new(Accuracy, Baseline);
}
