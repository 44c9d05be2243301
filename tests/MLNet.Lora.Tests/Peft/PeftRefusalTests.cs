using Microsoft.ML;
using MLNet.Lora.Tests.Checkpoints;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Peft;

/// <summary>What an import cannot honour is refused, and the error names the key or field.</summary>
public class PeftRefusalTests : IDisposable
{
    private readonly TemporaryFolder folder = new();

    public void Dispose() => folder.Dispose();

    private Action Loading(PeftFolderWriter writer, Action<Dictionary<string, Tensor>>? edit = null)
    {
        var encoder = TinyEncoders.Create();
        string directory = folder.Combine(Guid.NewGuid().ToString("N"));
        writer.Write(directory, encoder.Model, edit: edit);
        return () =>
        {
            try
            {
                LoraTextClassificationTransformer.LoadPeftAdapter(new MLContext(1), directory, encoder).Dispose();
            }
            finally
            {
                encoder.Dispose();
            }
        };
    }

    private const string QueryA = "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight";

    [Fact]
    public void DoraIsRefusedByItsConfigFieldAndByItsKey()
    {
        Loading(new PeftFolderWriter { ConfigOverrides = { ["use_dora"] = "true" } })
            .Should().Throw<NotSupportedException>().WithMessage("*use_dora*DoRA*");
        Loading(new PeftFolderWriter(), t => t["base_model.model.bert.encoder.layer.0.attention.self.query.lora_magnitude_vector"] = ones(32))
            .Should().Throw<NotSupportedException>().WithMessage("*'base_model.model.bert.encoder.layer.0.attention.self.query.lora_magnitude_vector'*DoRA*");
    }

    [Fact]
    public void LoraBiasIsRefusedByItsConfigFieldAndByItsKey()
    {
        Loading(new PeftFolderWriter { ConfigOverrides = { ["lora_bias"] = "true" } })
            .Should().Throw<NotSupportedException>().WithMessage("*lora_bias*");
        Loading(new PeftFolderWriter(), t => t["base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.bias"] = zeros(32))
            .Should().Throw<NotSupportedException>().WithMessage("*'base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.bias'*LoRA bias*");
    }

    [Fact]
    public void ATargetModuleTheEncoderDoesNotHaveIsNamed()
    {
        Loading(new PeftFolderWriter { ConfigOverrides = { ["target_modules"] = "[\"query\", \"q_proj\"]" } })
            .Should().Throw<NotSupportedException>().WithMessage("*target_modules*\"q_proj\"*does not have*");
        Loading(new PeftFolderWriter(), t => t["base_model.model.bert.encoder.layer.7.attention.self.query.lora_A.weight"] = zeros(4, 32))
            .Should().Throw<NotSupportedException>().WithMessage("*'base_model.model.bert.encoder.layer.7.attention.self.query.lora_A.weight'*block 7*2 blocks*");
        Loading(new PeftFolderWriter(), t => t["base_model.model.bert.pooler.dense.lora_A.weight"] = zeros(4, 32))
            .Should().Throw<NotSupportedException>().WithMessage("*'base_model.model.bert.pooler.dense.lora_A.weight'*not one of the encoder's adaptable layers*");
        Loading(new PeftFolderWriter(), t => t["base_model.model.bert.embeddings.word_embeddings.lora_embedding_A"] = zeros(4, 49))
            .Should().Throw<NotSupportedException>().WithMessage("*'base_model.model.bert.embeddings.word_embeddings.lora_embedding_A'*embedding*");
    }

    [Fact]
    public void AShapeThatDoesNotFitTheBaseIsNamed()
    {
        Loading(new PeftFolderWriter(), t => t[QueryA] = zeros(4, 31))
            .Should().Throw<NotSupportedException>().WithMessage($"*'{QueryA}' has shape [4, 31]*needs [4, 32]*");
        Loading(new PeftFolderWriter(), t => t[QueryA] = zeros(3, 32))
            .Should().Throw<NotSupportedException>().WithMessage($"*'{QueryA}' has shape [3, 32]*rank 4*");
        Loading(new PeftFolderWriter(), t => t["base_model.model.classifier.weight"] = zeros(3, 16))
            .Should().Throw<NotSupportedException>().WithMessage("*'base_model.model.classifier.weight' has shape [3, 16]*hidden size 32*");
    }

    [Fact]
    public void MissingAndForeignKeysAreNamed()
    {
        Loading(new PeftFolderWriter(), t => t.Remove(QueryA))
            .Should().Throw<InvalidDataException>().WithMessage($"*'{QueryA}' is missing*");
        Loading(new PeftFolderWriter(), t => t["base_model.model.bert.pooler.dense.weight"] = zeros(32, 32))
            .Should().Throw<NotSupportedException>().WithMessage("*'base_model.model.bert.pooler.dense.weight'*modules_to_save*");
        Loading(new PeftFolderWriter(), t => t["bert.encoder.layer.0.attention.self.key.lora_A.weight"] = zeros(4, 32))
            .Should().Throw<NotSupportedException>().WithMessage("*'bert.encoder.layer.0.attention.self.key.lora_A.weight' is not a PEFT key*");
        Loading(new PeftFolderWriter(), t => t["base_model.model.bert.encoder.layer.0.attention.self.key.lora_A.weight"] = zeros(4, 32))
            .Should().Throw<NotSupportedException>().WithMessage("*'base_model.model.bert.encoder.layer.0.attention.self.key.lora_A.weight'*target_modules*does not select*");
    }

    [Fact]
    public void SettingsThatSelectSomeLayersOnlyAreRefusedByField()
    {
        Loading(new PeftFolderWriter { ConfigOverrides = { ["layers_to_transform"] = "[0]" } })
            .Should().Throw<NotSupportedException>().WithMessage("*layers_to_transform*");
        Loading(new PeftFolderWriter { ConfigOverrides = { ["target_modules"] = "[\"encoder.layer.0.attention.self.query\"]" } })
            .Should().Throw<NotSupportedException>().WithMessage("*target_modules*some blocks only*");
        Loading(new PeftFolderWriter { ConfigOverrides = { ["bias"] = "\"all\"" } })
            .Should().Throw<NotSupportedException>().WithMessage("*bias*\"all\"*");
        Loading(new PeftFolderWriter { ConfigOverrides = { ["fan_in_fan_out"] = "true" } })
            .Should().Throw<NotSupportedException>().WithMessage("*fan_in_fan_out*");
        Loading(new PeftFolderWriter { ConfigOverrides = { ["peft_type"] = "\"IA3\"" } })
            .Should().Throw<NotSupportedException>().WithMessage("*peft_type*IA3*");
        Loading(new PeftFolderWriter { ConfigOverrides = { ["modules_to_save"] = "[\"classifier\", \"pooler\"]" } })
            .Should().Throw<NotSupportedException>().WithMessage("*modules_to_save*\"pooler\"*");
    }

    [Fact]
    public void AFolderWithoutAHeadCannotBeLoadedAsAClassifier()
    {
        Loading(new PeftFolderWriter(), t => { t.Remove("base_model.model.classifier.weight"); t.Remove("base_model.model.classifier.bias"); })
            .Should().Throw<InvalidDataException>().WithMessage("*no classification head (base_model.model.classifier.weight)*InitialAdapter*");
    }
}
