using Microsoft.ML;
using MLNet.Lora.Integration;

namespace MLNet.Lora;

/// <summary>The transformer as a text classifier that the one scoring path (<see cref="ScoredDataView"/>, <see cref="ScoringRowMapper"/>) drives.</summary>
public sealed partial class LoraTextClassificationTransformer : IRowScorer
{
    IEnumerable<DataViewSchema.Column> IRowScorer.ScoringColumns(DataViewSchema inputSchema) =>
        TextClassifierScoring.TextColumns(inputSchema, Settings.TextColumnName, Settings.SecondTextColumnName);

    // Several batches at a time, so that sorting by length packs batches tightly.
    int IRowScorer.ChunkSize => Settings.InferenceBatchSize * 8;

    IScoringChunk IRowScorer.OpenChunk(DataViewRow input, bool forCursor) =>
        TextClassifierScoring.Chunk(input, Settings.TextColumnName, Settings.SecondTextColumnName, PredictProbabilities);
}
