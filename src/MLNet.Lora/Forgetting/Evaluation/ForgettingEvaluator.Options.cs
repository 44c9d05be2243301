using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;

namespace MLNet.Lora.Forgetting;

public sealed partial class ForgettingEvaluator
{
    /// <summary>
    /// Settings of <see cref="ForgettingEvaluator"/> and <see cref="ForgettingMonitor"/>. The defaults keep a full
    /// evaluation of a MiniLM-sized encoder within minutes on a few CPU cores; raise the sizes for tighter estimates.
    /// </summary>
    public sealed class Options
    {
        /// <summary>Seed of every split, subsample, batch choice, head initialisation and power iteration: the same seed gives the same report.</summary>
        public int Seed = 1;

        /// <summary>How token states become the features that probes read (mean suits sentence-transformers encoders such as the default).</summary>
        public PoolingStrategy Pooling = PoolingStrategy.Mean;

        /// <summary>Tokens per text, special tokens included; longer texts are truncated.</summary>
        public int MaxSequenceLength = 64;

        /// <summary>Texts per forward pass when extracting features.</summary>
        public int BatchSize = 32;

        /// <summary>At most this many rows of a retention task fit a probe (seeded subsample).</summary>
        public int MaxProbeTrainExamples = 1000;

        /// <summary>At most this many held-out rows per task are scored (seeded subsample).</summary>
        public int MaxTestExamples = 500;

        /// <summary>Share of a retention task's rows held out for testing when the task has no test split.</summary>
        public double ProbeTestFraction = 0.3;

        /// <summary>L2 regularisation of the L-BFGS maximum-entropy probes (on standardised features).</summary>
        public float ProbeL2Regularization = 1f;

        /// <summary>Test rows of each task fed to both models to measure representation and attention drift.</summary>
        public int DriftExamples = 256;

        /// <summary>A head whose mean Jensen–Shannon divergence (bits) exceeds this counts as disrupted.</summary>
        public double HeadDriftThreshold = 0.05;

        /// <summary>Measure gradient conflict (and gradient similarity) when a new task is known.</summary>
        public bool MeasureGradientConflict = true;

        /// <summary>Paired batches of the old and new task over which gradient cosines are taken.</summary>
        public int GradientBatches = 8;

        /// <summary>Examples per gradient batch.</summary>
        public int GradientBatchSize = 16;

        /// <summary>Measure loss sharpness (top Hessian eigenvalue and SAM).</summary>
        public bool MeasureSharpness = true;

        /// <summary>Examples in the fixed batch whose loss curvature is measured.</summary>
        public int SharpnessExamples = 32;

        /// <summary>Hessian-vector products allowed to the power iteration.</summary>
        public int PowerIterations = 10;

        /// <summary>SAM radius ρ.</summary>
        public double SamRho = 0.05;

        /// <summary>Task sequences: at most this many training rows per task (seeded subsample).</summary>
        public int MaxTrainExamples = 1500;

        /// <summary>Task sequences: epochs per task.</summary>
        public int Epochs = 1;

        /// <summary>Task sequences: examples per optimizer step.</summary>
        public int TrainBatchSize = 16;

        /// <summary>Task sequences: peak learning rate of full fine-tuning.</summary>
        public double FullLearningRate = 5e-5;

        /// <summary>Task sequences: peak learning rate of the LoRA strategies.</summary>
        public double LoraLearningRate = 1e-3;

        /// <summary>Task sequences: the adapters' settings (rank, alpha, target modules).</summary>
        public LoraConfig Lora = new() { Rank = 8, Alpha = 16, TargetModules = LoraTargetModules.Query | LoraTargetModules.Value };

        /// <summary>Task sequences: dropout before each task's head while training.</summary>
        public double HeadDropout = 0.1;

        /// <summary>Timeline: thresholds at which each signal counts as having moved.</summary>
        public TimelineThresholds Thresholds = new();

        /// <summary>Timeline: refit a probe on the model's features each epoch (what is still linearly recoverable); costs one probe fit per task per epoch.</summary>
        public bool RefitProbesEachEpoch = true;

        internal Options Validate()
        {
            static void Check(bool ok, string name, object? value, string rule)
            {
                if (!ok) throw new ArgumentOutOfRangeException(name, value, $"{nameof(ForgettingEvaluator)}.{nameof(Options)}.{name} {rule} (was {value}).");
            }
            Check(Seed >= 0, nameof(Seed), Seed, "must not be negative");
            Check(MaxSequenceLength >= 8, nameof(MaxSequenceLength), MaxSequenceLength, "must be at least 8");
            Check(BatchSize > 0, nameof(BatchSize), BatchSize, "must be positive");
            Check(MaxProbeTrainExamples >= 2, nameof(MaxProbeTrainExamples), MaxProbeTrainExamples, "must be at least 2");
            Check(MaxTestExamples >= 2, nameof(MaxTestExamples), MaxTestExamples, "must be at least 2");
            Check(ProbeTestFraction > 0 && ProbeTestFraction < 1, nameof(ProbeTestFraction), ProbeTestFraction, "must be in (0, 1)");
            Check(ProbeL2Regularization >= 0 && float.IsFinite(ProbeL2Regularization), nameof(ProbeL2Regularization), ProbeL2Regularization, "must be a finite value ≥ 0");
            Check(DriftExamples >= 2, nameof(DriftExamples), DriftExamples, "must be at least 2");
            Check(HeadDriftThreshold >= 0 && HeadDriftThreshold <= 1, nameof(HeadDriftThreshold), HeadDriftThreshold, "must be in [0, 1] bits");
            Check(GradientBatches > 0, nameof(GradientBatches), GradientBatches, "must be positive");
            Check(GradientBatchSize > 0, nameof(GradientBatchSize), GradientBatchSize, "must be positive");
            Check(SharpnessExamples > 0, nameof(SharpnessExamples), SharpnessExamples, "must be positive");
            Check(PowerIterations > 0, nameof(PowerIterations), PowerIterations, "must be positive");
            Check(SamRho > 0 && double.IsFinite(SamRho), nameof(SamRho), SamRho, "must be a finite value > 0");
            Check(MaxTrainExamples >= 2, nameof(MaxTrainExamples), MaxTrainExamples, "must be at least 2");
            Check(Epochs > 0, nameof(Epochs), Epochs, "must be positive");
            Check(TrainBatchSize > 0, nameof(TrainBatchSize), TrainBatchSize, "must be positive");
            Check(FullLearningRate > 0 && double.IsFinite(FullLearningRate), nameof(FullLearningRate), FullLearningRate, "must be positive");
            Check(LoraLearningRate > 0 && double.IsFinite(LoraLearningRate), nameof(LoraLearningRate), LoraLearningRate, "must be positive");
            Check(HeadDropout >= 0 && HeadDropout < 1, nameof(HeadDropout), HeadDropout, "must be in [0, 1)");
            Check(Lora is not null, nameof(Lora), Lora, "must be set");
            Check(Thresholds is not null, nameof(Thresholds), Thresholds, "must be set");
            return this;
        }
    }
}
