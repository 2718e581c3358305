//! Selection on several devices: the batches spread over workers (one thread per device),
//! each computing its part of the statistics, reduced in f64 into one selection.
//!
//! Here the "devices" are the flex CPU device listed once and twice (this example runs in
//! CI on a 2-core machine); on a machine with two GPUs, put `Device::cuda(0)` and
//! `Device::cuda(1)` (or two wgpu devices) in the shards instead. Prints the wall time of the
//! selection on 1 and 2 workers for the exact gradient probe and the default short run, and
//! checks that both worker counts choose the same parameters.
//!
//! Run with `cargo run --example multi_device`.

use std::time::Instant;

use adapeft::importance::Shard;
use adapeft::{AdaPeftConfig, AnyEstimator, Budget, GradientProbe, Objective, Selection};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};

#[derive(Module, Debug)]
struct Mlp {
    input: Linear,
    hidden: Linear,
    output: Linear,
}

#[derive(Clone, Debug)]
struct Batch {
    x: Tensor<2>,
    y: Tensor<2>,
}

impl Objective<Batch> for Mlp {
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        let h = self.input.forward(batch.x.clone()).tanh();
        let h = self.hidden.forward(h).tanh();
        (self.output.forward(h) - batch.y.clone()).square().mean()
    }
}

const BATCHES: usize = 8;

fn main() {
    let device = Device::flex().autodiff();
    device.seed(1);
    let model = Mlp {
        input: LinearConfig::new(64, 256).init(&device),
        hidden: LinearConfig::new(256, 256).init(&device),
        output: LinearConfig::new(256, 10).init(&device),
    };
    let teacher = Tensor::<2>::random([64, 10], Distribution::Normal(0.0, 0.3), &device);
    let batches: Vec<Batch> = (0..BATCHES)
        .map(|_| {
            let x = Tensor::<2>::random([256, 64], Distribution::Normal(0.0, 1.0), &device);
            let y = x.clone().matmul(teacher.clone()).tanh();
            Batch { x, y }
        })
        .collect();

    // One shard per worker: the batches in order, split evenly. Each shard's batches must
    // already be on its device.
    let shards = |workers: usize| -> Vec<Shard<Batch>> {
        batches
            .chunks(BATCHES / workers)
            .map(|c| Shard::new(device.clone(), c.to_vec()))
            .collect()
    };

    let estimators: [(&str, AnyEstimator); 2] = [
        ("exact gradient probe", GradientProbe::exact().into()),
        ("short run (default)", AnyEstimator::default()),
    ];
    for (name, estimator) in estimators {
        let config = AdaPeftConfig::new().with_estimator(estimator);
        let mut chosen: Vec<Vec<String>> = Vec::new();
        for workers in [1, 2] {
            let started = Instant::now();
            let selection: Selection = config
                .select_sharded(&model, &shards(workers), Budget::Fraction(0.2))
                .expect("selection");
            println!(
                "{name}: {workers} worker(s): {:.2} s, {} backward passes, chose {:?}",
                started.elapsed().as_secs_f64(),
                selection.cost().backward_passes,
                selection.chosen_paths()
            );
            chosen.push(selection.chosen_paths());
        }
        if name.starts_with("exact") {
            // The short run is data-parallel: with 2 workers each step sees two batches, so
            // its choice may differ from one worker's; the probe's statistics do not change.
            assert_eq!(chosen[0], chosen[1], "1 and 2 workers chose differently");
        }
    }
}
