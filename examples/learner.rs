//! Fine-tuning an adapeft selection with burn-train's `Learner`.
//!
//! burn-train's `Learner` takes a plain `ModuleOptimizer`, so adapeft's `Masked` optimizer
//! wrapper cannot be handed to it. The pattern that gets the masking there anyway:
//!
//! 1. **Select**: `AdaPeft::select(&model, &batch, budget)` scores every parameter tensor and
//!    picks the subset worth training (the model implements [`Objective`], its loss on a
//!    batch).
//! 2. **Freeze**: `selection.apply(model)` leaves gradients on exactly the chosen
//!    parameters, so the backward pass does not compute the others.
//! 3. **Keep the mask in the model**: a `#[module(skip)] mask: GradientMask` field (built with
//!    `GradientMask::from(&selection)`) is not a weight: burn's records, mappers and visitors
//!    skip it, and it is cloned along with the model when the `Learner` clones or forks it.
//! 4. **Filter in `TrainStep`**: after the backward pass,
//!    `output.grads = self.mask.filter(output.grads, self)` removes every gradient outside
//!    the selection, so whatever optimizer the `Learner` runs never sees those parameters:
//!    no update, no weight decay, no gradient clipping, no optimizer state.
//!
//! Step 4 is what makes the pattern safe on its own: it holds even when the model is not
//! frozen (step 2 skipped, or parameters unfrozen later), and it costs one walk over the
//! parameters per step. With step 2 as well, the backward pass is
//! also cheaper. `tests/learner.rs` checks both, bit for bit, through the real `Learner`.
//!
//! The `Learner` shows its usual progress display: burn-train's CLI renderer here (one
//! progress line per batch, without metric values), or its terminal UI when the application
//! enables burn's `tui` feature and stdout is a terminal. `.summary()` prints the loss per
//! epoch at the end. It writes its metric logs and `experiment.log` to the artifact directory
//! printed at the end.
//!
//! Run with `cargo run --example learner` (a few seconds once built).

use std::time::Instant;

use adapeft::optim::GradientMask;
use adapeft::{AdaPeft, Budget, Objective};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::AdamWConfig;
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::metric::LossMetric;
use burn::train::{
    InferenceStep, Learner, RegressionOutput, SupervisedTraining, TrainOutput, TrainStep,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const INPUTS: usize = 8;
const WIDTH: usize = 32;
const OUTPUTS: usize = 2;
const TRAIN_SAMPLES: usize = 512;
const VALID_SAMPLES: usize = 128;
const BATCH: usize = 32;
const EPOCHS: usize = 3;

/// A small MLP regressor, and the mask of the parameters that train.
#[derive(Module, Debug)]
struct Mlp {
    input: Linear,
    hidden: Linear,
    head: Linear,
    /// Which parameters train. `#[module(skip)]`: not a weight, never saved or mapped.
    #[module(skip)]
    mask: GradientMask,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        Mlp {
            input: LinearConfig::new(INPUTS, WIDTH).init(device),
            hidden: LinearConfig::new(WIDTH, WIDTH).init(device),
            head: LinearConfig::new(WIDTH, OUTPUTS).init(device),
            mask: GradientMask::all(),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self.input.forward(x).tanh();
        let h = self.hidden.forward(h).tanh();
        self.head.forward(h)
    }

    fn regression(&self, batch: Batch) -> RegressionOutput {
        let output = self.forward(batch.x);
        let loss = (output.clone() - batch.y.clone()).square().mean();
        RegressionOutput::new(loss, output, batch.y)
    }
}

/// The loss adapeft scores the parameter groups with.
impl Objective<Batch> for Mlp {
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        (self.forward(batch.x.clone()) - batch.y.clone())
            .square()
            .mean()
    }
}

impl TrainStep for Mlp {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> TrainOutput<RegressionOutput> {
        let item = self.regression(batch);
        let mut output = TrainOutput::new(self, item.loss.backward(), item);
        // The masking: the Learner's optimizer only ever sees the selected parameters.
        output.grads = self.mask.filter(output.grads, self);
        output
    }
}

impl InferenceStep for Mlp {
    type Input = Batch;
    type Output = RegressionOutput;

    fn step(&self, batch: Batch) -> RegressionOutput {
        self.regression(batch)
    }
}

#[derive(Clone, Debug)]
struct Sample {
    x: [f32; INPUTS],
    y: [f32; OUTPUTS],
}

#[derive(Clone, Debug)]
struct Batch {
    x: Tensor<2>,
    y: Tensor<2>,
}

#[derive(Clone, Debug)]
struct SampleBatcher;

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

/// A synthetic nonlinear regression task.
fn samples(n: usize, rng: &mut StdRng) -> Vec<Sample> {
    (0..n)
        .map(|_| {
            let x: [f32; INPUTS] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
            let y = [
                (x[0] + 0.5 * x[1] - x[2]).tanh() + 0.2 * x[3],
                x[4] * x[5] - 0.5 * x[6] + 0.1,
            ];
            Sample { x, y }
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let device = Device::flex().autodiff();
    device.seed(42);
    let mut rng = StdRng::seed_from_u64(42);
    let train_data = samples(TRAIN_SAMPLES, &mut rng);
    let valid_data = samples(VALID_SAMPLES, &mut rng);
    let model = Mlp::new(&device);

    // 1. Select on one batch of training data, within 20% of the parameters.
    let probe_batch = SampleBatcher.batch(train_data[..128].to_vec(), &device);
    let selection = AdaPeft::select(&model, &probe_batch, Budget::Fraction(0.2))?;
    println!("{selection}");

    // 2-3. Freeze everything else and keep the mask in the model.
    let model = Mlp {
        mask: GradientMask::from(&selection),
        ..selection.apply(model)
    };
    let valid_batch = SampleBatcher.batch(valid_data.clone(), &device);
    let loss_before: f64 = model.loss(&valid_batch).into_scalar();

    // 4. Train with burn-train's Learner, the mask filtering the gradients in `TrainStep`.
    let artifacts = std::env::temp_dir().join("adapeft-learner-example");
    let _ = std::fs::remove_dir_all(&artifacts); // a fresh run, not a resumed one
    let train = DataLoaderBuilder::new(SampleBatcher)
        .batch_size(BATCH)
        .shuffle(42)
        .build(InMemDataset::new(train_data));
    let valid = DataLoaderBuilder::new(SampleBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(valid_data.clone()));
    let optim = AdamWConfig::new().with_weight_decay(0.1).init();
    let result = SupervisedTraining::new(&artifacts, train, valid)
        .num_epochs(EPOCHS)
        .metrics((LossMetric::new(),))
        .summary()
        .launch(Learner::new(model, optim, 1e-2));
    let trained = result.model;
    // The training summary is printed when the renderer is dropped.
    drop(result.renderer);

    // The Learner returns the model in validation mode (off autodiff): evaluate it there.
    let valid_batch = SampleBatcher.batch(valid_data, &trained.devices()[0]);
    let loss_after: f64 = trained.loss(&valid_batch).into_scalar();
    println!(
        "validation loss: {loss_before:.5} before, {loss_after:.5} after training {} of {} \
         parameters ({})",
        selection.trainable_params(),
        selection.total_params(),
        selection.chosen_paths().join(", "),
    );
    println!(
        "artifacts (metric logs, experiment.log): {}",
        artifacts.display()
    );
    println!("done in {:.2}s", start.elapsed().as_secs_f64());
    Ok(())
}
