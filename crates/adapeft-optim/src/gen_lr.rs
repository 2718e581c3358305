//! The generalized Newton (GeN) learning rate: learning-rate-free training of the selected
//! subset.
//!
//! Along the wrapped optimizer's own update `-eta u`, a second-order Taylor model of the loss
//! is `L(w - eta u) ~ L(w) - eta B + eta^2 A / 2` with `B = G.u` and `A = u'Hu`, minimised at
//! `eta* = B / A`: the same quadratic that AdaPEFT scores groups with, now along the update
//! the optimizer actually takes (Bu and Xu, "Generalized Newton's method", arXiv 2407.02772).
//! [`Gen`] measures it every `lazy_every` steps from a few forward passes and steers the
//! learning rate towards it.

use std::collections::HashMap;

use adapeft_mask::Selection;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::GradientsParams;
use burn::optim::lr_scheduler::constant::ConstantLr;
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::OptimError;
use crate::masked::StepOptimizer;

/// How many loss evaluations a GeN probe fits its quadratic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbePoints {
    /// `t = -1, 0, 1` (times the current learning rate): the quadratic interpolates the three
    /// losses exactly, so the fit is judged only by the signs of its coefficients.
    Three,
    /// `t = -1, -1/2, 0, 1/2, 1`: a least-squares fit whose R^2 tells whether the loss is
    /// quadratic over the probed range.
    Five,
}

impl ProbePoints {
    /// The step multipliers, in units of the current learning rate.
    pub fn multipliers(self) -> &'static [f64] {
        match self {
            ProbePoints::Three => &[-1.0, 0.0, 1.0],
            ProbePoints::Five => &[-1.0, -0.5, 0.0, 0.5, 1.0],
        }
    }
}

/// Settings of [`Gen`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenConfig {
    /// Probe every this many steps (the first step always probes, and so does the step after
    /// a clipped proposal). Default 8.
    pub lazy_every: usize,
    /// The probe points. Default [`ProbePoints::Five`].
    pub points: ProbePoints,
    /// The smallest R^2 of the quadratic fit that is trusted. Default 0.9.
    pub min_r2: f64,
    /// Weight of a new estimate in the (geometric) running learning rate, in `(0, 1]`:
    /// `lr <- lr^(1 - s) * proposal^s`. Default 0.5; 1 jumps straight to the proposal.
    pub smoothing: f64,
    /// The proposal is clipped to `[lr / max_change, lr * max_change]`. Default 2.
    pub max_change: f64,
    /// How many times a proposal clipped at `lr / max_change` (a rate too large) is probed
    /// again before the step is taken, and how many times a poor fit is measured again on a
    /// range half as wide. Default 4.
    pub max_reprobes: usize,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            lazy_every: 8,
            points: ProbePoints::Five,
            min_r2: 0.9,
            smoothing: 0.5,
            max_change: 2.0,
            max_reprobes: 4,
        }
    }
}

impl GenConfig {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `lazy_every`.
    pub fn with_lazy_every(mut self, lazy_every: usize) -> Self {
        self.lazy_every = lazy_every;
        self
    }

    /// Sets the probe points.
    pub fn with_points(mut self, points: ProbePoints) -> Self {
        self.points = points;
        self
    }

    /// Sets the smallest trusted R^2.
    pub fn with_min_r2(mut self, min_r2: f64) -> Self {
        self.min_r2 = min_r2;
        self
    }

    /// Sets the smoothing weight.
    pub fn with_smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// Sets the largest change factor per probe.
    pub fn with_max_change(mut self, max_change: f64) -> Self {
        self.max_change = max_change;
        self
    }

    /// Sets how many times a clipped proposal is probed again within a step.
    pub fn with_max_reprobes(mut self, max_reprobes: usize) -> Self {
        self.max_reprobes = max_reprobes;
        self
    }

