using System.Text.Json;
using System.Text.Json.Nodes;
using MLNet.Lora.Encoders;
using static TorchSharp.torch;
using MLNet.Lora.Tokenization;

namespace MLNet.Lora.Checkpoints;

/// <summary>What <see cref="HuggingFaceFolder.Read"/> loads: the model (owned by the caller), its vocabulary and casing.</summary>
internal sealed record HuggingFaceFolderContents(BertModel Model, string[] Vocabulary, bool LowerCase, string? NameOrPath);

/// <summary>
/// The Hugging Face model folder layout: <c>config.json</c>, <c>model.safetensors</c> (or <c>pytorch_model.bin</c>),
/// <c>vocab.txt</c> and optionally <c>tokenizer_config.json</c>. The checkpoint cache stores its entries in this
/// layout too.
/// </summary>
internal static class HuggingFaceFolder
{
    public const string ConfigFile = "config.json";
    public const string SafetensorsFile = "model.safetensors";
    public const string PickleFile = "pytorch_model.bin";
    public const string VocabularyFile = "vocab.txt";
    public const string TokenizerConfigFile = "tokenizer_config.json";

    /// <summary>Loads the encoder in <paramref name="folder"/>, in evaluation mode.</summary>
    public static HuggingFaceFolderContents Read(string folder)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Hugging Face model folder '{folder}' does not exist.");
        string configPath = Path.Combine(folder, ConfigFile);
        if (!File.Exists(configPath))
            throw new FileNotFoundException(
                $"'{folder}' has no {ConfigFile}; a Hugging Face model folder needs {ConfigFile}, {SafetensorsFile} or {PickleFile}, and {VocabularyFile}.",
                configPath);
        string configJson = File.ReadAllText(configPath);
        BertConfig config;
        try
        {
            config = BertConfig.FromJson(configJson, configPath);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"'{configPath}' describes an encoder this library cannot build: {e.Message}", e);
        }
        string? nameOrPath = ReadProperty(configJson, configPath, "_name_or_path") is JsonValue value && value.TryGetValue(out string? text) ? text : null;

        string weightsPath = FindWeights(folder);
        string vocabularyPath = Path.Combine(folder, VocabularyFile);
        string[] vocabulary = WordPieceVocabulary.ReadFile(vocabularyPath);
        WordPieceVocabulary.CheckFits(vocabulary, config.VocabSize, vocabularyPath, configPath);
        bool lowerCase = ReadLowerCase(folder);

        BertModel? model = null;
        try
        {
            using var scope = NewDisposeScope();
            Dictionary<string, Tensor> tensors = weightsPath.EndsWith(".safetensors", StringComparison.Ordinal)
                ? CheckpointFiles.ReadSafetensors(weightsPath)
                : CheckpointFiles.ReadPickle(weightsPath);
            // config.json does not say whether the pooler exists (task checkpoints such as BertForMaskedLM drop it): the weights do.
            bool hasPooler = CheckpointKeyMap.FindKey(tensors.Keys, "pooler.dense.weight") is not null;
            model = new BertModel(config with { AddPoolingLayer = hasPooler });
            CheckpointKeyMap.For(model).CopyInto(model, tensors, weightsPath);
            model.eval();
            return new HuggingFaceFolderContents(model, vocabulary, lowerCase, nameOrPath);
        }
        catch
        {
            model?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes <paramref name="model"/> into the existing, empty <paramref name="folder"/>: config.json (with
    /// <c>model_type</c>, <c>architectures</c> and <c>_name_or_path</c>, as Hugging Face writes it), model.safetensors, vocab.txt and
    /// tokenizer_config.json.
    /// </summary>
    public static void Write(string folder, BertModel model, IReadOnlyList<string> vocabulary, bool lowerCase, string name)
    {
        var config = JsonNode.Parse(model.Config.ToJson())!.AsObject();
        config["_name_or_path"] = name;
        config["model_type"] = "bert";
        config["architectures"] = new JsonArray("BertModel");
        var indented = new JsonSerializerOptions { WriteIndented = true };
        CheckpointFiles.WriteText(Path.Combine(folder, ConfigFile), config.ToJsonString(indented));
        CheckpointFiles.WriteSafetensors(model, Path.Combine(folder, SafetensorsFile));
        CheckpointFiles.WriteText(Path.Combine(folder, VocabularyFile), WordPieceVocabulary.ToText(vocabulary));
        var tokenizerConfig = new JsonObject { ["do_lower_case"] = lowerCase, ["tokenizer_class"] = "BertTokenizer" };
        CheckpointFiles.WriteText(Path.Combine(folder, TokenizerConfigFile), tokenizerConfig.ToJsonString(indented));
    }

    /// <summary>tokenizer_config.json's <c>do_lower_case</c> in <paramref name="folder"/>; true (uncased) when absent.</summary>
    public static bool ReadLowerCase(string folder)
    {
        string path = Path.Combine(folder, TokenizerConfigFile);
        if (!File.Exists(path)) return true;
        var value = ReadProperty(File.ReadAllText(path), path, "do_lower_case");
        try
        {
            return value?.GetValue<bool>() ?? true;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"'{path}': do_lower_case must be true or false.", e);
        }
    }

    private static string FindWeights(string folder)
    {
        string safetensors = Path.Combine(folder, SafetensorsFile);
        if (File.Exists(safetensors)) return safetensors;
        string pickle = Path.Combine(folder, PickleFile);
        if (File.Exists(pickle)) return pickle;
        string sharded = File.Exists(Path.Combine(folder, SafetensorsFile + ".index.json")) || File.Exists(Path.Combine(folder, PickleFile + ".index.json"))
            ? " Sharded checkpoints (*.index.json) are not supported; BERT-family encoders fit in one file."
            : "";
        throw new FileNotFoundException($"'{folder}' has neither {SafetensorsFile} nor {PickleFile}.{sharded}", safetensors);
    }

    private static JsonNode? ReadProperty(string json, string path, string name)
    {
        try
        {
            return JsonNode.Parse(json) is JsonObject root ? root[name] : throw new InvalidDataException($"'{path}' is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }
    }
}
