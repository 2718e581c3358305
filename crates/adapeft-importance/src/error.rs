//! Errors of grouping and estimation. Every variant names the input at fault.

use thiserror::Error;

/// A grouping could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupingError {
    /// A regular expression did not compile.
    #[error("invalid regular expression `{pattern}`: {reason}")]
    InvalidRegex {
        /// The pattern as given.
        pattern: String,
        /// What the regex compiler said.
        reason: String,
    },
    /// Two custom groups both match one parameter.
    #[error(
        "parameter `{param}` is in two custom groups, `{first}` and `{second}`: groups must be disjoint"
    )]
    Overlap {
        /// Path of the parameter matched twice.
        param: String,
        /// The first group that matched it.
        first: String,
        /// The second group that matched it.
        second: String,
    },
}

/// An estimator could not score the groups. The model is never changed, error or not.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EstimateError {
    /// A data-parallel estimation was given no shard.
    #[error("no shard given: a data-parallel estimation needs at least one shard")]
    NoShard,
    /// A shard has no batch.
    #[error("shard {shard} has no batch: every worker needs at least one")]
    EmptyShard {
        /// Index of the empty shard.
        shard: usize,
    },
    /// The collective's number of workers is not the number of shards.
    #[error("the collective has {workers} workers for {shards} shards")]
    Workers {
        /// Workers of the collective.
        workers: usize,
        /// Shards given.
        shards: usize,
    },
    /// A reduction across workers failed.
    #[error(transparent)]
    Reduce(#[from] crate::shard::ReduceError),
    /// No batch was given.
    #[error("no batch given: estimators need at least one batch")]
    NoBatch,
    /// The model has no float parameter in any group.
    #[error("nothing to score: the model has no float parameter in any group")]
    NoGroups,
    /// The objective returned a tensor with more than one element.
    #[error("the loss must be a scalar (a tensor of shape [1]), got shape {shape:?}")]
    NotScalar {
        /// Shape of the tensor the objective returned.
        shape: Vec<usize>,
    },
    /// The loss at the unperturbed weights is NaN or infinite.
    #[error("the loss of batch {batch} at the model's own weights is not finite ({loss})")]
    NonFiniteLoss {
        /// Index of the batch.
        batch: usize,
        /// The loss.
        loss: f64,
    },
    /// The loss at a probe point is NaN or infinite.
    #[error("the loss is not finite ({loss}) when group `{group}` is probed with step {step:e}")]
    NonFiniteProbe {
        /// Name of the group being probed (or `all groups` for a joint random-sign probe).
        group: String,
        /// The probe step (`x` for the forward probe, `epsilon` for the gradient probe).
        step: f64,
        /// The loss.
        loss: f64,
    },
    /// The loss became NaN or infinite during a [`ShortRun`](crate::ShortRun) (lower its
    /// learning rate).
    #[error(
        "the loss is not finite ({loss}) at step {step} of the short run of `{group}` (batch {batch}): lower the learning rate"
    )]
    NonFiniteRun {
        /// The groups being trained (`all groups`, or the one group trained alone).
        group: String,
        /// The step (from 0).
        step: usize,
        /// The batch of that step.
        batch: usize,
        /// The loss.
        loss: f64,
    },
    /// Not enough batches for what was asked.
    #[error("{what} needs at least {needed} batches, got {got}")]
    TooFewBatches {
        /// The option that needs them.
        what: &'static str,
        /// How many it needs.
        needed: usize,
        /// How many were given.
        got: usize,
    },
    /// A setting is out of range.
    #[error("invalid setting `{name}` = {value}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Its value, printed.
        value: String,
        /// The accepted range.
        reason: &'static str,
    },
}
