using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// The lazy output of a text classifier's <c>Transform</c> (any <see cref="ITextProbabilityScorer"/>: the TorchSharp
/// transformer or the ONNX one): the input's columns plus score and predicted label. It reads its input through one cursor: a chunk of rows is buffered (texts and the pass-through
/// values asked for), scored in length-sorted batches, then served. So input that can be enumerated only once (a
/// queue drained by <c>LoadFromEnumerable</c>) is read once, and every row keeps its own score.
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
        bool scoring = needed.Any(i => i >= inputCount);
        var passThrough = needed.Where(i => i < inputCount).Select(i => input.Schema[i]).ToList();
        if (!scoring) return new PassThroughCursor(this, input.GetRowCursor(passThrough), needed);
        var read = passThrough.Concat(TextColumns(transformer, input.Schema)).DistinctBy(c => c.Index);
        return new Cursor(this, input.GetRowCursor(read), passThrough, needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    internal static IEnumerable<DataViewSchema.Column> TextColumns(ITextProbabilityScorer transformer, DataViewSchema schema)
    {
        yield return schema[transformer.TextColumnName];
        if (transformer.SecondTextColumnName is { } second) yield return schema[second];
    }

    /// <summary>No output column asked for: the input's rows as they are, nothing scored.</summary>
    private sealed class PassThroughCursor(BatchScoredView view, DataViewRowCursor input, HashSet<int> active) : DataViewRowCursor
    {
        public override long Position => input.Position;

        public override long Batch => input.Batch;

        public override DataViewSchema Schema => view.Schema;

        public override bool MoveNext() => input.MoveNext();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column)) throw new InvalidOperationException($"Column '{column.Name}' was not requested from this cursor.");
            return input.GetGetter<TValue>(view.input.Schema[column.Index]);
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

        protected override void Dispose(bool disposing)
        {
            if (disposing) input.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>Reads a chunk of rows into buffers, scores them, serves them, and reads the next chunk.</summary>
    private sealed class Cursor : DataViewRowCursor
    {
        private readonly BatchScoredView view;
        private readonly DataViewRowCursor input;
        private readonly HashSet<int> active;
        private readonly ValueGetter<ReadOnlyMemory<char>> text;
        private readonly ValueGetter<ReadOnlyMemory<char>>? pair;
        private readonly ValueGetter<DataViewRowId> readId;
        private readonly Dictionary<int, ColumnBuffer> columns;
        private readonly int chunkSize;
        private readonly List<string?> texts;
        private readonly List<string?>? pairs;
        private readonly List<DataViewRowId> ids;
        private float[][] scores = [];
        private int row = -1;
        private long position = -1;

        public Cursor(BatchScoredView view, DataViewRowCursor input, List<DataViewSchema.Column> passThrough, HashSet<int> active)
        {
            this.view = view;
            this.input = input;
            this.active = active;
            var scorer = view.transformer;
            text = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[scorer.TextColumnName]);
            if (scorer.SecondTextColumnName is { } second) pair = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[second]);
            readId = input.GetIdGetter();
            columns = passThrough.ToDictionary(c => c.Index, c => ColumnBuffer.Create(input, c));
            // Several batches at a time, so that sorting by length packs batches tightly.
            chunkSize = scorer.BatchSize * 8;
            texts = new List<string?>(chunkSize);
            pairs = pair is null ? null : new List<string?>(chunkSize);
            ids = new List<DataViewRowId>(chunkSize);
        }

        public override long Position => position;

        public override long Batch => 0;

        public override DataViewSchema Schema => view.Schema;

        public override bool MoveNext()
        {
            if (++row >= texts.Count && !ReadChunk()) return false;
            position++;
            return true;
        }

        private bool ReadChunk()
        {
            texts.Clear();
            pairs?.Clear();
            ids.Clear();
            foreach (var buffer in columns.Values) buffer.Clear();
            ReadOnlyMemory<char> value = default;
            DataViewRowId id = default;
            while (texts.Count < chunkSize && input.MoveNext())
            {
                text(ref value);
                texts.Add(value.ToString());
                if (pairs is not null)
                {
                    pair!(ref value);
                    pairs.Add(value.ToString());
                }
                readId(ref id);
                ids.Add(id);
                foreach (var buffer in columns.Values) buffer.Capture();
            }
            row = 0;
            if (texts.Count == 0) return false;
            scores = view.transformer.PredictProbabilities(texts, pairs);
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column)) throw new InvalidOperationException($"Column '{column.Name}' was not requested from this cursor.");
            int inputCount = view.input.Schema.Count;
            if (column.Index < inputCount) return columns[column.Index].Getter<TValue>(() => row);
            return OutputGetter<TValue>(column, inputCount, () => scores[row]);
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) => value = ids[row];

        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

        protected override void Dispose(bool disposing)
        {
            if (disposing) input.Dispose();
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
