using MLNet.Lora.Tokenization;

namespace MLNet.Lora.Training;

/// <summary>
/// What an epoch-end callback sees: the model between epochs (in eval mode, adapters unmerged) and the epoch's
/// figures. Monitors such as the forgetting timeline use it; set <see cref="StopTraining"/> to end training early.
/// </summary>
public sealed class EpochEndedContext
{
    internal EpochEndedContext(int epoch, int maxEpochs, double trainingLoss, double? validationAccuracy,
        TextClassificationModel model, BertTextTokenizer tokenizer, int maxSequenceLength)
    {
        Epoch = epoch;
        MaxEpochs = maxEpochs;
        TrainingLoss = trainingLoss;
        ValidationAccuracy = validationAccuracy;
        Model = model;
        Tokenizer = tokenizer;
        MaxSequenceLength = maxSequenceLength;
    }

    /// <summary>The epoch just finished (1-based).</summary>
    public int Epoch { get; }

    /// <summary>Epochs planned.</summary>
    public int MaxEpochs { get; }

    /// <summary>Mean training loss of the epoch.</summary>
    public double TrainingLoss { get; }

    /// <summary>Validation accuracy after the epoch, when a validation set was given.</summary>
    public double? ValidationAccuracy { get; }

    /// <summary>The model being trained. Look, but leave it as found: training resumes from it.</summary>
    public TextClassificationModel Model { get; }

    /// <summary>The tokenizer of the model's encoder.</summary>
    public BertTextTokenizer Tokenizer { get; }

    /// <summary>The maximum sequence length used in training.</summary>
    public int MaxSequenceLength { get; }

    /// <summary>Set to end training after this epoch.</summary>
    public bool StopTraining { get; set; }
}
