//! Data-parallel estimation: the batches spread over several devices (or processes), each
//! worker computing its part of the statistics, reduced into the result one device would give.
//!
//! Every estimator runs the same code on one device and on many: what differs is the
//! evaluation engine's means over batches (`passes/worker.rs`). On one device a mean is summed on the device in batch order.
//! With shards, each worker sums its own batches (its partial statistics), the sums are read
//! back, summed across workers in f64 through a [`Collective`], and divided by the total
//! number of batches; every worker then holds the same means and runs the same finishing code
//! (the scores, the curvature), so the workers agree and worker 0's result is returned.
//!
//! What is reduced, per estimator:
//!
//! - every mean gradient that is needed as a vector (the first-order gradient and direction,
//!   the two-batch halves of [`SlopeEstimate::TwoBatch`](crate::SlopeEstimate), the Newton
//!   probe's products), as one f64 vector of the grouped parameters plus the loss;
//! - each side of the gradient probe's Hessian-vector products only as its dot with the
//!   direction, per parameter (the gradient is linear in the batches, so each worker dots its
//!   own sum): a few numbers per product instead of a model-sized vector;
//! - every mean loss (the forward probe's points, the short run's losses), as one number;
//! - the empirical Fisher of [`Baseline::Fisher`](crate::Baseline), per group;
//! - [`ShortRun`](crate::ShortRun) becomes a data-parallel run: at step `t` every worker
//!   takes its own batch `t % (its batches)`, and the step uses the mean of the workers'
//!   gradients, like burn-train's multi-device strategies (one batch per device per step).
//!
//! So every estimator is supported. The results equal one device's on the same batches up to
//! float rounding: the mean gradient is rounded to f32 once from an f64 sum, where one device
//! sums in f32 (the integration tests state the tolerance). The data-parallel short run equals
//! a one-device run whose step `t` sees the union of the workers' batches of that step.
//!
//! This module is the orchestration: it splits the work into [`Shard`]s, starts one thread
//! per worker, and returns the first worker's error. The transport is `collective.rs`:
//! [`HostReduce`](crate::HostReduce) is the collective of threads in one process (one per
//! worker), which also serves burn's remote devices (the workers' tensors live on the remote
//! machines, the reduced numbers on the host); the root crate has a collective over burn's
//! `all_reduce` for CUDA.

use burn::module::Module;
use burn::tensor::Device;

use crate::any_estimator::AnyEstimator;
use crate::collective::Collective;
use crate::error::{EstimateError, ReduceError};
use crate::estimator::EstimateIn;
use crate::objective::LossFn;
use crate::params::grouping::Groups;
use crate::passes::Passes;
use crate::passes::worker::Worker;
use crate::score::Scores;

/// One worker's share of a data-parallel estimation: a device and the batches on it.
///
/// The batches are the worker's slice of the whole, in order: shard 0 holds the first
/// batches, shard 1 the next, and so on (batch indices in errors count over all shards).
#[derive(Debug, Clone)]
pub struct Shard<B> {
    /// The device this worker computes on; the model is forked to it.
    pub device: Device,
    /// The batches, already on `device`.
    pub batches: Vec<B>,
}

impl<B> Shard<B> {
    /// A shard of `batches` on `device`.
    pub fn new(device: Device, batches: Vec<B>) -> Self {
        Shard { device, batches }
    }
}

/// Aborts the collective when a worker leaves without finishing (error or panic).
struct AbortGuard<'a> {
    reduce: &'a dyn Collective,
    rank: usize,
    armed: bool,
}

impl Drop for AbortGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.reduce.abort(self.rank);
        }
    }
}

