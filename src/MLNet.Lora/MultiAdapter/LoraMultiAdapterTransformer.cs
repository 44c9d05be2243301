using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Integration;
using MLNet.Lora.MultiAdapter;

namespace MLNet.Lora;

/// <summary>
/// Scores each row with the adapter its adapter column names, all over the one base of a <see cref="LoraAdapterSet"/>;
/// rows for different adapters share each forward pass. Adds <c>Score</c> (the class probabilities),
/// <c>PredictedLabel</c> (the label value, as text) and <c>PredictedLabelIndex</c> (its 0-based position in
/// <c>Score</c>). Works with <c>PredictionEngine</c> and from several threads at once. Build it with
/// <c>mlContext.Transforms.LoraMultiAdapterClassification</c>.
/// </summary>
/// <remarks>
/// Adapters differ in their number of classes and label values, so the columns cannot have one fixed vector size or
/// key type as a single classifier's do: <c>Score</c> is a variable-length vector (as long as the row's adapter has
/// classes), the predicted label is the label value itself, and its index says which score it is. Disposing neither
/// this transformer nor the engines built on it touches the set: the set belongs to its creator.
/// </remarks>
public sealed class LoraMultiAdapterTransformer : ITransformer, IRowScorer
{
    /// <summary>The index column's name.</summary>
    public const string PredictedLabelIndexColumnName = "PredictedLabelIndex";

    internal LoraMultiAdapterTransformer(LoraAdapterSet set, string adapterColumnName, string textColumnName, string? fallbackAdapterName)
    {
        Set = set ?? throw new ArgumentNullException(nameof(set));
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterColumnName);
        ArgumentException.ThrowIfNullOrWhiteSpace(textColumnName);
        if (fallbackAdapterName is not null && !set.Contains(fallbackAdapterName))
            throw set.UnknownAdapter(fallbackAdapterName, "The fallback adapter is not in the set. ");
        AdapterColumnName = adapterColumnName;
        TextColumnName = textColumnName;
        FallbackAdapterName = fallbackAdapterName;
    }

    /// <summary>The adapters.</summary>
    public LoraAdapterSet Set { get; }

    /// <summary>The column naming each row's adapter.</summary>
    public string AdapterColumnName { get; }

    /// <summary>The text column.</summary>
    public string TextColumnName { get; }

    /// <summary>The adapter for rows naming one the set does not have, or null to refuse such rows.</summary>
    public string? FallbackAdapterName { get; }

    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        TextClassifierScoring.CheckTextColumn(inputSchema, AdapterColumnName, "adapter");
        TextClassifierScoring.CheckTextColumn(inputSchema, TextColumnName, "text");
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumn(DefaultColumnNames.Score, new VectorDataViewType(NumberDataViewType.Single));
        builder.AddColumn(DefaultColumnNames.PredictedLabel, TextDataViewType.Instance);
        builder.AddColumn(PredictedLabelIndexColumnName, NumberDataViewType.Int32);
        return builder.ToSchema();
    }

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => new ScoredDataView(this, input);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoringRowMapper(this, inputSchema);

    /// <summary>A set is a live thing (adapters come and go): save its adapters one by one with <c>SaveWithAdapters</c>.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        $"{nameof(LoraMultiAdapterTransformer)} cannot be saved: its {nameof(LoraAdapterSet)} changes while it serves. Keep each adapter's own file " +
        "(SaveWithAdapters or SavePeftAdapter) and build the set again from them.");

    IEnumerable<DataViewSchema.Column> IRowScorer.ScoringColumns(DataViewSchema inputSchema) =>
        [inputSchema[AdapterColumnName], inputSchema[TextColumnName]];

    int IRowScorer.ChunkSize => Set.InferenceBatchSize * 8;

    IScoringChunk IRowScorer.OpenChunk(DataViewRow input, bool forCursor) => new Chunk(this, input, forCursor ? Set.Snapshot() : null);

    /// <summary>A chunk of rows: their adapters (resolved as read) and texts, then their scores.</summary>
    private sealed class Chunk : IScoringChunk
    {
        private readonly LoraMultiAdapterTransformer owner;
        private readonly DataViewRow input;
        private readonly AdapterSnapshot? snapshot;
        private readonly ValueGetter<ReadOnlyMemory<char>> adapter;
        private readonly ValueGetter<ReadOnlyMemory<char>> text;
        private readonly List<AdapterEntry> adapters = [];
        private readonly List<string?> texts = [];
        private float[][] scores = [];

        public Chunk(LoraMultiAdapterTransformer owner, DataViewRow input, AdapterSnapshot? snapshot)
        {
            this.owner = owner;
            this.input = input;
            this.snapshot = snapshot;
            adapter = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[owner.AdapterColumnName]);
            text = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[owner.TextColumnName]);
        }

        public int Count => texts.Count;

        public void Capture()
        {
            ReadOnlyMemory<char> value = default;
            adapter(ref value);
            string name = value.ToString();
            adapters.Add(Resolve(name) ?? (owner.FallbackAdapterName is { } fallback ? Resolve(fallback) : null)
                ?? throw owner.Set.UnknownAdapter(name, $"Row {input.Position}: column '{owner.AdapterColumnName}' names an adapter the set does not have" +
                                                        (owner.FallbackAdapterName is { } f ? $" (nor the fallback '{f}')" : "") + ". "));
            text(ref value);
            texts.Add(value.ToString());
        }

        private AdapterEntry? Resolve(string name) => snapshot is not null ? snapshot.Find(name) : owner.Set.Find(name);

        public void Clear()
        {
            adapters.Clear();
            texts.Clear();
        }

        public void Score() => scores = owner.Set.Score(adapters, texts);

        public ValueGetter<TValue> OutputGetter<TValue>(DataViewSchema.Column column, int inputCount, Func<int> row)
        {
            Delegate getter = (column.Index - inputCount) switch
            {
                0 => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
                {
                    float[] current = scores[row()];
                    var editor = VBufferEditor.Create(ref value, current.Length);
                    current.CopyTo(editor.Values);
                    value = editor.Commit();
                }),
                1 => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) =>
                {
                    int r = row();
                    value = adapters[r].Labels[ArgMax(scores[r])].AsMemory();
                }),
                _ => (ValueGetter<int>)((ref int value) => value = ArgMax(scores[row()])),
            };
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}; it cannot be read as {typeof(TValue).Name}.");
        }

        private static int ArgMax(float[] values)
        {
            int best = 0;
            for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
            return best;
        }

        public void Dispose() => snapshot?.Dispose();
    }
}
