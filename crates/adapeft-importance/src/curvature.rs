//! Cross-group curvature `A_kl = g_k^T H_kl g_l`: the matrix whose diagonal is the per-group
//! `a_k` and whose off-diagonal entries say how much two groups' one-step gains overlap
//! (`docs/algorithm.md`, section 6).

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use serde::{Deserialize, Serialize};

/// The symmetric matrix `A_kl = g_k^T H_kl g_l` over the groups of a [`Scores`](crate::Scores)
/// (indices into `scores.groups`), from the gradient probe.
///
/// - The exact probe computes `H g_k` for every group `k`; dotting it with every `g_l` gives
///   the whole row at no extra pass. The matrix is the symmetrised
///   `(A_kl + A_lk) / 2` (the two differ only by finite-difference error); there are no
///   standard errors.
/// - Random signs estimate `A_kl` by the mean over probes of `(s_k h_l + s_l h_k) / 2`, where
///   `h_l = g_l . (H v)_l` and `v = sum_m s_m g_m`; this is unbiased for every entry. Each entry
///   keeps its standard error ([`Curvature::std_err`]: the spread over probes with independent
///   signs, over replicates with orthogonal ones, see [`SignPattern`](crate::SignPattern)), and
///   the off-diagonal entries are
///   shrunk towards zero by the positive-part James-Stein factor
///   `max(0, 1 - se^2 / A_kl^2)`: an estimate within one standard error of zero is set to zero,
///   a clear one is kept almost whole. The diagonal (the `a_k` of the scores) is not shrunk.
///
/// ```
/// use adapeft_importance::{discover, Estimator, GradientProbe, Grouping};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let model = LinearConfig::new(4, 2).init(&device);
/// let x = Tensor::<2>::ones([8, 4], &device);
/// let loss = |m: &Linear, x: &Tensor<2>| m.forward(x.clone()).square().mean();
///
/// let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
/// let scores = GradientProbe::exact().estimate_with(&model, &[x], &groups, &loss).unwrap();
/// let a = scores.curvature().expect("the gradient probe computes the cross terms");
/// assert_eq!(a.len(), 2);
/// assert_eq!(a.get(0, 1), a.get(1, 0));
/// assert_eq!(a.get(1, 1), scores.groups[1].a);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curvature {
    n: usize,
    /// Row-major `n x n`, symmetric.
    values: Vec<f64>,
    /// Row-major standard errors (random signs only).
    std_errs: Option<Vec<f64>>,
}

impl Curvature {
    /// From exact rows, `rows[k][l] = g_l . (H g_k)_l` (what the exact gradient probe
    /// measures, or a matrix known in closed form), symmetrised as `(A_kl + A_lk) / 2`, without
    /// standard errors.
    ///
    /// # Panics
    /// When the rows do not form a square matrix.
    pub fn from_exact_rows(rows: &[Vec<f64>]) -> Self {
        let n = rows.len();
        assert!(
            rows.iter().all(|r| r.len() == n),
            "the curvature needs a square matrix ({n} rows)"
        );
        let mut values = vec![0.0; n * n];
        for k in 0..n {
            for l in 0..n {
                values[k * n + l] = 0.5 * (rows[k][l] + rows[l][k]);
            }
        }
        Curvature {
            n,
            values,
            std_errs: None,
        }
    }

