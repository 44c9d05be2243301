using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace MLNet.Lora.Export;

/// <summary>
/// A small builder over ONNX's generated protobuf types (OnnxSharp): initializers, nodes and the graph's inputs and
/// outputs, with unique names for intermediate values. It knows nothing about BERT.
/// </summary>
internal sealed class OnnxGraph
{
    private readonly Dictionary<string, string> scalars = new(StringComparer.Ordinal);
    private int counter;

    public GraphProto Proto { get; } = new();

    /// <summary>A float32 initializer of shape <paramref name="dims"/>.</summary>
    public string Initializer(string name, ReadOnlySpan<float> data, params long[] dims) =>
        AddInitializer(name, TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes(data), dims);

    /// <summary>An int8 initializer of shape <paramref name="dims"/>.</summary>
    public string Initializer(string name, ReadOnlySpan<sbyte> data, params long[] dims) =>
        AddInitializer(name, TensorProto.Types.DataType.Int8, MemoryMarshal.AsBytes(data), dims);

    /// <summary>An int64 initializer; a scalar when <paramref name="dims"/> is empty.</summary>
    public string Int64s(string name, long[] values, params long[] dims) =>
        AddInitializer(name, TensorProto.Types.DataType.Int64, MemoryMarshal.AsBytes(values.AsSpan()), dims);

    /// <summary>A float32 scalar constant, shared by every node that uses the same value.</summary>
    public string Scalar(float value)
    {
        string key = BitConverter.SingleToInt32Bits(value).ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
        if (!scalars.TryGetValue(key, out string? name))
            scalars[key] = name = AddInitializer($"const_f32_{key}", TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes([value]), []);
        return name;
    }

    /// <summary>Adds a node with one output, named after <paramref name="output"/> (made unique; a leading <c>=</c> keeps the name exactly).</summary>
    public string Node(string opType, string[] inputs, string output, params AttributeProto[] attributes) =>
        Node(opType, inputs, [output], attributes)[0];

    /// <summary>Adds a node; its outputs get unique names built from <paramref name="outputs"/> (a leading <c>=</c> keeps a name exactly).</summary>
    public string[] Node(string opType, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        string[] names = outputs.Select(o => o.StartsWith('=') ? o[1..] : $"{o}_{counter++}").ToArray();
        var node = new NodeProto { OpType = opType, Name = $"{opType}_{counter++}" };
        node.Input.AddRange(inputs);
        node.Output.AddRange(names);
        node.Attribute.AddRange(attributes);
        Proto.Node.Add(node);
        return names;
    }

    /// <summary>Declares a graph input or output tensor with named (dynamic) or fixed dimensions.</summary>
    public static ValueInfoProto Value(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (object dim in dims)
        {
            shape.Dim.Add(dim switch
            {
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                int size => new TensorShapeProto.Types.Dimension { DimValue = size },
                long size => new TensorShapeProto.Types.Dimension { DimValue = size },
                _ => throw new ArgumentException($"A dimension is a name or a size, not {dim.GetType().Name}.", nameof(dims)),
            });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private string AddInitializer(string name, TensorProto.Types.DataType type, ReadOnlySpan<byte> bytes, long[] dims)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian; this machine is not.");
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(dims);
        Proto.Initializer.Add(tensor);
        return name;
    }
}
