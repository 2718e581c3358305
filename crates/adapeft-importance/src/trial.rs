//! Held-out trials: what a short run of some groups actually does to the loss on batches the
//! run never saw, at a few learning rates. The selector uses them to recommend the rate a
//! subset should train at and to size `Budget::Auto` (`adapeft-selection`).

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::error::EstimateError;
use crate::objective::LossFn;
use crate::params::grouping::Groups;
use crate::passes::Passes;
use crate::passes::vector::ParamVec;
use crate::score::Cost;
use crate::short_run::{ShortRun, ShortRunValue, run_observed};

/// One held-out trial: the groups trained together at one learning rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The run's learning rate (groups with a rate of their own ran at it).
    pub learning_rate: f64,
    /// The mean held-out loss at the model's weights.
    pub before: f64,
    /// The mean held-out loss after the run; `None` when the run diverged (a non-finite
    /// training or held-out loss).
    pub after: Option<f64>,
}

impl Trial {
    /// `before - after`: positive when the run lowered the held-out loss (`None` when it
    /// diverged).
    pub fn reduction(&self) -> Option<f64> {
        self.after.map(|after| self.before - after)
    }

    /// Whether the run lowered the held-out loss (it did not diverge, and its reduction is
    /// positive).
    pub fn lowered(&self) -> bool {
        self.reduction().is_some_and(|r| r > 0.0)
    }
}

/// The trials of one set of groups at several rates, and what they cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trials {
    /// One trial per rate, in the order given.
    pub trials: Vec<Trial>,
    /// Passes and seconds of all of them.
    pub cost: Cost,
}

impl Trials {
    /// The trial with the lowest held-out loss after its run, if any lowered it below the
    /// loss before (the first of equals).
    pub fn best(&self) -> Option<Trial> {
        self.trials
            .iter()
            .filter(|t| t.lowered())
            .min_by(|a, b| {
                a.after
                    .expect("a reduction has an after")
                    .total_cmp(&b.after.expect("a reduction has an after"))
            })
            .copied()
    }
}

/// Trains every group of `groups` together on `batches` for `run.steps` steps of
/// `run.optimizer`, once per rate of `rates` (a group with a rate of its own,
/// [`Groups::with_learning_rate`], at that one), each run from the model's weights, and
/// measures the mean loss on `held_out` after each. The model is not changed.
///
/// Costs `rates.len() * run.steps` backward passes on `batches` and
/// `(rates.len() + 1) * held_out.len()` forward passes.
///
/// ```
/// use adapeft_importance::{discover, Grouping, ShortRun, held_out_trials};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let model = LinearConfig::new(4, 2).init(&device);
/// let loss = |m: &Linear, x: &Tensor<2>| (m.forward(x.clone()) - 1.0).square().mean();
/// let train = [Tensor::<2>::ones([8, 4], &device)];
/// let held_out = [Tensor::<2>::ones([8, 4], &device).mul_scalar(0.9)];
/// let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
/// let run = ShortRun::new().with_steps(5);
/// let trials = held_out_trials(&model, &train, &held_out, &groups, &run, &[1e-3, 1e-2], &loss)?;
/// assert_eq!(trials.trials.len(), 2);
/// let best = trials.best().expect("one of them learns");
/// assert!(best.after.unwrap() < best.before);
/// # Ok::<(), adapeft_importance::EstimateError>(())
/// ```
///
/// # Errors
/// No batch or no held-out batch, a rate that is not finite and positive, an invalid run
/// setting, or a loss that is not a scalar or not finite at the model's weights. A run that
/// diverges is not an error: its trial has no `after`.
pub fn held_out_trials<M, B, F>(
    model: &M,
    batches: &[B],
    held_out: &[B],
    groups: &Groups,
    run: &ShortRun,
    rates: &[f64],
    loss: &F,
) -> Result<Trials, EstimateError>
where
    M: Module,
    F: LossFn<M, B>,
{
    run.validate()?;
    if let Some(&rate) = rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
        return Err(EstimateError::InvalidSetting {
            name: "learning_rate",
            value: rate.to_string(),
            reason: "a trial's rate must be finite and positive",
        });
    }
    let mut train = Passes::new(model, batches, loss, groups)?;
    let mut held = Passes::new(model, held_out, loss, groups)?;
    let zero: ParamVec = vec![None; groups.params().len()];
    let before = held.loss_at(&zero, |loss| EstimateError::NonFiniteLoss {
        batch: 0,
        loss,
    })?;
    let mut trials = Vec::with_capacity(rates.len());
    for &rate in rates {
        // The first-order allocation's run: the same steps, without the trapezoid rule's
        // extra gradient (the credits are not used).
        let config = ShortRun {
            learning_rate: rate,
            value: ShortRunValue::Allocation,
            ..run.clone()
        };
        let after = match run_observed(&mut train, &config, None, "held-out trial", |_, _| {}) {
            Ok((_, state)) => match held.loss_at(&state.delta, |loss| {
                EstimateError::NonFiniteLoss { batch: 0, loss }
            }) {
                Ok(after) => Some(after),
                Err(EstimateError::NonFiniteLoss { .. }) => None,
                Err(e) => return Err(e),
            },
            Err(EstimateError::NonFiniteRun { .. }) => None,
            Err(e) => return Err(e),
        };
        trials.push(Trial {
            learning_rate: rate,
            before,
            after,
        });
    }
    let mut cost = train.finish_cost();
    let held_cost = held.finish_cost();
    cost.forward_passes += held_cost.forward_passes;
    cost.backward_passes += held_cost.backward_passes;
    Ok(Trials { trials, cost })
}
