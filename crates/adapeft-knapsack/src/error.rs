//! The one error type of the crate.

use thiserror::Error;

/// Everything that can be wrong with a knapsack instance or a request.
///
/// Each variant names the offending input (item index, or class and option index) and the
/// value that was rejected, so that a caller holding a list of named tensors can say which
/// tensor was wrong.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum KnapsackError {
    /// An item's value is NaN or infinite.
    #[error("item {item} has a non-finite value ({value})")]
    NonFiniteValue {
        /// Index of the item in the input slice.
        item: usize,
        /// The rejected value.
        value: f64,
    },
    /// An item's value is negative. Values are predicted loss reductions and must be `>= 0`;
    /// decide what a negative estimate means before it reaches the solver.
    #[error("item {item} has a negative value ({value})")]
    NegativeValue {
        /// Index of the item in the input slice.
        item: usize,
        /// The rejected value.
        value: f64,
    },
    /// An option of a multiple-choice class has a NaN or infinite value.
    #[error("option {option} of class {class} has a non-finite value ({value})")]
    NonFiniteOptionValue {
        /// Index of the class in the input slice.
        class: usize,
        /// Index of the option within its class.
        option: usize,
        /// The rejected value.
        value: f64,
    },
    /// An option of a multiple-choice class has a negative value.
    #[error("option {option} of class {class} has a negative value ({value})")]
    NegativeOptionValue {
        /// Index of the class in the input slice.
        class: usize,
        /// Index of the option within its class.
        option: usize,
        /// The rejected value.
        value: f64,
    },
    /// A multiple-choice class has no options. (Choosing nothing is always allowed and needs
    /// no option; a class without options is almost certainly a bug in the caller.)
    #[error("class {class} has no options")]
    EmptyClass {
        /// Index of the class in the input slice.
        class: usize,
    },
    /// The total weight of the heaviest selection does not fit in a `u64`, so the front's
    /// weights cannot be represented.
    #[error("total weight of the items overflows u64")]
    WeightOverflow,
    /// The approximation parameter is outside `[0, 1)` or not finite.
    #[error("epsilon must be finite and in [0, 1), got {epsilon}")]
    InvalidEpsilon {
        /// The rejected epsilon.
        epsilon: f64,
    },
    /// The relative optimality gap of [`SolveOptions`](crate::SolveOptions) is outside
    /// `[0, 1)` or not finite.
    #[error("gap must be finite and in [0, 1), got {gap}")]
    InvalidGap {
        /// The rejected gap.
        gap: f64,
    },
    /// The instance has more items or options than the solver can index (`u32::MAX - 1`),
    /// or a front outgrew its `u32`-indexed subset storage.
    #[error("instance too large: {what}")]
    TooLarge {
        /// What exceeded the limit.
        what: String,
    },
    /// A [`FrontData`](crate::FrontData) could not be turned back into a
    /// [`ParetoFront`](crate::ParetoFront).
    #[error("invalid front data: {reason}")]
    InvalidFront {
        /// Why the data was rejected.
        reason: String,
    },
    /// A set function given to [`maximize_subset`](crate::maximize_subset) returned NaN or
    /// an infinity.
    #[error("the set function's value of {subset:?} is not finite ({value})")]
    NonFiniteSetValue {
        /// The subset (ascending item indices).
        subset: Vec<usize>,
        /// The value returned.
        value: f64,
    },
}