    fn validate(&self) -> Result<(), OptimError> {
        let bad = |name, value: String, reason| {
            Err(OptimError::InvalidSetting {
                name,
                value,
                reason,
            })
        };
        if self.lazy_every == 0 {
            return bad("lazy_every", "0".into(), "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.min_r2) {
            return bad("min_r2", self.min_r2.to_string(), "must be in [0, 1]");
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return bad("smoothing", self.smoothing.to_string(), "must be in (0, 1]");
        }
        if !(self.max_change.is_finite() && self.max_change >= 1.0) {
            return bad(
                "max_change",
                self.max_change.to_string(),
                "must be finite and at least 1",
            );
        }
        Ok(())
    }
}

/// Why a probe's fit was not trusted; the learning rate is then kept as it was.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Rejection {
    /// A probed loss was NaN or infinite.
    NonFinite,
    /// Every probed loss was the same: the update is zero or does not change the loss.
    Flat,
    /// `A <= 0`: the loss is not convex along the update over the probed range, so the
    /// quadratic has no minimum.
    NonPositiveCurvature,
    /// `B <= 0`: the update does not decrease the loss to first order (for example right
    /// after a change of direction in a momentum optimizer).
    NonPositiveSlope,
    /// The quadratic explains too little of the losses (R^2 below `min_r2`): the probed range
    /// is not quadratic, typically because the learning rate is far too large.
    PoorFit,
}

/// What one GeN probe measured and decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenProbe {
    /// The training step (0-based) at which the probe ran.
    pub step: usize,
    /// The learning rate (or group-rate multiplier) before the probe.
    pub lr_before: f64,
    /// `(t, loss)` pairs: the loss after an update of `t` times the current learning rate
    /// (`t` within `[-1, 1]`, narrower after a poor fit).
    pub losses: Vec<(f64, f64)>,
    /// The fitted first-order decrease per unit of `t`, `B` (the slope along the update).
    pub b: f64,
    /// The fitted curvature per unit of `t` squared, `A`.
    pub a: f64,
    /// The R^2 of the fit (1 for three points).
    pub r2: f64,
    /// `lr_before * B / A`: the Newton learning rate, when the fit was trusted.
    pub proposal: Option<f64>,
    /// Why the fit was not trusted, if it was not.
    pub rejected: Option<Rejection>,
    /// Whether the proposal lay outside `[lr / max_change, lr * max_change]` and was clipped
    /// (the next step then probes again).
    pub clipped: bool,
    /// The learning rate after the probe.
    pub lr_after: f64,
}

/// A quadratic fit `L(t) = c - B t + A t^2 / 2` to probed losses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuadraticFit {
    /// The loss at `t = 0` of the fitted curve.
    pub c: f64,
    /// The first-order decrease per unit `t`.
    pub b: f64,
    /// The curvature.
    pub a: f64,
    /// The fraction of the losses' variance the fit explains (1 when the losses are equal).
    pub r2: f64,
}

/// Least-squares fit of `c - B t + A t^2 / 2` to `(t, loss)` points (at least three distinct
/// `t`).
pub fn fit_quadratic(points: &[(f64, f64)]) -> QuadraticFit {
    // Normal equations for y = p0 + p1 t + p2 t^2.
    let mut m = [[0.0f64; 3]; 3];
    let mut r = [0.0f64; 3];
    for &(t, y) in points {
        let basis = [1.0, t, t * t];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += basis[i] * basis[j];
            }
            r[i] += basis[i] * y;
        }
    }
    let p = solve3(m, r);
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for &(t, y) in points {
        let f = p[0] + p[1] * t + p[2] * t * t;
        ss_res += (y - f).powi(2);
        ss_tot += (y - mean).powi(2);
    }
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    };
    QuadraticFit {
        c: p[0],
        b: -p[1],
        a: 2.0 * p[2],
        r2,
    }
}

