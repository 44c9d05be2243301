namespace MLNet.Lora;

/// <summary>What a <see cref="LoraAdapterSet"/>'s adapter cache did and holds.</summary>
/// <param name="Hits">Uses of an adapter by a batch that found it loaded.</param>
/// <param name="Misses">Uses that had to reload it from its file (after eviction).</param>
/// <param name="Evictions">Adapters unloaded to keep within <see cref="LoraAdapterSet.MemoryLimitBytes"/>.</param>
/// <param name="LoadedCount">Adapters loaded now.</param>
/// <param name="LoadedBytes">Bytes their factors and heads take now.</param>
public readonly record struct AdapterCacheStatistics(long Hits, long Misses, long Evictions, int LoadedCount, long LoadedBytes);
