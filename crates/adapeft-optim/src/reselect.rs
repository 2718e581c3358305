//! [`Reselect`]: re-running the selection during training, with its history.

use std::collections::BTreeSet;
use std::fmt;

use adapeft_selection::Selection;
use burn::module::{Module, ParamId};
use burn::optim::GradientsParams;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use serde::{Deserialize, Serialize};

use crate::error::OptimError;
use crate::masked::{Masked, StepOptimizer};

/// Periodic re-selection: a [`Masked`] optimizer whose subset is chosen again every `every`
/// steps, with the history of every selection.
///
/// The training loop stays in your hands, because a selection needs a batch and can fail:
///
/// ```
/// use adapeft_importance::{Baseline, Objective};
/// use adapeft_optim::{Masked, Reselect};
/// use adapeft_selection::{AdaPeftConfig, Budget};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::optim::{AdamWConfig, GradientsParams};
/// use burn::tensor::{Device, Distribution, Tensor};
///
/// #[derive(burn::module::Module, Debug)]
/// struct Model {
///     body: Linear,
///     head: Linear,
/// }
/// impl Objective<Tensor<2>> for Model {
///     fn loss(&self, x: &Tensor<2>) -> Tensor<1> {
///         (self.head.forward(self.body.forward(x.clone()).tanh()) - 1.0).square().mean()
///     }
/// }
///
/// let device = Device::flex().autodiff();
/// let model = Model {
///     body: LinearConfig::new(8, 16).init(&device),
///     head: LinearConfig::new(16, 1).init(&device),
/// };
/// let batches: Vec<Tensor<2>> = (0..6)
///     .map(|_| Tensor::random([32, 8], Distribution::Normal(0.0, 1.0), &device))
///     .collect();
/// let budget = Budget::Fraction(0.2);
/// let config = AdaPeftConfig::new().with_estimator(Baseline::Fisher); // something cheap
///
/// let first = config.select(&model, &batches[..1], budget)?;
/// let mut trainer = Reselect::new(Masked::new(AdamWConfig::new().build(), &first), &first, 3)?;
/// let mut model = first.apply(model);
/// for batch in &batches {
///     let grads = GradientsParams::from_grads(model.loss(batch).backward(), &model);
///     model = trainer.step(1e-3, model, grads);
///     if trainer.due() {
///         let selection = config.select(&model, std::slice::from_ref(batch), budget)?;
///         model = trainer.update(model, selection);
///     }
/// }
/// assert_eq!(trainer.history().entries().len(), 3); // the first selection and two more
/// println!("{}", trainer.history());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Reselect::update`] applies the new selection to the model (the dropped groups stop
/// requiring gradients, the new ones start), frees the optimizer state of the dropped
/// parameters and lets the new ones start from fresh state; kept parameters keep theirs.
#[derive(Debug, Clone)]
pub struct Reselect {
    pub(crate) optim: Masked,
    pub(crate) every: usize,
    pub(crate) steps: usize,
    pub(crate) history: SelectionHistory,
}

