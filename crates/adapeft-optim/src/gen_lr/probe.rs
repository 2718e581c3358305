//! What one GeN probe measured and decided.

use adapeft_importance::fit_quadratic;
use serde::{Deserialize, Serialize};

use super::config::GenConfig;

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

/// The decision of one probe at step `step` and learning rate `lr`, from its `(t, loss)`
/// points: every branch is documented on [`Gen`](super::Gen).
pub(crate) fn decide(
    step: usize,
    lr: f64,
    config: &GenConfig,
    losses: Vec<(f64, f64)>,
) -> GenProbe {
    let mut probe = GenProbe {
        step,
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
    probe.rejected = if fit.r2 < config.min_r2 {
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
        let m = config.max_change;
        let clipped = proposal.clamp(lr / m, lr * m);
        let s = config.smoothing;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen_lr::ProbePoints;

    /// A decider at learning rate `lr` with the default settings.
    struct Decider(f64);

    impl Decider {
        fn decide(&self, losses: Vec<(f64, f64)>) -> GenProbe {
            decide(0, self.0, &GenConfig::new(), losses)
        }
    }

    fn losses(f: impl Fn(f64) -> f64, points: ProbePoints) -> Vec<(f64, f64)> {
        points.multipliers().iter().map(|&t| (t, f(t))).collect()
    }

    #[test]
    fn a_trusted_fit_moves_the_rate_towards_newton_smoothed_and_clipped() {
        // Newton multiplier B / A = 0.3 / 0.2 = 1.5: within the clip, so lr -> lr * 1.5^0.5.
        let g = Decider(0.1);
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
        let g = Decider(0.1);
        let p = g.decide(losses(|t| 1.0 - 0.01 * t + 0.5 * t * t, ProbePoints::Three));
        assert!((p.lr_after - 0.05).abs() < 1e-12);
    }

    #[test]
    fn every_rejection_keeps_the_rate() {
        let g = Decider(0.1);
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
