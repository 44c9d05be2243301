namespace MLNet.Lora.Training;

/// <summary>Measures how much a model has forgotten since the check was made: the mean accuracy drop over retention tasks.</summary>
internal interface IRetentionCheck
{
    /// <summary>The drop at <paramref name="model"/>'s current weights (the model is left as found).</summary>
    double Drop(TextClassificationModel model);
}

/// <summary>What limits forgetting in one fit: replayed old rows, penalties on the loss, and a budget with its check. Owns the penalties.</summary>
internal sealed class RetentionControls : IDisposable
{
    public RehearsalRows? Rehearsal { get; init; }

    public IReadOnlyList<ITrainingPenalty> Penalties { get; init; } = [];

    public (ForgettingBudget Budget, IRetentionCheck Check)? Budget { get; init; }

    /// <summary>Whatever else the controls hold and must free (the budget's probes).</summary>
    public IDisposable? Owned { get; init; }

    /// <summary>Whether the replayed tasks' heads were made for this fit (the trainer's) rather than borrowed (a sequence's own heads).</summary>
    public bool OwnsRehearsalHeads { get; init; }

    public bool IsEmpty => Rehearsal is null && Penalties.Count == 0 && Budget is null;

    public void Dispose()
    {
        foreach (var p in Penalties) p.Dispose();
        Owned?.Dispose();
        if (OwnsRehearsalHeads && Rehearsal is not null)
            foreach (var task in Rehearsal.Tasks) task.Head.Dispose();
    }
}
