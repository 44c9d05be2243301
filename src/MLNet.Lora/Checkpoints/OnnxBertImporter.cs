using System.Globalization;
using System.Text.RegularExpressions;
using Google.Protobuf;
using MLNet.Lora.Encoders;
using MLNet.Lora.Native;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// Builds a <see cref="BertModel"/> from a BERT-family ONNX export (such as PyTorch's <c>torch.onnx.export</c> of a
/// Hugging Face <c>BertModel</c>, or Optimum's export), reading the graph's initializers with OnnxSharp.
/// </summary>
/// <remarks>
/// <para>
/// Most initializers carry Hugging Face's names (<c>embeddings.word_embeddings.weight</c>, <c>...LayerNorm.bias</c>).
/// The exporter folds each linear layer's weight into a numbered initializer (<c>927</c>, <c>onnx::MatMul_1234</c>)
/// stored transposed, [in, out], and consumed as <c>MatMul(x, W)</c>; the importer names it after the bias of the
/// <c>Add</c> node that consumes the <c>MatMul</c>'s output (<c>...attention.self.query.bias</c> gives
/// <c>...attention.self.query.weight</c>) and transposes it to PyTorch's [out, in]. <c>Gemm</c> nodes (the pooler) are
/// read the same way, honouring <c>transB</c>. <c>embeddings.position_ids</c> and non-float initializers are skipped.
/// </para>
/// <para>
/// The configuration is inferred from the tensors: vocabulary and hidden sizes from the word embeddings, the number of
/// layers from the <c>encoder.layer.N</c> names, the feed-forward width from <c>intermediate.dense.bias</c>, positions and
/// segment types from their embeddings, the pooler from <c>pooler.dense.*</c>; the LayerNorm epsilon and activation
/// from the graph's constants and operators. The number of attention heads is not a tensor: it is read, in order,
/// from a fused attention operator's <c>num_heads</c> attribute, from the constant shape of the <c>Reshape</c> that
/// splits the first layer's query into [batch, seq, heads, head size], or from the constant the attention scores are
/// divided by (sqrt(head size)). When none of these is present, pass it explicitly as <c>numAttentionHeads</c>
/// (the <c>num_attention_heads</c> of the model's <c>config.json</c>); an explicit value always wins.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using var model = OnnxBertImporter.Import("model.onnx");                       // heads inferred
/// using var other = OnnxBertImporter.Import("other.onnx", numAttentionHeads: 12); // heads given
/// </code>
/// </example>
internal static class OnnxBertImporter
{
    private static readonly Regex LayerIndex = new(@"(?:^|\.)encoder\.layer\.(\d+)\.", RegexOptions.CultureInvariant);

    /// <summary>Reads an ONNX file and returns the encoder it holds, in evaluation mode; the caller owns it.</summary>
    /// <param name="modelPath">The <c>.onnx</c> file.</param>
    /// <param name="numAttentionHeads">The number of attention heads; inferred from the graph when null.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, or not a BERT-family encoder this importer understands.</exception>
    public static BertModel Import(string modelPath, int? numAttentionHeads = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        using var stream = CheckpointFiles.OpenRead(modelPath);
        return Import(stream, modelPath, numAttentionHeads);
    }

