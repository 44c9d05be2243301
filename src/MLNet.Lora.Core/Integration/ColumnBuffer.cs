using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// Keeps the values of one input column for a chunk of rows, so that a cursor can read its input once and serve the
/// rows after scoring them. Values are deep copies: cursors may reuse the memory behind text and vectors.
/// </summary>
internal abstract class ColumnBuffer
{
    /// <summary>A buffer for <paramref name="column"/>, reading from <paramref name="cursor"/>.</summary>
    public static ColumnBuffer Create(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        Type raw = column.Type.RawType;
        Type buffer = raw.IsGenericType && raw.GetGenericTypeDefinition() == typeof(VBuffer<>)
            ? typeof(VectorBuffer<>).MakeGenericType(raw.GetGenericArguments()[0])
            : typeof(ValueBuffer<>).MakeGenericType(raw);
        return (ColumnBuffer)Activator.CreateInstance(buffer, cursor, column)!;
    }

    /// <summary>Appends the cursor's current value.</summary>
    public abstract void Capture();

    /// <summary>Forgets the chunk's values.</summary>
    public abstract void Clear();

    /// <summary>A getter that serves the value of the row <paramref name="row"/> returns.</summary>
    public abstract ValueGetter<TValue> Getter<TValue>(Func<int> row);

    private protected static T Own<T>(T value) =>
        value is ReadOnlyMemory<char> text ? (T)(object)new ReadOnlyMemory<char>(text.ToArray()) : value;

    private sealed class ValueBuffer<T>(DataViewRowCursor cursor, DataViewSchema.Column column) : ColumnBuffer
    {
        private readonly ValueGetter<T> read = cursor.GetGetter<T>(column);
        private readonly List<T> values = [];

        public override void Capture()
        {
            T value = default!;
            read(ref value);
            values.Add(Own(value));
        }

        public override void Clear() => values.Clear();

        public override ValueGetter<TValue> Getter<TValue>(Func<int> row) =>
            ((ValueGetter<T>)((ref T value) => value = values[row()])) as ValueGetter<TValue>
            ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}; it cannot be read as {typeof(TValue).Name}.");
    }

    private sealed class VectorBuffer<T>(DataViewRowCursor cursor, DataViewSchema.Column column) : ColumnBuffer
    {
        private readonly ValueGetter<VBuffer<T>> read = cursor.GetGetter<VBuffer<T>>(column);
        private readonly List<VBuffer<T>> values = [];

        public override void Capture()
        {
            VBuffer<T> value = default;
            read(ref value);
            VBuffer<T> copy = default;
            value.CopyTo(ref copy);
            if (typeof(T) == typeof(ReadOnlyMemory<char>))
            {
                var editor = VBufferEditor.CreateFromBuffer(ref copy);
                for (int i = 0; i < editor.Values.Length; i++) editor.Values[i] = Own(editor.Values[i]);
            }
            values.Add(copy);
        }

        public override void Clear() => values.Clear();

        public override ValueGetter<TValue> Getter<TValue>(Func<int> row) =>
            ((ValueGetter<VBuffer<T>>)((ref VBuffer<T> value) => values[row()].CopyTo(ref value))) as ValueGetter<TValue>
            ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}; it cannot be read as {typeof(TValue).Name}.");
    }
}
