using MLNet.Lora.Training;

namespace MLNet.Lora.Sweeps;

/// <summary>A progress report from a sweep.</summary>
/// <param name="TrialNumber">1-based number of the trial this report is about.</param>
/// <param name="PlannedTrials">Trials the sweep plans in all (every round of successive halving counted).</param>
/// <param name="Rung">Successive-halving round (0 first; always 0 in a grid).</param>
/// <param name="Settings">The trial's settings.</param>
/// <param name="Epochs">The trial's epochs.</param>
/// <param name="Training">While the trial trains: the trainer's report; null at the trial's start and end.</param>
/// <param name="Completed">When the trial has ended: its result; null before.</param>
public sealed record LoraSweepProgress(
    int TrialNumber,
    int PlannedTrials,
    int Rung,
    LoraTrialSettings Settings,
    int Epochs,
    LoraTrainingProgress? Training = null,
    LoraSweepTrial? Completed = null)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"trial {TrialNumber}/{PlannedTrials} (round {Rung}) {Settings} epochs={Epochs}: " +
        (Completed is { } trial ? (trial.Succeeded ? $"done, accuracy {trial.Accuracy:F4}, macro-F1 {trial.MacroF1:F4}, {trial.TrainingTime.TotalSeconds:F1} s" : $"failed: {trial.Error}")
         : Training is { } training ? training.ToString()
         : "starting");
}
