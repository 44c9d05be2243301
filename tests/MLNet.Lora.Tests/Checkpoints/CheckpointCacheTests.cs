using System.Security.Cryptography;
using MLNet.Lora.Checkpoints;

namespace MLNet.Lora.Tests.Checkpoints;

/// <summary>Tests that set process-wide environment variables run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EnvironmentCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Environment variables";
}

public class CheckpointCacheTests
{
    /// <summary>A tiny encoder exported to ONNX, with its vocabulary, in a temporary folder.</summary>
    private sealed class TinyOnnxFiles : IDisposable
    {
        public TinyOnnxFiles()
        {
            Model = Folder.Combine("tiny.onnx");
            SyntheticOnnx.Write(Original.Model, Model);
            Vocabulary = OnnxImportTests.WriteVocabulary(Folder);
        }

        public TemporaryFolder Folder { get; } = new();

        public PretrainedEncoder Original { get; } = TinyCheckpoints.Create();

        public string Model { get; }

        public string Vocabulary { get; }

        public void Dispose()
        {
            Original.Dispose();
            Folder.Dispose();
        }
    }

    [Fact]
    public void FromOnnx_ConvertsOnce_ThenReadsTheCache()
    {
        using var files = new TinyOnnxFiles();
        var (folder, original, model, vocabulary) = (files.Folder, files.Original, files.Model, files.Vocabulary);
        var cache = new CheckpointCache(folder.Combine("cache"));

        using var first = PretrainedEncoder.FromOnnx(model, vocabulary, cache: cache);
        (cache.Conversions, cache.Hits).Should().Be((1, 0));
        using var second = PretrainedEncoder.FromOnnx(model, vocabulary, cache: cache);
        (cache.Conversions, cache.Hits).Should().Be((1, 1), "the second load reads the converted entry");

        TinyCheckpoints.ShouldHaveIdenticalWeights(second.Model, original.Model);
        TinyCheckpoints.Run(second).Should().Equal(TinyCheckpoints.Run(original));
        second.Identity.Should().Be(first.Identity);
        second.Identity.Sha256.Should().Be(original.Identity.Sha256);
        second.Identity.Name.Should().Be("tiny");
        second.Identity.Source.Should().Be(EncoderSource.Onnx(model, vocabulary));
        second.Vocabulary.Should().Equal(TinyCheckpoints.Vocabulary);

        string entry = Directory.GetDirectories(cache.Root).Should().ContainSingle().Subject;
        string sourceSha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(model)));
        Path.GetFileName(entry).Should().StartWith(sourceSha + "-", "entries are keyed by the SHA-256 of the source bytes");
        Directory.GetFiles(entry).Select(Path.GetFileName).Should().BeEquivalentTo(
            ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "identity.json"]);
    }

    [Fact]
    public void OtherConversionInputs_GetTheirOwnEntry()
    {
        using var files = new TinyOnnxFiles();
        var (folder, original, model, vocabulary) = (files.Folder, files.Original, files.Model, files.Vocabulary);
        var cache = new CheckpointCache(folder.Combine("cache"));

        using var uncased = PretrainedEncoder.FromOnnx(model, vocabulary, cache: cache);
        using var cased = PretrainedEncoder.FromOnnx(model, vocabulary, lowerCase: false, cache: cache);
        cache.Conversions.Should().Be(2);
        cased.Tokenizer.LowerCase.Should().BeFalse();
        uncased.Tokenizer.LowerCase.Should().BeTrue();
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("vocab.txt")]
    [InlineData("identity.json")]
    public void DamagedEntry_GivesAnErrorNamingItsFolder(string damaged)
    {
        using var files = new TinyOnnxFiles();
        var (folder, original, model, vocabulary) = (files.Folder, files.Original, files.Model, files.Vocabulary);
        var cache = new CheckpointCache(folder.Combine("cache"));
        PretrainedEncoder.FromOnnx(model, vocabulary, cache: cache).Dispose();
        string entry = Directory.GetDirectories(cache.Root).Single();

        string file = Path.Combine(entry, damaged);
        if (damaged == "model.safetensors") File.WriteAllBytes(file, File.ReadAllBytes(file)[..100]);
        else File.Delete(file);

        FluentActions.Invoking(() => PretrainedEncoder.FromOnnx(model, vocabulary, cache: cache))
            .Should().Throw<InvalidDataException>()
            .WithMessage($"The cached encoder in '{entry}' cannot be read:*{damaged}*Delete that folder*");
        cache.Conversions.Should().Be(1, "a damaged entry is reported, not silently rebuilt");

        Directory.Delete(entry, recursive: true);
        using var rebuilt = PretrainedEncoder.FromOnnx(model, vocabulary, cache: cache);
        cache.Conversions.Should().Be(2);
        rebuilt.Identity.Sha256.Should().Be(original.Identity.Sha256);
    }

    [Fact]
    public void UnwritableRoot_GivesAnErrorNamingIt()
    {
        using var files = new TinyOnnxFiles();
        var (folder, original, model, vocabulary) = (files.Folder, files.Original, files.Model, files.Vocabulary);
        // A file where the root folder should be: no folder can be made there, even by root.
        string root = folder.Combine("not-a-folder");
        File.WriteAllText(root, "");

        FluentActions.Invoking(() => PretrainedEncoder.FromOnnx(model, vocabulary, cache: new CheckpointCache(root)))
            .Should().Throw<IOException>().WithMessage($"The encoder cache folder '{root}' cannot be created*MLNET_LORA_CACHE*");
    }

    [Fact]
    public void Load_OfAnOnnxSource_UsesTheCache()
    {
        using var files = new TinyOnnxFiles();
        var (folder, original, model, vocabulary) = (files.Folder, files.Original, files.Model, files.Vocabulary);
        var cache = new CheckpointCache(folder.Combine("cache"));

        using var first = PretrainedEncoder.FromOnnx(model, vocabulary, cache: cache);
        using var again = PretrainedEncoder.Load(first.Identity.Source, cache);
        cache.Hits.Should().Be(1);
        again.Identity.Should().Be(first.Identity);
    }
}

[Collection(EnvironmentCollection.Name)]
public class CacheRootTests
{
    [Fact]
    public void Root_ComesFromTheArgument_ThenTheEnvironment_ThenTheUserFolder()
    {
        using var folder = new TemporaryFolder();
        new CheckpointCache(folder.Path).Root.Should().Be(folder.Path);
        string? previous = Environment.GetEnvironmentVariable(CheckpointCache.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(CheckpointCache.EnvironmentVariable, folder.Combine("from-env"));
            new CheckpointCache().Root.Should().Be(folder.Combine("from-env"));
            Environment.SetEnvironmentVariable(CheckpointCache.EnvironmentVariable, null);
            new CheckpointCache().Root.Should().EndWith(Path.Combine("MLNet.Lora", "encoders"));
        }
        finally
        {
            Environment.SetEnvironmentVariable(CheckpointCache.EnvironmentVariable, previous);
        }
    }
}
