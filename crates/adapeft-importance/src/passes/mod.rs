//! The evaluation engine every estimator runs on: forward and backward passes of the
//! user's loss at perturbed weights `w + delta`, counted, without ever changing the model.
//!
//! It is named for what it does. Every pass an estimator makes over the data goes through
//! [`Passes`] (the loss at `w + delta`, per-batch and mean gradients there, the two sides
//! of a Hessian-vector product), and [`Passes`] counts them into the [`Cost`] the scores
//! report. It used to be called the "probing engine" (`probe.rs`), but "probe" already names
//! the probe estimators (`ForwardProbe`, `GradientProbe`, `NewtonProbe`), `ProbeRun`, and
//! GeN's probes in `adapeft-optim`; here the word is left to them.
//!
//! - `mod.rs`: [`Passes`], the model, batches, loss and groups, and every evaluation;
//! - `perturb.rs`: the burn walks that build the module at `w + delta` and read values or
//!   gradients back (by `ParamId`, so they need no path);
//! - `vector.rs`: [`ParamVec`](vector::ParamVec), one flattened tensor per parameter, and
//!   its algebra by group (dots, restriction, combination);
//! - `worker.rs`: the engine's side of data-parallel estimation, the only place it calls a
//!   [`Collective`](crate::Collective): the same means summed across workers.

pub(crate) mod perturb;
pub(crate) mod vector;
pub(crate) mod worker;

use std::collections::HashMap;
use std::time::Instant;

use burn::module::{Module, ParamId};
use burn::tensor::Tensor;

use self::perturb::{Collect, Perturb};
use self::vector::{ParamVec, dots, mean_of, sum_of};
use self::worker::Worker;
use crate::error::EstimateError;
use crate::objective::LossFn;
use crate::params::grouping::Groups;
use crate::score::Cost;

/// The model, the batches and the loss, with counters of what was evaluated: every forward
/// and backward pass of an estimator goes through one of these.
///
/// `pub` only because the sealed estimator trait names it; the module is private, so it is
/// not reachable from outside the crate.
pub struct Passes<'a, M, B, F> {
    model: &'a M,
    batches: &'a [B],
    loss: &'a F,
    pub(crate) groups: &'a Groups,
    index: HashMap<ParamId, usize>,
    /// Whether each parameter is in a group (and so needs gradients).
    grouped: Vec<bool>,
    pub(crate) cost: Cost,
    started: Instant,
    /// Where these passes sit in a data-parallel estimation, if they do.
    worker: Option<Worker<'a>>,
}

