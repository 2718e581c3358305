//! Data-parallel estimation: the batches spread over several devices (or processes), each
//! worker computing its part of the statistics, reduced into the result one device would give.
//!
//! Every estimator runs the same code on one device and on many: what differs is the probing
//! engine's means over batches. On one device a mean is summed on the device in batch order.
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
//! [`HostReduce`] is the collective of threads in one process (one per worker), which also
//! serves burn's remote devices: the workers' tensors live on the remote machines, the
//! reduced numbers on the host. The root crate has a collective over burn's
//! `all_reduce` for CUDA.

use std::sync::{Condvar, Mutex};

use burn::module::Module;
use burn::tensor::Device;
use thiserror::Error;

use crate::error::EstimateError;
use crate::estimator::AnyEstimator;
use crate::grouping::Groups;
use crate::objective::LossFn;
use crate::probe::{ShardContext, Workspace};
use crate::score::Scores;

/// Sums numbers across the workers of a data-parallel estimation.
///
/// Every worker calls [`Collective::all_reduce_sum`] the same number of times with vectors of
/// the same lengths, in the same order (the estimators guarantee it: they take the same
/// decisions on every worker, from reduced numbers). Implementations must sum in a fixed
/// order, so that every worker gets the same bits.
pub trait Collective: Send + Sync {
    /// The number of workers.
    fn workers(&self) -> usize;

    /// Replaces `values` of worker `rank` by their element-wise sum over every worker.
    ///
    /// # Errors
    /// [`ReduceError::Aborted`] when a worker failed, [`ReduceError::Length`] when the
    /// workers' vectors differ in length, [`ReduceError::Rank`] for a rank out of range,
    /// [`ReduceError::Backend`] when the transport failed.
    fn all_reduce_sum(&self, rank: usize, values: &mut [f64]) -> Result<(), ReduceError>;

    /// Tells every worker, waiting or to come, that worker `rank` failed: their reductions
    /// return [`ReduceError::Aborted`] instead of waiting forever. The default does nothing
    /// (for transports that detect a lost worker themselves).
    fn abort(&self, rank: usize) {
        let _ = rank;
    }
}

/// A reduction across workers failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReduceError {
    /// Another worker failed; its own error says why.
    #[error("worker {rank} failed, so the reduction was abandoned")]
    Aborted {
        /// The worker that failed.
        rank: usize,
    },
    /// The workers reduced vectors of different lengths.
    #[error("worker {rank} reduced {len} numbers where worker 0 reduced {expected}")]
    Length {
        /// The worker whose vector differs.
        rank: usize,
        /// Its length.
        len: usize,
        /// Worker 0's length.
        expected: usize,
    },
    /// A rank out of range.
    #[error("worker rank {rank} out of range: the collective has {workers} workers")]
    Rank {
        /// The rank given.
        rank: usize,
        /// The number of workers.
        workers: usize,
    },
    /// The transport (for instance a device collective) failed.
    #[error("the collective failed: {0}")]
    Backend(String),
}

/// The collective of threads in one process, one per worker: each reduction waits for every
/// worker, then sums their vectors in rank order (so every worker gets the same bits, and one
/// worker gets its own numbers back unchanged).
///
/// ```
/// use adapeft_importance::{Collective, HostReduce};
/// let reduce = HostReduce::new(2);
/// let sums: Vec<Vec<f64>> = std::thread::scope(|s| {
///     let workers: Vec<_> = (0..2)
///         .map(|rank| {
///             let reduce = &reduce;
///             s.spawn(move || {
///                 let mut values = vec![rank as f64, 1.0];
///                 reduce.all_reduce_sum(rank, &mut values).unwrap();
///                 values
///             })
///         })
///         .collect();
///     workers.into_iter().map(|w| w.join().unwrap()).collect()
/// });
/// assert_eq!(sums, vec![vec![1.0, 2.0], vec![1.0, 2.0]]);
/// ```
#[derive(Debug)]
pub struct HostReduce {
    workers: usize,
    state: Mutex<HostState>,
    changed: Condvar,
}

#[derive(Debug)]
struct HostState {
    /// Completed reductions.
    generation: u64,
    /// The vectors of the reduction under way, by rank.
    slots: Vec<Option<Vec<f64>>>,
    arrived: usize,
    /// The last completed reduction's sum (or its error).
    result: Result<Vec<f64>, ReduceError>,
    /// The first worker that failed.
    aborted: Option<usize>,
}

impl HostReduce {
    /// A collective of `workers` threads.
    ///
    /// # Panics
    /// If `workers` is zero.
    pub fn new(workers: usize) -> Self {
        assert!(workers > 0, "a collective needs at least one worker");
        HostReduce {
            workers,
            state: Mutex::new(HostState {
                generation: 0,
                slots: vec![None; workers],
                arrived: 0,
                result: Ok(Vec::new()),
                aborted: None,
            }),
            changed: Condvar::new(),
        }
    }
}

impl Collective for HostReduce {
    fn workers(&self) -> usize {
        self.workers
    }

    fn all_reduce_sum(&self, rank: usize, values: &mut [f64]) -> Result<(), ReduceError> {
        if rank >= self.workers {
            return Err(ReduceError::Rank {
                rank,
                workers: self.workers,
            });
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(failed) = state.aborted {
            return Err(ReduceError::Aborted { rank: failed });
        }
        state.slots[rank] = Some(values.to_vec());
        state.arrived += 1;
        let generation = state.generation;
        if state.arrived == self.workers {
            let slots: Vec<Vec<f64>> = state.slots.iter_mut().map(|s| s.take().unwrap()).collect();
            let expected = slots[0].len();
            state.result = match slots.iter().position(|s| s.len() != expected) {
                Some(r) => Err(ReduceError::Length {
                    rank: r,
                    len: slots[r].len(),
                    expected,
                }),
                None => {
                    let mut sum = slots[0].clone();
                    for s in &slots[1..] {
                        for (acc, x) in sum.iter_mut().zip(s) {
                            *acc += x;
                        }
                    }
                    Ok(sum)
                }
            };
            state.arrived = 0;
            state.generation += 1;
            self.changed.notify_all();
        } else {
            while state.generation == generation && state.aborted.is_none() {
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.generation == generation {
                let failed = state.aborted.expect("woken by an abort");
                return Err(ReduceError::Aborted { rank: failed });
            }
        }
        let sum = state.result.clone()?;
        values.copy_from_slice(&sum);
        Ok(())
    }

    fn abort(&self, rank: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.aborted.get_or_insert(rank);
        self.changed.notify_all();
    }
}

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

/// Runs an estimator on a workspace (the one code path of one device and of many).
pub(crate) trait EstimateIn {
    fn estimate_in<M, B, F>(&self, ws: Workspace<'_, M, B, F>) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>;
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
    /// reduced through `reduce` (a [`HostReduce`] of `shards.len()` workers, or a device
    /// collective). Each worker forks a clone of the model to its shard's device; the user's
    /// model is not touched. The loss is averaged over every batch of every shard.
    ///
    /// Every estimator runs its one-device code; only the probing engine's means over
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
    /// let spread = probe.estimate_sharded(&model, &shards, &groups, &loss, &HostReduce::new(2))
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
        let context = ShardContext {
            reduce,
            rank: place.rank,
            first_batch: place.first_batch,
            total_batches: place.total_batches,
            device: place.device.without_autodiff(),
        };
        let ws = Workspace::sharded(model, batches, loss, groups, context)?;
        self.estimate_in(ws)
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
