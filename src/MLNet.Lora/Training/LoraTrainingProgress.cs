namespace MLNet.Lora.Training;

/// <summary>A progress report from a fine-tune, sent every few steps and at the end of each epoch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="MaxEpochs">Epochs planned.</param>
/// <param name="Step">Optimizer steps taken so far.</param>
/// <param name="TotalSteps">Optimizer steps planned.</param>
/// <param name="Loss">Mean training loss since the previous report.</param>
/// <param name="LearningRate">Current base learning rate.</param>
/// <param name="ExamplesPerSecond">Training throughput since the previous report.</param>
/// <param name="TimeRemaining">Estimated time to the end of training.</param>
/// <param name="ValidationAccuracy">At an epoch's end, with a validation set: its accuracy.</param>
/// <param name="ValidationLoss">At an epoch's end, with a validation set: its mean loss.</param>
/// <param name="IsEpochEnd">Whether this report closes an epoch.</param>
public sealed record LoraTrainingProgress(
    int Epoch,
    int MaxEpochs,
    int Step,
    int TotalSteps,
    double Loss,
    double LearningRate,
    double ExamplesPerSecond,
    TimeSpan TimeRemaining,
    double? ValidationAccuracy = null,
    double? ValidationLoss = null,
    bool IsEpochEnd = false)
{
    /// <inheritdoc/>
    public override string ToString() => IsEpochEnd
        ? $"epoch {Epoch}/{MaxEpochs} done: mean loss {Loss:F4}, {ExamplesPerSecond:F1} ex/s" +
          (ValidationAccuracy is { } acc ? $", validation accuracy {acc:F4}, validation loss {ValidationLoss:F4}" : "") +
          $", ~{TimeRemaining:hh\\:mm\\:ss} left"
        : $"epoch {Epoch}/{MaxEpochs} step {Step}/{TotalSteps} loss {Loss:F4} lr {LearningRate:G3} {ExamplesPerSecond:F1} ex/s ~{TimeRemaining:hh\\:mm\\:ss} left";
}
