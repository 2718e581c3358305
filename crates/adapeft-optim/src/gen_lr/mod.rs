//! The generalized Newton (GeN) learning rate: learning-rate-free training of the selected
//! subset.
//!
//! Along the wrapped optimizer's own update `-eta u`, a second-order Taylor model of the loss
//! is `L(w - eta u) ~ L(w) - eta B + eta^2 A / 2` with `B = G.u` and `A = u'Hu`, minimised at
//! `eta* = B / A`: the same quadratic that AdaPEFT scores groups with, now along the update
//! the optimizer actually takes (Bu and Xu, "Generalized Newton's method", arXiv 2407.02772).
//! [`Gen`] measures it every `lazy_every` steps from a few forward passes and steers the
//! learning rate towards it.
//!
//! The module is split by job: [`GenConfig`] (settings), the probe's record and decision
//! ([`GenProbe`]), per-group rates ([`group_learning_rates`]), the controller ([`Gen`], here)
//! and the module plumbing that measures the optimizer's update. The quadratic fit is
//! [`adapeft_importance::QuadraticFit`], the same one the forward probe uses.

mod config;
mod plumbing;
mod probe;
mod rates;

use adapeft_selection::Selection;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::tensor::Tensor;

pub use config::{GenConfig, ProbePoints};
pub use probe::{GenProbe, Rejection};
pub use rates::{GroupRates, group_learning_rates, joint_learning_rates};

use crate::error::OptimError;
use crate::masked::StepOptimizer;
use plumbing::{Along, Deltas, update_deltas};
use probe::decide;

/// The GeN learning rate around any optimizer ([`Masked`](crate::Masked), a plain burn
/// `ModuleOptimizer`, ...).
///
/// Every `lazy_every` steps (and at the first), [`Gen::step`] probes the loss at a few
/// multiples `t` of the update the optimizer would make now, fits `L(t) = c - B t + A t^2 / 2`
/// and, when the fit is trusted, moves the learning rate towards the Newton rate
/// `lr * B / A`:
///
/// - **trusted** (every loss finite, R^2 >= `min_r2`, `A > 0`, `B > 0`), proposal within
///   `[lr / max_change, lr * max_change]`: it is blended in geometrically,
///   `lr <- lr^(1 - s) * proposal^s`, which damps the noise of single probes;
/// - **trusted, proposal below `lr / max_change`**: the rate is too large, and the next
///   updates could diverge, so it drops by the full factor `max_change` (no smoothing) and
///   probes again at once, before the step is taken (up to `max_reprobes` times): a rate ten
///   times too large is corrected before the first update;
/// - **trusted, proposal above `lr * max_change`**: the rate is too small; it grows by the full
///   factor `max_change` and the next step probes again (growing is never done twice within
///   a step: the Newton rate along one update can be much larger than a rate that is safe
///   for the following ones, as in steepest descent on an ill-conditioned problem);
/// - **not trusted** (see [`Rejection`]): the learning rate is kept, and the probe is recorded
///   with its reason. A failed fit never stops training. A poor fit or a non-finite loss is
///   first measured again on a probe range half as wide (up to `max_reprobes` times), since
///   the quadratic model holds locally and a rate far too large makes the full range useless;
///   only the last measurement is recorded.
///
/// The probe costs one extra optimizer update on a copy (the optimizer's state is not
/// advanced) and one forward pass per probe point, without gradients; between probes a step
/// costs what the wrapped optimizer costs. With per-group rates
/// ([`Gen::with_group_rates`]) the adapted value is a multiplier on each group's `b_k / a_k`.
///
/// ```
/// use adapeft_optim::{Gen, GenConfig};
/// use burn::module::Module;
/// use burn::nn::{Linear, LinearConfig};
/// use burn::optim::{GradientsParams, SgdConfig};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let mut model: Linear = LinearConfig::new(2, 1).init(&device);
/// let x = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], &device);
/// let y = Tensor::<2>::from_floats([[1.0], [0.0], [2.0]], &device);
/// let loss = |m: &Linear| (m.forward(x.clone()) - y.clone()).square().mean();
///
/// let mut gen_lr = Gen::new(SgdConfig::new().init(), 1e-3, GenConfig::new().with_lazy_every(2))?;
/// for _ in 0..20 {
///     let grads = GradientsParams::from_grads(loss(&model).backward(), &model);
///     model = gen_lr.step(model, grads, &loss)?;
/// }
/// assert!(gen_lr.lr() > 1e-3); // a hundredfold too small a rate was raised
/// # Ok::<(), adapeft_optim::OptimError>(())
/// ```
#[derive(Clone)]
pub struct Gen<O> {
    pub(crate) optim: O,
    pub(crate) config: GenConfig,
    pub(crate) lr: f64,
    pub(crate) rates: Option<GroupRates>,
    pub(crate) steps: usize,
    /// Whether the next step probes regardless of `lazy_every` (after a clipped proposal).
    pub(crate) probe_next: bool,
    pub(crate) history: Vec<GenProbe>,
}