    /// From random-sign estimates: the mean and standard error of every entry (row-major,
    /// already symmetric); the off-diagonal means are shrunk (see the type's docs).
    pub(crate) fn from_estimates(n: usize, means: Vec<f64>, std_errs: Vec<f64>) -> Self {
        let mut values = means;
        for k in 0..n {
            for l in 0..n {
                if k != l {
                    let i = k * n + l;
                    values[i] *= shrinkage(values[i], std_errs[i]);
                }
            }
        }
        Curvature {
            n,
            values,
            std_errs: Some(std_errs),
        }
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `A_kl` (`= A_lk`).
    ///
    /// # Panics
    /// When `k` or `l` is not below [`Curvature::len`].
    pub fn get(&self, k: usize, l: usize) -> f64 {
        assert!(
            k < self.n && l < self.n,
            "index ({k}, {l}) out of {}",
            self.n
        );
        self.values[k * self.n + l]
    }

    /// The standard error of the unshrunk estimate of `A_kl` (random signs), `None` for the
    /// exact probe.
    ///
    /// # Panics
    /// When `k` or `l` is not below [`Curvature::len`].
    pub fn std_err(&self, k: usize, l: usize) -> Option<f64> {
        assert!(
            k < self.n && l < self.n,
            "index ({k}, {l}) out of {}",
            self.n
        );
        self.std_errs.as_ref().map(|s| s[k * self.n + l])
    }

    /// The diagonal `a_k`.
    pub fn diagonal(&self) -> Vec<f64> {
        (0..self.n).map(|k| self.get(k, k)).collect()
    }

    /// The sub-matrix over `subset` (row-major `|S| x |S|`).
    pub fn restrict(&self, subset: &[usize]) -> Vec<f64> {
        subset
            .iter()
            .flat_map(|&k| subset.iter().map(move |&l| self.get(k, l)))
            .collect()
    }

    /// The cosine `A_kl / sqrt(|A_kk A_ll|)` (how strongly two groups' steps move the loss
    /// together; `0` when a diagonal entry is zero).
    pub fn coupling(&self, k: usize, l: usize) -> f64 {
        let d = (self.get(k, k) * self.get(l, l)).abs().sqrt();
        if d > 0.0 { self.get(k, l) / d } else { 0.0 }
    }
}

impl Curvature {
    /// The joint one-step value of training the groups in `subset` together, each at its own
    /// rate: `max_eta (b_S . eta - 1/2 eta^T A_S eta) = 1/2 b_S^T A_S^-1 b_S`
    /// (`docs/algorithm.md`, section 6), where `b` holds every group's `b_k`.
    ///
    /// Unlike the additive `sum_k b_k^2 / 2a_k`, it counts overlapping gains once: two groups
    /// that move the outputs the same way are worth one of them. Negative curvature is handled
    /// the saddle-free way (Dauphin et al., 2014): `A_S` is replaced by `|A_S|`, its absolute
    /// eigenvalues, floored at [`JOINT_EIGEN_FLOOR`] times the largest `|A_kk|` of the subset,
    /// so a direction of negative curvature is valued by the size of its curvature instead of
    /// making the value unbounded. `0` for an empty subset or an all-zero curvature.
    ///
    /// # Panics
    /// When an index of `subset` is not below [`Curvature::len`] or `b` is shorter.
    pub fn joint_value(&self, b: &[f64], subset: &[usize]) -> f64 {
        match self.abs_solve(b, subset) {
            Some(eta) => 0.5 * subset.iter().zip(&eta).map(|(&k, e)| b[k] * e).sum::<f64>(),
            None => 0.0,
        }
    }

    /// The per-group rates that reach [`Curvature::joint_value`]'s optimum with every rate
    /// non-negative: the update `-sum_k eta_k g_k` moves each group along its own direction.
    ///
    /// The unconstrained optimum `eta = |A_S|^-1 b_S` can give a group a negative rate when
    /// another group of the subset already explains its gain (two groups moving the outputs
    /// the same way): such groups get rate `0` and the others are solved again without them,
    /// and a dropped group whose gain still rises at the new rates is added back (an active
    /// set, as in Lawson and Hanson's non-negative least squares), so the rates maximise the
    /// joint model over `eta >= 0`. Returns one rate per entry of `subset`, in
    /// its order; all `0` when no group has positive `b`.
    ///
    /// # Panics
    /// When an index of `subset` is not below [`Curvature::len`] or `b` is shorter.
    ///
    /// ```
    /// use adapeft_importance::Curvature;
    /// // Two groups, uncoupled: each rate is b_k / a_k.
    /// let a = Curvature::from_exact_rows(&[vec![2.0, 0.0], vec![0.0, 4.0]]);
    /// assert_eq!(a.joint_rates(&[1.0, 2.0], &[0, 1]), vec![0.5, 0.5]);
    /// ```
    pub fn joint_rates(&self, b: &[f64], subset: &[usize]) -> Vec<f64> {
        let n = subset.len();
        let mut active: Vec<usize> = (0..n).collect();
        let mut rates = vec![0.0; n];
        // Lawson-Hanson style: drop the most negative rate and re-solve; once every active
        // rate is positive, add back the dropped group whose gain still rises fastest
        // (`b_k - (A eta)_k > 0`), if any. The cap guards against cycling on ties.
        for _ in 0..4 * n.max(1) {
            let s: Vec<usize> = active.iter().map(|&i| subset[i]).collect();
            let eta = self.abs_solve(b, &s).unwrap_or_else(|| vec![0.0; s.len()]);
            if let Some((worst, _)) = eta
                .iter()
                .enumerate()
                .filter(|(_, e)| **e <= 0.0)
                .min_by(|x, y| x.1.total_cmp(y.1))
            {
                active.remove(worst);
                continue;
            }
            rates = vec![0.0; n];
            for (&i, e) in active.iter().zip(&eta) {
                rates[i] = *e;
            }
            let rising = (0..n)
                .filter(|i| !active.contains(i))
                .map(|i| {
                    let k = subset[i];
                    let pull: f64 = (0..n).map(|j| self.get(k, subset[j]) * rates[j]).sum();
                    (i, b[k] - pull)
                })
                .filter(|(_, g)| *g > 1e-12 * b.iter().fold(0.0f64, |m, x| m.max(x.abs())))
                .max_by(|x, y| x.1.total_cmp(&y.1));
            match rising {
                Some((i, _)) => {
                    active.push(i);
                    active.sort_unstable();
                }
                None => break,
            }
        }
        rates
    }

