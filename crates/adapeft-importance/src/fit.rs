//! The one quadratic fit of the project: a least-squares parabola through probed losses.
//!
//! [`ForwardProbe`](crate::ForwardProbe) fits each group's losses along its direction with the
//! loss at the model's own weights known exactly ([`Intercept::Known`]); the GeN learning
//! rate (`adapeft-optim`) fits the losses along the optimizer's update, every one of them
//! measured ([`Intercept::Free`]). Both read the same [`QuadraticFit`].

use nalgebra::{DMatrix, DVector};

/// What is known of the fitted curve at `t = 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Intercept {
    /// Nothing: `c` is fitted with `B` and `A`.
    Free,
    /// The curve passes through `(0, c)`: only `B` and `A` are fitted, and the point `(0, c)`
    /// counts in R^2 as one more (exactly fitted) observation.
    Known(f64),
}

/// A quadratic `L(t) = c - B t + A t^2 / 2` fitted to `(t, loss)` points.
///
/// `B` is the first-order decrease per unit `t` and `A` the curvature, so the minimum along
/// `t` is at `B / A` and the predicted decrease there is `B^2 / 2A`: the quantities AdaPEFT
/// scores groups with and GeN sets its learning rate by.
///
/// ```
/// use adapeft_importance::{Intercept, QuadraticFit};
/// let points: Vec<(f64, f64)> =
///     [-1.0, -0.5, 0.5, 1.0].iter().map(|&t| (t, 2.0 - 0.3 * t + 0.4 * t * t)).collect();
/// let fit = QuadraticFit::fit(&points, Intercept::Free);
/// assert!((fit.c - 2.0).abs() < 1e-12 && (fit.b - 0.3).abs() < 1e-12);
/// assert!((fit.a - 0.8).abs() < 1e-12 && (fit.r2 - 1.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuadraticFit {
    /// The value of the fitted curve at `t = 0`.
    pub c: f64,
    /// The first-order decrease per unit `t`, `B`.
    pub b: f64,
    /// The curvature, `A`.
    pub a: f64,
    /// The fraction of the losses' variance the fit explains (1 when every loss is equal and
    /// fitted exactly).
    pub r2: f64,
}

impl QuadraticFit {
    /// The least-squares fit to `points`. Needs at least three distinct `t` with a free
    /// intercept, two distinct non-zero `t` with a known one; with fewer the system is
    /// singular and the minimum-norm solution is returned (the callers validate their probe
    /// points first).
    pub fn fit(points: &[(f64, f64)], intercept: Intercept) -> Self {
        let known = match intercept {
            Intercept::Free => None,
            Intercept::Known(c) => Some(c),
        };
        // Columns: [1,] -t, t^2 / 2; the unknowns [c,] B, A.
        let cols = if known.is_some() { 2 } else { 3 };
        let n = points.len();
        let mut x = DMatrix::<f64>::zeros(n, cols);
        let mut y = DVector::<f64>::zeros(n);
        for (i, &(t, loss)) in points.iter().enumerate() {
            let row = [1.0, -t, 0.5 * t * t];
            let row = if known.is_some() { &row[1..] } else { &row[..] };
            for (j, v) in row.iter().enumerate() {
                x[(i, j)] = *v;
            }
            y[i] = loss - known.unwrap_or(0.0);
        }
        let solution = x
            .svd(true, true)
            .solve(&y, 1e-12)
            .unwrap_or_else(|_| DVector::zeros(cols));
        let (c, b, a) = match known {
            Some(c) => (c, solution[0], solution[1]),
            None => (solution[0], solution[1], solution[2]),
        };
        let curve = |t: f64| c - b * t + 0.5 * a * t * t;
        let observed: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .chain(known.map(|c| (0.0, c)))
            .collect();
        let mean = observed.iter().map(|p| p.1).sum::<f64>() / observed.len().max(1) as f64;
        let (mut ss_res, mut ss_tot) = (0.0, 0.0);
        for &(t, loss) in &observed {
            ss_res += (loss - curve(t)).powi(2);
            ss_tot += (loss - mean).powi(2);
        }
        // Equal losses: a perfect fit (up to the solver's rounding) explains them all.
        let negligible = 1e-20 * (1.0 + mean * mean) * observed.len() as f64;
        let r2 = if ss_tot > 0.0 {
            1.0 - ss_res / ss_tot
        } else if ss_res <= negligible {
            1.0
        } else {
            0.0
        };
        QuadraticFit { c, b, a, r2 }
    }

