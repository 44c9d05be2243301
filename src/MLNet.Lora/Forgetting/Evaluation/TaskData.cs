using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;

namespace MLNet.Lora.Forgetting;

/// <summary>Texts with 0-based class indices, as read from one split of a <see cref="ForgettingTask"/>.</summary>
internal sealed record TaskRows(IReadOnlyList<string> Texts, IReadOnlyList<int> Labels)
{
    public int Count => Texts.Count;

    /// <summary>The rows at <paramref name="indices"/>, in that order.</summary>
    public TaskRows Take(IEnumerable<int> indices)
    {
        var list = indices.ToList();
        return new TaskRows(list.Select(i => Texts[i]).ToList(), list.Select(i => Labels[i]).ToList());
    }

    /// <summary>At most <paramref name="count"/> rows drawn by a seeded shuffle (all rows, reordered, when there are fewer).</summary>
    public TaskRows Sample(int count, int seed)
    {
        var order = Enumerable.Range(0, Count).ToArray();
        new Random(seed).Shuffle(order);
        return Take(order.Take(Math.Min(count, Count)));
    }

    public LabeledTexts Encode(BertTextTokenizer tokenizer, int maxSequenceLength) =>
        LabeledTexts.Encode(tokenizer, Texts.ToList<string?>(), Labels, maxSequenceLength);
}

/// <summary>A <see cref="ForgettingTask"/> read into memory: class names and its train and test rows.</summary>
internal sealed record TaskData(string Name, string[] ClassNames, TaskRows Train, TaskRows Test)
{
    public int ClassCount => ClassNames.Length;

    /// <summary>
    /// Reads <paramref name="task"/>. Without a test split, a seeded shuffle holds out <paramref name="testFraction"/> of
    /// the rows. Each split is then subsampled (seeded) to at most the given sizes.
    /// </summary>
    public static TaskData Read(ForgettingTask task, int maxTrain, int maxTest, double testFraction, int seed, bool requireTest)
    {
        var (names, train, test) = ReadLabelled(task, readTest: true, requireTest);
        if (test is null)
        {
            var order = Enumerable.Range(0, train.Count).ToArray();
            new Random(seed).Shuffle(order);
            int held = (int)Math.Round(train.Count * testFraction);
            if (held < 1 || held >= train.Count)
                throw new ArgumentException($"Task '{task.Name}' has {train.Count} labelled rows: too few to hold out a test share of {testFraction:P0}.", nameof(task));
            test = train.Take(order[..held]);
            train = train.Take(order[held..]);
        }
        return new TaskData(task.Name, names, RequireTwoClasses(task, train.Sample(maxTrain, seed)), test.Sample(maxTest, seed + 1));
    }

    /// <summary>Every labelled training row of <paramref name="task"/> (its test split, if any, is not read): what rehearsal replays.</summary>
    public static TaskData ReadTraining(ForgettingTask task)
    {
        var (names, train, _) = ReadLabelled(task, readTest: false, requireTest: false);
        return new TaskData(task.Name, names, RequireTwoClasses(task, train), new TaskRows([], []));
    }

    /// <summary>The class names (the training rows' key) and the labelled rows of the training and, if asked and given, test splits.</summary>
    private static (string[] Names, TaskRows Train, TaskRows? Test) ReadLabelled(ForgettingTask task, bool readTest, bool requireTest)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (string.IsNullOrWhiteSpace(task.Name)) throw new ArgumentException("Every task needs a non-blank Name.", nameof(task));
        if (task.Train is null) throw new ArgumentException($"Task '{task.Name}' has no Train data.", nameof(task));
        if (requireTest && task.Test is null)
            throw new ArgumentException($"Task '{task.Name}' has no Test data: a task sequence measures accuracy on held-out rows of every task.", nameof(task));

