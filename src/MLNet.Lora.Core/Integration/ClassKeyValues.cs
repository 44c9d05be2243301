using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Integration;

/// <summary>
/// The label's key values (what <c>MapKeyToValue</c> turns predicted keys back into), kept as invariant strings with
/// their type so that a saved model restores them exactly: text, or numbers and booleans when the label was numeric.
/// </summary>
/// <param name="Type">The values' type: Text, Single, Double, Int32, Int64, UInt32, UInt64 or Boolean.</param>
/// <param name="Values">The values in key order (key k is <c>Values[k - 1]</c>), formatted with the invariant culture.</param>
public sealed record ClassKeyValues(string Type, string[] Values)
{
    private const string KeyValuesKind = "KeyValues";
    private const string SlotNamesKind = "SlotNames";

    private static readonly Dictionary<string, DataViewType> Types = new()
    {
        ["Text"] = TextDataViewType.Instance,
        ["Single"] = NumberDataViewType.Single,
        ["Double"] = NumberDataViewType.Double,
        ["Int32"] = NumberDataViewType.Int32,
        ["Int64"] = NumberDataViewType.Int64,
        ["UInt32"] = NumberDataViewType.UInt32,
        ["UInt64"] = NumberDataViewType.UInt64,
        ["Boolean"] = BooleanDataViewType.Instance,
    };

    /// <summary>Reads a key column's values, or null when it has none (or of a type not listed above).</summary>
    public static ClassKeyValues? Read(DataViewSchema.Column label)
    {
        if (label.Annotations.Schema.GetColumnOrNull(KeyValuesKind)?.Type is not VectorDataViewType vector) return null;
        string? type = Types.FirstOrDefault(t => t.Value.Equals(vector.ItemType)).Key;
        return type switch
        {
            "Text" => new(type, Read<ReadOnlyMemory<char>>(label, v => v.ToString())),
            "Single" => new(type, Read<float>(label, v => v.ToString("R", CultureInfo.InvariantCulture))),
            "Double" => new(type, Read<double>(label, v => v.ToString("R", CultureInfo.InvariantCulture))),
            "Int32" => new(type, Read<int>(label, v => v.ToString(CultureInfo.InvariantCulture))),
            "Int64" => new(type, Read<long>(label, v => v.ToString(CultureInfo.InvariantCulture))),
            "UInt32" => new(type, Read<uint>(label, v => v.ToString(CultureInfo.InvariantCulture))),
            "UInt64" => new(type, Read<ulong>(label, v => v.ToString(CultureInfo.InvariantCulture))),
            "Boolean" => new(type, Read<bool>(label, v => v.ToString(CultureInfo.InvariantCulture))),
            _ => null,
        };
    }

    /// <summary>Annotations for the predicted-label key column: its <c>KeyValues</c>.</summary>
    public DataViewSchema.Annotations KeyAnnotations()
    {
        var builder = new DataViewSchema.Annotations.Builder();
        switch (Type)
        {
            case "Text": Add(builder, KeyValuesKind, Types[Type], Values.Select(v => v.AsMemory())); break;
            case "Single": Add(builder, KeyValuesKind, Types[Type], Values.Select(v => float.Parse(v, CultureInfo.InvariantCulture))); break;
            case "Double": Add(builder, KeyValuesKind, Types[Type], Values.Select(v => double.Parse(v, CultureInfo.InvariantCulture))); break;
            case "Int32": Add(builder, KeyValuesKind, Types[Type], Values.Select(v => int.Parse(v, CultureInfo.InvariantCulture))); break;
            case "Int64": Add(builder, KeyValuesKind, Types[Type], Values.Select(v => long.Parse(v, CultureInfo.InvariantCulture))); break;
            case "UInt32": Add(builder, KeyValuesKind, Types[Type], Values.Select(v => uint.Parse(v, CultureInfo.InvariantCulture))); break;
            case "UInt64": Add(builder, KeyValuesKind, Types[Type], Values.Select(v => ulong.Parse(v, CultureInfo.InvariantCulture))); break;
            case "Boolean": Add(builder, KeyValuesKind, Types[Type], Values.Select(v => bool.Parse(v))); break;
            default: throw new InvalidDataException($"Unknown key value type '{Type}'.");
        }
        return builder.ToAnnotations();
    }

    /// <summary>Annotations for the score column: <c>SlotNames</c>, the values as text.</summary>
    public DataViewSchema.Annotations SlotNameAnnotations()
    {
        var builder = new DataViewSchema.Annotations.Builder();
        Add(builder, SlotNamesKind, TextDataViewType.Instance, Values.Select(v => v.AsMemory()));
        return builder.ToAnnotations();
    }

    private static string[] Read<T>(DataViewSchema.Column label, Func<T, string> format)
    {
        VBuffer<T> values = default;
        label.Annotations.GetValue(KeyValuesKind, ref values);
        return values.DenseValues().Select(format).ToArray();
    }

    private static void Add<T>(DataViewSchema.Annotations.Builder builder, string kind, DataViewType itemType, IEnumerable<T> values)
    {
        T[] array = values.ToArray();
        ValueGetter<VBuffer<T>> getter = (ref VBuffer<T> value) => value = new VBuffer<T>(array.Length, array.ToArray());
        builder.Add(kind, new VectorDataViewType((PrimitiveDataViewType)itemType, array.Length), getter);
    }
}
