//! Checkpoint and resume a fine-tuning run, and what the checkpoint costs on disk.
//!
//! A transformer encoder (about 0.8 M parameters) is fine-tuned on 2 % of its parameters,
//! chosen by adapeft, with AdamW and the GeN learning rate. After a few steps the run is
//! checkpointed with [`save_checkpoint`], restored onto the base model with
//! [`load_checkpoint`], and both the original and the restored run take one more step: the
//! parameters must come out bit-identical.
//!
//! The checkpoint's size is then set against what burn itself writes for a run: a full
//! burn record of the model (`Module::into_record`, burnpack) plus the optimizer record of a
//! full fine-tune (AdamW moments for every parameter), and plus the record of the masked
//! optimizer (what burn-train's `Learner` checkpoints with a `GradientMask`).
//!
//! Run with `cargo run --example checkpoint` (a few seconds once built).

use std::path::Path;

use adapeft::importance::{Objective, ParamVisitor, visit_params};
use adapeft::optim::checkpoint::{load_checkpoint, save_checkpoint};
use adapeft::optim::{Gen, GenConfig, Masked};
use adapeft::{AdaPeftConfig, Baseline, Budget};
use burn::module::{Module, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};

const TOKENS: usize = 8;
const FEATURES: usize = 16;
const D_MODEL: usize = 128;
const OUTPUTS: usize = 4;

/// Tokens of `FEATURES` features, a 4-layer encoder, a regression head on the mean token.
#[derive(Module, Debug)]
struct Encoder {
    embed: Linear,
    encoder: TransformerEncoder,
    head: Linear,
}

impl Encoder {
    fn new(device: &Device) -> Self {
        Encoder {
            embed: LinearConfig::new(FEATURES, D_MODEL).init(device),
            encoder: TransformerEncoderConfig::new(D_MODEL, 4 * D_MODEL, 4, 4)
                .with_dropout(0.0)
                .init(device),
            head: LinearConfig::new(D_MODEL, OUTPUTS).init(device),
        }
    }
}

struct Batch {
    x: Tensor<3>,
    y: Tensor<2>,
}

impl Objective<Batch> for Encoder {
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        let h = self.embed.forward(batch.x.clone());
        let h = self.encoder.forward(TransformerEncoderInput::new(h));
        let pooled = h.mean_dim(1).squeeze_dim::<2>(1);
        (self.head.forward(pooled) - batch.y.clone())
            .square()
            .mean()
    }
}

fn batch(device: &Device) -> Batch {
    let x = Tensor::random(
        [32, TOKENS, FEATURES],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let y = x
        .clone()
        .sum_dim(1)
        .squeeze_dim::<2>(1)
        .slice([0..32, 0..OUTPUTS])
        .tanh();
    Batch { x, y }
}

/// Every parameter's raw bytes, in model order.
fn values(model: &Encoder) -> Vec<Vec<u8>> {
    struct Values(Vec<Vec<u8>>);
    impl ParamVisitor for Values {
        fn visit<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
            self.0.push(param.val().into_data().as_bytes().to_vec());
        }
    }
    let mut out = Values(Vec::new());
    visit_params(model, &mut out);
    out.0
}

fn bytes(file: &Path) -> u64 {
    std::fs::metadata(file).map_or(0, |m| m.len())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex().autodiff();
    device.seed(7);
    let pretrained = Encoder::new(&device);
    let batches: Vec<Batch> = (0..6).map(|_| batch(&device)).collect();

    // Select 2 % of the parameters (the Fisher baseline: cheap), and train them.
    let selection = AdaPeftConfig::new()
        .with_estimator(Baseline::Fisher)
        .select(&pretrained, &batches[..1], Budget::Fraction(0.02))?;
    println!("{}", selection.summary());
    let trainer = || -> Result<Gen<Masked>, Box<dyn std::error::Error>> {
        let masked = Masked::new(
            AdamWConfig::new().with_weight_decay(0.01).build(),
            &selection,
        );
        Ok(Gen::new(masked, 1e-3, GenConfig::new().with_lazy_every(2))?)
    };
    let mut optim = trainer()?;
    let mut model = selection.apply(pretrained.clone());
    let step = |optim: &mut Gen<Masked>, model: Encoder, batch: &Batch| {
        let grads = GradientsParams::from_grads(model.loss(batch).backward(), &model);
        optim.step(model, grads, |m: &Encoder| m.loss(batch))
    };
    for batch in &batches[..5] {
        model = step(&mut optim, model, batch)?;
    }

    // Checkpoint, then restore onto the base model with a trainer built as before.
    let dir = std::env::temp_dir().join("adapeft-checkpoint-example");
    let _ = std::fs::remove_dir_all(&dir);
    let saved = save_checkpoint(dir.join("adapter"), &model, &optim, Some(&selection))?;
    let mut resumed_optim = trainer()?;
    let resumed = load_checkpoint(dir.join("adapter"), pretrained.clone(), &mut resumed_optim)?;
    let same_selection = resumed.selection.map(|s| s.to_json()) == Some(selection.to_json());

    // One more step on both runs: bit-identical parameters.
    let last = &batches[5];
    let model = step(&mut optim, model, last)?;
    let resumed_model = step(&mut resumed_optim, resumed.model, last)?;
    let identical = values(&model) == values(&resumed_model);
    assert!(identical && same_selection, "the resumed run diverged");

    // What burn itself writes for a run: the full model, and the optimizer of a full
    // fine-tune (one AdamW step on every parameter) or of the masked one.
    let full = dir.join("burn");
    std::fs::create_dir_all(&full)?;
    model.clone().into_record().save(full.join("model.bpk"))?;
    let unfrozen = adapeft::importance::set_require_grad(pretrained.clone(), |_| true);
    let grads = GradientsParams::from_grads(unfrozen.loss(&batches[0]).backward(), &unfrozen);
    let mut full_optim = AdamWConfig::new().init();
    full_optim.step(1e-3, unfrozen, grads);
    full_optim.save(full.join("optim-full.bpk"))?;
    optim
        .optimizer()
        .inner()
        .save(full.join("optim-masked.bpk"))?;

    let model_bytes = bytes(&full.join("model.bpk"));
    let full_run = model_bytes + bytes(&full.join("optim-full.bpk"));
    let learner_run = model_bytes + bytes(&full.join("optim-masked.bpk"));
    let kib = |b: u64| b as f64 / 1024.0;
    println!(
        "parameters: {} in total, {} trained ({} tensors); optimizer state tensors saved: {}",
        selection.total_params(),
        selection.trainable_params(),
        saved.trained.len(),
        saved.state_tensors,
    );
    println!("{:<58} {:>10}  {:>8}", "on disk", "KiB", "vs full");
    let row = |what: &str, b: u64| {
        println!(
            "{what:<58} {:>10.1}  {:>7.2}%",
            kib(b),
            100.0 * b as f64 / full_run as f64
        )
    };
    row(
        "adapeft checkpoint (trained tensors + state + manifest)",
        saved.bytes,
    );
    row(
        "burn: full model record + full fine-tune AdamW record",
        full_run,
    );
    row("burn: full model record alone", model_bytes);
    row(
        "burn: full model record + masked AdamW record (Learner)",
        learner_run,
    );
    println!("resumed run's next step bit-identical to the original's: {identical}");
    println!("files: {}", dir.display());
    Ok(())
}
