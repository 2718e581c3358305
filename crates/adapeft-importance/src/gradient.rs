//! Beyond the paper: curvature from finite differences of gradients (Hessian-vector products),
//! for every group at once with random signs.

use burn::config::Config;
use burn::module::Module;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::curvature::{CrossAccumulator, Curvature};
use crate::direction::{Direction, SlopeEstimate, first_order};
use crate::error::EstimateError;
use crate::estimator::{AnyEstimator, Estimator};
use crate::grouping::Groups;
use crate::objective::LossFn;
use crate::probe::{ParamVec, Workspace, combine, dots, per_group, relative_step, restrict};
use crate::score::{GroupScore, Quality, Scores, Unreliable};
use crate::shard::EstimateIn;

/// Which Hessian-vector products the gradient probe takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ProbeMode {
    /// [`ProbeMode::Exact`] when it costs no more than the random signs (`K <= probes`),
    /// [`ProbeMode::RandomSigns`] otherwise (the default).
    #[default]
    Auto,
    /// One product per group with `v = g_k`: `a_k = g_k^T (H g_k)_k` up to the
    /// finite-difference error. `2K` backward passes: the reference.
    Exact,
    /// `probes` products with `v = sum_k s_k g_k` and independent random signs `s_k = +-1`:
    /// `s_k g_k^T (H v)_k = a_k + sum_{l != k} s_k s_l g_k^T H_kl g_l` is unbiased for `a_k`;
    /// the mean over probes estimates every `a_k` at once with `2 * probes` backward passes,
    /// whatever `K`, and the spread over probes gives its standard error.
    RandomSigns,
}

/// Curvature from central differences of gradients:
/// `H v ~ (G(w + e v) - G(w - e v)) / (2e)`.
///
/// Costs `1 + 2P` backward passes per batch with `P = probes` random-sign probes, independent
/// of the number of groups `K` (or `1 + 2K` in exact mode). `b_k = G_k . g_k` comes from the
/// gradient at `w`.
///
/// The difference step is relative: `e ||v|| = step * ||w_v||`, where `w_v` are the weights
/// being moved (the probed group, or every group), so the move is `step` (default `5e-3`, about
/// the cube root of float32's epsilon, which balances truncation and rounding error) of their
/// norm; for all-zero weights `e ||v|| = step`.
///
/// A burn [`Config`]: `GradientProbe::new().with_probes(32)`, or a struct literal with
/// `..Default::default()`; `Display` writes it as JSON.
///
/// ```
/// use adapeft_importance::{DEFAULT_PROBES, GradientProbe, ProbeMode};
/// let probe = GradientProbe { probes: 32, mode: ProbeMode::RandomSigns, ..Default::default() };
/// assert_eq!(probe.seed, 0);
/// assert_eq!(GradientProbe::new().probes, DEFAULT_PROBES);
/// assert_eq!(GradientProbe::new().with_seed(7).seed, 7);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct GradientProbe {
    /// Number of random-sign probes `P` (default [`DEFAULT_PROBES`]; at least 2 in
    /// random-sign mode).
    #[config(default = "DEFAULT_PROBES")]
    pub probes: usize,
    /// Exact, random signs, or the cheaper of the two (default).
    #[config(default = "ProbeMode::Auto")]
    pub mode: ProbeMode,
    /// Relative finite-difference step (default `5e-3`).
    #[config(default = 5e-3)]
    pub step: f64,
    /// Seed of the random signs (default 0).
    #[config(default = 0)]
    pub seed: u64,
    /// The update direction (default [`Direction::Gradient`]).
    #[config(default = "Direction::Gradient")]
    pub direction: Direction,
    /// How `b_k^2` is estimated (default [`SlopeEstimate::Plain`]).
    #[config(default = "SlopeEstimate::Plain")]
    pub slope: SlopeEstimate,
}

/// The largest number of groups for which random-sign probing also estimates the cross-group
/// [`Curvature`] (it keeps `2 K^2` running sums; the exact mode always returns it).
pub const MAX_CURVATURE_GROUPS: usize = 1024;

/// The default number of random-sign probes of a [`GradientProbe`]: with [`ProbeMode::Auto`],
/// models of up to this many groups are probed exactly, at the cost of
/// `1 + 2 * DEFAULT_PROBES` backward passes at most.
pub const DEFAULT_PROBES: usize = 16;

impl Default for GradientProbe {
    fn default() -> Self {
        GradientProbe::new()
    }
}

impl GradientProbe {
    /// The exact mode (one Hessian-vector product per group).
    pub fn exact() -> Self {
        GradientProbe {
            mode: ProbeMode::Exact,
            ..Default::default()
        }
    }

    /// Whether the exact mode runs for `k` groups.
    pub fn runs_exact(&self, k: usize) -> bool {
        match self.mode {
            ProbeMode::Exact => true,
            ProbeMode::RandomSigns => false,
            ProbeMode::Auto => k <= self.probes,
        }
    }

