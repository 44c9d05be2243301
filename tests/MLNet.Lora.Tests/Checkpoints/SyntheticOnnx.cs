using Google.Protobuf;
using MLNet.Lora.Encoders;
using Onnx;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Checkpoints;

/// <summary>
/// Writes a tiny model's weights the way PyTorch's ONNX exporter lays out a Hugging Face BertModel: named
/// initializers, linear weights folded into numbered [in, out] initializers consumed by MatMul + Add(bias), the pooler as
/// Gemm(transB = 1), the query Reshape to [batch, seq, heads, head size] and the scores divided by sqrt(head size).
/// Only the parts of the graph the importer reads are written; the graph is not meant to run.
/// </summary>
internal static class SyntheticOnnx
{
    private static readonly string[] Linears =
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"];

    public static void Write(BertModel model, string path, bool reshapeHint = true, bool scaleHint = true, params string[] drop)
    {
        var config = model.Config;
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var graph = new GraphProto { Name = "tiny" };
        int counter = 900;
        string Next() => (counter++).ToString();

        void Initializer(string name, Tensor value)
        {
            if (drop.Contains(name)) return;
            graph.Initializer.Add(FloatTensor(name, value));
        }

        var position = new TensorProto { Name = "embeddings.position_ids", DataType = (int)TensorProto.Types.DataType.Int64 };
        position.Dims.Add([1, config.MaxPositionEmbeddings]);
        position.Int64Data.Add(Enumerable.Range(0, config.MaxPositionEmbeddings).Select(i => (long)i));
        graph.Initializer.Add(position);

        foreach (var (name, value) in parameters)
        {
            bool linearWeight = name.StartsWith("encoder.", StringComparison.Ordinal) && Linears.Any(l => name.EndsWith(l + ".weight", StringComparison.Ordinal));
            if (!linearWeight && !name.StartsWith("pooler.dense.weight", StringComparison.Ordinal)) Initializer(name, value);
        }
        if (parameters.TryGetValue("pooler.dense.weight", out var pooler))
        {
            Initializer("pooler.dense.weight", pooler);              // Gemm with transB = 1 keeps [out, in]
            graph.Node.Add(Node("Gemm", ["cls", "pooler.dense.weight", "pooler.dense.bias"], ["pooled"], new AttributeProto { Name = "transB", I = 1, Type = AttributeProto.Types.AttributeType.Int }));
        }

        graph.Node.Add(Node("Unsqueeze", ["batch_dim"], ["batch_unsqueezed"]));
        graph.Node.Add(Node("Unsqueeze", ["seq_dim"], ["seq_unsqueezed"]));
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            foreach (string linear in Linears)
            {
                string prefix = $"encoder.layer.{layer}.{linear}";
                string weight = Next();
                Initializer(weight, parameters[prefix + ".weight"].t());    // [in, out], numbered, as the exporter folds it
                string product = Next(), sum = Next();
                graph.Node.Add(Node("MatMul", [$"hidden_{layer}", weight], [product]));
                graph.Node.Add(Node("Add", [prefix + ".bias", product], [sum]));
                if (linear == "attention.self.query" && reshapeHint)
                {
                    string heads = Next(), size = Next(), shape = Next();
                    graph.Initializer.Add(LongTensor(heads, config.NumAttentionHeads));
                    graph.Initializer.Add(LongTensor(size, config.HeadSize));
                    graph.Node.Add(Node("Concat", ["batch_unsqueezed", "seq_unsqueezed", heads, size], [shape]));
                    graph.Node.Add(Node("Reshape", [sum, shape], [$"query_heads_{layer}"]));
                }
            }
            if (scaleHint)
            {
                string scores = Next(), scale = Next();
                graph.Node.Add(Node("MatMul", [$"query_heads_{layer}", $"key_heads_{layer}"], [scores]));
                graph.Node.Add(Constant(scale, MathF.Sqrt(config.HeadSize)));
                graph.Node.Add(Node("Div", [scores, scale], [Next()]));
            }
            // Decomposed LayerNorm: x / sqrt(var + eps), and the erf form of GELU.
            string eps = Next(), variance = Next(), shifted = Next();
            graph.Node.Add(Constant(eps, (float)config.LayerNormEps));
            graph.Node.Add(Node("Add", [variance, eps], [shifted]));
            graph.Node.Add(Node("Sqrt", [shifted], [Next()]));
            graph.Node.Add(Node("Erf", [Next()], [Next()]));
        }

        var onnx = new ModelProto { IrVersion = 7, ProducerName = "mlnet-lora-tests", Graph = graph };
        onnx.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        using var stream = File.Create(path);
        onnx.WriteTo(stream);
    }

    private static NodeProto Node(string op, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = $"{op}_{Guid.NewGuid():N}" };
        node.Input.Add(inputs);
        node.Output.Add(outputs);
        node.Attribute.Add(attributes);
        return node;
    }

    private static NodeProto Constant(string output, float value)
    {
        var tensor = new TensorProto { DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(BitConverter.GetBytes(value)) };
        return Node("Constant", [], [output], new AttributeProto { Name = "value", T = tensor, Type = AttributeProto.Types.AttributeType.Tensor });
    }

    private static TensorProto FloatTensor(string name, Tensor value)
    {
        using var contiguous = value.detach().contiguous();
        var proto = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(contiguous.bytes) };
        proto.Dims.Add(contiguous.shape);
        return proto;
    }

    private static TensorProto LongTensor(string name, long value)
    {
        var proto = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, RawData = ByteString.CopyFrom(BitConverter.GetBytes(value)) };
        proto.Dims.Add(1);
        return proto;
    }
}
