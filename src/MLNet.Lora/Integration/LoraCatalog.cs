using MLNet.Lora;
using MLNet.Lora.Training;

namespace Microsoft.ML;

/// <summary>
/// Catalog entry points for MLNet.Lora, in ML.NET's own namespace so that they appear next to the built-in trainers.
/// </summary>
public static class LoraCatalog
{
    /// <summary>
    /// Fine-tunes a pretrained BERT-family encoder (default: the embedded all-MiniLM-L6-v2) with LoRA adapters for
    /// text classification. The label must be a key column: add <c>MapValueToKey</c> first.
    /// </summary>
    /// <param name="catalog">The multiclass classification trainers catalog.</param>
    /// <param name="labelColumnName">The label column (a key type).</param>
    /// <param name="textColumnName">The text column.</param>
    /// <param name="secondTextColumnName">An optional second text column, for pair tasks.</param>
    /// <param name="scoreColumnName">The output column of class probabilities.</param>
    /// <param name="predictedLabelColumnName">The output column of the predicted label.</param>
    /// <param name="rank">LoRA rank.</param>
    /// <param name="alpha">LoRA alpha (the update is scaled by alpha / rank).</param>
    /// <param name="maxEpochs">Passes over the training data.</param>
    /// <param name="batchSize">Examples per optimizer step.</param>
    /// <param name="learningRate">Peak learning rate; null picks the mode's usual value.</param>
    /// <param name="mode">LoRA (default), full fine-tuning or head only.</param>
    /// <example>
    /// <code>
    /// var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    ///     .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(rank: 8, maxEpochs: 3))
    ///     .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
    /// </code>
    /// </example>
    public static LoraTextClassificationTrainer LoraTextClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label,
        string textColumnName = DefaultColumnNames.Text,
        string? secondTextColumnName = null,
        string scoreColumnName = DefaultColumnNames.Score,
        string predictedLabelColumnName = DefaultColumnNames.PredictedLabel,
        int rank = 8,
        double alpha = 16,
        int maxEpochs = 3,
        int batchSize = 32,
        double? learningRate = null,
        FineTuningMode mode = FineTuningMode.Lora) =>
        catalog.LoraTextClassification(new LoraTextClassificationTrainer.Options
        {
            LabelColumnName = labelColumnName,
            TextColumnName = textColumnName,
            SecondTextColumnName = secondTextColumnName,
            ScoreColumnName = scoreColumnName,
            PredictedLabelColumnName = predictedLabelColumnName,
            Rank = rank,
            Alpha = alpha,
            MaxEpochs = maxEpochs,
            BatchSize = batchSize,
            LearningRate = learningRate,
            Mode = mode,
        });

    /// <summary>Fine-tunes with every setting given by <paramref name="options"/>.</summary>
    /// <param name="catalog">The multiclass classification trainers catalog.</param>
    /// <param name="options">The trainer's settings.</param>
    public static LoraTextClassificationTrainer LoraTextClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        LoraTextClassificationTrainer.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LoraTextClassificationTrainer(MLNet.Lora.Integration.MLContextAccess.EnvironmentOf(catalog), options);
    }
}
