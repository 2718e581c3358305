//! Each estimator's wall time against one training step (forward, backward, Adam step) of the
//! same transformer-shaped model on the same batch, measured side by side in one run.
//!
//! Run: `cargo bench --bench estimators`. After criterion's own report it prints the ratios
//! (estimator median / training-step median), read from criterion's `estimates.json` files.

use std::hint::black_box;
use std::path::PathBuf;

use adapeft::importance::{
    Baseline, Estimator, ForwardProbe, GradientProbe, Grouping, Objective, ProbeMode, discover,
};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor};
use criterion::{Criterion, criterion_group};

/// 8 tokens of 8 features (an 8x8 image read row by row), a 4-layer encoder, a 10-way head:
/// 68 parameter tensors.
#[derive(Module, Debug)]
struct RowTransformer {
    embed: Linear,
    encoder: TransformerEncoder,
    head: Linear,
}

struct Batch {
    x: Tensor<3>,
    y: Tensor<1, Int>,
}

impl RowTransformer {
    fn new(device: &Device) -> Self {
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

fn bench(c: &mut Criterion) {
    let device = Device::flex().autodiff();
    let model = RowTransformer::new(&device);
    let n = 64;
    let batch = Batch {
        x: Tensor::random([n, 8, 8], Distribution::Uniform(0.0, 1.0), &device),
        y: Tensor::<1>::random([n], Distribution::Uniform(0.0, 9.99), &device).int(),
    };
    let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
    assert!(groups.len() >= 60, "{} groups", groups.len());
    let batches = [batch];

    let mut g = c.benchmark_group("estimators");
    g.sample_size(10);
    let mut optim = AdamConfig::new().init();
    let mut trained = model.clone();
    g.bench_function("train_step", |b| {
        b.iter(|| {
            let loss = trained.loss(&batches[0]);
            let grads = GradientsParams::from_grads(loss.backward(), &trained);
            trained = optim.step(1e-4, trained.clone(), grads);
        })
    });
    let random = GradientProbe {
        probes: 8,
        mode: ProbeMode::RandomSigns,
        ..Default::default()
    };
    g.bench_function("gradient_probe_p8", |b| {
        b.iter(|| black_box(random.estimate(&model, &batches, &groups).unwrap()))
    });
    g.bench_function("gradient_probe_exact", |b| {
        b.iter(|| {
            black_box(
                GradientProbe::exact()
                    .estimate(&model, &batches, &groups)
                    .unwrap(),
            )
        })
    });
    g.bench_function("forward_probe", |b| {
        b.iter(|| {
            black_box(
                ForwardProbe::default()
                    .estimate(&model, &batches, &groups)
                    .unwrap(),
            )
        })
    });
    g.bench_function("gradient_norm", |b| {
        b.iter(|| {
            black_box(
                Baseline::GradientNorm
                    .estimate(&model, &batches, &groups)
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

/// criterion's median point estimate (ns) for `estimators/<name>`.
fn median_ns(name: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target.join(format!("criterion/estimators/{name}/new/estimates.json"));
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let Some(step) = median_ns("train_step") else {
        return; // filtered run (or `--test`): nothing to compare
    };
    println!(
        "\nratios to one training step ({:.2} ms), 68 groups:",
        step / 1e6
    );
    println!("| estimator | median | training steps |");
    println!("|---|---|---|");
    for name in [
        "gradient_probe_p8",
        "gradient_probe_exact",
        "forward_probe",
        "gradient_norm",
    ] {
        if let Some(t) = median_ns(name) {
            println!("| {name} | {:.1} ms | {:.1} |", t / 1e6, t / step);
        }
    }
}
