using Microsoft.ML;

namespace MLNet.Lora.Integration;

/// <summary>
/// What <see cref="BatchScoredView"/> and <see cref="BatchScoringRowMapper"/> need from a text classifier, whatever runs it:
/// its text columns, its output schema, and class probabilities for a list of texts.
/// </summary>
internal interface ITextProbabilityScorer
{
    /// <summary>The input text column.</summary>
    string TextColumnName { get; }

    /// <summary>The second text column of pair tasks, or null.</summary>
    string? SecondTextColumnName { get; }

    /// <summary>Rows scored per forward pass (the view reads eight batches ahead).</summary>
    int BatchSize { get; }

    /// <summary>The input's columns plus the score vector and then the predicted-label key.</summary>
    DataViewSchema GetOutputSchema(DataViewSchema inputSchema);

    /// <summary>Class probabilities, one row per text.</summary>
    float[][] PredictProbabilities(IReadOnlyList<string?> texts, IReadOnlyList<string?>? pairs);
}
