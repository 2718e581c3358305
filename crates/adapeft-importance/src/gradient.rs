//! Beyond the paper: curvature from finite differences of gradients (Hessian-vector products),
//! for every group at once with random signs.

use std::fmt;

use burn::config::Config;
use burn::module::Module;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::curvature::{CrossAccumulator, Curvature};
use crate::direction::{Direction, SlopeEstimate, first_order};
use crate::error::EstimateError;
use crate::estimator::{EstimateIn, Estimator, label};
use crate::objective::LossFn;
use crate::params::grouping::Groups;
use crate::passes::Passes;
use crate::passes::vector::{ParamVec, combine, dots, per_group, relative_step, restrict};
use crate::score::{GroupScore, Quality, Scores, Unreliable};

/// Which Hessian-vector products the gradient probe takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ProbeMode {
    /// [`ProbeMode::Exact`] when it is affordable, [`ProbeMode::RandomSigns`] otherwise (the
    /// default). The exact mode is affordable when its `2K` backward passes per batch cost no
    /// more than the random signs' `2P`, or fit in [`GradientProbe::exact_budget`] (default
    /// [`DEFAULT_EXACT_BUDGET`]: every model of up to 64 groups is probed exactly); see
    /// [`GradientProbe::runs_exact`].
    #[default]
    Auto,
    /// One product per group with `v = g_k`: `a_k = g_k^T (H g_k)_k` up to the
    /// finite-difference error. `2K` backward passes: the reference.
    Exact,
    /// `probes` products with `v = sum_k s_k g_k` and independent random signs `s_k = +-1`:
    /// `s_k g_k^T (H v)_k = a_k + sum_{l != k} s_k s_l g_k^T H_kl g_l` is unbiased for `a_k`;
    /// the mean over probes estimates every `a_k` at once with `2 * probes` backward passes,
    /// whatever `K`. How the signs are drawn is [`GradientProbe::pattern`].
    RandomSigns,
}

/// How the random-sign probes of a [`GradientProbe`] draw their signs.
///
/// Every probe is `v = sum_k s_k g_k`; the estimate of `a_k` is the mean over probes of
/// `s_k g_k . (H v)_k = a_k + sum_{l != k} s_k s_l A_kl`, so its error is the mean of the cross
/// terms `s_k s_l A_kl` (`A_kl = g_k^T H_kl g_l`, see [`Curvature`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SignPattern {
    /// Independent signs in every probe: the cross terms average out at the rate `1 / P`,
    /// `Var(a_k) = (1/P) sum_{l != k} A_kl^2`. A small group beside a large one it is coupled to
    /// (a bias beside its weight) is swamped by their cross term. The spread over the probes
    /// (an i.i.d. sample) gives the standard error.
    Independent,
    /// Orthogonal (Walsh-Hadamard) sign patterns (the default): the `P` probes form
    /// `R` replicates of `N` probes (`N` a power of two, see [`GradientProbe::replicates`]).
    /// Within a replicate, group `k` takes the signs `s_pk = r_k H_p,c(k)` of column
    /// `c(k) = k mod N` of the `N x N` Sylvester-Hadamard matrix (`H_pc = (-1)^popcount(p & c)`),
    /// times a random sign `r_k` drawn afresh for each replicate. Columns are orthogonal, so the
    /// cross term of two groups in different columns cancels *exactly* in the replicate's
    /// mean; only groups in the same column alias, and then with the random sign `r_k r_l`, so
    /// the estimate stays unbiased:
    /// `a_k(replicate) = a_k + sum_{l != k, c(l) = c(k)} r_k r_l A_kl`,
    /// `Var(a_k) = (1/R) sum_{l != k, c(l) = c(k)} A_kl^2`.
    ///
    /// Which groups share a column decides the error. Against independent signs at the same
    /// `P` the variance changes from `(1/P) sum_{l != k} A_kl^2` to
    /// `(N/P) sum_{l aliased with k} A_kl^2`, the same in expectation over a random assignment;
    /// the design gains by keeping strongly coupled groups apart. Two rules do that:
    /// - the first replicate deals the groups out in model order (`c(k) = k mod N`): a weight
    ///   and its bias, or the tensors of one layer, never share a column while the layer has at
    ///   most `N` groups (per-tensor groups list a layer's tensors together);
    /// - the later replicates sort the groups by the size of their curvature so far and fill
    ///   the columns in that order, so that a column holds groups of similar `|a_k|` (since
    ///   `|A_kl| <= sqrt(a_k a_l)` for a positive semi-definite Hessian, the error a group
    ///   `l` brings to `a_k` is at most `sqrt(a_l / a_k)` relative: small groups alias with
    ///   small ones, not with the large ones that swamp them), still keeping the tensors of one
    ///   module apart where a column has room.
    ///
    /// An assignment chosen from earlier replicates keeps each replicate unbiased (its signs
    /// `r_k` are fresh) and the replicates uncorrelated. When `K <= N`, every cross term
    /// cancels and each replicate equals the exact mode up to the finite-difference error.
    ///
    /// The probes within a replicate are not independent (their mean cancels terms their
    /// spread contains), so the standard error is the spread of the `R` replicate means,
    /// which are independent and unbiased: `se = sd(replicates) / sqrt(R)`, with `R - 1`
    /// degrees of freedom (with the default 4 replicates, `a_k +- 2 se` covers the truth about
    /// 86% of the time, a t-interval's rate; measured 85 to 89% on deep networks). Like the
    /// independent signs' standard error, it measures the error of the signs, not the
    /// finite-difference error every mode shares (about `1e-4` relative). With `N = 1`
    /// (fewer probes than `2 * replicates`) this is [`SignPattern::Independent`].
    #[default]
    Orthogonal,
}

