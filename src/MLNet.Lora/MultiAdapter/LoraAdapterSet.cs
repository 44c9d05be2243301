using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.MultiAdapter;
using MLNet.Lora.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora;

/// <summary>
/// One frozen base encoder serving any number of named LoRA classifiers. Each adapter (its LoRA factors, its head and
/// its label values) is loaded from a <c>SaveWithAdapters</c> zip or a PEFT adapter folder, and can be added and removed
/// while the set serves. Score with <c>mlContext.Transforms.LoraMultiAdapterClassification(set)</c>, which picks the
/// adapter per row and scores a batch mixing adapters in one pass over the base.
/// </summary>
/// <remarks>
/// <para>
/// Memory: the base is held once (shared by SHA-256 with every other model over it in the process); each adapter adds
/// only its factors and head. <see cref="MemoryLimitBytes"/> bounds the adapters' memory: the least recently used ones
/// are evicted and reloaded from their files when a row needs them again (<see cref="Statistics"/> counts hits,
/// misses and evictions). Combined adapters have no file and are never evicted.
/// </para>
/// <para>
/// Thread safety: every member may be called from any thread. Scoring runs concurrently; adding, removing, evicting and
/// reloading wait for the batches in flight. Removing an adapter that open cursors use does not break them: they finish
/// with it, and its memory is freed when the last of them is disposed; cursors opened afterwards do not know it.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using var set = new LoraAdapterSet(ml);
/// set.Add("sentiment", "sentiment.zip");
/// set.Add("topic", "topic-peft/");
/// var scored = ml.Transforms.LoraMultiAdapterClassification(set).Transform(requests);   // columns Adapter, Text
/// </code>
/// </example>
public sealed partial class LoraAdapterSet : IDisposable
{
    private readonly MLContext ml;
    private readonly SharedBaseEncoder shared;
    private readonly PretrainedEncoder baseView;
    private readonly BertModel network;
    private readonly Device device;
    private readonly object sync = new();
    private readonly ReaderWriterLockSlim networkLock = new(LockRecursionPolicy.NoRecursion);
    private readonly Dictionary<string, AdapterEntry> adapters = new(StringComparer.Ordinal);
    private long? memoryLimit;
    private long loadedBytes, hits, misses, evictions, clock;
    private int nextKey;
    private bool disposed;

    /// <summary>A set over <paramref name="baseEncoder"/>, or the embedded default encoder when null.</summary>
    /// <param name="mlContext">The context the set's adapters are read and scored in.</param>
    /// <param name="baseEncoder">The base every adapter must have been trained on; its weights are shared, never changed,
    /// and the caller may dispose it once the set is built.</param>
    public LoraAdapterSet(MLContext mlContext, PretrainedEncoder? baseEncoder = null)
    {
        ml = mlContext ?? throw new ArgumentNullException(nameof(mlContext));
        var env = Integration.MLContextAccess.EnvironmentOf(mlContext);
        device = Integration.MLContextAccess.Device(env);
        if (baseEncoder is null)
        {
            using var loaded = PretrainedEncoder.LoadDefault();
            shared = SharedBaseEncoder.For(loaded, loadedToShare: true);
        }
        else shared = SharedBaseEncoder.For(baseEncoder);
        // The loaders get a view of the shared weights, so that the caller's encoder may go and no second copy is made.
        baseView = new PretrainedEncoder(shared.CreateEncoder(frozen: true), shared.Tokenizer, shared.Identity);
        network = shared.CreateEncoder(frozen: true);
        network.to(device);
        network.eval();
        foreach (var parameter in network.parameters()) parameter.requires_grad = false;
    }

    /// <summary>The base encoder's name, weight hash and source.</summary>
    public EncoderIdentity BaseEncoder => shared.Identity;

    /// <summary>The base's tokenizer.</summary>
    public BertTextTokenizer Tokenizer => shared.Tokenizer;

    /// <summary>Names of the adapters in the set, sorted.</summary>
    public IReadOnlyList<string> Names
    {
        get
        {
            lock (sync) return adapters.Keys.Order(StringComparer.Ordinal).ToList();
        }
    }

