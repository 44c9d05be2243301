using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// The lazy output of every scoring transformer of the package's <c>Transform</c> (an <see cref="IRowScorer"/>): the
/// input's columns plus the scored ones. It reads its input through one cursor: a chunk of rows is buffered (the
/// scorer's inputs and the pass-through values asked for), scored in length-sorted batches, then served. So input that
/// can be enumerated only once (a queue drained by <c>LoadFromEnumerable</c>) is read once, and every row keeps its own
/// score.
/// </summary>
internal sealed class ScoredDataView : IDataView
{
    private readonly IRowScorer transformer;
    private readonly IDataView input;

    public ScoredDataView(IRowScorer transformer, IDataView input)
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
        var read = passThrough.Concat(transformer.ScoringColumns(input.Schema)).DistinctBy(c => c.Index);
        return new Cursor(this, input.GetRowCursor(read), passThrough, needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    /// <summary>No output column asked for: the input's rows as they are, nothing scored.</summary>
    private sealed class PassThroughCursor(ScoredDataView view, DataViewRowCursor input, HashSet<int> active) : DataViewRowCursor
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
        private readonly ScoredDataView view;
        private readonly DataViewRowCursor input;
        private readonly HashSet<int> active;
        private readonly IScoringChunk chunk;
        private readonly ValueGetter<DataViewRowId> readId;
        private readonly Dictionary<int, ColumnBuffer> columns;
        private readonly int chunkSize;
        private readonly List<DataViewRowId> ids;
        private int row = -1;
        private long position = -1;

        public Cursor(ScoredDataView view, DataViewRowCursor input, List<DataViewSchema.Column> passThrough, HashSet<int> active)
        {
            this.view = view;
            this.input = input;
            this.active = active;
            chunk = view.transformer.OpenChunk(input, forCursor: true);
            readId = input.GetIdGetter();
            columns = passThrough.ToDictionary(c => c.Index, c => ColumnBuffer.Create(input, c));
            chunkSize = view.transformer.ChunkSize;
            ids = new List<DataViewRowId>(chunkSize);
        }

        public override long Position => position;

        public override long Batch => 0;

        public override DataViewSchema Schema => view.Schema;

        public override bool MoveNext()
        {
            if (++row >= chunk.Count && !ReadChunk()) return false;
            position++;
            return true;
        }

        private bool ReadChunk()
        {
            chunk.Clear();
            ids.Clear();
            foreach (var buffer in columns.Values) buffer.Clear();
            DataViewRowId id = default;
            while (chunk.Count < chunkSize && input.MoveNext())
            {
                chunk.Capture();
                readId(ref id);
                ids.Add(id);
                foreach (var buffer in columns.Values) buffer.Capture();
            }
            row = 0;
            if (chunk.Count == 0) return false;
            chunk.Score();
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column)) throw new InvalidOperationException($"Column '{column.Name}' was not requested from this cursor.");
            int inputCount = view.input.Schema.Count;
            if (column.Index < inputCount) return columns[column.Index].Getter<TValue>(() => row);
            return chunk.OutputGetter<TValue>(column, inputCount, () => row);
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) => value = ids[row];

        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                chunk.Dispose();
                input.Dispose();
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