/// Curvature from central differences of gradients:
/// `H v ~ (G(w + e v) - G(w - e v)) / (2e)`.
///
/// Costs `1 + 2P` backward passes per batch with `P = probes` random-sign probes, independent
/// of the number of groups `K` (at most `1 + 2P` with [`SignPattern::Orthogonal`], which runs
/// whole replicates only), or `1 + 2K` in exact mode. `b_k = G_k . g_k` comes from the
/// gradient at `w`. [`ProbeMode::Auto`] (the default) runs the exact mode up to
/// [`GradientProbe::exact_budget`].
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GradientProbe {
    /// Number of random-sign probes `P` (default [`DEFAULT_PROBES`]; at least 2 in
    /// random-sign mode).
    pub probes: usize,
    /// Exact, random signs, or the cheaper of the two (default).
    pub mode: ProbeMode,
    /// Relative finite-difference step (default `5e-3`).
    pub step: f64,
    /// Seed of the random signs (default 0).
    pub seed: u64,
    /// How the random signs are drawn (default [`SignPattern::Orthogonal`]).
    pub pattern: SignPattern,
    /// The least number of independent replicates `R` of the orthogonal design, whose spread
    /// is the standard error (default 4, at least 2). The replicate size is
    /// `N = min(the largest power of two <= P / replicates, the smallest power of two >= K)`,
    /// and `R = floor(P / N)` replicates run: `R N <= P` probes (the rest, fewer than `N`,
    /// are not run; [`Scores::cost`] counts what ran). More replicates give a steadier
    /// standard error, a larger `N` cancels more cross terms.
    pub replicates: usize,
    /// The most backward passes per batch that [`ProbeMode::Auto`] spends on the exact mode
    /// (`2K`) beyond the random signs' `2P` (default [`DEFAULT_EXACT_BUDGET`]).
    pub exact_budget: usize,
    /// The update direction (default [`Direction::Gradient`]).
    pub direction: Direction,
    /// How `b_k^2` is estimated (default [`SlopeEstimate::Plain`]).
    pub slope: SlopeEstimate,
}

/// The largest number of groups for which random-sign probing also estimates the cross-group
/// [`Curvature`] (it keeps `2 K^2` running sums; the exact mode always returns it).
pub const MAX_CURVATURE_GROUPS: usize = 1024;

/// The default number of random-sign probes `P` of a [`GradientProbe`]
/// (`1 + 2P` backward passes per batch).
pub const DEFAULT_PROBES: usize = 16;

/// The default [`GradientProbe::exact_budget`]: with [`ProbeMode::Auto`], models of up to 64
/// groups are probed exactly, at `1 + 2K <= 129` backward passes per batch. Random signs,
/// even with orthogonal patterns, leave groups whose own curvature is small beside their
/// coupling to others uncertain (`docs/algorithm.md`, section 6); the exact mode has no such
/// error, and below a few dozen groups its cost is a few times that of 16 probes. Set it to
/// `0` for the cheaper of the two modes only.
pub const DEFAULT_EXACT_BUDGET: usize = 128;

impl Default for GradientProbe {
    fn default() -> Self {
        GradientProbe::new()
    }
}

