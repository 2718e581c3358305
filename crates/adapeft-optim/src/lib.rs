//! # adapeft-optim: optimizer adapters for adapeft
//!
//! Each adapter wraps a burn optimizer, adds one idea and delegates the rest:
//!
//! - [`Masked`]: any burn [`Optimizer`](burn::optim::Optimizer), restricted to a set of
//!   parameters (a [`Selection`](adapeft_mask::Selection) or a burn `ParamGroup`); the other
//!   parameters get no update, no weight decay, no clipping and no optimizer state.
//! - [`GradientMask`]: the same restriction as a gradient filter, for burn-train's `Learner`
//!   (which takes a plain `ModuleOptimizer`): filter in your model's `TrainStep`.
//! - [`Gen`]: the generalized Newton learning rate, `eta* = B / A` along the optimizer's own
//!   update, measured every few steps from forward passes: learning-rate-free fine-tuning of
//!   the selected subset. [`group_learning_rates`] gives per-group rates `b_k / a_k` from a
//!   selection.
//! - [`Reselect`]: re-selects the subset every N steps during training, freeing the state of
//!   dropped groups, and keeps the [`SelectionHistory`].

mod error;
mod gen_lr;
mod mask;
mod masked;
mod reselect;

pub use error::OptimError;
pub use gen_lr::{
    Gen, GenConfig, GenProbe, GroupRates, ProbePoints, QuadraticFit, Rejection, fit_quadratic,
    group_learning_rates,
};
pub use mask::GradientMask;
pub use masked::{MaskChange, Masked, StepOptimizer};
pub use reselect::{HistoryEntry, Reselect, SelectionHistory};
