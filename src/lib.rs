//! # adapeft: Hessian-informed parameter-efficient fine-tuning for burn
//!
//! The crates, one per step of the pipeline, are re-exported here:
//!
//! - [`importance`]: parameter discovery, groupings and the estimators (`b`, `a`, `v`);
//! - [`knapsack`]: the exact 0-1 / multiple-choice knapsack solver and Pareto fronts;
//! - [`backend`]: the devices the enabled backend features give.

pub use adapeft_importance as importance;
pub use adapeft_knapsack as knapsack;

pub mod backend;
