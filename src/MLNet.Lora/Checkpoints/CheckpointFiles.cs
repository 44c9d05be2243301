using System.Buffers.Binary;
using System.Collections;
using System.Text.Json;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// Reads and writes weight files through TorchSharp.PyBridge: <c>.safetensors</c> (checked first, so that a truncated or
/// damaged file gives an error naming it instead of a stray exception from the reader) and PyTorch's pickled
/// <c>.bin</c> state dictionaries.
/// </summary>
internal static class CheckpointFiles
{
    // The safetensors header is a JSON index; real ones are a few kilobytes. Larger lengths mean a damaged file.
    private const long MaxHeaderBytes = 100L << 20;

    private static readonly Dictionary<string, int> ElementSizes = new(StringComparer.Ordinal)
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    /// <summary>Loads every tensor of a safetensors file; the tensors belong to the current dispose scope.</summary>
    /// <exception cref="InvalidDataException">The file is not a readable safetensors file.</exception>
    public static Dictionary<string, Tensor> ReadSafetensors(string path)
    {
        using var stream = OpenRead(path);
        CheckSafetensorsLayout(stream, path);
        stream.Position = 0;
        try
        {
            return Safetensors.LoadStateDict(stream, leaveOpen: true);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{path}' is not a readable safetensors file: {e.Message}", e);
        }
    }

    /// <summary>Loads a PyTorch <c>torch.save</c> state dictionary (zip format); the tensors belong to the current dispose scope.</summary>
    /// <exception cref="InvalidDataException">The file is not a readable PyTorch state dictionary.</exception>
    public static Dictionary<string, Tensor> ReadPickle(string path)
    {
        using var stream = OpenRead(path);
        Hashtable table;
        try
        {
            table = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException(
                $"'{path}' is not a readable PyTorch state dictionary (only the zip format of torch.save is supported): {e.Message}", e);
        }
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in table)
        {
            if (entry.Key is string key && entry.Value is Tensor tensor) tensors[key] = tensor;
        }
        return tensors;
    }

    /// <summary>Writes a module's state dictionary as safetensors, flushed to disk.</summary>
    public static void WriteSafetensors(nn.Module module, string path)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        module.save_safetensors(stream, leaveOpen: true);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Writes a text file, flushed to disk.</summary>
    public static void WriteText(string path, string text)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        using (var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), leaveOpen: true))
            writer.Write(text);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Opens a file for reading, with an error naming it when it is absent.</summary>
    public static FileStream OpenRead(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' does not exist.", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
    }

    /// <summary>
    /// Checks the layout the safetensors format promises: an 8-byte little-endian header length, a JSON index whose
    /// entries have a known dtype, a shape and data offsets that fit the shape and lie inside the file.
    /// </summary>
    private static void CheckSafetensorsLayout(Stream stream, string path)
    {
        long length = stream.Length;
        Span<byte> prefix = stackalloc byte[8];
        if (length < 8 || stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) < 8)
            throw Corrupt(path, "it is shorter than the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength < 2 || headerLength > (ulong)Math.Min(MaxHeaderBytes, length - 8))
            throw Corrupt(path, $"its header length ({headerLength} bytes) does not fit the file ({length} bytes)");

        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataBytes = length - 8 - (long)headerLength;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw Corrupt(path, $"its header is not valid JSON ({e.Message})");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw Corrupt(path, "its header is not a JSON object");
            foreach (var entry in document.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__") continue;
                try
                {
                    string dtype = entry.Value.GetProperty("dtype").GetString() ?? "";
                    if (!ElementSizes.TryGetValue(dtype, out int elementSize))
                        throw Corrupt(path, $"tensor '{entry.Name}' has unsupported dtype '{dtype}'");
                    long elements = 1;
                    foreach (var dim in entry.Value.GetProperty("shape").EnumerateArray()) elements = checked(elements * dim.GetInt64());
                    var offsets = entry.Value.GetProperty("data_offsets");
                    long begin = offsets[0].GetInt64(), end = offsets[1].GetInt64();
                    if (begin < 0 || end < begin || end - begin != checked(elements * elementSize))
                        throw Corrupt(path, $"tensor '{entry.Name}' has data offsets [{begin}, {end}] that do not fit its shape");
                    if (end > dataBytes)
                        throw Corrupt(path, $"tensor '{entry.Name}' ends at byte {end} of the data but the file holds {dataBytes} (truncated?)");
                }
                catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException
                                              or IndexOutOfRangeException or OverflowException)
                {
                    throw Corrupt(path, $"the header entry for '{entry.Name}' is malformed ({e.Message})");
                }
            }
        }
    }

    private static InvalidDataException Corrupt(string path, string why) =>
        new($"'{path}' is not a readable safetensors file: {why}.");
}
