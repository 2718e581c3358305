//! The transport of data-parallel estimation: a [`Collective`] sums numbers across the
//! workers, and [`HostReduce`] is the collective of threads in one process.
//!
//! This is one side of the boundary between the evaluation engine and the sharded
//! reduction: it knows nothing of models or estimators. The engine's reductions
//! (`passes/worker.rs`) call a [`Collective`]; the orchestration of the workers (threads,
//! shards, the first error) is `shard.rs`.

use std::sync::{Condvar, Mutex};

use crate::error::ReduceError;

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

/// The collective of threads in one process, one per worker: each reduction waits for every
/// worker, then sums their vectors in rank order (so every worker gets the same bits, and one
/// worker gets its own numbers back unchanged).
///
/// ```
/// use adapeft_importance::{Collective, HostReduce};
/// let reduce = HostReduce::new(2).unwrap();
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
///
/// Bad set-ups are errors, not panics or hangs: no worker, a rank out of range, or two
/// workers under one rank (which abandons the collective, so no one waits forever).
///
/// ```
/// use adapeft_importance::{Collective, HostReduce, ReduceError};
/// assert_eq!(HostReduce::new(0).unwrap_err(), ReduceError::NoWorkers);
/// let reduce = HostReduce::new(1).unwrap();
/// assert_eq!(
///     reduce.all_reduce_sum(1, &mut [0.0]),
///     Err(ReduceError::Rank { rank: 1, workers: 1 })
/// );
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
    /// A collective of `workers` threads, ranks `0..workers`.
    ///
    /// # Errors
    /// [`ReduceError::NoWorkers`] when `workers` is zero.
    pub fn new(workers: usize) -> Result<Self, ReduceError> {
        if workers == 0 {
            return Err(ReduceError::NoWorkers);
        }
        Ok(HostReduce {
            workers,
            state: Mutex::new(HostState {
                generation: 0,
                slots: vec![None; workers],
                arrived: 0,
                result: Ok(Vec::new()),
                aborted: None,
            }),
            changed: Condvar::new(),
        })
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
        if state.slots[rank].is_some() {
            // Another worker already reduces under this rank: the reduction can never
            // complete, so every worker, waiting or to come, is told.
            state.aborted.get_or_insert(rank);
            self.changed.notify_all();
            return Err(ReduceError::DuplicateRank { rank });
        }
        state.slots[rank] = Some(values.to_vec());
        state.arrived += 1;
        let generation = state.generation;
        if state.arrived == self.workers {
            // Every rank arrived once (a second arrival under one rank is refused above).
            let slots: Vec<Vec<f64>> = state.slots.iter_mut().filter_map(Option::take).collect();
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
