//! A [`Collective`] over burn's device collectives (`burn::tensor::distributed::all_reduce`),
//! for data-parallel selection on several CUDA GPUs ([`AdaPeftConfig::select_with`] with [`Data::Sharded`]).
//!
//! Compiled only with the `cuda` feature: burn implements its collectives on CUDA (NCCL)
//! alone, and `all_reduce` panics on flex and wgpu. Its build needs LLVM 23, which
//! `scripts/cuda-llvm.sh` installs from pip; CI compiles and lints it that way, but it has
//! never run on a GPU. `tests/multi_device.rs`'s
//! `device_reduce_on_two_cuda_gpus_equals_host_reduce` compares it with `HostReduce` on two
//! CUDA GPUs (`scripts/gpu-run.sh` runs it where there are two). On one machine without NCCL,
//! or across machines through burn's remote devices, use [`HostReduce`]: the reduced numbers
//! are small and live on the host anyway.
//!
//! [`AdaPeftConfig::select_with`]: crate::AdaPeftConfig::select_with
//! [`Data::Sharded`]: crate::Data::Sharded
//! [`HostReduce`]: adapeft_importance::HostReduce

use adapeft_importance::{Collective, ReduceError};
use burn::tensor::distributed::{
    DistributedConfig, DistributedContext, ReduceOperation, all_reduce,
};
use burn::tensor::{DType, Device, Tensor, TensorData};

/// Sums each worker's numbers with burn's `all_reduce` among `devices` (worker `rank` is
/// `devices[rank]`), in f64 on the devices. Owns burn's distributed context, which starts
/// the communication server and closes it when dropped.
pub struct DeviceReduce {
    devices: Vec<Device>,
    _context: DistributedContext,
}

impl DeviceReduce {
    /// A collective among `devices`, one worker each.
    pub fn new(devices: Vec<Device>) -> Self {
        let context = DistributedContext::init(
            devices.clone(),
            DistributedConfig {
                all_reduce_op: ReduceOperation::Sum,
            },
        );
        DeviceReduce {
            devices,
            _context: context,
        }
    }
}

impl Collective for DeviceReduce {
    fn workers(&self) -> usize {
        self.devices.len()
    }

    fn all_reduce_sum(&self, rank: usize, values: &mut [f64]) -> Result<(), ReduceError> {
        let device = self.devices.get(rank).ok_or(ReduceError::Rank {
            rank,
            workers: self.devices.len(),
        })?;
        let n = values.len();
        let input =
            Tensor::<1>::from_data(TensorData::new(values.to_vec(), [n]), (device, DType::F64));
        let sum = all_reduce(input, ReduceOperation::Sum, self.devices.clone()).resolve();
        let data = sum.into_data();
        let read: Vec<f64> = data.iter::<f64>().collect();
        if read.len() != n {
            return Err(ReduceError::Backend(format!(
                "all_reduce returned {} numbers for {n}",
                read.len()
            )));
        }
        values.copy_from_slice(&read);
        Ok(())
    }
}
