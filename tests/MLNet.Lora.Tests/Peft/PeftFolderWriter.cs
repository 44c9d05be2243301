using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using MLNet.Lora.Encoders;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Peft;

/// <summary>
/// Writes PEFT adapter folders the way PEFT does, independently of the package's writer: known random A and B per
/// module, a head, <c>adapter_config.json</c> and the safetensors (or pickled .bin) file. Also computes what the adapter
/// must do, W + scaling·B·A, without any of the package's adapter code.
/// </summary>
internal sealed class PeftFolderWriter
{
    public int Rank { get; init; } = 4;
    public double Alpha { get; init; } = 8;
    public bool UseRsLora { get; init; }
    public string[] TargetModules { get; init; } = ["query", "value"];
    public Dictionary<string, int> RankPattern { get; init; } = [];
    public Dictionary<string, double> AlphaPattern { get; init; } = [];
    public int Classes { get; init; } = 3;
    public int Seed { get; init; } = 5;

    /// <summary>"bert." for a BertForSequenceClassification base, "" for a bare BertModel.</summary>
    public string EncoderPrefix { get; init; } = "bert.";

    /// <summary>Extra or changed config fields, as raw JSON values.</summary>
    public Dictionary<string, string> ConfigOverrides { get; init; } = [];

    /// <summary>The modules adapted, with their rank and alpha (set by <see cref="Write"/>).</summary>
    public List<(string Path, Tensor A, Tensor B, double Scaling)> Modules { get; } = [];

    public Tensor HeadWeight { get; private set; } = null!;
    public Tensor HeadBias { get; private set; } = null!;

    private static readonly string[] Suffixes =
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"];

    /// <summary>The tensors by PEFT key; <paramref name="edit"/> may change them before they are written.</summary>
    public Dictionary<string, Tensor> Tensors(BertModel encoder)
    {
        var generator = new Generator((ulong)Seed);
        var weights = encoder.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var tensors = new Dictionary<string, Tensor>();
        Modules.Clear();
        for (int layer = 0; layer < encoder.Config.NumHiddenLayers; layer++)
        {
            foreach (string suffix in Suffixes)
            {
                string path = $"encoder.layer.{layer}.{suffix}";
                // PEFT's rule: a name matches a module path equal to it or ending in ".name".
                if (!TargetModules.Any(t => path == t || path.EndsWith("." + t, StringComparison.Ordinal))) continue;
                int r = RankPattern.FirstOrDefault(p => System.Text.RegularExpressions.Regex.IsMatch("bert." + path, $"^(.*\\.)?({p.Key})$")).Value is var pr and > 0 ? pr : Rank;
                double alpha = AlphaPattern.FirstOrDefault(p => System.Text.RegularExpressions.Regex.IsMatch("bert." + path, $"^(.*\\.)?({p.Key})$")).Value is var pa and > 0 ? pa : Alpha;
                var w = weights[path + ".weight"];
                var a = randn([r, w.shape[1]], generator: generator) * 0.2;
                var b = randn([w.shape[0], r], generator: generator) * 0.2;   // non-zero: the adapter changes the outputs
                tensors[$"base_model.model.{EncoderPrefix}{path}.lora_A.weight"] = a;
                tensors[$"base_model.model.{EncoderPrefix}{path}.lora_B.weight"] = b;
                Modules.Add((path, a, b, UseRsLora ? alpha / Math.Sqrt(r) : alpha / r));
            }
        }
        HeadWeight = randn([Classes, encoder.Config.HiddenSize], generator: generator) * 0.5;
        HeadBias = randn([Classes], generator: generator) * 0.1;
        tensors["base_model.model.classifier.weight"] = HeadWeight;
        tensors["base_model.model.classifier.bias"] = HeadBias;
        return tensors;
    }

    public string ConfigJson()
    {
        var fields = new Dictionary<string, string>
        {
            ["peft_type"] = "\"LORA\"",
            ["task_type"] = "\"SEQ_CLS\"",
            ["r"] = Rank.ToString(),
            ["lora_alpha"] = Alpha.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["lora_dropout"] = "0.1",
            ["target_modules"] = JsonSerializer.Serialize(TargetModules),
            ["use_rslora"] = UseRsLora ? "true" : "false",
            ["bias"] = "\"none\"",
            ["fan_in_fan_out"] = "false",
            ["modules_to_save"] = "[\"classifier\", \"score\"]",
            ["rank_pattern"] = JsonSerializer.Serialize(RankPattern),
            ["alpha_pattern"] = JsonSerializer.Serialize(AlphaPattern),
            ["use_dora"] = "false",
            ["layers_to_transform"] = "null",
            ["base_model_name_or_path"] = "\"tiny\"",
        };
        foreach (var (k, v) in ConfigOverrides) fields[k] = v;
        return "{\n" + string.Join(",\n", fields.Select(f => $"  \"{f.Key}\": {f.Value}")) + "\n}";
    }

    /// <summary>Writes the folder; <paramref name="edit"/> may change the tensors first.</summary>
    public void Write(string directory, BertModel encoder, bool pickle = false, Action<Dictionary<string, Tensor>>? edit = null)
    {
        Directory.CreateDirectory(directory);
        var tensors = Tensors(encoder);
        edit?.Invoke(tensors);
        File.WriteAllText(Path.Combine(directory, "adapter_config.json"), ConfigJson());
        if (pickle) PyTorchPickler.PickleStateDict(Path.Combine(directory, "adapter_model.bin"), tensors.ToDictionary(t => t.Key, t => t.Value));
        else WriteSafetensors(Path.Combine(directory, "adapter_model.safetensors"), tensors);
    }

    /// <summary>A plain copy of <paramref name="encoder"/> whose adapted weights are W + scaling·B·A.</summary>
    public BertModel MergedReference(BertModel encoder)
    {
        var copy = encoder.Clone();
        using var _ = no_grad();
        var weights = copy.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (path, a, b, scaling) in Modules) weights[path + ".weight"].add_(b.matmul(a).mul(scaling));
        copy.eval();
        return copy;
    }

    /// <summary>The safetensors layout, written here with no help from the package: length, JSON header, raw float32 data.</summary>
    public static void WriteSafetensors(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var header = new Dictionary<string, object> { ["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" } };
        var data = new MemoryStream();
        Span<byte> bytes = stackalloc byte[4];
        foreach (var (name, tensor) in tensors)
        {
            var values = tensor.to(float32).contiguous().data<float>().ToArray();
            long begin = data.Length;
            foreach (float v in values)
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes, v);
                data.Write(bytes);
            }
            header[name] = new { dtype = "F32", shape = tensor.shape, data_offsets = new[] { begin, data.Length } };
        }
        byte[] json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        using var file = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)json.Length);
        file.Write(length);
        file.Write(json);
        data.Position = 0;
        data.CopyTo(file);
    }
}
