//! The probing engine shared by every estimator: losses and gradients of the model at
//! perturbed weights `w + delta`, without ever changing the user's model.
//!
//! burn tensors are immutable values and a module clone shares them, so a probe point is a
//! *new* module built by mapping a clone of the user's model: each perturbed parameter is
//! rebuilt from its saved original tensor plus the perturbation. The user's model is never
//! written to, which makes "restore exactly" hold by construction (bit for bit, and with the
//! same require-grad state) rather than by subtracting the perturbation back.

use std::collections::HashMap;
use std::time::Instant;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Gradients, Tensor, TensorData};

use crate::error::EstimateError;
use crate::grouping::Groups;
use crate::objective::LossFn;
use crate::score::Cost;
use crate::shard::Collective;

/// One flattened tensor per parameter of [`Groups::params`]; `None` where a parameter takes no
/// part (not grouped, or not perturbed).
pub(crate) type ParamVec = Vec<Option<Tensor<1>>>;

/// The model, the batches and the loss, with counters of what was evaluated.
pub(crate) struct Workspace<'a, M, B, F> {
    model: &'a M,
    batches: &'a [B],
    loss: &'a F,
    pub(crate) groups: &'a Groups,
    index: HashMap<ParamId, usize>,
    /// Whether each parameter is in a group (and so needs gradients).
    grouped: Vec<bool>,
    pub(crate) cost: Cost,
    started: Instant,
    /// Where this workspace sits in a data-parallel estimation, if it does.
    shard: Option<ShardContext<'a>>,
}

/// One worker of a data-parallel estimation: its batches are `first_batch..` of
/// `total_batches`, and every mean over batches is summed across workers through `reduce`.
#[derive(Clone)]
pub(crate) struct ShardContext<'a> {
    pub(crate) reduce: &'a dyn Collective,
    pub(crate) rank: usize,
    pub(crate) first_batch: usize,
    pub(crate) total_batches: usize,
    /// The worker's device (without autodiff), where reduced vectors are rebuilt.
    pub(crate) device: Device,
}