        var trainRaw = ReadRaw(task, task.Train, "Train");
        var testRaw = readTest && task.Test is not null ? ReadRaw(task, task.Test, "Test") : null;
        var names = ClassNamesOf(task, task.Train, trainRaw, testRaw);
        var index = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
        TaskRows ToRows(List<(string Text, string Label)> raw) =>
            new(raw.Select(r => r.Text).ToList(), raw.Select(r => index.TryGetValue(r.Label, out int i) ? i
                : throw new ArgumentException($"Task '{task.Name}': label '{r.Label}' in column '{task.LabelColumnName}' of the test rows is not a class of the training rows' key.", nameof(task))).ToList());
        return (names, ToRows(trainRaw), testRaw is null ? null : ToRows(testRaw));
    }

    private static TaskRows RequireTwoClasses(ForgettingTask task, TaskRows train) =>
        train.Labels.Distinct().Take(2).Count() >= 2 ? train
            : throw new ArgumentException($"Task '{task.Name}': the training rows hold fewer than two classes in column '{task.LabelColumnName}'.", nameof(task));

    /// <summary>Reads (text, label) pairs; rows with a missing label are skipped.</summary>
    private static List<(string Text, string Label)> ReadRaw(ForgettingTask task, IDataView data, string split)
    {
        var schema = data.Schema;
        var text = schema.GetColumnOrNull(task.TextColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(task), $"Task '{task.Name}' ({split}): the text column '{task.TextColumnName}' is not in the data. Columns: {string.Join(", ", schema.Select(c => c.Name))}.");
        if (text.Type is not TextDataViewType)
            throw new ArgumentOutOfRangeException(nameof(task), $"Task '{task.Name}' ({split}): the text column '{task.TextColumnName}' must be text, but it is {text.Type}.");
        var label = schema.GetColumnOrNull(task.LabelColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(task), $"Task '{task.Name}' ({split}): the label column '{task.LabelColumnName}' is not in the data. Columns: {string.Join(", ", schema.Select(c => c.Name))}.");

        using var cursor = data.GetRowCursor([text, label]);
        var readText = cursor.GetGetter<ReadOnlyMemory<char>>(text);
        var readLabel = LabelReader(task, cursor, label, split);
        var rows = new List<(string, string)>();
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            string? name = readLabel();
            if (name is null) continue;
            readText(ref value);
            rows.Add((value.ToString(), name));
        }
        if (rows.Count == 0)
            throw new ArgumentException($"Task '{task.Name}' ({split}) has no rows with a label in column '{task.LabelColumnName}'.", nameof(task));
        return rows;
    }

    /// <summary>Class names in index order: a key's own order (key value k is class k − 1), else all values seen, sorted ordinally.</summary>
    private static string[] ClassNamesOf(ForgettingTask task, IDataView train, List<(string Text, string Label)> trainRows, List<(string Text, string Label)>? testRows)
    {
        var column = train.Schema[task.LabelColumnName];
        if (column.Type is KeyDataViewType key)
        {
            var names = KeyNames(column);
            if (names is not null && names.Length == (int)key.Count) return names;
            return Enumerable.Range(1, (int)key.Count).Select(k => k.ToString(CultureInfo.InvariantCulture)).ToArray();
        }
        var all = trainRows.Select(r => r.Label).Concat(testRows?.Select(r => r.Label) ?? []);
        return all.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
    }

    private static string[]? KeyNames(DataViewSchema.Column column)
    {
        var values = column.Annotations.Schema.GetColumnOrNull("KeyValues");
        if (values?.Type is not VectorDataViewType { ItemType: TextDataViewType }) return null;
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.Annotations.GetValue("KeyValues", ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    /// <summary>A reader that returns each row's label as a class name, or null when it is missing.</summary>
    private static Func<string?> LabelReader(ForgettingTask task, DataViewRowCursor cursor, DataViewSchema.Column column, string split)
    {
        var type = column.Type;
        if (type is KeyDataViewType key)
        {
            // Key value k is class k − 1 and 0 is ML.NET's missing value. Going through the names keeps train and test
            // consistent even when each split was keyed by its own MapValueToKey.
            var names = KeyNames(column) is { } n && n.Length == (int)key.Count ? n
                : Enumerable.Range(1, (int)key.Count).Select(k => k.ToString(CultureInfo.InvariantCulture)).ToArray();
            Func<ulong> raw = key.RawType switch
            {
                var t when t == typeof(uint) => Getter<uint>(cursor, column, v => v),
                var t when t == typeof(ulong) => Getter<ulong>(cursor, column, v => v),
                var t when t == typeof(ushort) => Getter<ushort>(cursor, column, v => v),
                _ => Getter<byte>(cursor, column, v => v),
            };
            return () => raw() is var k && k > 0 && k <= (ulong)names.Length ? names[k - 1] : null;
        }
        if (type is TextDataViewType)
        {
            var get = cursor.GetGetter<ReadOnlyMemory<char>>(column);
            ReadOnlyMemory<char> v = default;
            return () => { get(ref v); var s = v.ToString().Trim(); return s.Length == 0 ? null : s; };
        }
        if (type == BooleanDataViewType.Instance) return Text<bool>(cursor, column, v => v ? "true" : "false");
        if (type == NumberDataViewType.Single) return Text<float>(cursor, column, v => float.IsNaN(v) ? null : v.ToString(CultureInfo.InvariantCulture));
        if (type == NumberDataViewType.Double) return Text<double>(cursor, column, v => double.IsNaN(v) ? null : v.ToString(CultureInfo.InvariantCulture));
        if (type == NumberDataViewType.Int32) return Text<int>(cursor, column, v => v.ToString(CultureInfo.InvariantCulture));
        if (type == NumberDataViewType.Int64) return Text<long>(cursor, column, v => v.ToString(CultureInfo.InvariantCulture));
        if (type == NumberDataViewType.UInt32) return Text<uint>(cursor, column, v => v.ToString(CultureInfo.InvariantCulture));
        throw new ArgumentOutOfRangeException(nameof(task),
            $"Task '{task.Name}' ({split}): the label column '{column.Name}' is {type}; expected text, a key, a boolean or a number.");
    }

    private static Func<ulong> Getter<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Func<T, ulong> widen)
    {
        var get = cursor.GetGetter<T>(column);
        T value = default!;
        return () => { get(ref value); return widen(value); };
    }

    private static Func<string?> Text<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Func<T, string?> format)
    {
        var get = cursor.GetGetter<T>(column);
        T value = default!;
        return () => { get(ref value); return format(value); };
    }
}
