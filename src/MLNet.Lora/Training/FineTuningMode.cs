namespace MLNet.Lora.Training;

/// <summary>Which weights a fine-tune trains.</summary>
public enum FineTuningMode
{
    /// <summary>LoRA adapters on the targeted layers and the classification head; the encoder stays frozen.</summary>
    Lora,

    /// <summary>Every encoder weight and the head: the full fine-tuning baseline that LoRA is compared against.</summary>
    Full,

    /// <summary>The classification head alone over the frozen encoder (a linear probe).</summary>
    HeadOnly,
}