    /// <summary>Reads an ONNX model from a stream and returns the encoder it holds, in evaluation mode; the caller owns it.</summary>
    /// <param name="onnx">The ONNX bytes.</param>
    /// <param name="sourceName">What to call the model in errors (its file name, say).</param>
    /// <param name="numAttentionHeads">The number of attention heads; inferred from the graph when null.</param>
    public static BertModel Import(Stream onnx, string sourceName, int? numAttentionHeads = null)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        TorchRuntime.EnsureLoaded();
        return Import(Parse(onnx, sourceName), sourceName, numAttentionHeads);
    }

    /// <summary>Parses ONNX bytes, with an error naming the source when they are not an ONNX model.</summary>
    internal static ModelProto Parse(Stream onnx, string sourceName)
    {
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(onnx);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{sourceName}' is not a readable ONNX model (corrupt or truncated): {e.Message}", e);
        }
        if (model.Graph is null || model.Graph.Initializer.Count == 0)
            throw new InvalidDataException($"'{sourceName}' is not an ONNX model with weights: it has no graph initializers.");
        return model;
    }

    /// <summary>Builds the encoder from a parsed model.</summary>
    internal static BertModel Import(ModelProto onnx, string sourceName, int? numAttentionHeads)
    {
        if (numAttentionHeads is <= 0)
            throw new ArgumentOutOfRangeException(nameof(numAttentionHeads), numAttentionHeads, "The number of attention heads must be positive.");
        var graph = new GraphIndex(onnx.Graph);
        Dictionary<string, PlannedTensor> plan = PlanTensors(graph);
        BertConfig config = InferConfig(graph, plan, sourceName, numAttentionHeads);

        BertModel? model = null;
        try
        {
            model = new BertModel(config);
            using var scope = NewDisposeScope();
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var keyMap = CheckpointKeyMap.For(model);
            var keys = plan.Keys.ToHashSet(StringComparer.Ordinal);
            // Materialise only what the model uses: the graph holds other constants and, for big vocabularies, it saves memory.
            foreach (var (name, _) in keyMap.Expected)
            {
                if (CheckpointKeyMap.FindKey(keys, name) is { } key) tensors[key] = ToTensor(plan[key], sourceName);
            }
            keyMap.CopyInto(model, tensors, sourceName);
            model.eval();
            return model;
        }
        catch
        {
            model?.Dispose();
            throw;
        }
    }

    /// <summary>An initializer under its BERT name, and whether it is stored [in, out] and must be transposed.</summary>
    private sealed record PlannedTensor(TensorProto Proto, bool Transpose)
    {
        public long[] Shape => Transpose ? Proto.Dims.Reverse().ToArray() : Proto.Dims.ToArray();
    }

    /// <summary>Names every float initializer: by its own name, or, for linear weights, after the bias added to its product.</summary>
    private static Dictionary<string, PlannedTensor> PlanTensors(GraphIndex graph)
    {
        var plan = new Dictionary<string, PlannedTensor>(StringComparer.Ordinal);
        foreach (var (name, proto) in graph.Initializers)
        {
            if (IsFloat(proto) && !name.EndsWith("position_ids", StringComparison.Ordinal)) plan[name] = new PlannedTensor(proto, false);
        }
        foreach (NodeProto node in graph.Nodes)
        {
            if (node.OpType == "MatMul" && node.Input.Count == 2 && graph.FloatMatrix(node.Input[1]) is { } weight)
            {
                // y = x W + b: the Add that consumes the product names W after b.
                foreach (NodeProto add in graph.ConsumersOf(node.Output[0]).Where(n => n.OpType == "Add" && n.Input.Count == 2))
                {
                    string other = add.Input[0] == node.Output[0] ? add.Input[1] : add.Input[0];
                    if (WeightNameForBias(graph, other) is { } weightName) plan[weightName] = new PlannedTensor(weight, Transpose: true);
                }
            }
            else if (node.OpType == "Gemm" && node.Input.Count == 3 && graph.FloatMatrix(node.Input[1]) is { } gemmWeight
                     && WeightNameForBias(graph, node.Input[2]) is { } gemmName)
            {
                // Gemm computes x B' + C with B' = B^T when transB = 1, so B is [out, in] exactly when transB = 1.
                bool transB = node.Attribute.FirstOrDefault(a => a.Name == "transB")?.I == 1;
                plan[gemmName] = new PlannedTensor(gemmWeight, Transpose: !transB);
            }
        }
        return plan;
    }

    private static string? WeightNameForBias(GraphIndex graph, string biasName) =>
        biasName.EndsWith(".bias", StringComparison.Ordinal) && graph.Initializers.ContainsKey(biasName)
            ? biasName[..^".bias".Length] + ".weight"
            : null;

    private static BertConfig InferConfig(GraphIndex graph, Dictionary<string, PlannedTensor> plan, string source, int? numAttentionHeads)
    {
        var keys = plan.Keys.ToHashSet(StringComparer.Ordinal);
        long[] Shape(string name) =>
            CheckpointKeyMap.FindKey(keys, name) is { } key
                ? plan[key].Shape
                : throw new InvalidDataException(
                    $"{name} is missing from '{source}'; it is not a BERT-family ONNX export this importer understands " +
                    "(it needs Hugging Face's BertModel initializer names).");

        long[] words = Shape("embeddings.word_embeddings.weight");
        if (words.Length != 2) throw new InvalidDataException($"embeddings.word_embeddings.weight has shape {CheckpointKeyMap.Format(words)} in '{source}'; expected [vocab, hidden].");
        int hidden = checked((int)words[1]);
        int layers = keys.Select(k => LayerIndex.Match(k)).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) + 1).DefaultIfEmpty(0).Max();
        if (layers == 0) throw new InvalidDataException($"'{source}' has no encoder.layer.N tensors; it is not a BERT-family encoder.");

        int heads = numAttentionHeads ?? InferHeads(graph, plan, hidden)
            ?? throw new InvalidDataException(
                $"Cannot infer the number of attention heads of '{source}' from its graph (no num_heads attribute, constant query " +
                "Reshape or sqrt(head size) scale was found). Pass numAttentionHeads: the num_attention_heads of the model's config.json.");
        if (hidden % heads != 0)
        {
            string message = $"The hidden size of '{source}' ({hidden}) is not a multiple of {heads} attention heads.";
            throw numAttentionHeads is null ? new InvalidDataException(message) : new ArgumentException(message, nameof(numAttentionHeads));
        }

        return new BertConfig
        {
            VocabSize = checked((int)words[0]),
            HiddenSize = hidden,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            IntermediateSize = checked((int)Shape("encoder.layer.0.intermediate.dense.bias")[0]),
            MaxPositionEmbeddings = checked((int)Shape("embeddings.position_embeddings.weight")[0]),
            TypeVocabSize = checked((int)Shape("embeddings.token_type_embeddings.weight")[0]),
            LayerNormEps = InferLayerNormEps(graph) ?? new BertConfig().LayerNormEps,
            HiddenAct = InferActivation(graph, layers),
            AddPoolingLayer = CheckpointKeyMap.FindKey(keys, "pooler.dense.weight") is not null
                              && CheckpointKeyMap.FindKey(keys, "pooler.dense.bias") is not null,
        }.Validate();
    }

    /// <summary>The number of attention heads from the graph, or null when it does not show.</summary>
    private static int? InferHeads(GraphIndex graph, Dictionary<string, PlannedTensor> plan, int hidden)
    {
        // 1. Fused attention operators (onnxruntime's Attention, MultiHeadAttention) state it.
        foreach (NodeProto node in graph.Nodes)
        {
            if (node.Attribute.FirstOrDefault(a => a.Name == "num_heads") is { I: > 0 } attribute && hidden % attribute.I == 0)
                return (int)attribute.I;
        }

        // 2. The query is reshaped to [batch, seq, heads, head size], often with constant last two entries.
        string? queryBias = plan.Keys.Where(k => k.EndsWith("encoder.layer.0.attention.self.query.bias", StringComparison.Ordinal)).FirstOrDefault();
        if (queryBias is not null)
        {
            foreach (NodeProto add in graph.ConsumersOf(queryBias).Where(n => n.OpType == "Add"))
            {
                foreach (NodeProto reshape in graph.ConsumersOf(add.Output[0]).Where(n => n.OpType == "Reshape" && n.Input.Count == 2))
                {
                    long?[]? shape = graph.ShapeValues(reshape.Input[1]);
                    if (shape is not { Length: 4 }) continue;
                    var (h, d) = (shape[2], shape[3]);
                    if (h > 0 && d > 0 && h * d == hidden) return (int)h;
                    if (h > 0 && d is null or -1 && hidden % h == 0) return (int)h;
                    if (d > 0 && h is null or -1 && hidden % d == 0) return hidden / (int)d;
                }
            }
        }

        // 3. Scores q k^T are divided by sqrt(head size) (or multiplied by its inverse).
        foreach (NodeProto node in graph.Nodes)
        {
            if (node.OpType is not ("Div" or "Mul") || node.Input.Count != 2) continue;
            for (int side = 0; side < 2; side++)
            {
                if (node.OpType == "Div" && side == 0) continue;        // only the divisor is the scale
                if (graph.ScalarValue(node.Input[side]) is not { } scale || scale <= 0) continue;
                if (graph.ProducerOf(node.Input[1 - side]) is not { OpType: "MatMul" } product
                    || product.Input.Any(graph.Initializers.ContainsKey)) continue;   // q k^T multiplies two activations
                double headSize = node.OpType == "Div" ? scale * scale : 1 / (scale * scale);
                long rounded = (long)Math.Round(headSize);
                if (rounded > 1 && Math.Abs(headSize - rounded) < 1e-3 * rounded && hidden % rounded == 0) return hidden / (int)rounded;
            }
        }
        return null;
    }

    /// <summary>The LayerNorm epsilon: a LayerNormalization node's attribute, or the constant added before the Sqrt of a decomposed one.</summary>
    private static double? InferLayerNormEps(GraphIndex graph)
    {
        foreach (NodeProto node in graph.Nodes)
        {
            if (node.OpType is "LayerNormalization" or "SkipLayerNormalization")
                return Tidy(node.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f);
            if (node.OpType == "Sqrt" && graph.ProducerOf(node.Input[0]) is { OpType: "Add" } add)
            {
                foreach (string input in add.Input)
                {
                    if (graph.ScalarValue(input) is { } eps && eps is > 0 and < 1e-3) return Tidy((float)eps);
                }
            }
        }
        return null;

        // The graph stores float32; print-and-parse gives 1e-12 rather than 9.9999999600419720e-13.
        static double Tidy(float value) => double.Parse(value.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    /// <summary>The feed-forward activation, from the operators the export uses.</summary>
    private static string InferActivation(GraphIndex graph, int layers)
    {
        var ops = graph.Nodes.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.ToList());
        if (ops.ContainsKey("Erf") || ops.ContainsKey("BiasGelu")) return "gelu";
        if (ops.TryGetValue("Gelu", out var gelu))
            return gelu[0].Attribute.FirstOrDefault(a => a.Name == "approximate")?.S.ToStringUtf8() == "tanh" ? "gelu_new" : "gelu";
        if (ops.ContainsKey("FastGelu")) return "gelu_new";
        // The pooler has one Tanh; the tanh form of GELU adds one per layer.
        if (ops.TryGetValue("Tanh", out var tanh) && tanh.Count >= layers) return "gelu_new";
        if (ops.ContainsKey("Relu")) return "relu";
        return "gelu";
    }

    private static bool IsFloat(TensorProto proto) => (TensorProto.Types.DataType)proto.DataType is
        TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Double or TensorProto.Types.DataType.Bfloat16;

    /// <summary>Copies an initializer's data into a float32 tensor (in the current dispose scope), transposed when planned.</summary>
    private static Tensor ToTensor(PlannedTensor planned, string source)
    {
        TensorProto proto = planned.Proto;
        if (proto.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"Initializer '{proto.Name}' of '{source}' is stored in an external data file, which is not supported; re-export the model as a single .onnx file.");
        var (type, size) = (TensorProto.Types.DataType)proto.DataType switch
        {
            TensorProto.Types.DataType.Float => (ScalarType.Float32, 4),
            TensorProto.Types.DataType.Float16 => (ScalarType.Float16, 2),
            TensorProto.Types.DataType.Bfloat16 => (ScalarType.BFloat16, 2),
            _ => (ScalarType.Float64, 8),
        };
        long[] dims = proto.Dims.ToArray();
        long count = dims.Aggregate(1L, (a, b) => a * b);
        Tensor tensor;
        if (!proto.RawData.IsEmpty)
        {
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian; this machine is not.");
            if (proto.RawData.Length != count * size)
                throw new InvalidDataException($"Initializer '{proto.Name}' of '{source}' holds {proto.RawData.Length} bytes but its shape {CheckpointKeyMap.Format(dims)} needs {count * size}.");
            tensor = empty(dims, type);
            proto.RawData.Span.CopyTo(tensor.bytes);
        }
        else if (type == ScalarType.Float32 && proto.FloatData.Count == count)
        {
            tensor = torch.tensor(proto.FloatData.ToArray(), dims);
        }
        else if (type == ScalarType.Float64 && proto.DoubleData.Count == count)
        {
            tensor = torch.tensor(proto.DoubleData.ToArray(), dims);
        }
        else
        {
            throw new InvalidDataException($"Initializer '{proto.Name}' of '{source}' has no data of its declared type and shape {CheckpointKeyMap.Format(dims)}.");
        }
        if (type != ScalarType.Float32) tensor = tensor.to(ScalarType.Float32);
        return planned.Transpose ? tensor.t() : tensor;
    }

    /// <summary>The graph's nodes indexed by the tensors they produce and consume, and its constants.</summary>
    private sealed class GraphIndex
    {
        private readonly Dictionary<string, NodeProto> producers = new(StringComparer.Ordinal);
        private readonly Dictionary<string, List<NodeProto>> consumers = new(StringComparer.Ordinal);
        private readonly Dictionary<string, TensorProto> constants = new(StringComparer.Ordinal);

        public GraphIndex(GraphProto graph)
        {
            Nodes = graph.Node;
            foreach (TensorProto initializer in graph.Initializer) Initializers[initializer.Name] = initializer;
            foreach (var (name, tensor) in Initializers) constants[name] = tensor;
            foreach (NodeProto node in graph.Node)
            {
                foreach (string output in node.Output) producers[output] = node;
                foreach (string input in node.Input)
                {
                    if (!consumers.TryGetValue(input, out var list)) consumers[input] = list = [];
                    list.Add(node);
                }
                if (node.OpType == "Constant" && node.Output.Count == 1 && node.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } value)
                    constants[node.Output[0]] = value;
            }
        }

        public IReadOnlyList<NodeProto> Nodes { get; }

        public Dictionary<string, TensorProto> Initializers { get; } = new(StringComparer.Ordinal);

        public IReadOnlyList<NodeProto> ConsumersOf(string name) => consumers.TryGetValue(name, out var list) ? list : [];

        public NodeProto? ProducerOf(string name) => producers.GetValueOrDefault(name);

        public TensorProto? FloatMatrix(string name) =>
            Initializers.TryGetValue(name, out var proto) && proto.Dims.Count == 2 && IsFloat(proto) ? proto : null;

        /// <summary>A one-element float constant's value.</summary>
        public double? ScalarValue(string name)
        {
            if (!constants.TryGetValue(name, out var proto) || proto.Dims.Aggregate(1L, (a, b) => a * b) != 1) return null;
            return (TensorProto.Types.DataType)proto.DataType switch
            {
                TensorProto.Types.DataType.Float when proto.RawData.Length == 4 => BitConverter.ToSingle(proto.RawData.Span),
                TensorProto.Types.DataType.Float when proto.FloatData.Count == 1 => proto.FloatData[0],
                TensorProto.Types.DataType.Double when proto.RawData.Length == 8 => BitConverter.ToDouble(proto.RawData.Span),
                TensorProto.Types.DataType.Double when proto.DoubleData.Count == 1 => proto.DoubleData[0],
                _ => null,
            };
        }

        /// <summary>An int64 constant's values.</summary>
        public long[]? IntValues(string name)
        {
            if (!constants.TryGetValue(name, out var proto) || (TensorProto.Types.DataType)proto.DataType != TensorProto.Types.DataType.Int64) return null;
            if (proto.Int64Data.Count > 0) return proto.Int64Data.ToArray();
            var raw = proto.RawData.Span;
            var values = new long[raw.Length / 8];
            for (int i = 0; i < values.Length; i++) values[i] = BitConverter.ToInt64(raw[(i * 8)..]);
            return values;
        }

        /// <summary>A shape operand's entries: a constant, or a Concat of pieces of which some are constant (null where not).</summary>
        public long?[]? ShapeValues(string name)
        {
            if (IntValues(name) is { } direct) return direct.Select(v => (long?)v).ToArray();
            if (ProducerOf(name) is not { OpType: "Concat" } concat) return null;
            var entries = new List<long?>();
            foreach (string piece in concat.Input)
            {
                if (IntValues(piece) is { } values) entries.AddRange(values.Select(v => (long?)v));
                else entries.Add(null);     // a runtime value such as batch or sequence length: one entry, unknown
            }
            return entries.ToArray();
        }
    }
}