    /// The minimiser `B / A` along `t` (`None` unless `A > 0`).
    pub fn newton_step(&self) -> Option<f64> {
        (self.a > 0.0).then(|| self.b / self.a)
    }
}

/// [`QuadraticFit::fit`] with a free intercept.
pub fn fit_quadratic(points: &[(f64, f64)]) -> QuadraticFit {
    QuadraticFit::fit(points, Intercept::Free)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parabola(ts: &[f64], c: f64, b: f64, a: f64) -> Vec<(f64, f64)> {
        ts.iter()
            .map(|&t| (t, c - b * t + 0.5 * a * t * t))
            .collect()
    }

    #[test]
    fn recovers_an_exact_quadratic_with_either_intercept() {
        let points = parabola(&[-0.2, -0.1, 0.1, 0.2], 0.0, 1.5, 3.0);
        for intercept in [Intercept::Free, Intercept::Known(0.0)] {
            let fit = QuadraticFit::fit(&points, intercept);
            assert!((fit.a - 3.0).abs() < 1e-9, "{intercept:?}: {fit:?}");
            assert!((fit.b - 1.5).abs() < 1e-9, "{intercept:?}: {fit:?}");
            assert!(fit.c.abs() < 1e-9 && (fit.r2 - 1.0).abs() < 1e-12);
        }
        let five = parabola(&[-1.0, -0.5, 0.0, 0.5, 1.0], 2.0, 0.3, 0.8);
        let three = parabola(&[-1.0, 0.0, 1.0], 2.0, 0.3, 0.8);
        for points in [five, three] {
            let fit = fit_quadratic(&points);
            assert!((fit.c - 2.0).abs() < 1e-12 && (fit.b - 0.3).abs() < 1e-12);
            assert!((fit.a - 0.8).abs() < 1e-12 && (fit.r2 - 1.0).abs() < 1e-12);
            assert!((fit.newton_step().unwrap() - 0.375).abs() < 1e-12);
        }
    }

    #[test]
    fn a_known_intercept_is_not_refitted() {
        // Data from c = 1 with noise; the known intercept pins c exactly.
        let points = [(-1.0, 1.6), (-0.5, 1.2), (0.5, 0.9), (1.0, 1.05)];
        let fit = QuadraticFit::fit(&points, Intercept::Known(1.0));
        assert_eq!(fit.c, 1.0);
        let free = fit_quadratic(&points);
        assert!(free.c != 1.0);
    }

    #[test]
    fn non_quadratic_data_has_low_r2() {
        let noise = [(-2.0, 1.0), (-1.0, -1.0), (1.0, -1.0), (2.0, 1.0e-3)];
        assert!(QuadraticFit::fit(&noise, Intercept::Known(0.0)).r2 < 0.9);
        let quartic: Vec<(f64, f64)> = [-1.0, -0.5, 0.0, 0.5, 1.0]
            .iter()
            .map(|&t: &f64| (t, t.powi(4) - 0.1 * t))
            .collect();
        assert!(fit_quadratic(&quartic).r2 < 0.99);
    }

    #[test]
    fn flat_losses_fit_exactly_with_no_curvature() {
        let fit = fit_quadratic(&[(-1.0, 3.0), (0.0, 3.0), (1.0, 3.0)]);
        assert!(fit.a.abs() < 1e-12 && fit.b.abs() < 1e-12);
        assert_eq!(fit.r2, 1.0);
        assert_eq!(fit.newton_step(), None);
    }
}