impl<O: StepOptimizer> Gen<O> {
    /// GeN around `optim`, starting from the learning rate `lr`.
    ///
    /// # Errors
    /// [`OptimError::InvalidSetting`] for a learning rate that is not positive and finite, or
    /// a setting of `config` out of range.
    pub fn new(optim: O, lr: f64, config: GenConfig) -> Result<Self, OptimError> {
        config.validate()?;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(OptimError::InvalidSetting {
                name: "lr",
                value: lr.to_string(),
                reason: "must be positive and finite",
            });
        }
        Ok(Gen {
            optim,
            config,
            lr,
            rates: None,
            steps: 0,
            probe_next: true,
            history: Vec::new(),
        })
    }

    /// GeN with per-group learning rates `eta_k = b_k / a_k` from `selection` (see
    /// [`group_learning_rates`]); the adapted value is a common multiplier, starting at 1.
    ///
    /// # Errors
    /// As [`group_learning_rates`] and [`Gen::new`].
    pub fn with_group_rates(
        optim: O,
        selection: &Selection,
        config: GenConfig,
    ) -> Result<Self, OptimError> {
        let rates = group_learning_rates(selection)?;
        let mut gen_lr = Gen::new(optim, 1.0, config)?;
        gen_lr.rates = Some(rates);
        Ok(gen_lr)
    }

    /// The current learning rate (or, with group rates, the multiplier on them).
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The per-parameter learning rate the next step uses.
    pub fn learning_rate(&self) -> ModuleLearningRate {
        match &self.rates {
            Some(rates) => rates.scaled(self.lr),
            None => self.lr.into(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &GenConfig {
        &self.config
    }

    /// Every probe so far, oldest first.
    pub fn history(&self) -> &[GenProbe] {
        &self.history
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The wrapped optimizer.
    pub fn optimizer(&self) -> &O {
        &self.optim
    }

    /// The wrapped optimizer, mutably (for example to change a [`Masked`](crate::Masked)
    /// mask).
    pub fn optimizer_mut(&mut self) -> &mut O {
        &mut self.optim
    }

    /// One training step: probes first when due (see the type's docs), then updates `module`
    /// with `grads` at the current learning rate. `loss` is the training loss of a module on
    /// the current batch (shape `[1]`); it is only called when probing, on copies of
    /// `module` without gradient tracking.
    ///
    /// # Errors
    /// [`OptimError::NotScalar`] when `loss` returns more than one element. `module` is
    /// consumed; on error no update was made to it, but it is not returned.
    pub fn step<M, F>(
        &mut self,
        module: M,
        grads: GradientsParams,
        loss: F,
    ) -> Result<M, OptimError>
    where
        M: Module,
        F: Fn(&M) -> Tensor<1>,
    {
        if self.probe_next || self.steps.is_multiple_of(self.config.lazy_every) {
            for _ in 0..=self.config.max_reprobes {
                let probe = self.probe(&module, &grads, &loss)?;
                self.lr = probe.lr_after;
                self.probe_next = probe.clipped;
                let too_large = probe.clipped && probe.lr_after < probe.lr_before;
                self.history.push(probe);
                if !too_large {
                    break;
                }
            }
        }
        self.steps += 1;
        let lr = self.learning_rate();
        Ok(self.optim.step_module(lr, module, grads))
    }

    /// Probes at `range` times the configured multipliers; when the fit is poor or a loss is
    /// not finite, measures again on a range half as wide (up to `max_reprobes` times): the
    /// quadratic model holds locally, and a rate far too large makes the full range useless.
    fn probe<M, F>(
        &self,
        module: &M,
        grads: &GradientsParams,
        loss: &F,
    ) -> Result<GenProbe, OptimError>
    where
        M: Module,
        F: Fn(&M) -> Tensor<1>,
    {
        let deltas = update_deltas(&self.optim, self.learning_rate(), module, grads);
        let mut range = 1.0;
        let mut probe = self.measure(module, &deltas, loss, range)?;
        for _ in 0..self.config.max_reprobes {
            if !matches!(
                probe.rejected,
                Some(Rejection::PoorFit | Rejection::NonFinite)
            ) {
                break;
            }
            range /= 2.0;
            probe = self.measure(module, &deltas, loss, range)?;
        }
        Ok(probe)
    }

    /// The losses along `deltas` at `range` times the probe multipliers, and the decision.
    fn measure<M, F>(
        &self,
        module: &M,
        deltas: &Deltas,
        loss: &F,
        range: f64,
    ) -> Result<GenProbe, OptimError>
    where
        M: Module,
        F: Fn(&M) -> Tensor<1>,
    {
        let mut losses = Vec::new();
        for &t in self.config.points.multipliers() {
            let t = t * range;
            let at = module.clone().map(&mut Along { deltas, t });
            let value = loss(&at);
            let dims = value.dims();
            if dims[0] != 1 {
                return Err(OptimError::NotScalar {
                    shape: dims.to_vec(),
                });
            }
            losses.push((t, value.into_scalar::<f64>()));
        }
        Ok(decide(self.steps, self.lr, &self.config, losses))
    }
}
