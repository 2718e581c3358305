//! # adapeft: Hessian-informed parameter-efficient fine-tuning for burn
//!
//! Given a pretrained burn model, a batch and a budget of trainable parameters, adapeft decides
//! which parameter groups (tensors, layers, biases, norms, LoRA adapters) are worth training,
//! freezes the rest, and plugs into a burn training loop:
//!
//! ```
//! use adapeft::prelude::*;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::{AdamWConfig, GradientsParams};
//! use burn::tensor::{Device, Distribution, Tensor};
//!
//! // Your model, and its loss on a batch.
//! #[derive(burn::module::Module, Debug)]
//! struct Model {
//!     body: Linear,
//!     head: Linear,
//! }
//! impl Objective<Tensor<2>> for Model {
//!     fn loss(&self, x: &Tensor<2>) -> Tensor<1> {
//!         (self.head.forward(self.body.forward(x.clone()).tanh()) - 1.0).square().mean()
//!     }
//! }
//!
//! let device = Device::flex().autodiff();
//! let model = Model {
//!     body: LinearConfig::new(16, 32).init(&device),
//!     head: LinearConfig::new(32, 1).init(&device),
//! };
//! let batch = Tensor::random([64, 16], Distribution::Normal(0.0, 1.0), &device);
//!
//! let selection = AdaPeft::select(&model, &batch, Budget::Fraction(0.1))?;
//! let mut model = selection.apply(model); // only the chosen groups still require gradients
//!
//! // Train the chosen subset; the optimizer keeps no state for anything else.
//! let mut optim = Masked::new(AdamWConfig::new().build(), &selection);
//! for _ in 0..3 {
//!     let grads = GradientsParams::from_grads(model.loss(&batch).backward(), &model);
//!     model = optim.step(1e-3, model, grads);
//! }
//! # Ok::<(), AdaPeftError>(())
//! ```
//!
//! It scores each group by the loss reduction a second-order Taylor model predicts for it,
//! `v_k = b_k^2 / (2 a_k)`, and picks the subset by solving a 0-1 knapsack over group sizes,
//! with the whole Pareto front of (trainable parameters, predicted reduction).
//! [`prelude`] holds the names above; [`AdaPeft::select`] and [`Selection`] have more
//! examples.
//!
//! The crates, one per step of the pipeline, are re-exported here:
//!
//! - [`importance`]: parameter discovery, the parameter walk, groupings and the estimators
//!   (`b`, `a`, `v`);
//! - [`knapsack`]: the exact 0-1 / multiple-choice knapsack solver and Pareto fronts;
//! - [`selection`]: [`Budget`], the [`Selection`] and what it does to a model (apply, save,
//!   transfer);
//! - [`optim`]: optimizer adapters ([`Masked`], the [`Gen`] learning rate, [`Reselect`]);
//! - [`backend`]: the devices the enabled backend features give.
//! - `distributed` (with the `cuda` feature): `DeviceReduce`, a collective over burn's
//!   `all_reduce` for [`AdaPeftConfig::select_with`] on several CUDA GPUs.
//!
//! See `docs/architecture.md` in the repository for how data flows through them.

pub use adapeft_importance as importance;
pub use adapeft_knapsack as knapsack;
pub use adapeft_optim as optim;
pub use adapeft_selection as selection;

pub mod backend;
#[cfg(feature = "cuda")]
pub mod distributed;
mod error;
pub mod prelude;
mod store;

pub use adapeft_importance::{
    AnyEstimator, Baseline, Collective, Direction, Estimator, ForwardProbe, GradientProbe,
    GroupScore, Grouping, Groups, HostReduce, NewtonProbe, Objective, ProbeMode, ProbeRun, Scores,
    Shard, ShortRun, ShortRunValue, ValueModel,
};
pub use adapeft_optim::checkpoint::{Resumed, load_checkpoint, save_checkpoint};
pub use adapeft_optim::{Gen, GenConfig, GradientMask, Masked, Reselect};
pub use adapeft_selection::{
    AdaPeft, AdaPeftConfig, AlwaysTrain, AutoCandidate, Budget, BudgetError, BudgetOutcome,
    Candidates, Data, GroupChoice, HeldOut, LoraChoices, LoraChoicesError, LoraOption, RateRule,
    Scored, SelectError, Selection, Validation,
};
pub use error::AdaPeftError;
pub use store::{load_trained, save_trained};