impl AnyEstimator {
    /// Scores `groups` of `model` on batches spread over `shards`, one thread per shard,
    /// reduced through `reduce` (a [`HostReduce`](crate::HostReduce) of `shards.len()` workers, or a device
    /// collective). Each worker forks a clone of the model to its shard's device; the user's
    /// model is not touched. The loss is averaged over every batch of every shard.
    ///
    /// Every estimator runs its one-device code; only the evaluation engine's means over
    /// batches change: each worker sums its own batches (losses, gradients, Fisher sums), the
    /// sums are added across workers in f64 in rank order and divided by the total number of
    /// batches, so every worker holds the same means and takes the same steps. The scores
    /// equal one device's on all the batches up to float rounding (the mean gradient is
    /// rounded to f32 once from an f64 sum where one device sums in f32, and each side of a
    /// Hessian-vector product is dotted per worker before the reduction; measured on a small
    /// MLP: at most `4e-4` relative on the finite-difference curvature, `5e-7` on
    /// first-order scores).
    /// [`ShortRun`](crate::ShortRun) becomes a data-parallel run: at step `t` every worker
    /// takes its batch `t % (its batches)` and the step uses the mean of the workers'
    /// gradients (one batch per worker per step, like burn-train's multi-device training).
    ///
    /// The result is worker 0's, with the passes of every worker added up in
    /// [`Scores::cost`] (and the slowest worker's seconds).
    ///
    /// ```
    /// use adapeft_importance::{discover, AnyEstimator, Estimator, GradientProbe, Grouping,
    ///     HostReduce, Shard};
    /// use burn::nn::{Linear, LinearConfig};
    /// use burn::tensor::{Device, Tensor};
    ///
    /// let device = Device::flex();
    /// let model = LinearConfig::new(4, 2).init(&device);
    /// let batch = |v: f32| Tensor::<2>::full([8, 4], v, &device);
    /// let loss = |m: &Linear, x: &Tensor<2>| (m.forward(x.clone()) - 1.0).square().mean();
    /// let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
    /// let probe = AnyEstimator::from(GradientProbe::exact());
    ///
    /// let shards = [Shard::new(device.clone(), vec![batch(1.0)]),
    ///               Shard::new(device.clone(), vec![batch(-0.5)])];
    /// let spread = probe.estimate_sharded(&model, &shards, &groups, &loss, &HostReduce::new(2).unwrap())
    ///     .unwrap();
    /// let one = probe.estimate_with(&model, &[batch(1.0), batch(-0.5)], &groups, &loss).unwrap();
    /// for (s, o) in spread.groups.iter().zip(&one.groups) {
    ///     // Equal up to float rounding (see above).
    ///     assert!((s.value - o.value).abs() <= 2e-3 * o.value.abs().max(1e-6));
    /// }
    /// ```
    ///
    /// # Errors
    /// [`EstimateError::NoShard`], [`EstimateError::EmptyShard`],
    /// [`EstimateError::Workers`] when `reduce` has another number of workers, and the
    /// estimator's own errors (batch indices count over all shards). When a worker fails the
    /// others stop at their next reduction, and its error is returned.
    pub fn estimate_sharded<M, B, F>(
        &self,
        model: &M,
        shards: &[Shard<B>],
        groups: &Groups,
        loss: &F,
        reduce: &dyn Collective,
    ) -> Result<Scores, EstimateError>
    where
        M: Module,
        B: Sync,
        F: LossFn<M, B> + Sync,
    {
        if shards.is_empty() {
            return Err(EstimateError::NoShard);
        }
        if let Some(empty) = shards.iter().position(|s| s.batches.is_empty()) {
            return Err(EstimateError::EmptyShard { shard: empty });
        }
        if reduce.workers() != shards.len() {
            return Err(EstimateError::Workers {
                workers: reduce.workers(),
                shards: shards.len(),
            });
        }
        let total: usize = shards.iter().map(|s| s.batches.len()).sum();
        let mut first = 0;
        let results: Vec<Result<Scores, EstimateError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = shards
                .iter()
                .enumerate()
                .map(|(rank, shard)| {
                    let local = model.clone().fork(&shard.device);
                    let first_batch = first;
                    first += shard.batches.len();
                    scope.spawn(move || {
                        let mut guard = AbortGuard {
                            reduce,
                            rank,
                            armed: true,
                        };
                        let result = self.estimate_worker(
                            &local,
                            &shard.batches,
                            WorkerPlace {
                                rank,
                                first_batch,
                                total_batches: total,
                                device: shard.device.clone(),
                            },
                            groups,
                            loss,
                            reduce,
                        );
                        guard.armed = result.is_err();
                        result
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        // The error of the worker that failed first, not the others' `Aborted`.
        if let Some(err) = results.iter().find_map(|r| match r {
            Err(EstimateError::Reduce(ReduceError::Aborted { .. })) => None,
            Err(e) => Some(e.clone()),
            Ok(_) => None,
        }) {
            return Err(err);
        }
        let mut results = results.into_iter();
        let mut scores = results.next().expect("one shard at least")?;
        for r in results {
            let cost = r?.cost;
            scores.cost.forward_passes += cost.forward_passes;
            scores.cost.backward_passes += cost.backward_passes;
            scores.cost.seconds = scores.cost.seconds.max(cost.seconds);
        }
        Ok(scores)
    }

    /// One worker of a data-parallel estimation, for callers that run the workers
    /// themselves (one thread or process per device): `model` already on `place.device`,
    /// `batches` this worker's, `reduce` shared by every worker. Every worker returns the
    /// same scores (the cost is its own).
    ///
    /// # Errors
    /// As [`AnyEstimator::estimate_sharded`]; a worker that fails should call
    /// [`Collective::abort`] so that the others do not wait for it.
    pub fn estimate_worker<M, B, F>(
        &self,
        model: &M,
        batches: &[B],
        place: WorkerPlace,
        groups: &Groups,
        loss: &F,
        reduce: &dyn Collective,
    ) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        crate::estimator::check_units(self, groups)?;
        let worker = Worker {
            reduce,
            rank: place.rank,
            first_batch: place.first_batch,
            total_batches: place.total_batches,
            device: place.device.without_autodiff(),
        };
        self.estimate_in(Passes::for_worker(model, batches, loss, groups, worker)?)
    }
}

/// Where one worker sits in a data-parallel estimation.
#[derive(Debug, Clone)]
pub struct WorkerPlace {
    /// The worker's rank, from 0.
    pub rank: usize,
    /// The global index of its first batch.
    pub first_batch: usize,
    /// The number of batches over every worker.
    pub total_batches: usize,
    /// Its device.
    pub device: Device,
}