// The `Config` shape by hand rather than by `derive(Config)`: burn's derive cannot give a
// field a serde default, and settings saved before `pattern`, `replicates` and `exact_budget`
// existed must still parse (`#[serde(default)]` fills a missing field from `new()`).
impl Config for GradientProbe {}

impl fmt::Display for GradientProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&burn::config::config_to_json(self))
    }
}

impl GradientProbe {
    /// The default settings (see each field).
    pub fn new() -> Self {
        GradientProbe {
            probes: DEFAULT_PROBES,
            mode: ProbeMode::Auto,
            step: 5e-3,
            seed: 0,
            pattern: SignPattern::Orthogonal,
            replicates: 4,
            exact_budget: DEFAULT_EXACT_BUDGET,
            direction: Direction::Gradient,
            slope: SlopeEstimate::Plain,
        }
    }

    setters! {
        /// Sets [`GradientProbe::probes`].
        with_probes: probes: usize;
        /// Sets [`GradientProbe::mode`].
        with_mode: mode: ProbeMode;
        /// Sets [`GradientProbe::step`].
        with_step: step: f64;
        /// Sets [`GradientProbe::seed`].
        with_seed: seed: u64;
        /// Sets [`GradientProbe::pattern`].
        with_pattern: pattern: SignPattern;
        /// Sets [`GradientProbe::replicates`].
        with_replicates: replicates: usize;
        /// Sets [`GradientProbe::exact_budget`].
        with_exact_budget: exact_budget: usize;
        /// Sets [`GradientProbe::direction`].
        with_direction: direction: Direction;
        /// Sets [`GradientProbe::slope`].
        with_slope: slope: SlopeEstimate;
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

    /// Whether the exact mode runs for `k` groups: always in [`ProbeMode::Exact`], never in
    /// [`ProbeMode::RandomSigns`], and in [`ProbeMode::Auto`] when `k <= probes` (exact costs
    /// no more) or `2k <= exact_budget`.
    ///
    /// ```
    /// use adapeft_importance::GradientProbe;
    /// let probe = GradientProbe::new();
    /// assert!(probe.runs_exact(39));
    /// assert!(!probe.runs_exact(65));
    /// assert!(!probe.clone().with_exact_budget(0).runs_exact(17));
    /// assert!(probe.with_exact_budget(0).runs_exact(16));
    /// ```
    pub fn runs_exact(&self, k: usize) -> bool {
        match self.mode {
            ProbeMode::Exact => true,
            ProbeMode::RandomSigns => false,
            ProbeMode::Auto => k <= self.probes || 2 * k <= self.exact_budget,
        }
    }

    /// The random-sign design for `k` groups: `(N, R)`, replicates of `N` probes
    /// (see [`SignPattern`]).
    fn design(&self, k: usize) -> (usize, usize) {
        let block = match self.pattern {
            SignPattern::Independent => 1,
            SignPattern::Orthogonal => {
                let room = (self.probes / self.replicates.max(1)).max(1);
                let floor_pow2 = 1usize << room.ilog2();
                floor_pow2.min(k.max(1).next_power_of_two())
            }
        };
        (block, self.probes / block)
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
        if self.pattern == SignPattern::Orthogonal && self.replicates < 2 {
            return Err(EstimateError::InvalidSetting {
                name: "replicates",
                value: self.replicates.to_string(),
                reason: "orthogonal sign patterns need at least 2 replicates for a standard error",
            });
        }
        Ok(())
    }
}

/// `(G(w + e v) - G(w - e v)) / 2e` dotted with `dir`, per parameter (every grouped parameter
/// is tracked, so the product is read for every group, not only those `v` moves).
fn hvp_dots<M, B, F>(
    passes: &mut Passes<'_, M, B, F>,
    dir: &ParamVec,
    v: &ParamVec,
    e: f64,
    group: &str,
) -> Result<Vec<f64>, EstimateError>
where
    M: Module,
    F: LossFn<M, B>,
{
    let (dp, dm) = passes.dots_either_side(dir, v, e, group)?;
    Ok(dp
        .iter()
        .zip(&dm)
        .map(|(p, m)| (p - m) / (2.0 * e))
        .collect())
}

/// Columns of the orthogonal design from pilot curvatures: the groups in decreasing order of
/// `|a_k|` fill the columns one after the other (`ceil(K / N)` each), so that a column holds
/// groups of similar curvature; a group skips a column that already holds a tensor of its own
/// module (same path up to the last `.`) while another column has room.
fn sorted_columns(groups: &Groups, pilot: &[f64], block: usize) -> Vec<usize> {
    let k = pilot.len();
    let capacity = k.div_ceil(block);
    let parent = |g: usize| {
        let name = &groups.groups()[g].name;
        name.rsplit_once('.')
            .map_or(name.as_str(), |(p, _)| p)
            .to_string()
    };
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&x, &y| pilot[y].total_cmp(&pilot[x]));
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); block];
    let mut cols = vec![0; k];
    for &g in &order {
        let open: Vec<usize> = (0..block)
            .filter(|&c| members[c].len() < capacity)
            .collect();
        let mine = parent(g);
        let c = open
            .iter()
            .copied()
            .find(|&c| members[c].iter().all(|&m| parent(m) != mine))
            .unwrap_or(open[0]);
        members[c].push(g);
        cols[g] = c;
    }
    cols
}

