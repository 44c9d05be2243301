using Microsoft.ML;
using MLNet.Lora.Integration;
using MLNet.Lora.MultiAdapter;
using MLNet.Lora.Tests.Checkpoints;
using MLNet.Lora.Tests.Peft;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.MultiAdapter;

/// <summary>The one reader of adapter files finds the same factors in a zip and in its PEFT export, and reads a headless PEFT folder's factors.</summary>
public class AdapterWeightsTests(AdapterFilesFixture files) : IClassFixture<AdapterFilesFixture>, IDisposable
{
    private readonly MLContext ml = new(seed: 1);
    private readonly TemporaryFolder folder = new();

    public void Dispose() => folder.Dispose();

    [Fact]
    public void AZipAndItsPeftExportHoldTheSameFactors()
    {
        string exported = folder.Combine("sentiment-peft");
        var loaded = ml.Model.LoadWithAdapters(files.SentimentZip, out _, files.Encoder);
        try
        {
            AdapterModelArchive.Flatten(loaded).OfType<LoraTextClassificationTransformer>().Single().SavePeftAdapter(exported);
        }
        finally
        {
            foreach (var part in AdapterModelArchive.Flatten(loaded).OfType<IDisposable>()) part.Dispose();
        }

        using var weights = AdapterWeights.Read(ml, files.SentimentZip, files.Encoder);
        var fromZip = AdapterWeights.ReadFactors(ml, files.SentimentZip, files.Encoder);
        var fromFolder = AdapterWeights.ReadFactors(ml, exported, files.Encoder);
        try
        {
            fromZip.Keys.Should().BeEquivalentTo(weights.Factors.Keys).And.BeEquivalentTo(fromFolder.Keys);
            fromZip.Keys.Should().Contain("encoder.layer.0.attention.self.query.lora_A.weight").And.HaveCount(2 * 2 * files.Encoder.Config.NumHiddenLayers);
            foreach (var (key, factor) in fromZip)
            {
                factor.Identical(weights.Factors[key]).Should().BeTrue(key);
                factor.Identical(fromFolder[key]).Should().BeTrue(key);
            }
        }
        finally
        {
            foreach (var t in fromZip.Values.Concat(fromFolder.Values)) t.Dispose();
        }
    }

    [Fact]
    public void APeftFolderWithoutAHeadHasFactorsButIsNoClassifier()
    {
        string directory = folder.Combine("headless");
        var writer = new PeftFolderWriter();
        writer.Write(directory, files.Encoder.Model, edit: t => { t.Remove("base_model.model.classifier.weight"); t.Remove("base_model.model.classifier.bias"); });

        var read = () => AdapterWeights.Read(ml, directory, files.Encoder);
        read.Should().Throw<InvalidDataException>().WithMessage("*no classification head*");

        var factors = AdapterWeights.ReadFactors(ml, directory, files.Encoder);
        try
        {
            factors.Should().HaveCount(2 * writer.Modules.Count);
            foreach (var (path, a, b, _) in writer.Modules)
            {
                factors[$"{path}.lora_A.weight"].Identical(a).Should().BeTrue(path);
                factors[$"{path}.lora_B.weight"].Identical(b).Should().BeTrue(path);
            }
        }
        finally
        {
            foreach (var t in factors.Values) t.Dispose();
        }
    }
}