    /// <summary>Rows per forward pass (default 64).</summary>
    public int InferenceBatchSize
    {
        get;
        set => field = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(InferenceBatchSize), value, "The batch size must be positive.");
    } = 64;

    /// <summary>
    /// The most memory the adapters (factors and heads; the base is not counted) may take, in bytes, or null for no
    /// bound. Over it, the least recently used adapters are evicted; a batch's own adapters always stay while it runs
    /// (a batch needing more than fit exceeds the bound until it ends).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The bound is not positive, or smaller than an adapter in the set.</exception>
    public long? MemoryLimitBytes
    {
        get
        {
            lock (sync) return memoryLimit;
        }
        set
        {
            lock (sync)
            {
                if (value is { } limit)
                {
                    if (limit <= 0) throw new ArgumentOutOfRangeException(nameof(MemoryLimitBytes), limit, "The memory bound must be positive (or null for none).");
                    if (adapters.Values.MaxBy(a => a.Bytes) is { } largest && largest.Bytes > limit)
                        throw new ArgumentOutOfRangeException(nameof(MemoryLimitBytes), limit,
                            $"The memory bound ({limit} bytes) is smaller than adapter '{largest.Name}' ({largest.Bytes} bytes), which could then never be loaded.");
                }
                memoryLimit = value;
            }
            WithNetworkWriteLock(EvictOverLimit);
        }
    }

    /// <summary>Cache figures: hits, misses, evictions, and what is loaded now.</summary>
    public AdapterCacheStatistics Statistics
    {
        get
        {
            lock (sync) return new AdapterCacheStatistics(hits, misses, evictions, adapters.Values.Count(a => a.Loaded), loadedBytes);
        }
    }

    /// <summary>Whether the set has an adapter named <paramref name="name"/>.</summary>
    public bool Contains(string name)
    {
        lock (sync) return adapters.ContainsKey(name);
    }

    /// <summary>
    /// Adds the adapter at <paramref name="path"/> (a <c>SaveWithAdapters</c> zip holding one LoRA classifier, or a PEFT
    /// adapter folder) under <paramref name="name"/>. Safe while the set serves.
    /// </summary>
    /// <exception cref="ArgumentException">An adapter named <paramref name="name"/> is already in the set.</exception>
    /// <exception cref="InvalidOperationException">The adapter was trained on another base encoder (SHA-256 differs).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The adapter is larger than <see cref="MemoryLimitBytes"/>.</exception>
    public void Add(string name, string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        CheckNameFree(name);
        string fullPath = Path.GetFullPath(path);
        using var weights = AdapterWeights.Read(ml, fullPath, baseView);
        AddLoaded(name, fullPath, weights);
    }

    /// <summary>
    /// Removes adapter <paramref name="name"/>. Rows naming it are unknown from now on; cursors opened before finish with
    /// it, and its memory is freed when the last of them is disposed (the set's log says how many it waits for).
    /// </summary>
    /// <exception cref="KeyNotFoundException">No adapter has that name (the message lists the names).</exception>
    public void Remove(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        AdapterEntry entry;
        bool freeNow;
        lock (sync)
        {
            ThrowIfDisposed();
            if (!adapters.Remove(name, out entry!)) throw UnknownAdapter(name, "");
            entry.Removed = true;
            freeNow = entry.Pins == 0 && entry.Cursors == 0;
            if (!freeNow)
            {
                var env = Integration.MLContextAccess.EnvironmentOf(ml);
                using var channel = env.Start(nameof(LoraAdapterSet));
                channel.Info(MessageSensitivity.None,
                    $"Adapter '{name}' is removed; {entry.Cursors} open cursor(s) and {entry.Pins} batch(es) still use it, and its memory is freed when they finish.");
            }
        }
        if (freeNow) WithNetworkWriteLock(() => Unload(entry, evicted: false));
    }

    /// <summary>Frees the network and every adapter. Scoring through the set afterwards throws.</summary>
    public void Dispose()
    {
        lock (sync)
        {
            if (disposed) return;
            disposed = true;
        }
        networkLock.EnterWriteLock();
        try
        {
            foreach (var entry in adapters.Values) entry.Head?.Dispose();
            adapters.Clear();
            network.Dispose();
            baseView.Dispose();
        }
        finally
        {
            networkLock.ExitWriteLock();
        }
    }

    /// <summary>The adapters now in the set, held for a cursor until the snapshot is disposed.</summary>
    internal AdapterSnapshot Snapshot()
    {
        lock (sync)
        {
            ThrowIfDisposed();
            foreach (var entry in adapters.Values) entry.Cursors++;
            return new AdapterSnapshot(this, new Dictionary<string, AdapterEntry>(adapters, StringComparer.Ordinal));
        }
    }

    /// <summary>The adapter named <paramref name="name"/> now, or null.</summary>
    internal AdapterEntry? Find(string name)
    {
        lock (sync) return adapters.GetValueOrDefault(name);
    }

    /// <summary>Ends a cursor's hold on <paramref name="entries"/>.</summary>
    internal void ReleaseSnapshot(IEnumerable<AdapterEntry> entries) => Release(entries, cursor: true);

    /// <summary>
    /// Ends a batch's (or a cursor's) use of <paramref name="entries"/>; frees those removed that nothing uses any more,
    /// and evicts down to the memory bound, which a batch needing more adapters than fit may have exceeded.
    /// </summary>
    private void Release(IEnumerable<AdapterEntry> entries, bool cursor)
    {
        var dead = new List<AdapterEntry>();
        bool over;
        lock (sync)
        {
            foreach (var entry in entries)
            {
                if (cursor) entry.Cursors--; else entry.Pins--;
                if (entry.Removed && entry.Pins == 0 && entry.Cursors == 0) dead.Add(entry);
            }
            over = memoryLimit is { } limit && loadedBytes > limit;
            if (disposed) return;
        }
        if (dead.Count > 0 || over)
            WithNetworkWriteLock(() =>
            {
                dead.ForEach(e => Unload(e, evicted: false));
                EvictOverLimit();
            });
    }

    /// <summary>The error for a row or call naming no adapter of the set.</summary>
    internal KeyNotFoundException UnknownAdapter(string name, string where)
    {
        lock (sync)
            return new KeyNotFoundException($"{where}No adapter named '{name}' is in the set; its adapters are: " +
                                            (adapters.Count == 0 ? "(none)" : string.Join(", ", adapters.Keys.Order(StringComparer.Ordinal).Select(n => $"'{n}'"))) + ".");
    }

    /// <summary>
    /// Class probabilities of <paramref name="texts"/>, each row by its own adapter: rows are sorted by length and scored
    /// in batches of <see cref="InferenceBatchSize"/>, each batch one pass over the base for all its adapters.
    /// </summary>
    internal float[][] Score(IReadOnlyList<AdapterEntry> rowAdapters, IReadOnlyList<string?> texts)
    {
        var encoded = new EncodedText[texts.Count];
        for (int i = 0; i < encoded.Length; i++) encoded[i] = Tokenizer.Encode(texts[i], null, rowAdapters[i].Settings.MaxSequenceLength);
        var order = Enumerable.Range(0, encoded.Length).OrderBy(i => encoded[i].Length).ToArray();
        var result = new float[encoded.Length][];
        int batchSize = InferenceBatchSize;
        for (int start = 0; start < order.Length; start += batchSize)
        {
            var indices = order.AsSpan(start, Math.Min(batchSize, order.Length - start)).ToArray();
            var rows = ScoreBatch(indices.Select(i => rowAdapters[i]).ToArray(), indices.Select(i => encoded[i]).ToArray());
            for (int k = 0; k < indices.Length; k++) result[indices[k]] = rows[k];
        }
        return result;
    }

    /// <summary>One pass over the base for a batch of rows, each with its adapter.</summary>
    private float[][] ScoreBatch(AdapterEntry[] rowAdapters, EncodedText[] items)
    {
        var groups = rowAdapters.Select((entry, row) => (entry, row)).GroupBy(p => p.entry, p => p.row).ToList();
        var used = groups.Select(g => g.Key).ToList();
        Acquire(used);
        try
        {
            networkLock.EnterReadLock();
            try
            {
                return Forward(groups, items);
            }
            finally
            {
                networkLock.ExitReadLock();
            }
        }
        finally
        {
            ReleasePins(used);
        }
    }

    private float[][] Forward(List<IGrouping<AdapterEntry, int>> groups, EncodedText[] items)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var batch = TokenBatch.Collate(items, Tokenizer.PadTokenId, device);
        // One adapter: no gathering at all, the same operations as a single model's pass.
        var rows = groups.Count == 1 ? [null] : groups.Select(g => (Tensor?)tensor(g.ToArray().Select(r => (long)r).ToArray(), device: device)).ToArray();
        var routing = new AdapterRouting(groups.Select((g, i) => (g.Key.Key, rows[i])).ToList());
        BertModelOutput output;
        using (routing.Use()) output = network.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);

        var result = new float[items.Length][];
        for (int i = 0; i < groups.Count; i++)
        {
            var entry = groups[i].Key;
            var own = rows[i] is { } r
                ? (new BertModelOutput(output.LastHiddenState.index_select(0, r), output.PooledOutput?.index_select(0, r), null, null), batch.AttentionMask.index_select(0, r))
                : (output, batch.AttentionMask);
            Tensor probabilities = entry.Head!.forward(Pooling.Pool(own.Item1, own.Item2, entry.Settings.Pooling)).softmax(-1).to(float32).cpu();
            float[] flat = probabilities.data<float>().ToArray();
            int classes = entry.Settings.ClassCount, k = 0;
            foreach (int row in groups[i]) result[row] = flat.AsSpan(k++ * classes, classes).ToArray();
        }
        return result;
    }

    /// <summary>Pins <paramref name="entries"/> for a batch and loads those evicted (a miss each), evicting others to fit.</summary>
    private void Acquire(IReadOnlyList<AdapterEntry> entries)
    {
        bool missing = false;
        lock (sync)
        {
            ThrowIfDisposed();
            foreach (var entry in entries)
            {
                entry.Pins++;
                entry.LastUse = ++clock;
                if (entry.Loaded) hits++;
                else
                {
                    misses++;
                    missing = true;
                }
            }
        }
        if (!missing) return;
        try
        {
            // Read the files outside the lock; another thread may load the same adapter meanwhile (then this copy goes).
            var read = new Dictionary<AdapterEntry, AdapterWeights>();
            try
            {
                foreach (var entry in entries.Where(e => !IsLoaded(e)))
                {
                    // A combined adapter has no file: once removed and unloaded, it is gone.
                    if (entry.Path is null) throw UnknownAdapter(entry.Name, "");
                    var weights = AdapterWeights.Read(ml, entry.Path!, baseView);
                    read[entry] = weights;
                    if (weights.Bytes != entry.Bytes || weights.Settings.ClassCount != entry.Settings.ClassCount)
                        throw new InvalidDataException($"Adapter '{entry.Name}' was evicted and its file '{entry.Path}' has changed since it was added " +
                                                       $"({weights.Bytes} bytes and {weights.Settings.ClassCount} classes, not {entry.Bytes} and {entry.Settings.ClassCount}). Remove and add it again.");
                }
                WithNetworkWriteLock(() =>
                {
                    foreach (var (entry, weights) in read)
                        if (!IsLoaded(entry)) Load(entry, weights);
                    EvictOverLimit();
                });
            }
            finally
            {
                foreach (var weights in read.Values) weights.Dispose();
            }
        }
        catch
        {
            ReleasePins(entries);
            throw;
        }
    }

    private bool IsLoaded(AdapterEntry entry)
    {
        lock (sync) return entry.Loaded;
    }

    private void ReleasePins(IReadOnlyList<AdapterEntry> entries) => Release(entries, cursor: false);

    /// <summary>Adds an adapter whose weights are in memory: from a file (<paramref name="path"/>) or combined (null).</summary>
    private void AddLoaded(string name, string? path, AdapterWeights weights)
    {
        lock (sync)
        {
            if (memoryLimit is { } limit && weights.Bytes > limit)
                throw new ArgumentOutOfRangeException(nameof(MemoryLimitBytes), limit,
                    $"Adapter '{name}' ({path ?? "combined"}) takes {weights.Bytes} bytes, more than the set's memory bound of {limit} bytes.");
        }
        WithNetworkWriteLock(() =>
        {
            AdapterEntry entry;
            lock (sync)
            {
                CheckNameFree(name);
                entry = new AdapterEntry(name, path, $"adapter{nextKey++}", weights.Settings, weights.Bytes) { LastUse = ++clock };
            }
            Load(entry, weights);
            lock (sync) adapters[name] = entry;
            EvictOverLimit();
        });
    }

    private void CheckNameFree(string name)
    {
        lock (sync)
        {
            ThrowIfDisposed();
            if (adapters.TryGetValue(name, out var existing))
                throw new ArgumentException($"The set already has an adapter named '{name}' (from {existing.Path ?? "a combination"}); remove it first or choose another name.", nameof(name));
        }
    }

    /// <summary>Puts <paramref name="weights"/> into the network under the entry's key. Call under the network write lock.</summary>
    private void Load(AdapterEntry entry, AdapterWeights weights)
    {
        var head = nn.Linear(weights.HeadWeight.shape[1], weights.HeadWeight.shape[0]);
        try
        {
            // Inside the try: an injection that fails part-way is taken out of the layers it reached.
            LoraInjector.Inject(network, entry.Settings.Lora, entry.Key);
            LoraInjector.LoadAdapterState(network, weights.Factors, entry.Key, "", AdapterKeyStyle.Peft, $"adapter '{entry.Name}'");
            using (no_grad())
            {
                head.weight!.copy_(weights.HeadWeight);
                head.bias!.copy_(weights.HeadBias);
            }
            head.to(device);
            head.eval();
            foreach (var parameter in network.parameters().Concat(head.parameters())) parameter.requires_grad = false;
        }
        catch
        {
            head.Dispose();
            DeleteFromNetwork(entry.Key);
            throw;
        }
        // The routing picks adapters per row; no layer keeps one active.
        LoraInjector.SetActiveAdapter(network, null);
        lock (sync)
        {
            entry.Head = head;
            loadedBytes += entry.Bytes;
        }
    }

    /// <summary>Drops an adapter's weights from the network. Call under the network write lock.</summary>
    private void Unload(AdapterEntry entry, bool evicted)
    {
        lock (sync)
        {
            if (!entry.Loaded) return;
            loadedBytes -= entry.Bytes;
            if (evicted) evictions++;
            entry.Head!.Dispose();
            entry.Head = null;
        }
        DeleteFromNetwork(entry.Key);
    }

    private void DeleteFromNetwork(string key)
    {
        foreach (var (_, layer) in LoraInjector.FindLoraLayers(network))
            if (layer.AdapterNames.Contains(key)) layer.DeleteAdapter(key);
    }

    /// <summary>Evicts least recently used adapters that no batch uses until the bound holds. Call under the network write lock.</summary>
    private void EvictOverLimit()
    {
        while (true)
        {
            AdapterEntry? victim;
            lock (sync)
            {
                if (memoryLimit is not { } limit || loadedBytes <= limit) return;
                victim = adapters.Values.Where(e => e.Loaded && e.Pins == 0 && e.Path is not null).MinBy(e => e.LastUse);
                if (victim is null) return;
            }
            Unload(victim, evicted: true);
        }
    }

    private void WithNetworkWriteLock(Action action)
    {
        networkLock.EnterWriteLock();
        try
        {
            ThrowIfDisposed();
            action();
        }
        finally
        {
            networkLock.ExitWriteLock();
        }
    }

    private bool IsDisposed
    {
        get
        {
            lock (sync) return disposed;
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);
}