/// Solves a 3x3 system by Gaussian elimination with partial pivoting.
fn solve3(mut m: [[f64; 3]; 3], mut r: [f64; 3]) -> [f64; 3] {
    for col in 0..3 {
        let pivot = (col..3)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .unwrap_or(col);
        m.swap(col, pivot);
        r.swap(col, pivot);
        let (pivot_row, pivot_r) = (m[col], r[col]);
        for (row, rhs) in m.iter_mut().zip(r.iter_mut()).skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (x, p) in row.iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            *rhs -= f * pivot_r;
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| m[row][k] * x[k]).sum();
        x[row] = (r[row] - s) / m[row][row];
    }
    x
}

/// The per-group learning rates `eta_k = b_k / a_k` of a selection's chosen groups: the Newton
/// step of each group along the direction it was scored on (the gradient, or Adam's update
/// with [`Direction::Adam`](adapeft_importance::Direction)). Every other parameter gets the
/// median of the chosen rates.
///
/// # Errors
/// [`OptimError::NothingChosen`] for an empty selection, [`OptimError::NoNewtonRate`] for a
/// chosen group whose `b / a` is not positive and finite.
pub fn group_learning_rates(selection: &Selection) -> Result<GroupRates, OptimError> {
    let mut groups = Vec::new();
    for choice in selection.chosen() {
        let (b, a) = (choice.score.b, choice.score.a);
        let eta = b / a;
        if !(eta.is_finite() && eta > 0.0) {
            return Err(OptimError::NoNewtonRate {
                group: choice.score.name.clone(),
                b,
                a,
            });
        }
        groups.push((choice.score.name.clone(), choice.paths.clone(), eta));
    }
    if groups.is_empty() {
        return Err(OptimError::NothingChosen);
    }
    let mut rates: Vec<f64> = groups.iter().map(|g| g.2).collect();
    rates.sort_by(f64::total_cmp);
    let default = rates[rates.len() / 2];
    Ok(GroupRates { default, groups })
}

/// Learning rates per parameter group; see [`group_learning_rates`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRates {
    /// The rate of every parameter outside the groups.
    pub default: f64,
    /// `(name, paths, rate)` per group.
    pub groups: Vec<(String, Vec<String>, f64)>,
}

impl GroupRates {
    /// The rates times `scale`, as burn's per-parameter learning rate.
    pub fn scaled(&self, scale: f64) -> ModuleLearningRate {
        let mut scheduler = ModuleLrScheduler::new(ConstantLr::new(self.default * scale));
        for (_, paths, rate) in &self.groups {
            scheduler = scheduler.with_group(
                ParamGroup::from_paths(paths.clone()),
                ConstantLr::new(rate * scale),
            );
        }
        scheduler.step()
    }
}

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
    optim: O,
    config: GenConfig,
    lr: f64,
    rates: Option<GroupRates>,
    steps: usize,
    /// Whether the next step probes regardless of `lazy_every` (after a clipped proposal).
    probe_next: bool,
    history: Vec<GenProbe>,
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
        let deltas = self.update(module, grads);
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

    /// The update the optimizer would make now at the current rate, per parameter it can
    /// move, from a copy of the optimizer (its state does not advance) and of the gradients
    /// (the real step needs them).
    fn update<M: Module>(
        &self,
        module: &M,
        grads: &GradientsParams,
    ) -> HashMap<ParamId, Tensor<1>> {
        let copied = copy_gradients(grads, module);
        let stepped = self
            .optim
            .clone()
            .step_module(self.learning_rate(), module.clone(), copied);
        let mut collect = Collect {
            out: HashMap::new(),
        };
        stepped.visit(&mut collect);
        let mut deltas = Deltas {
            after: collect.out,
            grads,
            optim: &self.optim,
            path: Vec::new(),
            out: HashMap::new(),
        };
        module.visit(&mut deltas);
        deltas.out
    }

    /// The losses along `deltas` at `range` times the probe multipliers, and the decision.
    fn measure<M, F>(
        &self,
        module: &M,
        deltas: &HashMap<ParamId, Tensor<1>>,
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
        Ok(self.decide(losses))
    }

    /// The decision of one probe, from its losses (every branch documented on [`Gen`]).
    fn decide(&self, losses: Vec<(f64, f64)>) -> GenProbe {
        let lr = self.lr;
        let mut probe = GenProbe {
            step: self.steps,
            lr_before: lr,
            losses,
            b: f64::NAN,
            a: f64::NAN,
            r2: f64::NAN,
            proposal: None,
            rejected: None,
            clipped: false,
            lr_after: lr,
        };
        if probe.losses.iter().any(|(_, l)| !l.is_finite()) {
            probe.rejected = Some(Rejection::NonFinite);
            return probe;
        }
        let first = probe.losses[0].1;
        if probe.losses.iter().all(|(_, l)| *l == first) {
            probe.rejected = Some(Rejection::Flat);
            return probe;
        }
        let fit = fit_quadratic(&probe.losses);
        (probe.b, probe.a, probe.r2) = (fit.b, fit.a, fit.r2);
        // A poor fit first: its coefficients' signs mean nothing.
        probe.rejected = if fit.r2 < self.config.min_r2 {
            Some(Rejection::PoorFit)
        } else if fit.a <= 0.0 {
            Some(Rejection::NonPositiveCurvature)
        } else if fit.b <= 0.0 {
            Some(Rejection::NonPositiveSlope)
        } else {
            None
        };
        if probe.rejected.is_none() {
            let proposal = lr * fit.b / fit.a;
            let m = self.config.max_change;
            let clipped = proposal.clamp(lr / m, lr * m);
            let s = self.config.smoothing;
            probe.proposal = Some(proposal);
            probe.clipped = clipped != proposal;
            probe.lr_after = if probe.clipped {
                clipped
            } else {
                lr.powf(1.0 - s) * proposal.powf(s)
            };
        }
        probe
    }
}