impl<'a, M, B, F> Passes<'a, M, B, F>
where
    M: Module,
    F: LossFn<M, B>,
{
    pub(crate) fn new(
        model: &'a M,
        batches: &'a [B],
        loss: &'a F,
        groups: &'a Groups,
    ) -> Result<Self, EstimateError> {
        let passes = Passes::unchecked(model, batches, loss, groups)?;
        passes.check_batches(0)?;
        Ok(passes)
    }

    /// Asks the loss whether the model can take each batch, the first being global batch
    /// `first`.
    fn check_batches(&self, first: usize) -> Result<(), EstimateError> {
        for (i, batch) in self.batches.iter().enumerate() {
            self.loss
                .check(self.model, batch)
                .map_err(|reason| EstimateError::InvalidBatch {
                    batch: first + i,
                    reason,
                })?;
        }
        Ok(())
    }

    /// [`Passes::new`] without asking the model about the batches (already asked).
    fn unchecked(
        model: &'a M,
        batches: &'a [B],
        loss: &'a F,
        groups: &'a Groups,
    ) -> Result<Self, EstimateError> {
        if batches.is_empty() {
            return Err(EstimateError::NoBatch);
        }
        if groups.groups().iter().all(|g| g.numel == 0) {
            return Err(EstimateError::NoGroups);
        }
        let index = groups
            .params()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect();
        let grouped = groups.grouped_params();
        Ok(Passes {
            model,
            batches,
            loss,
            groups,
            index,
            grouped,
            cost: Cost::default(),
            started: Instant::now(),
            worker: None,
        })
    }

    /// The passes of one worker of a data-parallel estimation (see [`Worker`]).
    pub(crate) fn for_worker(
        model: &'a M,
        batches: &'a [B],
        loss: &'a F,
        groups: &'a Groups,
        worker: Worker<'a>,
    ) -> Result<Self, EstimateError> {
        let mut passes = Passes::unchecked(model, batches, loss, groups)?;
        passes.check_batches(worker.first_batch)?;
        passes.worker = Some(worker);
        Ok(passes)
    }

    /// Passes over another `model` with the same batches, loss, groups and place in a
    /// data-parallel estimation (the probes of a [`crate::ProbeRun`] at its checkpoints).
    pub(crate) fn for_model<'m>(
        &'m self,
        model: &'m M,
    ) -> Result<Passes<'m, M, B, F>, EstimateError> {
        let mut passes = Passes::unchecked(model, self.batches, self.loss, self.groups)?;
        passes.worker = self.worker.clone();
        Ok(passes)
    }

    /// Splits off the last `n` batches: passes over the others and passes over them, with
    /// the same model, loss and groups (the batches were checked already). One device only.
    ///
    /// # Errors
    /// A reason when these passes belong to a data-parallel worker, or `n` leaves no batch.
    pub(crate) fn split_last(&mut self, n: usize) -> Result<Passes<'a, M, B, F>, &'static str> {
        if self.worker.is_some() {
            return Err("held-out batches are not supported across devices yet");
        }
        if n >= self.batches.len() {
            return Err("at least one batch must be left to train on");
        }
        let all = self.batches;
        let (train, held) = all.split_at(all.len() - n);
        self.batches = train;
        Passes::unchecked(self.model, held, self.loss, self.groups)
            .map_err(|_| "the held-out batches cannot be evaluated")
    }

    /// The number of batches over all workers.
    pub(crate) fn total_batches(&self) -> usize {
        self.worker
            .as_ref()
            .map_or(self.batches.len(), |w| w.total_batches)
    }

    /// The global index of local batch `index`.
    fn global_index(&self, index: usize) -> usize {
        index + self.worker.as_ref().map_or(0, |w| w.first_batch)
    }

    /// Sums `values` across the workers (nothing to do on one device).
    pub(crate) fn reduce_scalars(&self, values: &mut [f64]) -> Result<(), EstimateError> {
        match &self.worker {
            None => Ok(()),
            Some(w) => w.sum(values),
        }
    }

    /// The mean loss and mean gradient over every batch of every worker, from this worker's
    /// per-batch results (local index, loss, gradient) for the parameters in `track`; only the
    /// entries whose global batch index satisfies `keep` count, and the mean divides by
    /// `count`. On one device this is [`mean_of`] (the sum on the device, in batch order).
    /// Across workers each worker's sum is read back, summed across the workers in f64 in
    /// rank order and divided by `count`, and the mean is rebuilt on the worker's device.
    pub(crate) fn reduce_mean(
        &self,
        per_batch: &[(f64, ParamVec)],
        track: Option<&[bool]>,
        keep: impl Fn(usize) -> bool,
        count: usize,
    ) -> Result<(f64, ParamVec), EstimateError> {
        let kept: Vec<(f64, ParamVec)> = per_batch
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(self.global_index(*i)))
            .map(|(_, x)| x.clone())
            .collect();
        let Some(worker) = &self.worker else {
            return Ok(mean_of(kept));
        };
        let track = track.unwrap_or(&self.grouped);
        let numel: Vec<usize> = self
            .groups
            .params()
            .iter()
            .map(|p| p.numel as usize)
            .collect();
        let local = (!kept.is_empty()).then(|| sum_of(kept));
        worker.mean(local, track, &numel, count)
    }

    /// The gradient of training step `step` at `w + delta` for the parameters in `track`:
    /// on one device the gradient of batch `step % batches`; across workers each worker
    /// takes its own batch `step % local batches` and the gradients are averaged across the
    /// workers (a data-parallel step). Returns the local batch's global index too.
    pub(crate) fn step_gradient(
        &mut self,
        step: usize,
        delta: &ParamVec,
        track: Option<&[bool]>,
        on_non_finite: impl Fn(usize, f64) -> EstimateError,
    ) -> Result<ParamVec, EstimateError> {
        let index = step % self.batches.len();
        let (loss, grad) = self.gradient_on(index, delta, track, on_non_finite)?;
        match &self.worker {
            None => Ok(grad),
            Some(worker) => {
                let workers = worker.workers();
                let per_batch = [(loss, grad)];
                let (_, mean) = self.reduce_mean(&per_batch, track, |_| true, workers)?;
                Ok(mean)
            }
        }
    }

    /// The cost so far, with the elapsed time.
    pub(crate) fn finish_cost(&self) -> Cost {
        Cost {
            seconds: self.started.elapsed().as_secs_f64(),
            ..self.cost
        }
    }

    /// The model's own parameter values, flattened, for the grouped parameters.
    pub(crate) fn weights(&self) -> ParamVec {
        let mut visitor = Collect {
            index: &self.index,
            wanted: &self.grouped,
            out: vec![None; self.grouped.len()],
            grads: None,
        };
        self.model.visit(&mut visitor);
        visitor.out
    }

    /// The module at `w + delta`, every grouped parameter a gradient-tracking leaf with its
    /// own [`ParamId`]: a model another estimator can probe.
    pub(crate) fn model_at(&self, delta: &ParamVec) -> M {
        self.perturbed(delta, Some(&self.grouped))
    }

    /// Builds the module at `w + delta`. The parameters marked in `track` become
    /// gradient-tracking leaves; every other tensor is a constant without autodiff.
    fn perturbed(&self, delta: &ParamVec, track: Option<&[bool]>) -> M {
        let mut mapper = Perturb {
            index: &self.index,
            delta,
            track,
        };
        self.model.clone().map(&mut mapper)
    }

    fn scalar(&self, loss: &Tensor<1>) -> Result<f64, EstimateError> {
        let dims = loss.dims();
        if dims[0] != 1 {
            return Err(EstimateError::NotScalar {
                shape: dims.to_vec(),
            });
        }
        Ok(loss.clone().into_scalar::<f64>())
    }

    /// The mean loss over the batches at `w + delta` (one forward pass per batch).
    /// A non-finite loss is reported through `on_non_finite`.
    pub(crate) fn loss_at(
        &mut self,
        delta: &ParamVec,
        on_non_finite: impl Fn(f64) -> EstimateError,
    ) -> Result<f64, EstimateError> {
        let model = self.perturbed(delta, None);
        let mut total = [0.0];
        for batch in self.batches {
            let loss = self.loss.loss(&model, batch);
            self.cost.forward_passes += 1;
            total[0] += self.scalar(&loss)?;
        }
        self.reduce_scalars(&mut total)?;
        let mean = total[0] / self.total_batches() as f64;
        if !mean.is_finite() {
            return Err(on_non_finite(mean));
        }
        Ok(mean)
    }

    /// The gradient of the loss at `w + delta` for the parameters in `track` (every grouped
    /// parameter when `None`), one entry per batch (one forward and one backward pass per
    /// batch), with the losses.
    pub(crate) fn gradients_at(
        &mut self,
        delta: &ParamVec,
        track: Option<&[bool]>,
        on_non_finite: impl Fn(usize, f64) -> EstimateError,
    ) -> Result<Vec<(f64, ParamVec)>, EstimateError> {
        let grouped = self.grouped.clone();
        let track = track.unwrap_or(&grouped);
        let model = self.perturbed(delta, Some(track));
        (0..self.batches.len())
            .map(|i| self.gradient_of(&model, i, track, &on_non_finite))
            .collect()
    }

    /// The loss and gradient of batch `index` alone at `w + delta`, for the parameters in
    /// `track` (every grouped parameter when `None`): one forward and one backward pass.
    pub(crate) fn gradient_on(
        &mut self,
        index: usize,
        delta: &ParamVec,
        track: Option<&[bool]>,
        on_non_finite: impl Fn(usize, f64) -> EstimateError,
    ) -> Result<(f64, ParamVec), EstimateError> {
        let grouped = self.grouped.clone();
        let track = track.unwrap_or(&grouped);
        let model = self.perturbed(delta, Some(track));
        self.gradient_of(&model, index, track, on_non_finite)
    }

    /// One forward and backward pass of batch `index` on a perturbed `model`.
    fn gradient_of(
        &mut self,
        model: &M,
        index: usize,
        track: &[bool],
        on_non_finite: impl Fn(usize, f64) -> EstimateError,
    ) -> Result<(f64, ParamVec), EstimateError> {
        let loss = self.loss.loss(model, &self.batches[index]);
        self.cost.forward_passes += 1;
        let value = self.scalar(&loss)?;
        if !value.is_finite() {
            return Err(on_non_finite(self.global_index(index), value));
        }
        let grads = loss.backward();
        self.cost.backward_passes += 1;
        let mut visitor = Collect {
            index: &self.index,
            wanted: track,
            out: vec![None; self.grouped.len()],
            grads: Some(&grads),
        };
        model.visit(&mut visitor);
        Ok((value, visitor.out))
    }

    /// The mean gradient over the batches at `w + delta`, and the mean loss.
    pub(crate) fn mean_gradient_at(
        &mut self,
        delta: &ParamVec,
        track: Option<&[bool]>,
        on_non_finite: impl Fn(usize, f64) -> EstimateError,
    ) -> Result<(f64, ParamVec), EstimateError> {
        let per_batch = self.gradients_at(delta, track, on_non_finite)?;
        let count = self.total_batches();
        self.reduce_mean(&per_batch, track, |_| true, count)
    }

    /// The mean gradients at `w + e v` and at `w - e v` (every grouped parameter tracked), the
    /// two sides of the central-difference Hessian-vector product
    /// `H v ~ (G(w + e v) - G(w - e v)) / 2e`. A non-finite loss names `group`.
    pub(crate) fn gradients_either_side(
        &mut self,
        v: &ParamVec,
        e: f64,
        group: &str,
    ) -> Result<(ParamVec, ParamVec), EstimateError> {
        let scaled = |c: f64| -> ParamVec {
            v.iter()
                .map(|t| t.as_ref().map(|t| t.clone().mul_scalar(c)))
                .collect()
        };
        let non_finite = |step: f64| {
            move |_batch: usize, loss: f64| EstimateError::NonFiniteProbe {
                group: group.to_string(),
                step,
                loss,
            }
        };
        let (_, plus) = self.mean_gradient_at(&scaled(e), None, non_finite(e))?;
        let (_, minus) = self.mean_gradient_at(&scaled(-e), None, non_finite(-e))?;
        Ok((plus, minus))
    }

    /// `dir . G(w + e v)` and `dir . G(w - e v)` per parameter, with `G` the mean gradient
    /// (every grouped parameter tracked): the two sides of a Hessian-vector product read
    /// along `dir`. On one device the dots of [`Passes::gradients_either_side`]'s means.
    /// Across workers the gradient is linear in the batches, so each worker dots its own
    /// summed gradients and only those per-parameter numbers are reduced (not the
    /// gradients themselves). A non-finite loss names `group`.
    pub(crate) fn dots_either_side(
        &mut self,
        dir: &ParamVec,
        v: &ParamVec,
        e: f64,
        group: &str,
    ) -> Result<(Vec<f64>, Vec<f64>), EstimateError> {
        if self.worker.is_none() {
            let (plus, minus) = self.gradients_either_side(v, e, group)?;
            return Ok((dots(dir, &plus), dots(dir, &minus)));
        }
        let mut sides = Vec::with_capacity(2 * v.len());
        for c in [e, -e] {
            let delta: ParamVec = v
                .iter()
                .map(|t| t.as_ref().map(|t| t.clone().mul_scalar(c)))
                .collect();
            let per_batch =
                self.gradients_at(&delta, None, |_batch, loss| EstimateError::NonFiniteProbe {
                    group: group.to_string(),
                    step: c,
                    loss,
                })?;
            let (_, sum) = sum_of(per_batch);
            sides.extend(dots(dir, &sum));
        }
        self.reduce_scalars(&mut sides)?;
        let n = self.total_batches() as f64;
        let minus = sides.split_off(v.len());
        let scale = |x: Vec<f64>| x.into_iter().map(|d| d / n).collect();
        Ok((scale(sides), scale(minus)))
    }
}
