using MLNet.Lora.Checkpoints;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Checkpoints;

public class HuggingFaceFolderTests
{
    [Fact]
    public void SaveThenLoad_GivesBitIdenticalWeightsAndOutputs()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create();
        string path = folder.Combine("tiny-bert");
        original.SaveHuggingFaceFolder(path);

        Directory.GetFiles(path).Select(Path.GetFileName).Should().BeEquivalentTo(
            ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"]);
        Directory.GetDirectories(folder.Path).Should().ContainSingle("the temporary folder is renamed into place");

        using var loaded = PretrainedEncoder.FromHuggingFaceFolder(path);
        TinyCheckpoints.ShouldHaveIdenticalWeights(loaded.Model, original.Model);
        TinyCheckpoints.Run(loaded).Should().Equal(TinyCheckpoints.Run(original));
        loaded.Config.Should().Be(original.Config);
        loaded.Vocabulary.Should().Equal(TinyCheckpoints.Vocabulary);
        loaded.Tokenizer.LowerCase.Should().BeTrue();
        loaded.Identity.Name.Should().Be("tiny-bert");
        loaded.Identity.Sha256.Should().Be(original.Identity.Sha256);
        loaded.Identity.Source.Should().Be(EncoderSource.HuggingFaceFolder(Path.GetFullPath(path)));
        loaded.Model.training.Should().BeFalse("pretrained encoders load in evaluation mode");
    }

