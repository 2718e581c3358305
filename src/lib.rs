//! # adapeft: Hessian-informed parameter-efficient fine-tuning for burn
//!
//! Given a pretrained burn model, a batch and a budget of trainable parameters, adapeft decides
//! which parameter groups (tensors, layers, biases, norms, LoRA adapters) are worth training,
//! freezes the rest, and plugs into a burn training loop:
//!
//! ```text
//! let selection = AdaPeft::select(&model, &batch, Budget::Fraction(0.01))?;
//! let model = selection.apply(model); // only the chosen groups still require gradients
//! ```
//!
//! It scores each group by the loss reduction a second-order Taylor model predicts for it,
//! `v_k = b_k^2 / (2 a_k)`, and picks the subset by solving a 0-1 knapsack over group sizes,
//! with the whole Pareto front of (trainable parameters, predicted reduction). See
//! [`AdaPeft::select`] for a complete example.
//!
//! The crates, one per step of the pipeline, are re-exported here:
//!
//! - [`importance`]: parameter discovery, groupings and the estimators (`b`, `a`, `v`);
//! - [`knapsack`]: the exact 0-1 / multiple-choice knapsack solver and Pareto fronts;
//! - [`mask`]: the [`Selection`] and what it does to a model (apply, save, transfer);
//! - [`optim`]: optimizer adapters ([`Masked`], the [`Gen`] learning rate, [`Reselect`]);
//! - [`backend`]: the devices the enabled backend features give.
//!
//! See `docs/architecture.md` in the repository for how data flows through them.

pub use adapeft_importance as importance;
pub use adapeft_knapsack as knapsack;
pub use adapeft_mask as mask;
pub use adapeft_optim as optim;

pub mod backend;
mod budget;
mod error;
mod select;
mod store;

pub use adapeft_importance::{
    Baseline, Direction, ForwardProbe, GradientProbe, GroupScore, Grouping, Objective, ProbeMode,
};
pub use adapeft_mask::{BudgetOutcome, GroupChoice, Selection};
pub use adapeft_optim::{Gen, GenConfig, GradientMask, Masked, Reselect};
pub use budget::Budget;
pub use error::AdaPeftError;
pub use select::{AdaPeft, AdaPeftConfig, EstimatorConfig};
pub use store::{load_trained, save_trained};
