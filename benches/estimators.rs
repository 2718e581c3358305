//! Each estimator's wall time against one training step (forward, backward, Adam step) of the
//! same transformer-shaped model on the same batch, measured side by side in one run.
//!
//! Run: `cargo bench --bench estimators` (on flex; `ADAPEFT_TEST_BACKENDS=wgpu` for wgpu,
//! `cuda` in a build with the `cuda` features: `scripts/gpu-run.sh`). After criterion's own report it prints the ratios
//! (estimator median / training-step median), read from criterion's `estimates.json` files.

mod common;

use std::hint::black_box;

use adapeft::importance::{
    Baseline, Estimator, ForwardProbe, GradientProbe, Grouping, Objective, ProbeMode, discover,
};
use burn::optim::{AdamConfig, GradientsParams};
use common::RowTransformer;
use criterion::{Criterion, criterion_group};

fn bench(c: &mut Criterion) {
    let device = common::device();
    let model = RowTransformer::new(&device);
    let batch = common::batch(64, &device);
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

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let Some(step) = common::median_ns("estimators", "train_step") else {
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
        if let Some(t) = common::median_ns("estimators", name) {
            println!("| {name} | {:.1} ms | {:.1} |", t / 1e6, t / step);
        }
    }
}
