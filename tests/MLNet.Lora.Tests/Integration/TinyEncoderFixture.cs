using MLNet.Lora.Checkpoints;

namespace MLNet.Lora.Tests.Integration;

/// <summary>A tiny random encoder saved as a Hugging Face folder (so saved adapters can find their base again), shared by a test class.</summary>
public sealed class TinyEncoderFixture : IDisposable
{
    public TinyEncoderFixture()
    {
        Root = Directory.CreateTempSubdirectory("mlnet-lora-tests-").FullName;
        Encoder = TinyEncoders.CreateInFolder(Root);
    }

    public string Root { get; }

    public PretrainedEncoder Encoder { get; }

    public void Dispose()
    {
        Encoder.Dispose();
        Directory.Delete(Root, recursive: true);
    }
}
