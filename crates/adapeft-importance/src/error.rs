//! Errors of grouping, estimation and the reductions across workers. Every variant names the
//! input at fault. This module depends on nothing else in the crate.

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
    /// Two groups both hold one parameter: two custom groups of a [`Grouping::Custom`]
    /// that match it, or two groups given to [`Groups::new`].
    ///
    /// [`Grouping::Custom`]: crate::Grouping::Custom
    /// [`Groups::new`]: crate::Groups::new
    #[error(
        "parameter `{param}` is in two groups, `{first}` and `{second}`: groups must be disjoint"
    )]
    Overlap {
        /// Path of the parameter matched twice.
        param: String,
        /// The first group that matched it.
        first: String,
        /// The second group that matched it.
        second: String,
    },
    /// A group given to [`Groups::new`](crate::Groups::new) names a parameter that does not
    /// exist.
    #[error("group `{group}` has member {member}, but there are only {params} parameters")]
    MemberOutOfRange {
        /// The group's name.
        group: String,
        /// The member index out of range.
        member: usize,
        /// The number of parameters.
        params: usize,
    },
    /// A group given to [`Groups::new`](crate::Groups::new) lists one parameter twice.
    #[error("group `{group}` lists parameter `{param}` twice")]
    RepeatedMember {
        /// The group's name.
        group: String,
        /// Path of the parameter listed twice.
        param: String,
    },
    /// A group given to [`Groups::new`](crate::Groups::new) has no member.
    #[error("group `{group}` has no member: every group needs at least one parameter")]
    EmptyGroup {
        /// The group's name.
        group: String,
    },
    /// A group's `numel` given to [`Groups::new`](crate::Groups::new) is not the sum of its
    /// members' sizes.
    #[error("group `{group}` says it has {stated} elements, but its members have {actual}")]
    Numel {
        /// The group's name.
        group: String,
        /// The group's `numel` as given.
        stated: u64,
        /// The sum of its members' `numel`.
        actual: u64,
    },
    /// A part given to [`Groups::new_tiled`](crate::Groups::new_tiled) is not a cell of a
    /// tiled parameter, or the tilings do not fit the parameters.
    #[error("group `{group}`: invalid part: {reason}")]
    InvalidPart {
        /// The group's name (empty when the tilings themselves are at fault).
        group: String,
        /// What is wrong, naming the tensor and the cell.
        reason: String,
    },
    /// A [`UnitRules`](crate::UnitRules) rule cannot cut the modules it matches.
    #[error("unit rule `{pattern}`: {reason}")]
    InvalidUnit {
        /// The rule's pattern as given.
        pattern: String,
        /// What is wrong, naming the module.
        reason: String,
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
    Reduce(#[from] ReduceError),
    /// No batch was given.
    #[error("no batch given: estimators need at least one batch")]
    NoBatch,
    /// The model refused a batch ([`Objective::check`](crate::Objective::check)); nothing
    /// was computed.
    #[error("batch {batch} cannot be given to this model: {reason}")]
    InvalidBatch {
        /// The batch's index (over every shard, when sharded).
        batch: usize,
        /// What the model said is wrong with it.
        reason: String,
    },
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
    /// The groups hold parts of tensors ([`Groups::split`](crate::Groups::split)), which this
    /// estimator cannot score: only the run-based allocations and the baselines credit any
    /// partition of the coordinates.
    #[error(
        "{estimator} cannot score group `{group}`, a part of a tensor: use ShortRun (Trapezoid or Allocation) or a Baseline for units below the tensor"
    )]
    UnitsUnsupported {
        /// The estimator.
        estimator: &'static str,
        /// The first group made of parts.
        group: String,
    },
}

/// A reduction across workers failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReduceError {
    /// Another worker failed; its own error says why.
    #[error("worker {rank} failed, so the reduction was abandoned")]
    Aborted {
        /// The worker that failed.
        rank: usize,
    },
    /// The workers reduced vectors of different lengths.
    #[error("worker {rank} reduced {len} numbers where worker 0 reduced {expected}")]
    Length {
        /// The worker whose vector differs.
        rank: usize,
        /// Its length.
        len: usize,
        /// Worker 0's length.
        expected: usize,
    },
    /// A rank out of range.
    #[error("worker rank {rank} out of range: the collective has {workers} workers")]
    Rank {
        /// The rank given.
        rank: usize,
        /// The number of workers.
        workers: usize,
    },
    /// A collective of no worker was asked for.
    #[error("a collective needs at least one worker, got 0")]
    NoWorkers,
    /// Two workers reduced under the same rank: each rank belongs to exactly one worker.
    /// The collective is abandoned (the others get [`ReduceError::Aborted`]).
    #[error("two workers reduced with rank {rank}: each worker needs its own rank")]
    DuplicateRank {
        /// The rank given twice.
        rank: usize,
    },
    /// The transport (for instance a device collective) failed.
    #[error("the collective failed: {0}")]
    Backend(String),
}
