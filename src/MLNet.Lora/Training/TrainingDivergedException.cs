namespace MLNet.Lora.Training;

/// <summary>
/// Training stopped because the loss became NaN or infinite (too high a learning rate, or clipping turned off). A sweep
/// records such a trial as failed and goes on; every other error stops it. Derives from
/// <see cref="InvalidOperationException"/>, which the trainer threw for this before.
/// </summary>
public sealed class TrainingDivergedException : InvalidOperationException
{
    /// <summary>Creates the exception for a non-finite <paramref name="loss"/> at <paramref name="epoch"/> and <paramref name="step"/>.</summary>
    public TrainingDivergedException(int epoch, int step, double loss, string message)
        : base(message)
    {
        Epoch = epoch;
        Step = step;
        Loss = loss;
    }

    /// <summary>The 1-based epoch in which the loss diverged.</summary>
    public int Epoch { get; }

    /// <summary>The 1-based optimizer step whose loss was not finite.</summary>
    public int Step { get; }

    /// <summary>The loss: NaN or infinite.</summary>
    public double Loss { get; }
}