impl<'a, M, B, F> Workspace<'a, M, B, F>
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
        if batches.is_empty() {
            return Err(EstimateError::NoBatch);
        }
        if groups.groups.iter().all(|g| g.numel == 0) {
            return Err(EstimateError::NoGroups);
        }
        let index = groups
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect();
        let grouped = groups
            .group_of_params()
            .iter()
            .map(Option::is_some)
            .collect();
        Ok(Workspace {
            model,
            batches,
            loss,
            groups,
            index,
            grouped,
            cost: Cost::default(),
            started: Instant::now(),
            shard: None,
        })
    }

    /// A workspace for one worker of a data-parallel estimation (see [`ShardContext`]).
    pub(crate) fn sharded(
        model: &'a M,
        batches: &'a [B],
        loss: &'a F,
        groups: &'a Groups,
        shard: ShardContext<'a>,
    ) -> Result<Self, EstimateError> {
        let mut ws = Workspace::new(model, batches, loss, groups)?;
        ws.shard = Some(shard);
        Ok(ws)
    }

    /// A workspace over another `model` with the same batches, loss, groups and place in a
    /// data-parallel estimation (the probes of a [`crate::ProbeRun`] at its checkpoints).
    pub(crate) fn for_model<'m>(
        &'m self,
        model: &'m M,
    ) -> Result<Workspace<'m, M, B, F>, EstimateError> {
        let mut ws = Workspace::new(model, self.batches, self.loss, self.groups)?;
        ws.shard = self.shard.clone();
        Ok(ws)
    }

    /// The number of batches over all workers.
    pub(crate) fn total_batches(&self) -> usize {
        self.shard
            .as_ref()
            .map_or(self.batches.len(), |s| s.total_batches)
    }

    /// The global index of local batch `index`.
    fn global_index(&self, index: usize) -> usize {
        index + self.shard.as_ref().map_or(0, |s| s.first_batch)
    }

    /// Sums `values` across the workers (nothing to do on one device).
    pub(crate) fn reduce_scalars(&self, values: &mut [f64]) -> Result<(), EstimateError> {
        match &self.shard {
            None => Ok(()),
            Some(s) => Ok(s.reduce.all_reduce_sum(s.rank, values)?),
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
        let Some(shard) = &self.shard else {
            return Ok(mean_of(kept));
        };
        let track = track.unwrap_or(&self.grouped);
        let numel: Vec<usize> = self
            .groups
            .params
            .iter()
            .map(|p| p.numel as usize)
            .collect();
        let len: usize = 1
            + (0..numel.len())
                .filter(|&i| track[i])
                .map(|i| numel[i])
                .sum::<usize>();
        let mut host = vec![0.0; len];
        if !kept.is_empty() {
            let (loss, grad) = sum_of(kept);
            host[0] = loss;
            let parts: Vec<Tensor<1>> = grad
                .iter()
                .enumerate()
                .filter(|(i, _)| track[*i])
                .map(|(_, g)| g.clone().expect("tracked parameters have a gradient"))
                .collect();
            if !parts.is_empty() {
                let values = Tensor::cat(parts, 0).into_data();
                for (h, v) in host[1..].iter_mut().zip(values.iter::<f64>()) {
                    *h = v;
                }
            }
        }
        shard.reduce.all_reduce_sum(shard.rank, &mut host)?;
        let n = count as f64;
        let mut out: ParamVec = vec![None; numel.len()];
        let mut at = 1;
        for (i, slot) in out.iter_mut().enumerate() {
            if !track[i] {
                continue;
            }
            let mean: Vec<f32> = host[at..at + numel[i]]
                .iter()
                .map(|x| (x / n) as f32)
                .collect();
            at += numel[i];
            *slot = Some(Tensor::from_data(
                TensorData::new(mean, [numel[i]]),
                &shard.device,
            ));
        }
        Ok((host[0] / n, out))
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
        match &self.shard {
            None => Ok(grad),
            Some(shard) => {
                let workers = shard.reduce.workers();
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
    /// along `dir`. On one device the dots of [`Workspace::gradients_either_side`]'s means.
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
        if self.shard.is_none() {
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

/// The finite-difference step `e` that moves weights of squared norm `w2` along a direction
/// of squared norm `v2` by the relative amount `step`: `e sqrt(v2) = step sqrt(w2)`, or
/// `e sqrt(v2) = step` for all-zero weights.
pub(crate) fn relative_step(step: f64, w2: f64, v2: f64) -> f64 {
    if w2 > 0.0 {
        step * (w2 / v2).sqrt()
    } else {
        step / v2.sqrt()
    }
}

/// The summed loss and summed gradient of per-batch results, in batch order.
pub(crate) fn sum_of(per_batch: Vec<(f64, ParamVec)>) -> (f64, ParamVec) {
    let mut iter = per_batch.into_iter();
    let (mut loss, mut grad) = iter.next().expect("at least one batch");
    for (l, g) in iter {
        loss += l;
        for (acc, x) in grad.iter_mut().zip(g) {
            if let (Some(a), Some(x)) = (acc.as_mut(), x) {
                *a = a.clone() + x;
            }
        }
    }
    (loss, grad)
}

/// The mean loss and mean gradient of per-batch results.
pub(crate) fn mean_of(per_batch: Vec<(f64, ParamVec)>) -> (f64, ParamVec) {
    let n = per_batch.len() as f64;
    let (loss, mut grad) = sum_of(per_batch);
    if n > 1.0 {
        for g in grad.iter_mut().flatten() {
            *g = g.clone().div_scalar(n);
        }
    }
    (loss / n, grad)
}

/// `sum(x_i * y_i)` for every parameter where both are present, read back in one transfer.
/// Entries where either side is `None` are `0`.
pub(crate) fn dots(x: &ParamVec, y: &ParamVec) -> Vec<f64> {
    let mut which = Vec::new();
    let mut parts = Vec::new();
    for (i, (a, b)) in x.iter().zip(y).enumerate() {
        if let (Some(a), Some(b)) = (a, b) {
            which.push(i);
            parts.push((a.clone() * b.clone()).sum());
        }
    }
    let mut out = vec![0.0; x.len()];
    if parts.is_empty() {
        return out;
    }
    let values: Vec<f64> = Tensor::cat(parts, 0).into_data().iter::<f64>().collect();
    for (i, v) in which.into_iter().zip(values) {
        out[i] = v;
    }
    out
}

/// Sums per-parameter numbers into per-group numbers.
pub(crate) fn per_group(groups: &Groups, per_param: &[f64]) -> Vec<f64> {
    groups
        .groups
        .iter()
        .map(|g| g.members.iter().map(|&m| per_param[m]).sum())
        .collect()
}

/// `coef * x` restricted to the members of one group (other entries `None`).
pub(crate) fn restrict(groups: &Groups, g: usize, x: &ParamVec, coef: f64) -> ParamVec {
    let mut out: ParamVec = vec![None; x.len()];
    for &m in &groups.groups[g].members {
        out[m] = x[m].as_ref().map(|t| t.clone().mul_scalar(coef));
    }
    out
}

/// `sum_g coef_g * x` over the groups, each group's members scaled by its coefficient
/// (`0` leaves a group out).
pub(crate) fn combine(groups: &Groups, x: &ParamVec, coefs: &[f64]) -> ParamVec {
    let mut out: ParamVec = vec![None; x.len()];
    for (group, &c) in groups.groups.iter().zip(coefs) {
        if c == 0.0 {
            continue;
        }
        for &m in &group.members {
            out[m] = x[m].as_ref().map(|t| t.clone().mul_scalar(c));
        }
    }
    out
}

/// Builds a model at `w + delta` from a clone of the original.
struct Perturb<'p> {
    index: &'p HashMap<ParamId, usize>,
    delta: &'p ParamVec,
    /// `Some(mask)`: make the marked parameters tracked leaves.
    track: Option<&'p [bool]>,
}

impl ModuleMapper for Perturb<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(&i) = self.index.get(&param.id) else {
            return param.map(|t| t.inner());
        };
        let delta = self.delta[i].clone();
        let tracked = self.track.is_some_and(|g| g[i]);
        param.map(|t| {
            let shape = t.shape();
            let mut t = t.inner();
            if let Some(d) = delta {
                t = t + d.reshape(shape);
            }
            if tracked {
                t.autodiff().require_grad()
            } else {
                t
            }
        })
    }
}

/// Collects flattened values (or gradients) of the wanted parameters.
struct Collect<'c> {
    index: &'c HashMap<ParamId, usize>,
    wanted: &'c [bool],
    out: ParamVec,
    grads: Option<&'c Gradients>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(&i) = self.index.get(&param.id) else {
            return;
        };
        if !self.wanted[i] {
            return;
        }
        let value = param.val();
        let n = value.shape().num_elements();
        let flat = match self.grads {
            None => value.inner().reshape([n]),
            Some(grads) => match value.grad(grads) {
                Some(g) => g.reshape([n]),
                // A parameter the loss does not depend on has a zero gradient.
                None => Tensor::zeros([n], (&value.device().without_autodiff(), value.dtype())),
            },
        };
        self.out[i] = Some(flat);
    }
}