/// A copy of the gradients of `module`'s parameters (burn's container is not `Clone`; its
/// tensors are immutable values, so the copy shares their storage).
pub(crate) fn copy_gradients<M: Module>(grads: &GradientsParams, module: &M) -> GradientsParams {
    struct Copy<'a> {
        from: &'a GradientsParams,
        to: GradientsParams,
    }
    impl ModuleVisitor for Copy<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.from.get::<D>(param.id) {
                self.to.register::<D>(param.id, g);
            }
        }
    }
    let mut copy = Copy {
        from: grads,
        to: GradientsParams::new(),
    };
    module.visit(&mut copy);
    copy.to
}

/// Flattened parameter values by id.
struct Collect {
    out: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().inner();
        let n = value.shape().num_elements();
        self.out.insert(param.id, value.reshape([n]));
    }
}

/// `after - before` for every parameter the step can have changed (it has a gradient and
/// the optimizer may update it).
struct Deltas<'a, O> {
    after: HashMap<ParamId, Tensor<1>>,
    grads: &'a GradientsParams,
    optim: &'a O,
    path: Vec<String>,
    out: HashMap<ParamId, Tensor<1>>,
}

impl<O: StepOptimizer> ModuleVisitor for Deltas<'_, O> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.grads.get::<D>(param.id).is_none()
            || !self.optim.may_update(&param.id, &self.path.join("."))
        {
            return;
        }
        let Some(after) = self.after.remove(&param.id) else {
            return;
        };
        let before = param.val().inner();
        let n = before.shape().num_elements();
        let delta = after - before.reshape([n]);
        self.out.insert(param.id, delta);
    }
}

/// The module at `w + t delta`, every parameter without gradient tracking.
struct Along<'a> {
    deltas: &'a HashMap<ParamId, Tensor<1>>,
    t: f64,
}