    fn validate(&self, k: usize) -> Result<(), EstimateError> {
        if !(self.step.is_finite() && self.step > 0.0) {
            return Err(EstimateError::InvalidSetting {
                name: "step",
                value: self.step.to_string(),
                reason: "must be finite and positive",
            });
        }
        if !self.runs_exact(k) && self.probes < 2 {
            return Err(EstimateError::InvalidSetting {
                name: "probes",
                value: self.probes.to_string(),
                reason: "random-sign probing needs at least 2 probes for a standard error",
            });
        }
        Ok(())
    }
}

/// `(G(w + e v) - G(w - e v)) / 2e` dotted with `dir`, per parameter (every grouped parameter
/// is tracked, so the product is read for every group, not only those `v` moves).
fn hvp_dots<M, B, F>(
    ws: &mut Workspace<'_, M, B, F>,
    dir: &ParamVec,
    v: &ParamVec,
    e: f64,
    group: &str,
) -> Result<Vec<f64>, EstimateError>
where
    M: Module,
    F: LossFn<M, B>,
{
    let (dp, dm) = ws.dots_either_side(dir, v, e, group)?;
    Ok(dp
        .iter()
        .zip(&dm)
        .map(|(p, m)| (p - m) / (2.0 * e))
        .collect())
}

impl Estimator for GradientProbe {
    fn estimate_with<M, B, F>(
        &self,
        model: &M,
        batches: &[B],
        groups: &Groups,
        loss: &F,
    ) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        self.estimate_in(Workspace::new(model, batches, loss, groups)?)
    }
}

impl EstimateIn for GradientProbe {
    fn estimate_in<M, B, F>(&self, mut ws: Workspace<'_, M, B, F>) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let groups = ws.groups;
        let k = groups.len();
        self.validate(k)?;
        let fo = first_order(&mut ws, self.direction, self.slope)?;
        let g_norm2 = per_group(groups, &dots(&fo.dir, &fo.dir));
        let w = ws.weights();
        let w_norm2 = per_group(groups, &dots(&w, &w));
        let relative_step = |w2: f64, v2: f64| relative_step(self.step, w2, v2);

        let mut a = vec![0.0; k];
        let mut quality = vec![Quality::Exact; k];
        let mut extra: Vec<Option<Unreliable>> = vec![None; k];
        let curvature;
        if self.runs_exact(k) {
            // Each product `H g_k` is dotted with every group's direction: the row
            // `A_lk = g_l . (H g_k)_l` at no extra pass (zero for a zero direction).
            let mut rows = vec![vec![0.0; k]; k];
            for (g, group) in groups.groups.iter().enumerate() {
                if g_norm2[g] <= 0.0 {
                    extra[g] = Some(Unreliable::ZeroDirection);
                    continue;
                }
                let e = relative_step(w_norm2[g], g_norm2[g]);
                let v = restrict(groups, g, &fo.dir, 1.0);
                let per_param = hvp_dots(&mut ws, &fo.dir, &v, e, &group.name)?;
                rows[g] = per_group(groups, &per_param);
                a[g] = rows[g][g];
            }
            curvature = Some(Curvature::from_exact_rows(&rows));
        } else {
            let v_norm2: f64 = g_norm2.iter().sum();
            let w_all: f64 = w_norm2.iter().sum();
            let mut rng = StdRng::seed_from_u64(self.seed);
            let mut samples = vec![Vec::with_capacity(self.probes); k];
            let mut cross = (k <= MAX_CURVATURE_GROUPS).then(|| CrossAccumulator::new(k));
            if v_norm2 > 0.0 {
                let e = relative_step(w_all, v_norm2);
                for _ in 0..self.probes {
                    let signs: Vec<f64> = (0..k)
                        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
                        .collect();
                    let v = combine(groups, &fo.dir, &signs);
                    let per_param = hvp_dots(&mut ws, &fo.dir, &v, e, "all groups")?;
                    let h = per_group(groups, &per_param);
                    for (g, hv) in h.iter().enumerate() {
                        samples[g].push(signs[g] * hv);
                    }
                    if let Some(cross) = cross.as_mut() {
                        cross.add(&signs, &h);
                    }
                }
            }
            curvature = cross.and_then(CrossAccumulator::finish);
            for g in 0..k {
                if g_norm2[g] <= 0.0 {
                    extra[g] = Some(Unreliable::ZeroDirection);
                    continue;
                }
                let p = samples[g].len() as f64;
                let mean = samples[g].iter().sum::<f64>() / p;
                let var = samples[g].iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (p - 1.0);
                let se = (var / p).sqrt();
                a[g] = mean;
                quality[g] = Quality::StdErr(se);
                if se > mean.abs() {
                    extra[g] = Some(Unreliable::Noisy { std_err: se });
                }
            }
        }

        let scores = groups
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                GroupScore::from_quadratic(
                    group.name.clone(),
                    group.numel,
                    fo.b[g],
                    a[g],
                    fo.b_squared[g],
                    quality[g],
                    extra[g],
                )
            })
            .collect();
        Ok(Scores {
            estimator: AnyEstimator::from(self.clone()).to_string(),
            groups: scores,
            cost: ws.finish_cost(),
            loss: Some(fo.loss),
            curvature,
        })
    }
}
