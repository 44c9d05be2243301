namespace MLNet.Lora.Forgetting;

/// <summary>How a task sequence is trained; every strategy gives each task its own classification head.</summary>
public enum SequenceStrategy
{
    /// <summary>Every encoder weight trains on every task in turn: the classic catastrophic-forgetting setting.</summary>
    FullFineTuning,

    /// <summary>One LoRA adapter over the frozen base, trained on every task in turn.</summary>
    SharedAdapter,

    /// <summary>
    /// A fresh LoRA adapter per task over the frozen base; an old task is evaluated with its own adapter active, so
    /// nothing it uses changes later (its forgetting is zero by construction, a check of the machinery). It needs the
    /// task's identity at inference.
    /// </summary>
    AdapterPerTask,

    /// <summary>
    /// O-LoRA (Wang et al. 2023, "Orthogonal Subspace Learning for Language Model Continual Learning"): a fresh adapter
    /// per task, every earlier adapter kept active (folded into the weights), and the new adapter's A held near-orthogonal
    /// to the earlier ones' by the penalty λ·Σ‖A_old A_newᵀ‖² (<see cref="SequenceMethod.OrthogonalityStrength"/>).
    /// Needs no task identity at inference.
    /// </summary>
    OrthogonalAdapters,

    /// <summary>
    /// A fresh adapter per task, and after each task the adapters trained so far merged into one with TIES
    /// (<see cref="AdapterCombination.Ties"/>); every task is evaluated with the merged adapter, so it needs
    /// no task identity at inference.
    /// </summary>
    MergedAdapters,
}
