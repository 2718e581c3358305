//! Parameter groups and Hessian-informed importance estimators for burn models.
//!
//! This crate is the scoring half of AdaPEFT (see `docs/algorithm.md` in the repository).
//! The pipeline it covers:
//!
//! 1. [`discover`] lists every float parameter of any burn [`Module`](burn::module::Module)
//!    with its dotted path, [`ParamId`](burn::module::ParamId), shape and require-grad state;
//! 2. a [`Grouping`] splits them into disjoint named [`Groups`]: per tensor (the default), per
//!    module, by kind (bias, norm, embedding, head, attention, feed-forward, LoRA), by regular
//!    expression or from burn [`ParamGroup`](burn::module::ParamGroup)s. LoRA adapters attached
//!    with `Module::apply_lora` are groups of their own;
//!    [`Groups::split`] then cuts chosen modules into units below the tensor ([`Unit`]: output
//!    neurons, input rows such as an embedding's token rows, blocks, attention heads), by
//!    [`UnitRules`], mixed with whole tensors in one set of groups;
//! 3. an [`Estimator`] scores each group on one or more batches of an [`Objective`]:
//!    `b_k = G_k . g_k`, `a_k = g_k^T H_kk g_k` and the predicted loss reduction
//!    `v_k = b_k^2 / (2 a_k)`, with a reliability verdict, a quality figure and the cost.
//!
//! Estimators, each answering "how much would training this group lower the loss?":
//! - [`ShortRun`] (the default of the selector): what each group contributes to the loss drop
//!   of a short Adam or SGD run on a copy of the model (the loss-change allocation, by the
//!   trapezoid rule), `steps + 1` backward passes whatever the number of groups;
//! - [`ForwardProbe`] (the paper's): four probe losses per group and a [`QuadraticFit`],
//!   `4K + 1` forward passes for `K` groups;
//! - [`GradientProbe`]: Hessian-vector products by central differences of gradients, exact
//!   (`1 + 2K` backward passes) or with random signs (`1 + 2P` whatever `K`), with the
//!   cross-group [`Curvature`] and the joint value of any subset;
//! - [`NewtonProbe`]: each group's Newton decrement in its own subspace, by conjugate
//!   gradients;
//! - [`ProbeRun`] (the paper's probe run): exact one-step values at checkpoints of one run;
//! - the literature's [`Baseline`]s (gradient norm, Fisher, Taylor, magnitude, random, mean
//!   absolute gradient).
//!
//! Units below the tensor are scored by the estimators whose values are sums over
//! coordinates: [`ShortRun`]'s allocations (one run values every unit at once) and the
//! [`Baseline`]s. The probes' curvature per unit is not offered (`docs/algorithm.md`, section
//! 8) and they refuse such groups with [`EstimateError::UnitsUnsupported`].
//!
//! [`held_out_trials`] measures what a short run of some groups does to the loss on batches
//! it never saw, at a few learning rates: the selector's recommended rate and its
//! `Budget::Auto` come from it.
//!
//! [`AnyEstimator`] is any one of them, chosen at run time; their settings are burn
//! [`Config`](burn::config::Config)s. [`QuadraticFit`] is the least-squares parabola the
//! forward probe (and the GeN learning rate in `adapeft-optim`) fit to losses.
//!
//! How the crate is laid out: `params/` walks a module's parameters, discovers and groups
//! them; each estimator has its own module and implements the sealed [`Estimator`] trait,
//! whose provided [`Estimator::estimate_with`] scores on one device (`shard.rs` runs the same
//! scoring on several, [`AnyEstimator::estimate_sharded`]); `passes/` is
//! the engine they share, which evaluates losses and gradients at perturbed copies of the
//! model and accumulates them in f64; [`Collective`] is the only boundary between that engine
//! and a data-parallel reduction.
//!
//! [`AnyEstimator::estimate_sharded`] scores on batches spread over several devices
//! ([`Shard`]s, one worker thread each), every worker computing its part of the statistics
//! and a [`Collective`] ([`HostReduce`] here) summing the parts in f64: the same estimator
//! code as on one device, with the same result up to float rounding.
//!
//! [`visit_params`], [`map_params`] and [`set_require_grad`] are the one walk over a module's
//! float parameters with their dotted paths that every adapeft crate uses.
//!
//! Estimators never change the model: a probe point is a new module mapped from a clone of
//! the user's (burn tensors are immutable), so every parameter is bit-identical afterwards.
//!
//! ```
//! use adapeft_importance::{discover, Estimator, GradientProbe, Grouping};
//! use burn::nn::{Linear, LinearConfig};
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex();
//! let model = LinearConfig::new(4, 2).init(&device);
//! let x = Tensor::<2>::ones([8, 4], &device);
//! let loss = |m: &Linear, x: &Tensor<2>| m.forward(x.clone()).square().mean();
//!
//! let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
//! let scores = GradientProbe::exact().estimate_with(&model, &[x], &groups, &loss).unwrap();
//! for s in &scores.groups {
//!     println!("{}: b = {:.3e}, a = {:.3e}, v = {:.3e}", s.name, s.b, s.a, s.value);
//! }
//! assert_eq!(scores.cost.backward_passes, 1 + 2 * 2);
//! ```

// `with_*` setters for the settings that implement burn's `Config` by hand (`GradientProbe`,
// `ShortRun`), defined before the modules so that each can use it.
// `with_*` setters, one per field, as `derive(Config)` writes them.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $field:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $field: $ty) -> Self {
                self.$field = $field;
                self
            }
        )*
    };
}

mod any_estimator;
mod baseline;
mod collective;
mod curvature;
mod direction;
mod error;
mod estimator;
mod fit;
mod forward;
mod gradient;
mod newton;
mod objective;
mod params;
mod passes;
mod probe_run;
mod score;
mod shard;
mod short_run;
mod trial;
mod value;

pub use any_estimator::AnyEstimator;
pub use baseline::Baseline;
pub use collective::{Collective, HostReduce};
pub use curvature::{Curvature, JOINT_EIGEN_FLOOR};
pub use direction::{Direction, SlopeEstimate};
pub use error::{EstimateError, GroupingError, ReduceError};
pub use estimator::Estimator;
pub use fit::{Intercept, QuadraticFit, fit_quadratic};
pub use forward::{ForwardProbe, ProbeStep};
pub use gradient::{
    DEFAULT_EXACT_BUDGET, DEFAULT_PROBES, GradientProbe, MAX_CURVATURE_GROUPS, ProbeMode,
    SignPattern,
};
pub use newton::NewtonProbe;
pub use objective::{LossFn, ModelObjective, Objective};
pub use params::discover::{ParamInfo, ParamSlot, discover, layout};
pub use params::grouping::{Group, Grouping, Groups, KindRules, ParamKind, Unmatched};
pub use params::units::{Part, Tiling, Unit, UnitRules};
pub use params::walk::{ParamMapper, ParamVisitor, map_params, set_require_grad, visit_params};
pub use probe_run::ProbeRun;
pub use score::{Cost, GroupScore, Quality, Scores, Unreliable};
pub use shard::{Shard, WorkerPlace};
pub use short_run::{RunOptimizer, ShortRun, ShortRunValue};
pub use trial::{Trial, Trials, held_out_trials};
pub use value::ValueModel;
