using MLNet.Lora.Encoders;
using Onnx;
using static MLNet.Lora.Export.OnnxGraph;
using DataType = Onnx.TensorProto.Types.DataType;

namespace MLNet.Lora.Export;

/// <summary>
/// Writes a BERT-family text classifier as an ONNX graph of standard operators (opset 17): embeddings, the encoder
/// layers (attention as MatMul/Softmax, GELU from Erf), pooling, the head and a softmax. It mirrors
/// <see cref="BertModel"/> and <see cref="Pooling"/> operation by operation, so that ONNX Runtime and TorchSharp agree
/// to float rounding.
/// </summary>
/// <remarks>
/// Linear weights are stored [in, out] under Hugging Face's names and consumed as <c>Add(MatMul(x, W), b)</c>, the layout
/// of PyTorch's exporter, so that <c>OnnxBertImporter</c> reads an exported file back as an encoder.
/// </remarks>
internal static class BertClassifierGraph
{
    /// <summary>The ONNX operator set the graph uses (LayerNormalization needs 17).</summary>
    public const int Opset = 17;

    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";
    public const string TokenTypeIds = "token_type_ids";
    public const string Logits = "logits";
    public const string Probabilities = "probabilities";

    /// <summary>Builds the graph of the classifier described by <paramref name="config"/> with <paramref name="weights"/>.</summary>
    public static GraphProto Build(ExportedWeights weights, BertConfig config, PoolingStrategy pooling, int classCount, OnnxExportOptions options)
    {
        var g = new OnnxGraph();
        var writer = new Writer(g, weights, config, options);
        g.Proto.Name = "mlnet_lora_text_classifier";
        g.Proto.Input.Add(Value(InputIds, DataType.Int64, "batch", "sequence"));
        g.Proto.Input.Add(Value(AttentionMask, DataType.Int64, "batch", "sequence"));
        g.Proto.Input.Add(Value(TokenTypeIds, DataType.Int64, "batch", "sequence"));

        string hidden = writer.Embeddings();
        string maskFloat = g.Node("Cast", [AttentionMask], "mask_float", Int("to", (long)DataType.Float));
        string additiveMask = writer.AdditiveMask(maskFloat);
        for (int i = 0; i < config.NumHiddenLayers; i++) hidden = writer.Layer(hidden, additiveMask, $"encoder.layer.{i}");
        string pooled = writer.Pool(hidden, maskFloat, pooling);
        writer.Head(pooled);

        g.Proto.Output.Add(Value(Logits, DataType.Float, "batch", classCount));
        g.Proto.Output.Add(Value(Probabilities, DataType.Float, "batch", classCount));
        return g.Proto;
    }

    private sealed class Writer(OnnxGraph g, ExportedWeights weights, BertConfig config, OnnxExportOptions options)
    {
        private readonly long[] splitHeads = [0, 0, config.NumAttentionHeads, config.HeadSize];
        private string? splitHeadsShape, mergeHeadsShape;

        /// <summary>LayerNorm(word + position + token type embeddings), [batch, seq, hidden].</summary>
        public string Embeddings()
        {
            string words = g.Node("Gather", [Weight("embeddings.word_embeddings.weight"), InputIds], "embeddings/words");
            string shape = g.Node("Shape", [InputIds], "embeddings/shape");
            string seq = g.Node("Gather", [shape, g.Int64s("const_i64_one_scalar", [1])], "embeddings/seq_length");
            string positionIds = g.Node("Range", [g.Int64s("const_i64_zero_scalar", [0]), seq, "const_i64_one_scalar"], "embeddings/position_ids");
            string positions = g.Node("Gather", [Weight("embeddings.position_embeddings.weight"), positionIds], "embeddings/positions");
            string types = g.Node("Gather", [Weight("embeddings.token_type_embeddings.weight"), TokenTypeIds], "embeddings/token_types");
            string sum = g.Node("Add", [g.Node("Add", [words, positions], "embeddings/sum"), types], "embeddings/sum");
            return LayerNorm(sum, "embeddings.LayerNorm");
        }

