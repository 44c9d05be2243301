using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// What every text classifier of the package (the TorchSharp transformer, the ONNX one) shares on the ML.NET side:
/// the text-column checks, the two output columns (<c>Score</c>, and <c>PredictedLabel</c> as a key carrying the
/// label's values) and the chunk that <see cref="ScoredDataView"/> and <see cref="ScoringRowMapper"/> score through.
/// </summary>
internal static class TextClassifierScoring
{
    /// <summary>Refuses a missing column, or one that is not a single text value per row, naming it and what to do.</summary>
    public static void CheckTextColumn(DataViewSchema schema, string name, string role)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"The {role} column '{name}' is not in the data. Columns: {string.Join(", ", schema.Select(c => c.Name))}.");
        if (column.Type is not TextDataViewType)
            throw new ArgumentOutOfRangeException(nameof(schema), NotTextMessage(role, name,
                column.Type is VectorDataViewType vector ? $"a vector of {vector.ItemType} ({vector})" : $"{column.Type}"));
    }

    public static string NotTextMessage(string role, string name, string actual) =>
        $"The {role} column '{name}' must be a single text (string) value per row, but it is {actual}. " +
        "To classify several text columns, join them into one string (for example with CustomMapping or in the data class), " +
        "or use the second text column for pair tasks; do not Concatenate them into a vector.";

    /// <summary>The input's columns, then the class probabilities and the predicted key.</summary>
    public static DataViewSchema OutputSchema(DataViewSchema inputSchema, string textColumn, string? secondTextColumn,
        string scoreColumn, string predictedLabelColumn, int classCount, ClassKeyValues? classes)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CheckTextColumn(inputSchema, textColumn, "text");
        if (secondTextColumn is { } second) CheckTextColumn(inputSchema, second, "second text");
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumn(scoreColumn, new VectorDataViewType(NumberDataViewType.Single, classCount), classes?.SlotNameAnnotations());
        builder.AddColumn(predictedLabelColumn, new KeyDataViewType(typeof(uint), classCount), classes?.KeyAnnotations());
        return builder.ToSchema();
    }

    /// <summary>The estimators' side of <see cref="CheckTextColumn(DataViewSchema, string, string)"/>: the column must be a text scalar.</summary>
    public static void CheckTextColumn(SchemaShape schema, string name, string role)
    {
        if (Find(schema, name) is not { } column)
            throw new ArgumentOutOfRangeException(nameof(schema), $"The {role} column '{name}' is not in the data. Columns: {string.Join(", ", schema.Select(c => c.Name))}.");
        if (column.ItemType is not TextDataViewType || column.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(nameof(schema), NotTextMessage(role, name,
                column.Kind == SchemaShape.Column.VectorKind.Scalar ? $"{column.ItemType}" : $"a vector of {column.ItemType}"));
    }

    /// <summary>The estimators' side of <see cref="OutputSchema"/>: the input's columns, the score vector and the predicted key (with <paramref name="keyAnnotations"/>).</summary>
    public static SchemaShape OutputShape(SchemaShape inputSchema, string scoreColumn, string predictedLabelColumn, SchemaShape? keyAnnotations)
    {
        var columns = inputSchema.ToDictionary(c => c.Name);
        columns[scoreColumn] = SchemaShapeColumns.Create(scoreColumn, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        columns[predictedLabelColumn] = SchemaShapeColumns.Create(predictedLabelColumn, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, keyAnnotations);
        return new SchemaShape(columns.Values);
    }

    /// <summary>The last column named <paramref name="name"/> (a later column hides an earlier one of the same name).</summary>
    public static SchemaShape.Column? Find(SchemaShape schema, string name) =>
        schema.Where(c => c.Name == name).Select(c => (SchemaShape.Column?)c).LastOrDefault();

    /// <summary>The columns scoring reads: the text, and the second text of pair tasks.</summary>
    public static IEnumerable<DataViewSchema.Column> TextColumns(DataViewSchema inputSchema, string textColumn, string? secondTextColumn)
    {
        yield return inputSchema[textColumn];
        if (secondTextColumn is { } second) yield return inputSchema[second];
    }

    /// <summary>A chunk that captures texts (and pairs) and scores them with <paramref name="predict"/>.</summary>
    public static IScoringChunk Chunk(DataViewRow input, string textColumn, string? secondTextColumn,
        Func<IReadOnlyList<string?>, IReadOnlyList<string?>?, float[][]> predict) =>
        new TextChunk(input, textColumn, secondTextColumn, predict);

    /// <summary>Texts (and pairs) of a chunk of rows, and their class probabilities.</summary>
    private sealed class TextChunk : IScoringChunk
    {
        private readonly Func<IReadOnlyList<string?>, IReadOnlyList<string?>?, float[][]> predict;
        private readonly ValueGetter<ReadOnlyMemory<char>> text;
        private readonly ValueGetter<ReadOnlyMemory<char>>? pair;
        private readonly List<string?> texts = [];
        private readonly List<string?>? pairs;
        private float[][] scores = [];

        public TextChunk(DataViewRow input, string textColumn, string? secondTextColumn, Func<IReadOnlyList<string?>, IReadOnlyList<string?>?, float[][]> predict)
        {
            this.predict = predict;
            text = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[textColumn]);
            if (secondTextColumn is { } second)
            {
                pair = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[second]);
                pairs = [];
            }
        }

        public int Count => texts.Count;

        public void Capture()
        {
            ReadOnlyMemory<char> value = default;
            text(ref value);
            texts.Add(value.ToString());
            if (pair is null) return;
            pair(ref value);
            pairs!.Add(value.ToString());
        }

        public void Clear()
        {
            texts.Clear();
            pairs?.Clear();
        }

        public void Score() => scores = predict(texts, pairs);

        public ValueGetter<TValue> OutputGetter<TValue>(DataViewSchema.Column column, int inputCount, Func<int> row) =>
            ScoredDataView.OutputGetter<TValue>(column, inputCount, () => scores[row()]);

        public void Dispose() { }
    }
}
