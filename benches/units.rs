//! Units below the tensor against whole tensors (issue 21, parts 1 and 2).
//!
//! 1. Wall time, side by side in one run: the default short run and the gradient norm on the
//!    benches' transformer with one group per tensor, and with every linear layer cut into
//!    its output neurons (the target: units within 1.2 times the per-tensor time).
//! 2. Memory and time of 10^5 and 10^6 units: a 1,000 x 1,000 linear layer cut into blocks of
//!    1 x 10 and 1 x 1, split and scored by the gradient norm and a short run, against the
//!    same layer as one group; memory is the growth of the process's peak resident set
//!    (Linux), so freed memory the allocator keeps makes later rows read low, never high.
//!
//! Run: `cargo bench --bench units` (flex; `ADAPEFT_TEST_BACKENDS=wgpu` for wgpu). After
//! criterion's report it prints the ratios (units median / per-tensor median) and the memory
//! table.

mod common;

use std::hint::black_box;
use std::time::Instant;

use adapeft::importance::{
    Baseline, Estimator, Grouping, Groups, Objective, ShortRun, Unit, UnitRules, discover,
};
use adapeft_testing::memory::{peak_rss_bytes, reset_peak_rss, rss_bytes};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};
use common::RowTransformer;
use criterion::{Criterion, criterion_group};

/// Every linear layer of the transformer cut into its output neurons.
fn neurons(groups: &Groups) -> Groups {
    let rules = UnitRules::new()
        .with(
            r"(^embed$|^head$|\.(query|key|value|output|linear_inner|linear_outer)$)",
            Unit::Outputs,
        )
        .expect("a valid rule");
    groups
        .split(&rules)
        .expect("the transformer's linear layers")
}

fn bench(c: &mut Criterion) {
    let device = common::device();
    let model = RowTransformer::new(&device);
    let batches = [common::batch(64, &device)];
    let tensors = Grouping::PerTensor.group(discover(&model)).unwrap();
    let units = neurons(&tensors);
    println!(
        "{} tensor groups, {} unit groups",
        tensors.len(),
        units.len()
    );
    let run = ShortRun::new().with_steps(5);

    let mut g = c.benchmark_group("units");
    g.sample_size(10);
    for (name, groups) in [("tensors", &tensors), ("units", &units)] {
        g.bench_function(format!("short_run_{name}"), |b| {
            b.iter(|| black_box(run.estimate(&model, &batches, groups).unwrap()))
        });
        g.bench_function(format!("gradient_norm_{name}"), |b| {
            b.iter(|| {
                black_box(
                    Baseline::GradientNorm
                        .estimate(&model, &batches, groups)
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
}

/// One wide layer and a squared loss: 10^6 weights to cut.
#[derive(Module, Debug)]
struct Wide {
    layer: Linear,
}

struct WideBatch {
    x: Tensor<2>,
    y: Tensor<2>,
}

impl Objective<WideBatch> for Wide {
    fn loss(&self, batch: &WideBatch) -> Tensor<1> {
        (self.layer.forward(batch.x.clone()) - batch.y.clone())
            .square()
            .mean()
    }
}

/// Peak resident growth (MiB) and seconds of `f`, from the resident size before it.
fn measure<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let before = rss_bytes().unwrap_or(0);
    reset_peak_rss();
    let start = Instant::now();
    let out = f();
    let seconds = start.elapsed().as_secs_f64();
    let peak = peak_rss_bytes().unwrap_or(0);
    (
        out,
        peak.saturating_sub(before) as f64 / (1 << 20) as f64,
        seconds,
    )
}

fn memory(device: &Device) {
    let d = 1000;
    let model = Wide {
        layer: LinearConfig::new(d, d).with_bias(false).init(device),
    };
    let batch = WideBatch {
        x: Tensor::random([32, d], Distribution::Uniform(-1.0, 1.0), device),
        y: Tensor::random([32, d], Distribution::Uniform(-1.0, 1.0), device),
    };
    let batches = [batch];
    let whole = Grouping::PerTensor.group(discover(&model)).unwrap();
    let run = ShortRun::new().with_steps(5);
    println!("\nunits of a 1,000 x 1,000 layer (peak resident growth, wall time of one call):");
    println!("| groups | split | gradient norm | short run (5 steps) |");
    println!("|---|---|---|---|");
    let (_, norm_mib, norm_s) = measure(|| {
        Baseline::GradientNorm
            .estimate(&model, &batches, &whole)
            .unwrap()
    });
    let (_, run_mib, run_s) = measure(|| run.estimate(&model, &batches, &whole).unwrap());
    println!(
        "| 1 (the tensor) | - | {norm_mib:.0} MiB, {norm_s:.2} s | {run_mib:.0} MiB, {run_s:.2} s |"
    );
    for cols in [10, 1] {
        let rules = UnitRules::new()
            .with("^layer$", Unit::Blocks { rows: 1, cols })
            .unwrap();
        let (units, split_mib, split_s) = measure(|| whole.split(&rules).unwrap());
        let (scores, norm_mib, norm_s) = measure(|| {
            Baseline::GradientNorm
                .estimate(&model, &batches, &units)
                .unwrap()
        });
        drop(scores);
        let (scores, run_mib, run_s) = measure(|| run.estimate(&model, &batches, &units).unwrap());
        drop(scores);
        println!(
            "| {} | {split_mib:.0} MiB, {split_s:.2} s | {norm_mib:.0} MiB, {norm_s:.2} s | {run_mib:.0} MiB, {run_s:.2} s |",
            units.len()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if common::median_ns("units", "short_run_tensors").is_none() {
        return; // filtered run (or `--test`): nothing to compare
    }
    println!("\nunits against whole tensors (median, ratio):");
    println!("| estimator | per tensor | output neurons | ratio |");
    println!("|---|---|---|---|");
    for name in ["short_run", "gradient_norm"] {
        let whole = common::median_ns("units", &format!("{name}_tensors"));
        let units = common::median_ns("units", &format!("{name}_units"));
        if let (Some(whole), Some(units)) = (whole, units) {
            println!(
                "| {name} | {:.1} ms | {:.1} ms | {:.2} |",
                whole / 1e6,
                units / 1e6,
                units / whole
            );
        }
    }
    memory(&common::device());
}
