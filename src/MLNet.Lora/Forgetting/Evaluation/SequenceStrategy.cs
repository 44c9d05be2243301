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
    /// nothing it uses changes later (its forgetting is zero by construction, a check of the machinery).
    /// </summary>
    AdapterPerTask,
}
