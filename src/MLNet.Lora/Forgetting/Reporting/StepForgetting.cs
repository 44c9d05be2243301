namespace MLNet.Lora.Forgetting;

/// <summary>What one step of a task sequence did to one earlier task: R[j−1][i] − R[j][i] for old task i and new task j.</summary>
public sealed record StepForgetting
{
    /// <summary>The earlier task i.</summary>
    public required string OldTask { get; init; }

    /// <summary>The task j trained in this step.</summary>
    public required string NewTask { get; init; }

    /// <summary>Accuracy on the old task before the step, R[j−1][i].</summary>
    public double Before { get; init; }

    /// <summary>Accuracy on the old task after the step, R[j][i].</summary>
    public double After { get; init; }

    /// <summary><see cref="Before"/> − <see cref="After"/>: positive when the step made the model forget.</summary>
    public double Drop => Before - After;
}
