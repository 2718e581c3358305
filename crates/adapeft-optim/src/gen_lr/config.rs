//! [`GenConfig`] and [`ProbePoints`]: the settings of the GeN learning rate.

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::OptimError;

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

/// Settings of [`Gen`](crate::Gen).
///
/// A burn [`Config`]: `GenConfig::new().with_lazy_every(4)`, or a struct literal with
/// `..Default::default()`.
#[derive(Config, Debug, Copy, PartialEq)]
pub struct GenConfig {
    /// Probe every this many steps (the first step always probes, and so does the step after
    /// a clipped proposal). Default 8.
    ///
    /// Between probes the rate is fixed, so a curvature that grows quickly can make it too
    /// large before the next probe. Per-group rates ([`Gen::with_group_rates`](crate::Gen::with_group_rates))
    /// are most exposed, since each group's Newton step ignores the others: with half of a
    /// small tanh network chosen, 46 of 4,000 random initialisations diverged within the
    /// default 8 steps, and none with a probe at every step (`tests/optim.rs`). Use 1 or 2
    /// when the loss must not rise; a probe costs one update on a copy and a few forward passes.
    #[config(default = 8)]
    pub lazy_every: usize,
    /// The probe points. Default [`ProbePoints::Five`].
    #[config(default = "ProbePoints::Five")]
    pub points: ProbePoints,
    /// The smallest R^2 of the quadratic fit that is trusted. Default 0.9.
    #[config(default = 0.9)]
    pub min_r2: f64,
    /// Weight of a new estimate in the (geometric) running learning rate, in `(0, 1]`:
    /// `lr <- lr^(1 - s) * proposal^s`. Default 0.5; 1 jumps straight to the proposal.
    #[config(default = 0.5)]
    pub smoothing: f64,
    /// The proposal is clipped to `[lr / max_change, lr * max_change]`. Default 2.
    #[config(default = 2.0)]
    pub max_change: f64,
    /// How many times a proposal clipped at `lr / max_change` (a rate too large) is probed
    /// again before the step is taken, and how many times a poor fit is measured again on a
    /// range half as wide. Default 4.
    #[config(default = 4)]
    pub max_reprobes: usize,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig::new()
    }
}

impl GenConfig {
    pub(crate) fn validate(&self) -> Result<(), OptimError> {
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
