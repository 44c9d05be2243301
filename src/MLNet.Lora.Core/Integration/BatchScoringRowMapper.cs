using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// Row-at-a-time scoring for <c>PredictionEngine</c>: each output row scores its input row once, on first access.
/// A mapper (and so an engine) is used by one thread at a time, as ML.NET documents.
/// </summary>
internal sealed class BatchScoringRowMapper : IRowToRowMapper
{
    private readonly ITextProbabilityScorer transformer;

    public BatchScoringRowMapper(ITextProbabilityScorer transformer, DataViewSchema inputSchema)
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
        if (columns.Any(c => c.Index >= InputSchema.Count)) needed.AddRange(BatchScoredView.TextColumns(transformer, InputSchema));
        return needed.DistinctBy(c => c.Index);
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class Row : DataViewRow
    {
        private readonly BatchScoringRowMapper mapper;
        private readonly DataViewRow input;
        private readonly HashSet<int> active;
        private readonly ValueGetter<ReadOnlyMemory<char>>? text;
        private readonly ValueGetter<ReadOnlyMemory<char>>? pair;
        private long scoredPosition = -1;
        private float[] scores = [];

        public Row(BatchScoringRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            this.mapper = mapper;
            this.input = input;
            this.active = active;
            if (active.Any(i => i >= mapper.InputSchema.Count))
            {
                var scorer = mapper.transformer;
                text = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[scorer.TextColumnName]);
                if (scorer.SecondTextColumnName is { } second) pair = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[second]);
            }
        }

        public override long Position => input.Position;

        public override long Batch => input.Batch;

        public override DataViewSchema Schema => mapper.OutputSchema;

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column)) throw new InvalidOperationException($"Column '{column.Name}' is not active in this row.");
            int inputCount = mapper.InputSchema.Count;
            if (column.Index < inputCount) return input.GetGetter<TValue>(input.Schema[column.Index]);

            return BatchScoredView.OutputGetter<TValue>(column, inputCount, Current);
        }

        private float[] Current()
        {
            if (scoredPosition == input.Position && scoredPosition >= 0) return scores;
            ReadOnlyMemory<char> value = default;
            text!(ref value);
            string first = value.ToString();
            string? second = null;
            if (pair is not null)
            {
                pair(ref value);
                second = value.ToString();
            }
            scores = mapper.transformer.PredictProbabilities([first], second is null ? null : [second])[0];
            scoredPosition = input.Position;
            return scores;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);
    }
}