impl Reselect {
    /// Trains with `optim` (whose mask is replaced by `initial`'s), re-selecting every
    /// `every` steps; `initial` is the history's first entry, at step 0.
    ///
    /// # Errors
    /// [`OptimError::InvalidSetting`] when `every` is 0.
    pub fn new(mut optim: Masked, initial: &Selection, every: usize) -> Result<Self, OptimError> {
        if every == 0 {
            return Err(OptimError::InvalidSetting {
                name: "every",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        optim.set_mask_unchecked(initial);
        let mut history = SelectionHistory::default();
        history.push(0, initial, None);
        Ok(Reselect {
            optim,
            every,
            steps: 0,
            history,
        })
    }

    /// One optimizer step of the current subset.
    pub fn step<M: Module>(
        &mut self,
        lr: impl Into<ModuleLearningRate>,
        module: M,
        grads: GradientsParams,
    ) -> M {
        self.steps += 1;
        self.optim.step(lr, module, grads)
    }

    /// Whether a re-selection is due after the steps taken so far (every `every` steps).
    pub fn due(&self) -> bool {
        self.steps > 0 && self.steps.is_multiple_of(self.every)
    }

    /// Switches to `selection`: applies it to `module` (require-grad by path), frees the
    /// optimizer state of dropped parameters, and records it in the history at the current
    /// step.
    pub fn update<M: Module>(&mut self, module: M, selection: Selection) -> M {
        let change = self.optim.set_mask(&selection, &module);
        self.history.push(self.steps, &selection, Some(change));
        selection.apply(module)
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The selections so far, the initial one first.
    pub fn history(&self) -> &SelectionHistory {
        &self.history
    }

    /// The masked optimizer.
    pub fn optimizer(&self) -> &Masked {
        &self.optim
    }

    /// Re-select every this many steps.
    pub fn every(&self) -> usize {
        self.every
    }
}

/// [`Gen`](crate::Gen) can wrap a `Reselect`: its steps count as the trainer's steps, and
/// [`Reselect::update`] stays reachable through [`Gen::optimizer_mut`](crate::Gen::optimizer_mut).
impl StepOptimizer for Reselect {
    fn step_module<M: Module>(
        &mut self,
        lr: ModuleLearningRate,
        module: M,
        grads: GradientsParams,
    ) -> M {
        self.step(lr, module, grads)
    }

    fn may_update(&self, id: &ParamId, path: &str) -> bool {
        self.optim.may_update(id, path)
    }
}

/// One selection in a [`SelectionHistory`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The training step after which it was made (0 for the initial selection).
    pub step: usize,
    /// Names of the chosen groups, in model order.
    pub chosen: Vec<String>,
    /// Trainable parameters.
    pub trainable_params: u64,
    /// The predicted loss reduction of the chosen subset.
    pub predicted_reduction: f64,
    /// Parameter paths that stopped training at this selection.
    pub dropped: Vec<String>,
    /// Parameter paths that started training at this selection.
    pub added: Vec<String>,
    /// Seconds the estimator took.
    pub seconds: f64,
}

/// The selections made during training, to see whether the subset stays the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectionHistory {
    pub(crate) entries: Vec<HistoryEntry>,
}

impl SelectionHistory {
    fn push(&mut self, step: usize, selection: &Selection, change: Option<crate::MaskChange>) {
        let change = change.unwrap_or_default();
        self.entries.push(HistoryEntry {
            step,
            chosen: selection.chosen().map(|c| c.score.name.clone()).collect(),
            trainable_params: selection.trainable_params(),
            predicted_reduction: selection.predicted_reduction(),
            dropped: change.dropped,
            added: change.added,
            seconds: selection.cost().seconds,
        });
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// The Jaccard similarity of the chosen groups of entries `i` and `j` (1 when both are
    /// empty).
    ///
    /// # Panics
    /// When `i` or `j` is out of range.
    pub fn jaccard(&self, i: usize, j: usize) -> f64 {
        let a: BTreeSet<&str> = self.entries[i].chosen.iter().map(String::as_str).collect();
        let b: BTreeSet<&str> = self.entries[j].chosen.iter().map(String::as_str).collect();
        let union = a.union(&b).count();
        if union == 0 {
            return 1.0;
        }
        a.intersection(&b).count() as f64 / union as f64
    }

    /// The mean Jaccard similarity of consecutive selections (1: the subset never changed);
    /// `None` with fewer than two entries.
    pub fn stability(&self) -> Option<f64> {
        let n = self.entries.len();
        (n >= 2).then(|| (1..n).map(|i| self.jaccard(i - 1, i)).sum::<f64>() / (n - 1) as f64)
    }

    /// Groups chosen in every entry.
    pub fn always_chosen(&self) -> Vec<String> {
        let Some(first) = self.entries.first() else {
            return Vec::new();
        };
        first
            .chosen
            .iter()
            .filter(|g| self.entries.iter().all(|e| e.chosen.contains(g)))
            .cloned()
            .collect()
    }
}

impl fmt::Display for SelectionHistory {
    /// One line per selection: step, size, predicted reduction, and what changed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6}  {:>7}  {:>10}  {:>12}  changes",
            "step", "groups", "params", "pred. drop"
        )?;
        for (i, e) in self.entries.iter().enumerate() {
            let changes = if i == 0 {
                "initial".to_string()
            } else if e.added.is_empty() && e.dropped.is_empty() {
                "same".to_string()
            } else {
                format!("+{} -{} tensors", e.added.len(), e.dropped.len())
            };
            writeln!(
                f,
                "{:>6}  {:>7}  {:>10}  {:>12.4e}  {changes}",
                e.step,
                e.chosen.len(),
                e.trainable_params,
                e.predicted_reduction
            )?;
        }
        if let Some(s) = self.stability() {
            writeln!(
                f,
                "mean Jaccard similarity of consecutive selections: {s:.3}"
            )?;
        }
        Ok(())
    }
}
