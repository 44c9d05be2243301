using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// Row-at-a-time scoring for <c>PredictionEngine</c>: each output row scores its input row once, on first access.
/// A mapper (and so an engine) is used by one thread at a time, as ML.NET documents.
/// </summary>
internal sealed class ScoringRowMapper : IRowToRowMapper
{
    private readonly IRowScorer transformer;

    public ScoringRowMapper(IRowScorer transformer, DataViewSchema inputSchema)
    {
        this.transformer = transformer;
        InputSchema = inputSchema;
        OutputSchema = transformer.GetOutputSchema(inputSchema);
    }

    public DataViewSchema InputSchema { get; }

    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var columns = dependingColumns.ToList();
        var needed = columns.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
        if (columns.Any(c => c.Index >= InputSchema.Count)) needed.AddRange(transformer.ScoringColumns(InputSchema));
        return needed.DistinctBy(c => c.Index);
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class Row : DataViewRow
    {
        private readonly ScoringRowMapper mapper;
        private readonly DataViewRow input;
        private readonly HashSet<int> active;
        private readonly IScoringChunk? chunk;
        private long scoredPosition = -1;

        public Row(ScoringRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            this.mapper = mapper;
            this.input = input;
            this.active = active;
            if (active.Any(i => i >= mapper.InputSchema.Count)) chunk = mapper.transformer.OpenChunk(input, forCursor: false);
        }

        public override long Position => input.Position;

        public override long Batch => input.Batch;

        public override DataViewSchema Schema => mapper.OutputSchema;

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column)) throw new InvalidOperationException($"Column '{column.Name}' is not active in this row.");
            int inputCount = mapper.InputSchema.Count;
            if (column.Index < inputCount) return input.GetGetter<TValue>(input.Schema[column.Index]);

            var getter = chunk!.OutputGetter<TValue>(column, inputCount, () => 0);
            return (ref TValue value) =>
            {
                ScoreCurrent();
                getter(ref value);
            };
        }

        /// <summary>Scores the input's current row, once per position.</summary>
        private void ScoreCurrent()
        {
            if (scoredPosition == input.Position && scoredPosition >= 0) return;
            chunk!.Clear();
            chunk.Capture();
            chunk.Score();
            scoredPosition = input.Position;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

        protected override void Dispose(bool disposing)
        {
            if (disposing) chunk?.Dispose();
            base.Dispose(disposing);
        }
    }
}