        /// <summary>0 on real tokens, float32's minimum on padding, [batch, 1, 1, seq] (as BertModel.forward).</summary>
        public string AdditiveMask(string maskFloat)
        {
            string inverted = g.Node("Sub", [g.Scalar(1f), maskFloat], "mask_inverted");
            string additive = g.Node("Mul", [inverted, g.Scalar(float.MinValue)], "mask_additive");
            return g.Node("Unsqueeze", [additive, g.Int64s("const_axes_1_2", [1, 2], 2)], "mask_4d");
        }

        /// <summary>One transformer layer: self-attention and feed-forward, each with a residual and post-LayerNorm.</summary>
        public string Layer(string hidden, string additiveMask, string prefix)
        {
            splitHeadsShape ??= g.Int64s("const_split_heads_shape", splitHeads, 4);
            mergeHeadsShape ??= g.Int64s("const_merge_heads_shape", [0, 0, config.HiddenSize], 3);
            string Heads(string name, long[] perm) => g.Node("Transpose",
                [g.Node("Reshape", [Linear(hidden, $"{prefix}.attention.self.{name}", quantize: true), splitHeadsShape], $"{prefix}/{name}_heads")],
                $"{prefix}/{name}_t", Ints("perm", perm));

            string q = Heads("query", [0, 2, 1, 3]);                         // [batch, heads, seq, head]
            string kT = Heads("key", [0, 2, 3, 1]);                          // [batch, heads, head, seq]
            string v = Heads("value", [0, 2, 1, 3]);                         // [batch, heads, seq, head]
            string scores = g.Node("MatMul", [g.Node("Mul", [q, g.Scalar((float)(1 / Math.Sqrt(config.HeadSize)))], $"{prefix}/query_scaled"), kT], $"{prefix}/scores");
            string probabilities = g.Node("Softmax", [g.Node("Add", [scores, additiveMask], $"{prefix}/scores_masked")], $"{prefix}/attention_probs", Int("axis", -1));
            string context = g.Node("MatMul", [probabilities, v], $"{prefix}/context");
            string merged = g.Node("Reshape", [g.Node("Transpose", [context], $"{prefix}/context_t", Ints("perm", 0, 2, 1, 3)), mergeHeadsShape], $"{prefix}/context_merged");
            string attended = Residual(merged, hidden, $"{prefix}.attention.output");

            string intermediate = Activation(Linear(attended, $"{prefix}.intermediate.dense", quantize: true), $"{prefix}/intermediate");
            return Residual(intermediate, attended, $"{prefix}.output");
        }

        /// <summary>Pooled features, [batch, hidden].</summary>
        public string Pool(string hidden, string maskFloat, PoolingStrategy pooling)
        {
            if (pooling == PoolingStrategy.Mean)
            {
                string mask = g.Node("Unsqueeze", [maskFloat, g.Int64s("const_axes_2", [2], 1)], "pool/mask");     // [batch, seq, 1]
                string axis1 = g.Int64s("const_axes_1", [1], 1);
                string sum = g.Node("ReduceSum", [g.Node("Mul", [hidden, mask], "pool/masked"), axis1], "pool/sum", Int("keepdims", 0));
                string counts = g.Node("Max", [g.Node("ReduceSum", [mask, axis1], "pool/counts", Int("keepdims", 0)), g.Scalar(1f)], "pool/counts_min1");
                return g.Node("Div", [sum, counts], "pool/mean");
            }
            string cls = g.Node("Gather", [hidden, g.Int64s("const_i64_zero_scalar_axis", [0])], "pool/cls", Int("axis", 1));
            if (pooling == PoolingStrategy.Pooler && weights.Contains("pooler.dense.weight"))
                return g.Node("Tanh", [Linear(cls, "pooler.dense", quantize: false)], "pool/pooler");
            return cls;
        }

