//! The model the tests of burn-train's `Learner` train (`tests/learner.rs` on one device,
//! `tests/multi_device.rs` on several): two linear layers, a regression loss, and a
//! [`GradientMask`] kept in the model as a `#[module(skip)]` field and applied to the
//! gradients in its `TrainStep`, the pattern `examples/learner.rs` teaches. The data is a
//! fixed nonlinear teacher, in memory.

use adapeft_importance::Objective;
use adapeft_optim::GradientMask;
use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::{InferenceStep, RegressionOutput, TrainOutput, TrainStep};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Inputs per sample.
pub const INPUTS: usize = 4;
/// Width of the hidden layer.
pub const HIDDEN: usize = 8;
/// Outputs per sample.
pub const OUTPUTS: usize = 2;

/// Two linear layers (`hidden`, `head`, with a `tanh` between) and the mask of the parameters
/// that train.
#[derive(Module, Debug)]
pub struct Net {
    /// The hidden layer.
    pub hidden: Linear,
    /// The output layer.
    pub head: Linear,
    /// Which parameters train. Not a weight: skipped by burn's records, mappers and visitors,
    /// cloned along with the model (the `Learner` clones and forks it).
    #[module(skip)]
    pub mask: GradientMask,
}

impl Net {
    /// A freshly initialised net on `device` that trains the parameters in `mask`.
    pub fn new(mask: GradientMask, device: &Device) -> Self {
        Net {
            hidden: LinearConfig::new(INPUTS, HIDDEN).init(device),
            head: LinearConfig::new(HIDDEN, OUTPUTS).init(device),
            mask,
        }
    }

    /// The net's output for inputs `x` of shape `[n, INPUTS]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.head.forward(self.hidden.forward(x).tanh())
    }

    /// The mean squared error on `batch`, with the output, as burn-train's metrics take it.
    pub fn regression(&self, batch: Batch) -> RegressionOutput {
        let output = self.forward(batch.x);
        let loss = (output.clone() - batch.y.clone()).square().mean();
        RegressionOutput::new(loss, output, batch.y)
    }
}

/// The loss adapeft scores the groups with: the same mean squared error.
impl Objective<Batch> for Net {
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        (self.forward(batch.x.clone()) - batch.y.clone())
            .square()
            .mean()
    }
}

impl TrainStep for Net {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> TrainOutput<RegressionOutput> {
        let item = self.regression(batch);
        let mut output = TrainOutput::new(self, item.loss.backward(), item);
        // The masking: the optimizer never sees a gradient outside the mask, so those
        // parameters get no update, no weight decay and no optimizer state.
        output.grads = self.mask.filter(output.grads, self);
        output
    }
}

impl InferenceStep for Net {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> RegressionOutput {
        self.regression(batch)
    }
}

/// One sample: inputs and targets.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The inputs.
    pub x: [f32; INPUTS],
    /// The targets.
    pub y: [f32; OUTPUTS],
}

/// A batch of samples on a device.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Inputs, `[n, INPUTS]`.
    pub x: Tensor<2>,
    /// Targets, `[n, OUTPUTS]`.
    pub y: Tensor<2>,
}

/// burn-train's batcher for [`Sample`]s.
#[derive(Clone, Debug)]
pub struct SampleBatcher;

impl Batcher<Sample, Batch> for SampleBatcher {
    fn batch(&self, items: Vec<Sample>, device: &Device) -> Batch {
        let n = items.len();
        let x: Vec<f32> = items.iter().flat_map(|s| s.x).collect();
        let y: Vec<f32> = items.iter().flat_map(|s| s.y).collect();
        Batch {
            x: Tensor::from_data(TensorData::new(x, [n, INPUTS]), device),
            y: Tensor::from_data(TensorData::new(y, [n, OUTPUTS]), device),
        }
    }
}

/// `n` samples of the teacher `y = [tanh(x0 - x1 / 2) + 0.3 x2, x3 x0 - 0.2]`, inputs uniform
/// in `[-1, 1)`, drawn from `seed`.
pub fn samples(n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let x: [f32; INPUTS] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
            let y = [(x[0] - 0.5 * x[1]).tanh() + 0.3 * x[2], x[3] * x[0] - 0.2];
            Sample { x, y }
        })
        .collect()
}
