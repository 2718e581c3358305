//! # adapeft-optim: optimizer adapters for adapeft
//!
//! Each adapter wraps a burn optimizer, adds one idea and delegates the rest:
//!
//! - [`Masked`]: any burn [`Optimizer`](burn::optim::Optimizer), restricted to a set of
//!   parameters (a [`Selection`](adapeft_selection::Selection) or a burn `ParamGroup`); the other
//!   parameters get no update, no weight decay, no clipping and no optimizer state.
//! - [`GradientMask`]: the same restriction as a gradient filter, for burn-train's `Learner`
//!   (which takes a plain `ModuleOptimizer`): filter in your model's `TrainStep`.
//! - [`Gen`]: the generalized Newton learning rate, `eta* = B / A` along the optimizer's own
//!   update, measured every few steps from forward passes: learning-rate-free fine-tuning of
//!   the selected subset. [`group_learning_rates`] gives per-group rates `b_k / a_k` from a
//!   selection.
//! - [`Reselect`]: re-selects the subset every N steps during training, freeing the state of
//!   dropped groups, and keeps the [`SelectionHistory`].
//! - [`checkpoint::save_checkpoint`] / [`checkpoint::load_checkpoint`]: everything a run of
//!   these adapters needs to continue (trained tensors, optimizer state of the trained
//!   parameters, GeN's and re-selection's state, the selection), saved atomically and
//!   restored onto the base model so that training continues bit for bit. The checkpoint
//!   items live only under [`checkpoint`] (one path per item).
//!
//! ```
//! use adapeft_optim::{Gen, GenConfig, Masked};
//! use burn::module::ParamGroup;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::{AdamWConfig, GradientsParams};
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex().autodiff();
//! let mut model: Linear = LinearConfig::new(4, 1).init(&device);
//! let x = Tensor::<2>::ones([8, 4], &device);
//! let loss = |m: &Linear| (m.forward(x.clone()) - 3.0).square().mean();
//!
//! // AdamW on the bias only, with a GeN learning rate that adapts from 1e-3.
//! let masked = Masked::new(AdamWConfig::new().build(), ParamGroup::from_paths(vec!["bias"]));
//! let mut optim = Gen::new(masked, 1e-3, GenConfig::new())?;
//! let weight = model.weight.val().into_data();
//! for _ in 0..10 {
//!     let grads = GradientsParams::from_grads(loss(&model).backward(), &model);
//!     model = optim.step(model, grads, &loss)?;
//! }
//! assert_eq!(model.weight.val().into_data(), weight); // outside the mask: untouched
//! assert!(!optim.history().is_empty()); // every probe, with its fit and decision
//! println!("GeN's rate after 10 steps: {:.2e}", optim.lr());
//! # Ok::<(), adapeft_optim::OptimError>(())
//! ```

pub mod checkpoint;
mod error;
mod gen_lr;
mod mask;
mod masked;
mod reselect;

pub use adapeft_importance::{QuadraticFit, fit_quadratic};
pub use error::OptimError;
pub use gen_lr::{
    Gen, GenConfig, GenProbe, GroupRates, ProbePoints, Rejection, group_learning_rates,
    joint_learning_rates,
};
pub use mask::{CellMask, GradientMask, MAX_TRAINABLE_RANK};
pub use masked::{MaskChange, Masked, StepOptimizer};
pub use reselect::{HistoryEntry, Reselect, SelectionHistory};
