using Microsoft.ML;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Peft;

/// <summary>Pooler pooling is Hugging Face's BertForSequenceClassification head, and needs a checkpoint with a pooler.</summary>
public class PoolerHeadTests
{
    [Fact]
    public void PoolerPoolingIsTheClassifierOverTanhOfThePoolersDenseOnCls()
    {
        using var encoder = TinyEncoders.Create();
        using var model = new TextClassificationModel(encoder.Model.Clone(), 3, PoolingStrategy.Pooler);
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var batch = TokenBatch.Collate(PeftImportTests.Texts.Select(t => encoder.Tokenizer.Encode(t, null, 32)).ToArray(), encoder.Tokenizer.PadTokenId);

        // BertForSequenceClassification: classifier(dropout(tanh(pooler.dense(h[CLS])))), dropout off in eval.
        var weights = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var cls = model.Encoder.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds).LastHiddenState[.., 0];
        var pooled = cls.matmul(weights["bert.pooler.dense.weight"].T).add(weights["bert.pooler.dense.bias"]).tanh();
        var expected = pooled.matmul(weights["classifier.weight"].T).add(weights["classifier.bias"]);
        model.forward(batch).MaxAbsDiff(expected).Should().BeLessThan(1e-6);
    }

    [Fact]
    public void AFitWithPoolerPoolingOverAnEncoderWithoutAPoolerIsRefused()
    {
        torch.random.manual_seed(7);
        var bare = new BertModel(TinyEncoders.Config() with { AddPoolingLayer = false });
        using var encoder = new PretrainedEncoder(bare, TinyEncoders.Tokenizer(),
            new EncoderIdentity("tiny-no-pooler", PretrainedEncoder.ComputeWeightsSha256(bare), EncoderSource.Default));
        var ml = new MLContext(1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(20, 1)))
            .Transform(ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(20, 1)));
        var fit = () => ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
        {
            Encoder = encoder, Pooling = PoolingStrategy.Pooler, MaxEpochs = 1, MaxSequenceLength = 16,
        }).Fit(data);
        fit.Should().Throw<ArgumentException>().WithMessage("*has no pooler*pooler.dense*PoolingStrategy.Cls*");
    }
}
