using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// What <see cref="ScoredDataView"/> and <see cref="ScoringRowMapper"/> drive: a transformer that appends scored columns
/// after its input's, computed from a few input columns, a chunk of rows at a time.
/// </summary>
internal interface IRowScorer
{
    /// <summary>The input's columns followed by the scored ones.</summary>
    DataViewSchema GetOutputSchema(DataViewSchema inputSchema);

    /// <summary>The input columns scoring reads.</summary>
    IEnumerable<DataViewSchema.Column> ScoringColumns(DataViewSchema inputSchema);

    /// <summary>Rows buffered and scored together by a cursor.</summary>
    int ChunkSize { get; }

    /// <summary>
    /// A chunk that captures rows from <paramref name="input"/>. A cursor's chunk (<paramref name="forCursor"/>) may keep
    /// what it needs alive until it is disposed; a row mapper's chunk scores one row at a time against the current state.
    /// </summary>
    IScoringChunk OpenChunk(DataViewRow input, bool forCursor);
}

/// <summary>A chunk of captured input rows and, once <see cref="Score"/> ran, their scored columns.</summary>
internal interface IScoringChunk : IDisposable
{
    /// <summary>Rows captured.</summary>
    int Count { get; }

    /// <summary>Appends the input's current row.</summary>
    void Capture();

    /// <summary>Forgets the rows.</summary>
    void Clear();

    /// <summary>Scores the captured rows.</summary>
    void Score();

    /// <summary>The getter of scored column <paramref name="column"/> (index at or after <paramref name="inputCount"/>) for the row <paramref name="row"/> returns.</summary>
    ValueGetter<TValue> OutputGetter<TValue>(DataViewSchema.Column column, int inputCount, Func<int> row);
}
