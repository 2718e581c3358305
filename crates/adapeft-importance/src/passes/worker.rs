//! The engine's one contact with data-parallel estimation: a [`Worker`] is where a
//! [`Passes`](super::Passes) sits among the workers, and its reductions are the only code of
//! the engine that calls a [`Collective`].
//!
//! On the other side of this boundary are the transport (`collective.rs`: the
//! [`Collective`] trait and `HostReduce`) and the orchestration of the workers (`shard.rs`:
//! one thread per shard, the first error). Neither knows how a mean gradient is laid out;
//! this module does not know how workers are started.

use burn::tensor::{Device, Tensor, TensorData};

use super::vector::ParamVec;
use crate::collective::Collective;
use crate::error::EstimateError;

/// One worker of a data-parallel estimation: its batches are `first_batch..` of
/// `total_batches`, and every mean over batches is summed across workers through `reduce`.
#[derive(Clone)]
pub(crate) struct Worker<'a> {
    pub(crate) reduce: &'a dyn Collective,
    pub(crate) rank: usize,
    pub(crate) first_batch: usize,
    pub(crate) total_batches: usize,
    /// The worker's device (without autodiff), where reduced vectors are rebuilt.
    pub(crate) device: Device,
}

impl Worker<'_> {
    /// The number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.reduce.workers()
    }

    /// Replaces `values` by their sum over every worker (in f64, in rank order).
    pub(crate) fn sum(&self, values: &mut [f64]) -> Result<(), EstimateError> {
        Ok(self.reduce.all_reduce_sum(self.rank, values)?)
    }

    /// The mean loss and mean gradient over every worker's batches: `local` is this worker's
    /// summed loss and gradient (`None` when it kept no batch), `track` marks the parameters
    /// whose gradient is present and `numel` gives every parameter's size. The sum is read
    /// back, summed across the workers in f64 in rank order, divided by `count`, and the mean
    /// rebuilt on this worker's device.
    pub(crate) fn mean(
        &self,
        local: Option<(f64, ParamVec)>,
        track: &[bool],
        numel: &[usize],
        count: usize,
    ) -> Result<(f64, ParamVec), EstimateError> {
        let len: usize = 1
            + (0..numel.len())
                .filter(|&i| track[i])
                .map(|i| numel[i])
                .sum::<usize>();
        let mut host = vec![0.0; len];
        if let Some((loss, grad)) = local {
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
        self.sum(&mut host)?;
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
                &self.device,
            ));
        }
        Ok((host[0] / n, out))
    }
}