    [Fact]
    public void Loading_InsideACallersDisposeScope_KeepsEveryWeight()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create();
        original.SaveHuggingFaceFolder(folder.Combine("m"));
        PretrainedEncoder loaded;
        using (NewDisposeScope())
        {
            loaded = PretrainedEncoder.FromHuggingFaceFolder(folder.Combine("m"));
        }
        using (loaded)
        {
            TinyCheckpoints.ShouldHaveIdenticalWeights(loaded.Model, original.Model);
        }
    }

    [Fact]
    public void IdentityHash_IsStableAcrossLoads_AndChangesWithTheWeights()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create(seed: 7);
        original.SaveHuggingFaceFolder(folder.Combine("a"));
        using var other = TinyCheckpoints.Create(seed: 8);
        other.SaveHuggingFaceFolder(folder.Combine("b"));

        using var first = PretrainedEncoder.FromHuggingFaceFolder(folder.Combine("a"));
        using var second = PretrainedEncoder.FromHuggingFaceFolder(folder.Combine("a"));
        using var different = PretrainedEncoder.FromHuggingFaceFolder(folder.Combine("b"));
        first.Identity.Sha256.Should().MatchRegex("^[0-9a-f]{64}$");
        second.Identity.Sha256.Should().Be(first.Identity.Sha256);
        PretrainedEncoder.ComputeWeightsSha256(first.Model).Should().Be(first.Identity.Sha256);
        different.Identity.Sha256.Should().NotBe(first.Identity.Sha256);
    }

    [Fact]
    public void PytorchBin_WithBertPrefix_ExtraTensors_NoPooler_AndCasedTokenizer_Loads()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create(pooler: false);
        string path = folder.Combine("cased");
        original.SaveHuggingFaceFolder(path);
        File.Delete(Path.Combine(path, "model.safetensors"));
        File.WriteAllText(Path.Combine(path, "tokenizer_config.json"), """{ "do_lower_case": false }""");
        File.WriteAllText(Path.Combine(path, "config.json"),
            File.ReadAllText(Path.Combine(path, "config.json")).Replace("\"_name_or_path\": \"tiny-bert\"", "\"_name_or_path\": \"someone/cased-tiny\""));
        using (var scope = NewDisposeScope())
        {
            // A BertForMaskedLM-style state dictionary: "bert." prefixes, a head the encoder does not use.
            var state = original.Model.state_dict().ToDictionary(p => "bert." + p.Key, p => p.Value);
            state["cls.predictions.bias"] = zeros(TinyCheckpoints.Config.VocabSize);
            state["bert.embeddings.position_ids"] = arange(64, dtype: int64).unsqueeze(0);
            PyTorchPickler.PickleStateDict(Path.Combine(path, "pytorch_model.bin"), state);
        }

        using var loaded = PretrainedEncoder.FromHuggingFaceFolder(path);
        loaded.Config.AddPoolingLayer.Should().BeFalse("the checkpoint has no pooler weights");
        TinyCheckpoints.ShouldHaveIdenticalWeights(loaded.Model, original.Model);
        loaded.Tokenizer.LowerCase.Should().BeFalse();
        loaded.Identity.Name.Should().Be("someone/cased-tiny");
    }

    [Fact]
    public void MissingTensor_IsNamedWithTheFile()
    {
        using var folder = new TemporaryFolder();
        string path = SaveWithState(folder, state => state.Remove("encoder.layer.1.attention.self.key.weight"));
        string file = Path.Combine(path, "model.safetensors");

        var act = () => PretrainedEncoder.FromHuggingFaceFolder(path);
        act.Should().Throw<InvalidDataException>()
            .WithMessage($"encoder.layer.1.attention.self.key.weight is missing from '{file}'*");
    }

    [Fact]
    public void WrongShape_IsNamedWithBothShapes()
    {
        using var folder = new TemporaryFolder();
        string path = SaveWithState(folder, state => state["encoder.layer.0.attention.self.query.weight"] = zeros(32, 10));
        string file = Path.Combine(path, "model.safetensors");

        var act = () => PretrainedEncoder.FromHuggingFaceFolder(path);
        act.Should().Throw<InvalidDataException>()
            .WithMessage($"encoder.layer.0.attention.self.query.weight has shape [32, 10] in '{file}' but the model expects [32, 32]*");
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("garbage")]
    public void CorruptSafetensors_GivesInvalidDataNamingTheFile(string damage)
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create();
        string path = folder.Combine("damaged");
        original.SaveHuggingFaceFolder(path);
        string file = Path.Combine(path, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, damage == "truncated" ? bytes[..(bytes.Length / 2)] : [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 31))]);

        var act = () => PretrainedEncoder.FromHuggingFaceFolder(path);
        act.Should().Throw<InvalidDataException>().WithMessage($"'{file}' is not a readable safetensors file*");
    }

    [Fact]
    public void CorruptPytorchBin_OrConfig_GivesInvalidDataNamingTheFile()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create();
        string path = folder.Combine("damaged");
        original.SaveHuggingFaceFolder(path);
        File.Delete(Path.Combine(path, "model.safetensors"));
        string bin = Path.Combine(path, "pytorch_model.bin");
        File.WriteAllBytes(bin, [.. Enumerable.Range(0, 1000).Select(i => (byte)i)]);
        FluentActions.Invoking(() => PretrainedEncoder.FromHuggingFaceFolder(path))
            .Should().Throw<InvalidDataException>().WithMessage($"'{bin}' is not a readable PyTorch state dictionary*");

        string config = Path.Combine(path, "config.json");
        File.WriteAllText(config, "{ \"hidden_size\": 30, \"num_attention_heads\": 4 }");
        FluentActions.Invoking(() => PretrainedEncoder.FromHuggingFaceFolder(path))
            .Should().Throw<InvalidDataException>().WithMessage($"'{config}'*HiddenSize (30) must be a multiple of NumAttentionHeads (4)*");
        File.WriteAllText(config, "{ not json");
        FluentActions.Invoking(() => PretrainedEncoder.FromHuggingFaceFolder(path))
            .Should().Throw<InvalidDataException>().WithMessage($"'{config}' is not a valid BERT config.json*");
    }

    [Fact]
    public void MissingFiles_AreNamed()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create();
        string path = folder.Combine("incomplete");
        original.SaveHuggingFaceFolder(path);
        File.Delete(Path.Combine(path, "model.safetensors"));
        FluentActions.Invoking(() => PretrainedEncoder.FromHuggingFaceFolder(path))
            .Should().Throw<FileNotFoundException>().WithMessage("*neither model.safetensors nor pytorch_model.bin*");
        FluentActions.Invoking(() => PretrainedEncoder.FromHuggingFaceFolder(folder.Combine("absent")))
            .Should().Throw<DirectoryNotFoundException>().WithMessage("*absent*");
    }

    [Fact]
    public void Save_RefusesANonEmptyFolder_UnlessOverwriting()
    {
        using var folder = new TemporaryFolder();
        using var first = TinyCheckpoints.Create(seed: 1);
        using var second = TinyCheckpoints.Create(seed: 2);
        string path = folder.Combine("model");
        first.SaveHuggingFaceFolder(path);

        FluentActions.Invoking(() => second.SaveHuggingFaceFolder(path))
            .Should().Throw<IOException>().WithMessage($"*'{Path.GetFullPath(path)}' already exists*overwrite*");
        second.SaveHuggingFaceFolder(path, overwrite: true);

        using var loaded = PretrainedEncoder.FromHuggingFaceFolder(path);
        loaded.Identity.Sha256.Should().Be(second.Identity.Sha256);
        Directory.GetFileSystemEntries(folder.Path).Should().ContainSingle("temporary and replaced folders are removed");
    }

    [Fact]
    public void Save_WithoutVocabulary_Explains()
    {
        using var tiny = TinyCheckpoints.Create();
        var bare = new PretrainedEncoder(tiny.Model, tiny.Tokenizer, tiny.Identity);
        bare.Vocabulary.Should().BeNull();
        FluentActions.Invoking(() => bare.SaveHuggingFaceFolder(Path.Combine(Path.GetTempPath(), "never-written")))
            .Should().Throw<InvalidOperationException>().WithMessage("*without its vocabulary*");
    }

    [Fact]
    public void Load_DispatchesOnTheSourceKind()
    {
        using var folder = new TemporaryFolder();
        using var original = TinyCheckpoints.Create();
        original.SaveHuggingFaceFolder(folder.Combine("m"));
        using var loaded = PretrainedEncoder.Load(EncoderSource.HuggingFaceFolder(folder.Combine("m")));
        loaded.Identity.Sha256.Should().Be(original.Identity.Sha256);
    }

    /// <summary>Saves a tiny encoder, then rewrites its model.safetensors from an edited state dictionary.</summary>
    private static string SaveWithState(TemporaryFolder folder, Action<Dictionary<string, Tensor>> edit)
    {
        using var original = TinyCheckpoints.Create();
        string path = folder.Combine("edited");
        original.SaveHuggingFaceFolder(path);
        using var scope = NewDisposeScope();
        var state = original.Model.state_dict();
        edit(state);
        using var stream = File.Create(Path.Combine(path, "model.safetensors"));
        Safetensors.SaveStateDict(stream, state);
        return path;
    }
}