impl ModuleMapper for Along<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let delta = self.deltas.get(&param.id).cloned();
        let t = self.t;
        param.map(|w| {
            let shape = w.shape();
            let w = w.inner();
            match delta {
                Some(d) if t != 0.0 => w + d.mul_scalar(t).reshape(shape),
                _ => w,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::{ModuleOptimizer, SgdConfig};

    fn gen_at(lr: f64, config: GenConfig) -> Gen<ModuleOptimizer> {
        Gen::new(SgdConfig::new().init(), lr, config).unwrap()
    }

    fn losses(f: impl Fn(f64) -> f64, points: ProbePoints) -> Vec<(f64, f64)> {
        points.multipliers().iter().map(|&t| (t, f(t))).collect()
    }

    #[test]
    fn the_fit_recovers_a_quadratic_exactly() {
        for points in [ProbePoints::Three, ProbePoints::Five] {
            let fit = fit_quadratic(&losses(|t| 2.0 - 0.3 * t + 0.8 * t * t / 2.0, points));
            assert!((fit.c - 2.0).abs() < 1e-12);
            assert!((fit.b - 0.3).abs() < 1e-12);
            assert!((fit.a - 0.8).abs() < 1e-12);
            assert!((fit.r2 - 1.0).abs() < 1e-12);
        }
        // A quartic is not a quadratic: R^2 drops below 1.
        let fit = fit_quadratic(&losses(|t| t.powi(4) - 0.1 * t, ProbePoints::Five));
        assert!(fit.r2 < 0.99, "{fit:?}");
    }

    #[test]
    fn a_trusted_fit_moves_the_rate_towards_newton_smoothed_and_clipped() {
        // Newton multiplier B / A = 0.3 / 0.2 = 1.5: within the clip, so lr -> lr * 1.5^0.5.
        let g = gen_at(0.1, GenConfig::new());
        let p = g.decide(losses(|t| 1.0 - 0.3 * t + 0.1 * t * t, ProbePoints::Five));
        assert_eq!(p.rejected, None);
        assert!((p.proposal.unwrap() - 0.15).abs() < 1e-12);
        assert!((p.lr_after - 0.1 * 1.5f64.sqrt()).abs() < 1e-12);
        assert!(!p.clipped);
        // Multiplier 100: clipped to 2, without smoothing.
        let p = g.decide(losses(|t| 1.0 - 1.0 * t + 0.005 * t * t, ProbePoints::Five));
        assert!((p.proposal.unwrap() - 10.0).abs() < 1e-9);
        assert!(p.clipped);
        assert!((p.lr_after - 0.2).abs() < 1e-12);
        // A multiplier of 1/100 is clipped to 1/2.
        let g = gen_at(0.1, GenConfig::new());
        let p = g.decide(losses(|t| 1.0 - 0.01 * t + 0.5 * t * t, ProbePoints::Three));
        assert!((p.lr_after - 0.05).abs() < 1e-12);
    }

    #[test]
    fn every_rejection_keeps_the_rate() {
        let g = gen_at(0.1, GenConfig::new());
        let cases: [(Vec<(f64, f64)>, Rejection); 5] = [
            (
                losses(
                    |t| if t > 0.5 { f64::NAN } else { 1.0 - t },
                    ProbePoints::Five,
                ),
                Rejection::NonFinite,
            ),
            (losses(|_| 1.0, ProbePoints::Five), Rejection::Flat),
            (
                losses(|t| 1.0 - 0.3 * t - 0.2 * t * t, ProbePoints::Five),
                Rejection::NonPositiveCurvature,
            ),
            (
                losses(|t| 1.0 + 0.3 * t + 0.2 * t * t, ProbePoints::Five),
                Rejection::NonPositiveSlope,
            ),
            (
                // Convex with a positive slope, but a kink, not a parabola.
                losses(
                    |t| 1.0 - 0.05 * t + (t.abs() - 0.5).abs(),
                    ProbePoints::Five,
                ),
                Rejection::PoorFit,
            ),
        ];
        for (points, why) in cases {
            let p = g.decide(points);
            assert_eq!(p.rejected, Some(why), "{p:?}");
            assert_eq!(p.lr_after, 0.1);
            assert_eq!(p.proposal, None);
        }
    }
}
