using MLNet.Lora.Encoders;

namespace MLNet.Lora.Peft;

/// <summary>The <c>README.md</c> model card stub PEFT writes beside an adapter: YAML front matter, then what a reader needs to use it.</summary>
internal static class PeftModelCard
{
    public const string FileName = "README.md";

    public static string Write(string baseModel, PoolingStrategy pooling, int classCount) =>
        $"""
        ---
        base_model: {baseModel}
        library_name: peft
        tags:
        - lora
        - text-classification
        - mlnet-lora
        ---

        # LoRA adapter for {baseModel}

        A LoRA adapter and classification head ({classCount} classes) trained with MLNet.Lora, saved in PEFT's format.

        ## How to use

        Load it with PEFT onto `BertForSequenceClassification` (or `AutoPeftModelForSequenceClassification`).
        {(pooling == PoolingStrategy.Pooler
            ? "The head reads the pooler output, as `BertForSequenceClassification` does: the outputs match MLNet.Lora's."
            : $"MLNet.Lora pooled the token states with `{pooling}` pooling (see `mlnet_lora.json`), not with the pooler that " +
              "`BertForSequenceClassification` uses: apply the same pooling to the encoder's last hidden states and then the " +
              "`classifier` layer to reproduce its outputs.")}

        ### Framework versions

        - MLNet.Lora {typeof(PeftModelCard).Assembly.GetName().Version}
        """;
}
