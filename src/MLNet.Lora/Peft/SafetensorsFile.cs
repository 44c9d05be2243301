using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace MLNet.Lora.Peft;

/// <summary>
/// Writes safetensors files with a <c>__metadata__</c> entry (PEFT writes <c>{"format": "pt"}</c>, which
/// <c>safetensors.torch.load_file</c> and the Hugging Face loaders check), and reads a file's header back.
/// Tensors are read with <see cref="Checkpoints.CheckpointFiles.ReadSafetensors"/>.
/// </summary>
/// <remarks>
/// Layout: an 8-byte little-endian header length, the JSON header (name → dtype, shape, data offsets), padded with
/// spaces to a multiple of 8 bytes as the reference writer does, then the tensors' bytes in header order.
/// </remarks>
internal static class SafetensorsFile
{
    private static readonly Dictionary<ScalarType, (string Name, int Size)> DTypes = new()
    {
        [ScalarType.Float32] = ("F32", 4), [ScalarType.Float64] = ("F64", 8), [ScalarType.Float16] = ("F16", 2),
        [ScalarType.BFloat16] = ("BF16", 2), [ScalarType.Int64] = ("I64", 8), [ScalarType.Int32] = ("I32", 4),
    };

    /// <summary>Writes <paramref name="tensors"/> (in key order) and <paramref name="metadata"/> to <paramref name="path"/>, flushed to disk.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject(metadata.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)JsonValue.Create(m.Value)))) };
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var (name, tensor) in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            if (!DTypes.TryGetValue(tensor.dtype, out var dtype))
                throw new ArgumentException($"Tensor '{name}' has element type {tensor.dtype}, which this writer does not store.", nameof(tensors));
            using var cpu = tensor.detach().cpu().contiguous();
            byte[] bytes = cpu.bytes.ToArray();
            header[name] = new JsonObject
            {
                ["dtype"] = dtype.Name,
                ["shape"] = new JsonArray(tensor.shape.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                ["data_offsets"] = new JsonArray(JsonValue.Create(offset), JsonValue.Create(offset + bytes.Length)),
            };
            offset += bytes.Length;
            blobs.Add(bytes);
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var blob in blobs) stream.Write(blob);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>The header of a safetensors file: each tensor's dtype and shape, and the metadata.</summary>
    public static (IReadOnlyDictionary<string, (string DType, long[] Shape)> Tensors, IReadOnlyDictionary<string, string> Metadata) ReadHeader(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        var header = new byte[checked((int)BinaryPrimitives.ReadUInt64LittleEndian(prefix))];
        stream.ReadExactly(header);
        using var document = JsonDocument.Parse(header);
        var tensors = new Dictionary<string, (string, long[])>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in document.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__")
            {
                foreach (var m in entry.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                continue;
            }
            tensors[entry.Name] = (entry.Value.GetProperty("dtype").GetString()!, entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray());
        }
        return (tensors, metadata);
    }
}
