using MLNet.Lora.Forgetting;

namespace MLNet.Lora.Training;

/// <summary>
/// Experience replay for a fine-tune (<see cref="LoraTextClassificationTrainer.Options.Rehearsal"/>): rows of earlier
/// tasks mixed into every training batch, each task read out by a head of its own that trains along, so that the
/// encoder keeps serving them. Cost: <paramref name="Ratio"/> more rows per step. After Robins (1995), "Catastrophic
/// forgetting, rehearsal and pseudorehearsal", and Chaudhry et al. (2019), "On Tiny Episodic Memories in Continual Learning".
/// </summary>
/// <param name="Tasks">The earlier tasks, each an <see cref="Microsoft.ML.IDataView"/> with its own text and label columns (its training rows are replayed).</param>
/// <param name="Ratio">Old rows per new row in each batch, positive (0.1: one old row for every ten new ones, at least one per batch).</param>
public sealed record Rehearsal(IReadOnlyList<ForgettingTask> Tasks, double Ratio)
{
    /// <summary>Refuses a ratio that is not a positive number, naming <paramref name="option"/>.</summary>
    internal static void ValidateRatio(double ratio, string option)
    {
        if (!(ratio > 0) || !double.IsFinite(ratio))
            throw new ArgumentOutOfRangeException(option, ratio, $"{option} must be a positive number of old rows per new row (was {ratio}); for example 0.1.");
    }
}