        /// <summary>The head's logits and their softmax: the graph's two outputs.</summary>
        public void Head(string pooled)
        {
            var (weight, shape) = weights["classifier.weight"];
            string product = g.Node("MatMul", [pooled, Transposed("classifier.weight", weight, shape)], "classifier/matmul");
            g.Node("Add", [product, Weight("classifier.bias")], "=" + Logits);
            g.Node("Softmax", [Logits], "=" + Probabilities, Int("axis", -1));
        }

        /// <summary>LayerNorm(dense(input) + residual).</summary>
        private string Residual(string input, string residual, string prefix) =>
            LayerNorm(g.Node("Add", [Linear(input, $"{prefix}.dense", quantize: true), residual], $"{prefix}/residual"), $"{prefix}.LayerNorm");

        private string LayerNorm(string input, string prefix) =>
            g.Node("LayerNormalization", [input, Weight($"{prefix}.weight"), Weight($"{prefix}.bias")], $"{prefix}/output",
                Int("axis", -1), Float("epsilon", (float)config.LayerNormEps));

        /// <summary>x W + b, with W stored [in, out]; int8 under <see cref="OnnxQuantization.DynamicInt8"/> when <paramref name="quantize"/>.</summary>
        private string Linear(string input, string prefix, bool quantize)
        {
            var (weight, shape) = weights[$"{prefix}.weight"];
            string bias = Weight($"{prefix}.bias");
            string product = quantize && options.Quantization == OnnxQuantization.DynamicInt8
                ? DynamicInt8Linear.Write(g, input, prefix, weight, shape, options.ReduceRange ? DynamicInt8Linear.ReducedRange : DynamicInt8Linear.FullRange)
                : g.Node("MatMul", [input, Transposed($"{prefix}.weight", weight, shape)], $"{prefix}/matmul");
            return g.Node("Add", [product, bias], $"{prefix}/output");
        }

        private string Activation(string x, string prefix) => config.HiddenAct switch
        {
            "relu" => g.Node("Relu", [x], $"{prefix}/relu"),
            // 0.5 x (1 + erf(x / sqrt 2)): GELU, which is an ONNX operator only from opset 20.
            "gelu" => g.Node("Mul",
                [g.Node("Mul", [x, g.Scalar(0.5f)], $"{prefix}/half"),
                 g.Node("Add", [g.Node("Erf", [g.Node("Mul", [x, g.Scalar((float)(1 / Math.Sqrt(2)))], $"{prefix}/scaled")], $"{prefix}/erf"), g.Scalar(1f)], $"{prefix}/erf_plus1")],
                $"{prefix}/gelu"),
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): the tanh form (gelu_new, gelu_pytorch_tanh).
            _ => g.Node("Mul",
                [g.Node("Mul", [x, g.Scalar(0.5f)], $"{prefix}/half"),
                 g.Node("Add", [g.Node("Tanh", [g.Node("Mul", [g.Node("Add", [x, g.Node("Mul", [g.Node("Mul", [g.Node("Mul", [x, x], $"{prefix}/x2"), x], $"{prefix}/x3"), g.Scalar(0.044715f)], $"{prefix}/cubic")], $"{prefix}/inner"), g.Scalar((float)Math.Sqrt(2 / Math.PI))], $"{prefix}/inner_scaled")], $"{prefix}/tanh"), g.Scalar(1f)], $"{prefix}/tanh_plus1")],
                $"{prefix}/gelu_tanh"),
        };

        private string Weight(string name)
        {
            var (data, shape) = weights[name];
            return g.Initializer(name, data, shape);
        }

        /// <summary>A PyTorch [out, in] weight stored as the [in, out] initializer MatMul takes.</summary>
        private string Transposed(string name, float[] weight, long[] shape)
        {
            var (rows, columns) = (checked((int)shape[0]), checked((int)shape[1]));
            var transposed = new float[weight.Length];
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < columns; c++) transposed[c * rows + r] = weight[r * columns + c];
            return g.Initializer(name, transposed, columns, rows);
        }
    }
}
