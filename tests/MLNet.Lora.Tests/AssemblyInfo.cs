// libtorch's random generator is process-wide: fits that run side by side would draw from it in turn and lose
// their determinism, so test classes run one after another (each already uses both cores inside libtorch).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
