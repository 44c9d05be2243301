namespace MLNet.Lora.Checkpoints;

public sealed partial class PretrainedEncoder
{
    /// <summary>
    /// Saves the encoder in the Hugging Face model folder layout that <see cref="FromHuggingFaceFolder"/> loads:
    /// <c>config.json</c>, <c>model.safetensors</c> (written by TorchSharp.PyBridge), <c>vocab.txt</c> and
    /// <c>tokenizer_config.json</c>. The folder is written beside its final place and renamed into it, so that it is
    /// either complete or absent.
    /// </summary>
    /// <param name="folder">The folder to create.</param>
    /// <param name="overwrite">Replace the folder when it exists and is not empty; otherwise that is an error.</param>
    /// <exception cref="InvalidOperationException">The encoder has no <see cref="Vocabulary"/> to write.</exception>
    /// <exception cref="IOException">The folder exists and is not empty (without <paramref name="overwrite"/>), or cannot be written.</exception>
    public void SaveHuggingFaceFolder(string folder, bool overwrite = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string[] tokens = vocabulary ?? throw new InvalidOperationException(
            "This encoder was built without its vocabulary, so vocab.txt cannot be written. Load it with a PretrainedEncoder " +
            "factory, or build it with the constructor that takes the vocabulary.");
        AtomicDirectory.Replace(folder, overwrite, temporary =>
            HuggingFaceFolder.Write(temporary, Model, tokens, Tokenizer.LowerCase, Identity.Name));
    }
}
