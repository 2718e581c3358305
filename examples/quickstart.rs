//! Quickstart: let adapeft choose what to fine-tune, train only that, save and load only that.
//!
//! Run with `cargo run --example quickstart` (seconds once built). Copy it and replace the
//! model, the batch and the loss with yours.

use adapeft::prelude::*;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};

/// A small model standing for your pretrained one (any burn `Module` works).
#[derive(Module, Debug)]
struct Mlp {
    input: Linear,
    hidden: Linear,
    head: Linear,
}

/// A batch: inputs and the targets to fit.
struct Batch {
    x: Tensor<2>,
    y: Tensor<2>,
}

// 1. Tell adapeft how to compute the model's loss on a batch: it scores and trains with it.
impl Objective<Batch> for Mlp {
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        let h = self.input.forward(batch.x.clone()).tanh();
        let h = self.hidden.forward(h).tanh();
        (self.head.forward(h) - batch.y.clone()).square().mean()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Selection and training need gradients: an autodiff device (flex, the CPU backend).
    let device = Device::flex().autodiff();
    device.seed(0);
    let model = Mlp {
        input: LinearConfig::new(16, 64).init(&device),
        hidden: LinearConfig::new(64, 64).init(&device),
        head: LinearConfig::new(64, 1).init(&device),
    };
    let x = Tensor::random([128, 16], Distribution::Normal(0.0, 1.0), &device);
    let y = x.clone().slice([0..128, 0..1]).sin();
    let batch = Batch { x, y };

    // 2. Choose the tensors worth training within 10% of the parameters, and say which.
    let selection = AdaPeft::select(&model, &batch, Budget::Fraction(0.1))?;
    println!("{selection}");

    // 3. Freeze the rest (keep the base model: the saved file is applied onto it later).
    let base = model.clone();
    let mut model = selection.apply(model);

    // 4. Train: `Masked` wraps any burn optimizer and steps only the chosen parameters.
    let mut optim = Masked::new(AdamWConfig::new().build(), &selection);
    let before: f32 = model.loss(&batch).into_scalar();
    for _ in 0..20 {
        let grads = GradientsParams::from_grads(model.loss(&batch).backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let after: f32 = model.loss(&batch).into_scalar();
    println!("training loss {before:.4} -> {after:.4} in 20 AdamW steps");

    // 5. Save only the trained tensors (the selection is the file's manifest), then put them
    //    back onto the base model: the loaded model is the trained one, bit for bit.
    let path = std::env::temp_dir().join("adapeft-quickstart.safetensors");
    save_trained(&model, &selection, &path)?;
    let bytes = std::fs::metadata(&path)?.len();
    let (loaded, loaded_selection) = load_trained(base, &path)?;
    std::fs::remove_file(&path)?;
    let reloaded: f32 = loaded.loss(&batch).into_scalar();
    if loaded_selection.chosen_paths() != selection.chosen_paths() {
        return Err("the file's selection differs from the one saved".into());
    }
    if reloaded.to_bits() != after.to_bits() {
        return Err(
            format!("the loaded model's loss {reloaded} is not the trained {after}").into(),
        );
    }
    println!("saved {bytes} bytes; loaded back, loss {reloaded:.4} (identical)");
    Ok(())
}
