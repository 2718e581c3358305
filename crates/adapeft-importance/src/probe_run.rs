//! The paper's probe run: the one-step values re-estimated along a short run of the optimizer.

use burn::config::Config;
use burn::module::Module;

use crate::direction::Direction;
use crate::error::EstimateError;
use crate::estimator::{EstimateIn, Estimator, label};
use crate::gradient::GradientProbe;
use crate::objective::LossFn;
use crate::passes::Passes;
use crate::passes::vector::ParamVec;
use crate::score::{Cost, GroupScore, Scores};
use crate::short_run::{RunOptimizer, ShortRun, ShortRunValue, run_observed};

/// The paper's probe run: one short run of the optimizer over every group, and the one-step
/// quadratic values `v_k = b_k^2 / 2a_k` re-estimated at evenly spaced checkpoints of it (the
/// start, the end, and `checkpoints - 2` points between), summed.
///
/// A group whose value at the start says little about what it learns later (a bias that
/// saturates after a few steps, a layer whose gradient grows once the head has adapted) is
/// seen at each stage of the run. On the digits study's oracle benchmark
/// (`docs/digits/oracle.md`, `probe-run`) this has the lowest regret of the single values on
/// the transformer, but costs `steps` training steps plus `checkpoints` exact probes
/// (`checkpoints * (1 + 2K)` backward passes per batch for `K` groups).
///
/// Each [`GroupScore`] has `b`, `a` and the quality figure of the start (the user's
/// weights), `value` the sum of the checkpoints' reliable values, and is unreliable only when
/// every checkpoint found it so (with the start's reason). [`Scores::loss`] is the start's
/// loss; the cost adds the run's and every probe's. The user's model is never changed (the
/// run moves a copy).
///
/// ```
/// use adapeft_importance::{discover, Estimator, Grouping, ProbeRun};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let model = LinearConfig::new(4, 2).init(&device);
/// let x = Tensor::<2>::ones([8, 4], &device);
/// let loss = |m: &Linear, x: &Tensor<2>| (m.forward(x.clone()) - 1.0).square().mean();
///
/// let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
/// let run = ProbeRun::new().with_steps(4).with_checkpoints(2);
/// let scores = run.estimate_with(&model, &[x], &groups, &loss).unwrap();
/// // 4 steps, then 2 exact probes of 2 groups: 2 * (1 + 2 * 2) backward passes.
/// assert_eq!(scores.cost.backward_passes, 4 + 2 * 5);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct ProbeRun {
    /// Optimizer steps of the run (default 15).
    #[config(default = 15)]
    pub steps: usize,
    /// The run's learning rate (default `1e-2`): use the one the chosen subset will train at.
    #[config(default = 1e-2)]
    pub learning_rate: f64,
    /// The optimizer of the run (default Adam with burn's defaults).
    #[config(default = "RunOptimizer::adam()")]
    pub optimizer: RunOptimizer,
    /// Checkpoints probed, evenly spaced from the start to the end of the run (default 3: start,
    /// middle, end; at least 1, and at most `steps + 1`).
    #[config(default = 3)]
    pub checkpoints: usize,
    /// The probe taken at each checkpoint (default: exact, along Adam's first step).
    #[config(default = "GradientProbe::exact().with_direction(Direction::adam())")]
    pub probe: GradientProbe,
}

impl Default for ProbeRun {
    fn default() -> Self {
        ProbeRun::new()
    }
}

impl ProbeRun {
    /// The short run this probe run makes.
    fn run_config(&self) -> ShortRun {
        ShortRun {
            steps: self.steps,
            learning_rate: self.learning_rate,
            optimizer: self.optimizer,
            // The credits are not used: no closing gradient for the trapezoid rule.
            value: ShortRunValue::Allocation,
            held_out: 0,
        }
    }

    /// The steps after which the run is probed (0: the start).
    fn checkpoint_steps(&self) -> Vec<usize> {
        let c = self.checkpoints;
        if c == 1 {
            return vec![0];
        }
        let mut steps: Vec<usize> = (0..c)
            .map(|i| ((i * self.steps) as f64 / (c - 1) as f64).round() as usize)
            .collect();
        steps.dedup();
        steps
    }

    fn validate(&self) -> Result<(), EstimateError> {
        self.run_config().validate()?;
        if self.checkpoints == 0 || self.checkpoints > self.steps + 1 {
            return Err(EstimateError::InvalidSetting {
                name: "checkpoints",
                value: self.checkpoints.to_string(),
                reason: "must be between 1 and steps + 1",
            });
        }
        Ok(())
    }
}

impl Estimator for ProbeRun {}

impl EstimateIn for ProbeRun {
    fn name(&self) -> &'static str {
        "ProbeRun"
    }

    fn estimate_in<M, B, F>(&self, mut passes: Passes<'_, M, B, F>) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        self.validate()?;
        let groups = passes.groups;
        let at = self.checkpoint_steps();
        let mut deltas: Vec<ParamVec> = Vec::with_capacity(at.len());
        if at[0] == 0 {
            deltas.push(vec![None; groups.params().len()]);
        }
        let last = *at.last().expect("at least one checkpoint");
        if last > 0 {
            let config = ShortRun {
                steps: last,
                ..self.run_config()
            };
            run_observed(&mut passes, &config, None, "all groups", |t, state| {
                if at.contains(&t) {
                    deltas.push(state.delta.clone());
                }
            })?;
        }
        let mut cost = passes.finish_cost();
        let mut start: Option<Scores> = None;
        let mut sums = vec![0.0; groups.len()];
        let mut reliable = vec![false; groups.len()];
        for delta in &deltas {
            let probed = passes.model_at(delta);
            let s = self.probe.estimate_in(passes.for_model(&probed)?)?;
            for ((sum, ok), g) in sums.iter_mut().zip(reliable.iter_mut()).zip(&s.groups) {
                if g.is_reliable() {
                    *sum += g.value;
                    *ok = true;
                }
            }
            cost = Cost {
                forward_passes: cost.forward_passes + s.cost.forward_passes,
                backward_passes: cost.backward_passes + s.cost.backward_passes,
                seconds: cost.seconds + s.cost.seconds,
            };
            start.get_or_insert(s);
        }
        let start = start.expect("at least one checkpoint");
        let scores = start
            .groups
            .into_iter()
            .zip(sums.into_iter().zip(reliable))
            .map(|(g, (sum, ok))| GroupScore {
                value: if ok { sum } else { 0.0 },
                unreliable: if ok { None } else { g.unreliable },
                ..g
            })
            .collect();
        Ok(Scores {
            estimator: label(self),
            groups: scores,
            cost,
            loss: start.loss,
            curvature: None,
        })
    }
}
