//! What the benches share: the transformer-shaped model they time, and criterion's medians.

#![allow(dead_code)] // each bench uses part of it

use std::path::PathBuf;

use adapeft::importance::Objective;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Int, Tensor};

/// The device the benches run on, with autodiff: the first backend named in
/// `ADAPEFT_TEST_BACKENDS` (flex when it is unset; `wgpu`; `cuda` in a build with
/// `--features adapeft/cuda,adapeft-testing/cuda`). Printed, so that a report says where it
/// was measured.
pub fn device() -> Device {
    let backend = adapeft_testing::backends()
        .into_iter()
        .next()
        .expect("at least one backend");
    println!("benches on {}", backend.name);
    backend.device.autodiff()
}

/// 8 tokens of 8 features (an 8x8 image read row by row), a 4-layer encoder, a 10-way head:
/// 68 parameter tensors.
#[derive(Module, Debug)]
pub struct RowTransformer {
    embed: Linear,
    encoder: TransformerEncoder,
    head: Linear,
}

pub struct Batch {
    pub x: Tensor<3>,
    pub y: Tensor<1, Int>,
}

impl RowTransformer {
    pub fn new(device: &Device) -> Self {
        let d = 32;
        RowTransformer {
            embed: LinearConfig::new(8, d).init(device),
            encoder: TransformerEncoderConfig::new(d, 64, 4, 4)
                .with_dropout(0.0)
                .init(device),
            head: LinearConfig::new(d, 10).init(device),
        }
    }
}

impl Objective<Batch> for RowTransformer {
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        let h = self.embed.forward(batch.x.clone());
        let h = self.encoder.forward(TransformerEncoderInput::new(h));
        let pooled = h.mean_dim(1).squeeze_dim::<2>(1);
        let logits = self.head.forward(pooled);
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, batch.y.clone())
    }
}

/// A batch of `n` random 8x8 "images" with random labels.
pub fn batch(n: usize, device: &Device) -> Batch {
    Batch {
        x: Tensor::random([n, 8, 8], Distribution::Uniform(0.0, 1.0), device),
        y: Tensor::<1>::random([n], Distribution::Uniform(0.0, 9.99), device).int(),
    }
}

/// criterion's median point estimate (ns) for `<group>/<name>`.
pub fn median_ns(group: &str, name: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target.join(format!("criterion/{group}/{name}/new/estimates.json"));
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}