/// The Sylvester-Hadamard sign `H_pc = (-1)^popcount(p & c)`: for a power of two `N`, the
/// columns `c < N` over the rows `p < N` are orthogonal.
fn hadamard(p: usize, c: usize) -> f64 {
    if (p & c).count_ones().is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

impl Estimator for GradientProbe {}

impl EstimateIn for GradientProbe {
    fn name(&self) -> &'static str {
        "GradientProbe"
    }

    fn estimate_in<M, B, F>(&self, mut passes: Passes<'_, M, B, F>) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let groups = passes.groups;
        let k = groups.len();
        self.validate(k)?;
        let fo = first_order(&mut passes, self.direction, self.slope)?;
        let g_norm2 = per_group(groups, &dots(&fo.dir, &fo.dir));
        let w = passes.weights();
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
            for (g, group) in groups.groups().iter().enumerate() {
                if g_norm2[g] <= 0.0 {
                    extra[g] = Some(Unreliable::ZeroDirection);
                    continue;
                }
                let e = relative_step(w_norm2[g], g_norm2[g]);
                let v = restrict(groups, g, &fo.dir, 1.0);
                let per_param = hvp_dots(&mut passes, &fo.dir, &v, e, &group.name)?;
                rows[g] = per_group(groups, &per_param);
                a[g] = rows[g][g];
            }
            curvature = Some(Curvature::from_exact_rows(&rows));
        } else {
            let v_norm2: f64 = g_norm2.iter().sum();
            let w_all: f64 = w_norm2.iter().sum();
            let mut rng = StdRng::seed_from_u64(self.seed);
            let (block, replicates) = self.design(k);
            // One sample per replicate: the mean of `s_k h_k` over its `block` probes.
            let mut samples = vec![Vec::with_capacity(replicates); k];
            let mut cross =
                (k <= MAX_CURVATURE_GROUPS).then(|| CrossAccumulator::with_block(k, block));
            if v_norm2 > 0.0 {
                let e = relative_step(w_all, v_norm2);
                // The first replicate deals the groups out in model order; the later ones
                // group them by the size of their curvature so far (see `SignPattern`).
                let mut cols: Vec<usize> = (0..k).map(|g| g % block).collect();
                for rep in 0..replicates {
                    if rep > 0 && k > block {
                        let pilot: Vec<f64> = samples
                            .iter()
                            .map(|s: &Vec<f64>| s.iter().sum::<f64>().abs())
                            .collect();
                        cols = sorted_columns(groups, &pilot, block);
                    }
                    let r: Vec<f64> = (0..k)
                        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
                        .collect();
                    let mut sums = vec![0.0; k];
                    for p in 0..block {
                        let signs: Vec<f64> = r
                            .iter()
                            .enumerate()
                            .map(|(g, r)| r * hadamard(p, cols[g]))
                            .collect();
                        let v = combine(groups, &fo.dir, &signs);
                        let per_param = hvp_dots(&mut passes, &fo.dir, &v, e, "all groups")?;
                        let h = per_group(groups, &per_param);
                        for (g, hv) in h.iter().enumerate() {
                            sums[g] += signs[g] * hv;
                        }
                        if let Some(cross) = cross.as_mut() {
                            cross.add(&signs, &h);
                        }
                    }
                    for (g, sum) in sums.into_iter().enumerate() {
                        samples[g].push(sum / block as f64);
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
            .groups()
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
            estimator: label(self),
            groups: scores,
            cost: passes.finish_cost(),
            loss: Some(fo.loss),
            curvature,
        })
    }
}
