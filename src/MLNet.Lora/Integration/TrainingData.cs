using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;

namespace MLNet.Lora.Integration;

/// <summary>Texts and 0-based class indices read from an <see cref="IDataView"/>.</summary>
internal sealed record TrainingRows(List<string?> Texts, List<string?>? Pairs, List<int> Labels)
{
    public int Count => Labels.Count;

    /// <summary>A seeded random split: the first part keeps 1 - <paramref name="fraction"/> of the rows.</summary>
    public (TrainingRows Train, TrainingRows Validation) Split(double fraction, int seed)
    {
        var order = Enumerable.Range(0, Count).ToArray();
        new Random(seed).Shuffle(order);
        int held = Math.Max(1, (int)Math.Round(Count * fraction));
        return (Take(order[held..]), Take(order[..held]));
    }

    public LabeledTexts Encode(BertTextTokenizer tokenizer, int maxSequenceLength) =>
        LabeledTexts.Encode(tokenizer, Texts, Labels, maxSequenceLength, Pairs);

    private TrainingRows Take(int[] indices) => new(
        indices.Select(i => Texts[i]).ToList(),
        Pairs is null ? null : indices.Select(i => Pairs[i]).ToList(),
        indices.Select(i => Labels[i]).ToList());
}

/// <summary>Reads and checks a trainer's input.</summary>
internal static class TrainingData
{
    public static DataViewSchema.Column CheckLabel(DataViewSchema schema, string name)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"The label column '{name}' is not in the data. Columns: {string.Join(", ", schema.Select(c => c.Name))}.");
        if (column.Type is not KeyDataViewType)
            throw new ArgumentOutOfRangeException(nameof(schema), LoraTextClassificationTrainer.LabelNotKeyMessage(name, $"{column.Type}"));
        return column;
    }

    /// <summary>
    /// Refuses validation data whose label keys mean other classes than the training data's: keys from a mapper fitted
    /// on the validation data itself number the classes in its own order (or have another count), which would score
    /// validation rows against the wrong classes and drive best-epoch selection with wrong accuracy.
    /// </summary>
    public static void CheckValidationLabel(DataViewSchema.Column trainLabel, DataViewSchema validationSchema, string name)
    {
        var validation = CheckLabel(validationSchema, name);
        ulong trainCount = ((KeyDataViewType)trainLabel.Type).Count, validationCount = ((KeyDataViewType)validation.Type).Count;
        var trainValues = ClassKeyValues.Read(trainLabel);
        var validationValues = ClassKeyValues.Read(validation);
        string? difference =
            trainCount != validationCount ? $"it has {validationCount} keys and the training data {trainCount}"
            : trainValues is null != validationValues is null ? "one of them has key values and the other none"
            : trainValues is not null && !trainValues.Values.SequenceEqual(validationValues!.Values)
                ? $"its keys stand for [{Shorten(validationValues.Values)}] and the training data's for [{Shorten(trainValues.Values)}]"
            : null;
        if (difference is not null)
            throw new ArgumentException(
                $"The validation data's label column '{name}' does not number the classes as the training data's does: {difference}. " +
                "Map the validation labels with the mapper fitted on the training data (fit MapValueToKey once, transform both), " +
                "or pass the validation rows through the same fitted pipeline.", "validationData");
    }

    private static string Shorten(string[] values) =>
        string.Join(", ", values.Take(8)) + (values.Length > 8 ? $", ... ({values.Length} in all)" : "");

    /// <summary>Reads every row with a label; null or empty text counts as empty, rows whose label is missing are skipped (and counted in the log).</summary>
    public static TrainingRows Read(IDataView data, LoraTextClassificationTrainer.Options options, IChannel channel)
    {
        var schema = data.Schema;
        var label = CheckLabel(schema, options.LabelColumnName);
        var text = schema[options.TextColumnName];
        DataViewSchema.Column? pairColumn = options.SecondTextColumnName is { } second ? schema[second] : null;

        var columns = new List<DataViewSchema.Column> { label, text };
        if (pairColumn is { } p) columns.Add(p);
        using var cursor = data.GetRowCursor(columns);
        var readLabel = KeyReader(cursor, label);
        var readText = cursor.GetGetter<ReadOnlyMemory<char>>(text);
        var readPair = pairColumn is { } pc ? cursor.GetGetter<ReadOnlyMemory<char>>(pc) : null;

        var rows = new TrainingRows([], readPair is null ? null : [], []);
        int missing = 0;
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            ulong key = readLabel();
            if (key == 0) { missing++; continue; }   // key 0 is ML.NET's missing value
            readText(ref value);
            rows.Texts.Add(value.ToString());
            if (readPair is not null)
            {
                readPair(ref value);
                rows.Pairs!.Add(value.ToString());
            }
            rows.Labels.Add((int)(key - 1));
        }
        if (missing > 0) channel.Warning(MessageSensitivity.None, $"{missing} rows have a missing value in label column '{options.LabelColumnName}' and were skipped.");
        if (rows.Count == 0)
            throw new ArgumentException($"The data has no rows with a label in column '{options.LabelColumnName}': nothing to train on.", nameof(data));
        return rows;
    }

    public static void CheckClasses(IReadOnlyList<int> labels, int classCount, string labelColumn)
    {
        if (classCount < 2 || labels.Distinct().Take(2).Count() < 2)
            throw new ArgumentException(
                $"Label column '{labelColumn}' has a single class in the training data: a classifier needs at least two classes.", nameof(labels));
    }

    private static Func<ulong> KeyReader(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        switch (((KeyDataViewType)column.Type).RawType)
        {
            case var t when t == typeof(uint):
                var u32 = cursor.GetGetter<uint>(column); uint a = 0;
                return () => { u32(ref a); return a; };
            case var t when t == typeof(ulong):
                var u64 = cursor.GetGetter<ulong>(column); ulong b = 0;
                return () => { u64(ref b); return b; };
            case var t when t == typeof(ushort):
                var u16 = cursor.GetGetter<ushort>(column); ushort c = 0;
                return () => { u16(ref c); return c; };
            default:
                var u8 = cursor.GetGetter<byte>(column); byte d = 0;
                return () => { u8(ref d); return d; };
        }
    }
}
