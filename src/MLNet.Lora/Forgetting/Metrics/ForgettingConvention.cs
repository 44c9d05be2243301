namespace MLNet.Lora.Forgetting;

/// <summary>Which earlier accuracy on a task counts as its reference when measuring how much of it was forgotten.</summary>
public enum ForgettingConvention
{
    /// <summary>
    /// The best accuracy the task had after it was trained and before the final training step:
    /// f_j = max over j ≤ l &lt; T−1 of R[l][j] − R[T−1][j]
    /// (A. Chaudhry, P. K. Dokania, T. Ajanthan, P. H. S. Torr, "Riemannian Walk for Incremental Learning", ECCV 2018,
    /// whose max runs over every earlier step; rows before the task was learnt are left out, as implementations that only
    /// evaluate seen tasks do, because an accuracy measured before learning is not knowledge that can be forgotten).
    /// </summary>
    Max,

    /// <summary>
    /// The accuracy right after training on the task itself: f_j = R[j][j] − R[T−1][j]
    /// (the convention of Avalanche's forgetting metric).
    /// </summary>
    First,
}
