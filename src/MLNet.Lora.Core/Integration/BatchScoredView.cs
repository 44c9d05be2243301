using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// The lazy output of a text classifier's <c>Transform</c> (see <see cref="ITextProbabilityScorer"/>): the input's
/// columns plus score and predicted label. A second cursor over the text columns reads ahead a chunk of rows, which are scored in
/// length-sorted batches; IDataView cursors are deterministic, so the two cursors see the same rows in the same order.
/// </summary>
internal sealed class BatchScoredView : IDataView
{
    private readonly ITextProbabilityScorer transformer;
    private readonly IDataView input;

    public BatchScoredView(ITextProbabilityScorer transformer, IDataView input)
    {
        this.transformer = transformer;
        this.input = input ?? throw new ArgumentNullException(nameof(input));
        Schema = transformer.GetOutputSchema(input.Schema);
    }

    public DataViewSchema Schema { get; }

    public bool CanShuffle => false;

    public long? GetRowCount() => input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        int inputCount = input.Schema.Count;
        var passThrough = needed.Where(i => i < inputCount).Select(i => input.Schema[i]);
        bool scoring = needed.Any(i => i >= inputCount);
        var lookahead = scoring ? input.GetRowCursor(TextColumns(transformer, input.Schema)) : null;
        return new Cursor(this, input.GetRowCursor(passThrough), lookahead, needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    internal static IEnumerable<DataViewSchema.Column> TextColumns(ITextProbabilityScorer transformer, DataViewSchema schema)
    {
        yield return schema[transformer.TextColumnName];
        if (transformer.SecondTextColumnName is { } second) yield return schema[second];
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly BatchScoredView view;
        private readonly DataViewRowCursor input;
        private readonly DataViewRowCursor? lookahead;
        private readonly HashSet<int> active;
        private readonly TextColumnReader? reader;
        private readonly int inputCount;
        private float[][] scores = [];
        private int row = -1;

        public Cursor(BatchScoredView view, DataViewRowCursor input, DataViewRowCursor? lookahead, HashSet<int> active)
        {
            this.view = view;
            this.input = input;
            this.lookahead = lookahead;
            this.active = active;
            inputCount = view.input.Schema.Count;
            if (lookahead is not null) reader = new TextColumnReader(lookahead, view.transformer);
        }

        public override long Position => input.Position;

        public override long Batch => input.Batch;

        public override DataViewSchema Schema => view.Schema;

        public override bool MoveNext()
        {
            if (!input.MoveNext()) return false;
            if (lookahead is not null && ++row >= scores.Length) ScoreNextChunk();
            return true;
        }

        private void ScoreNextChunk()
        {
            // Read several batches ahead so that sorting by length packs batches tightly.
            int chunk = view.transformer.BatchSize * 8;
            var texts = new List<string?>(chunk);
            var pairs = reader!.HasPair ? new List<string?>(chunk) : null;
            while (texts.Count < chunk && lookahead!.MoveNext())
            {
                var (text, pair) = reader.Read();
                texts.Add(text);
                pairs?.Add(pair);
            }
            scores = view.transformer.PredictProbabilities(texts, pairs);
            row = 0;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column)) throw new InvalidOperationException($"Column '{column.Name}' was not requested from this cursor.");
            if (column.Index < inputCount) return input.GetGetter<TValue>(view.input.Schema[column.Index]);

            return OutputGetter<TValue>(column, inputCount, () => scores[row]);
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                input.Dispose();
                lookahead?.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    /// <summary>
    /// The getter of an added column: the score vector (first added column) or the predicted key (second), computed from
    /// <paramref name="current"/>, the current row's probabilities.
    /// </summary>
    internal static ValueGetter<TValue> OutputGetter<TValue>(DataViewSchema.Column column, int inputCount, Func<float[]> current)
    {
        Delegate getter = column.Index == inputCount
            ? (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
            {
                float[] scores = current();
                var editor = VBufferEditor.Create(ref value, scores.Length);
                scores.CopyTo(editor.Values);
                value = editor.Commit();
            })
            : (ValueGetter<uint>)((ref uint value) => value = ArgMax(current()) + 1);   // keys are 1-based
        return getter as ValueGetter<TValue>
            ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}; it cannot be read as {typeof(TValue).Name}.");
    }

    private static uint ArgMax(float[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return (uint)best;
    }
}