    /// `|A_S|^-1 b_S` over the subset (absolute eigenvalues, floored at
    /// [`JOINT_EIGEN_FLOOR`] times the largest `|A_kk|`), or `None` for an empty subset or an
    /// all-zero curvature.
    fn abs_solve(&self, b: &[f64], subset: &[usize]) -> Option<Vec<f64>> {
        let n = subset.len();
        let floor = JOINT_EIGEN_FLOOR
            * subset
                .iter()
                .map(|&k| self.get(k, k).abs())
                .fold(0.0, f64::max);
        if n == 0 || floor == 0.0 {
            return None;
        }
        let m = DMatrix::from_fn(n, n, |i, j| self.get(subset[i], subset[j]));
        let eig = SymmetricEigen::new(m);
        let rhs = DVector::from_iterator(n, subset.iter().map(|&k| b[k]));
        let mut proj = eig.eigenvectors.transpose() * rhs;
        for (p, l) in proj.iter_mut().zip(eig.eigenvalues.iter()) {
            *p /= l.abs().max(floor);
        }
        Some((eig.eigenvectors * proj).iter().copied().collect())
    }
}

/// The floor of `|A_S|`'s eigenvalues in [`Curvature::joint_value`], relative to the subset's
/// largest `|A_kk|` (a damping that keeps near-singular subsets finite).
pub const JOINT_EIGEN_FLOOR: f64 = 1e-3;

/// The positive-part James-Stein factor `max(0, 1 - se^2 / x^2)`.
fn shrinkage(x: f64, se: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    (1.0 - (se * se) / (x * x)).max(0.0)
}

/// Running sums of the random-sign estimates of every entry (mean and standard error without
/// keeping the samples: `3 K^2` numbers).
///
/// A sample is the mean over a block of probes (one replicate of the orthogonal design,
/// [`SignPattern::Orthogonal`](crate::SignPattern::Orthogonal); a single probe with independent
/// signs): blocks are independent and unbiased, the probes within one are not.
pub(crate) struct CrossAccumulator {
    n: usize,
    block: usize,
    in_block: usize,
    pending: Vec<f64>,
    count: usize,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl CrossAccumulator {
    /// One sample per probe (independent signs).
    #[cfg(test)]
    pub(crate) fn new(n: usize) -> Self {
        CrossAccumulator::with_block(n, 1)
    }

    /// One sample per `block` consecutive probes.
    pub(crate) fn with_block(n: usize, block: usize) -> Self {
        CrossAccumulator {
            n,
            block: block.max(1),
            in_block: 0,
            pending: vec![0.0; n * n],
            count: 0,
            sum: vec![0.0; n * n],
            sum_sq: vec![0.0; n * n],
        }
    }

    /// One probe: signs `s` and `h_l = g_l . (H v)_l`.
    pub(crate) fn add(&mut self, signs: &[f64], h: &[f64]) {
        let n = self.n;
        for k in 0..n {
            for l in 0..n {
                self.pending[k * n + l] += 0.5 * (signs[k] * h[l] + signs[l] * h[k]);
            }
        }
        self.in_block += 1;
        if self.in_block == self.block {
            let b = self.block as f64;
            for ((s, sq), x) in self
                .sum
                .iter_mut()
                .zip(&mut self.sum_sq)
                .zip(&mut self.pending)
            {
                let mean = *x / b;
                *s += mean;
                *sq += mean * mean;
                *x = 0.0;
            }
            self.in_block = 0;
            self.count += 1;
        }
    }

    /// The curvature from at least two samples, or `None`.
    pub(crate) fn finish(self) -> Option<Curvature> {
        if self.count < 2 {
            return None;
        }
        let p = self.count as f64;
        let means: Vec<f64> = self.sum.iter().map(|s| s / p).collect();
        let std_errs = self
            .sum_sq
            .iter()
            .zip(&means)
            .map(|(sq, m)| {
                let var = ((sq - p * m * m) / (p - 1.0)).max(0.0);
                (var / p).sqrt()
            })
            .collect();
        Some(Curvature::from_estimates(self.n, means, std_errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_rows_are_symmetrised() {
        let c = Curvature::from_exact_rows(&[vec![2.0, 1.0], vec![3.0, 4.0]]);
        assert_eq!(c.get(0, 1), 2.0);
        assert_eq!(c.get(1, 0), 2.0);
        assert_eq!(c.diagonal(), vec![2.0, 4.0]);
        assert_eq!(c.std_err(0, 1), None);
        assert_eq!(c.restrict(&[1, 0]), vec![4.0, 2.0, 2.0, 2.0]);
        assert!((c.coupling(0, 1) - 2.0 / 8f64.sqrt()).abs() < 1e-15);
    }

    /// With the signs of every probe known, the accumulated entries are the plain sample means
    /// and standard errors of `(s_k h_l + s_l h_k) / 2 = A_kl + s_k s_l (A_kk + A_ll) / 2`, and
    /// the off-diagonal entry is shrunk by `1 - se^2 / mean^2` (to zero within one standard
    /// error).
    #[test]
    fn estimates_are_sample_means_with_shrinkage() {
        let a = [[2.0, 0.5], [0.5, 1.0]];
        let patterns = [[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]];
        for repeats in [1usize, 16] {
            let mut acc = CrossAccumulator::new(2);
            for _ in 0..repeats {
                for s in patterns {
                    let h: Vec<f64> = (0..2)
                        .map(|l| (0..2).map(|m| a[l][m] * s[m]).sum())
                        .collect();
                    acc.add(&s, &h);
                }
            }
            let c = acc.finish().expect("several probes");
            // The off-diagonal samples are 0.5 +- 1.5, half each.
            let p = (4 * repeats) as f64;
            let se = (1.5f64 * 1.5 * p / (p - 1.0) / p).sqrt();
            assert!((c.std_err(0, 1).unwrap() - se).abs() < 1e-12);
            let want = 0.5 * (1.0 - se * se / 0.25f64).max(0.0);
            assert!(
                (c.get(0, 1) - want).abs() < 1e-12,
                "{} vs {want}",
                c.get(0, 1)
            );
            assert_eq!(c.get(0, 1), c.get(1, 0));
            // The diagonal is the plain mean: 2 + s_0 s_1 0.5, averaging to 2.
            assert!((c.get(0, 0) - 2.0).abs() < 1e-12);
        }
        // Blocks of the two orthogonal patterns `(r0, r1)` and `(r0, -r1)`: each block's mean is
        // exact, so every sample is the truth and the standard error is zero.
        let mut acc = CrossAccumulator::with_block(2, 2);
        for r in [[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]] {
            for s in [[r[0], r[1]], [r[0], -r[1]]] {
                let h: Vec<f64> = (0..2)
                    .map(|l| (0..2).map(|m| a[l][m] * s[m]).sum())
                    .collect();
                acc.add(&s, &h);
            }
        }
        let c = acc.finish().expect("three blocks");
        for (k, row) in a.iter().enumerate() {
            for (l, &want) in row.iter().enumerate() {
                assert!((c.get(k, l) - want).abs() < 1e-15);
                assert!(c.std_err(k, l).unwrap() < 1e-15);
            }
        }
        assert_eq!(shrinkage(0.1, 0.2), 0.0);
        assert!((shrinkage(1.0, 0.1) - 0.99).abs() < 1e-12);
        assert!(CrossAccumulator::new(2).finish().is_none());
    }
}
