//! The optimizer adapters' cost, measured side by side in one run on the transformer-shaped
//! model of the estimators bench with 1% of its parameters selected:
//!
//! - `Masked` AdamW against the bare AdamW `ModuleOptimizer` on the same frozen model, per
//!   training step (forward, backward, update) and per optimizer update alone;
//! - GeN (probing every 8 steps, after a warm-up) against the same 8 steps at a fixed rate,
//!   and one step that probes against one plain step.
//!
//! Run: `cargo bench --bench optim`. After criterion's report it prints the ratios.

mod common;

use std::hint::black_box;

use adapeft::importance::Objective;
use adapeft::optim::{Gen, GenConfig, Masked};
use adapeft::{AdaPeft, Budget};
use burn::optim::{AdamWConfig, GradientsParams};
use common::{Batch, RowTransformer};
use criterion::{BatchSize, Criterion, criterion_group};

fn grads(model: &RowTransformer, batch: &Batch) -> GradientsParams {
    GradientsParams::from_grads(model.loss(batch).backward(), model)
}

fn bench(c: &mut Criterion) {
    let device = common::device();
    let model = RowTransformer::new(&device);
    let batch = common::batch(64, &device);
    let selection = AdaPeft::select(&model, &batch, Budget::Fraction(0.01)).unwrap();
    println!("{}", selection.summary());
    let frozen = selection.apply(model.clone());
    let adamw = || AdamWConfig::new().with_weight_decay(0.01);

    let mut g = c.benchmark_group("optim");
    g.sample_size(20);

    let mut bare = adamw().init();
    let mut m = frozen.clone();
    g.bench_function("bare_train_step", |b| {
        b.iter(|| {
            let grads = grads(&m, &batch);
            m = bare.step(1e-4, m.clone(), grads);
        })
    });
    let mut masked = Masked::new(adamw().build(), &selection);
    let mut m = frozen.clone();
    g.bench_function("masked_train_step", |b| {
        b.iter(|| {
            let grads = grads(&m, &batch);
            m = masked.step(1e-4, m.clone(), grads);
        })
    });

    let mut bare = adamw().init();
    g.bench_function("bare_update", |b| {
        b.iter_batched(
            || grads(&frozen, &batch),
            |grads| black_box(bare.step(1e-4, frozen.clone(), grads)),
            BatchSize::SmallInput,
        )
    });
    let mut masked = Masked::new(adamw().build(), &selection);
    g.bench_function("masked_update", |b| {
        b.iter_batched(
            || grads(&frozen, &batch),
            |grads| black_box(masked.step(1e-4, frozen.clone(), grads)),
            BatchSize::SmallInput,
        )
    });

    g.sample_size(10);
    // GeN after a warm-up (its first steps probe more while the rate is far off): 8 steps
    // with lazy_every = 8 contain one regular probe.
    let masked = Masked::new(adamw().build(), &selection);
    let mut warm = Gen::new(masked, 1e-4, GenConfig::new().with_lazy_every(8)).unwrap();
    let mut warm_model = frozen.clone();
    for _ in 0..64 {
        let grads = grads(&warm_model, &batch);
        warm_model = warm
            .step(warm_model, grads, |x: &RowTransformer| x.loss(&batch))
            .unwrap();
    }
    println!(
        "GeN warm-up: rate {:.2e} after {} probes in 64 steps",
        warm.lr(),
        warm.history().len()
    );
    g.bench_function("masked_8_steps", |b| {
        b.iter_batched(
            || (warm.optimizer().clone(), warm_model.clone()),
            |(mut masked, mut m)| {
                for _ in 0..8 {
                    let grads = grads(&m, &batch);
                    m = masked.step(warm.lr(), m, grads);
                }
                black_box(m)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("gen_8_steps", |b| {
        b.iter_batched(
            || (warm.clone(), warm_model.clone()),
            |(mut gen_lr, mut m)| {
                for _ in 0..8 {
                    let grads = grads(&m, &batch);
                    m = gen_lr
                        .step(m, grads, |x: &RowTransformer| x.loss(&batch))
                        .unwrap();
                }
                black_box(m)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("gen_probe_only", |b| {
        // One probe and step (the first of a lazy window) against one plain step.
        b.iter_batched(
            || (warm.clone(), warm_model.clone()),
            |(mut gen_lr, m)| {
                let grads = grads(&m, &batch);
                black_box(
                    gen_lr
                        .step(m, grads, |x: &RowTransformer| x.loss(&batch))
                        .unwrap(),
                )
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let ratio = |a: &str, b: &str| {
        Some((
            common::median_ns("optim", a)?,
            common::median_ns("optim", b)?,
        ))
    };
    println!("\n| measured | adapter | bare | adapter / bare |");
    println!("|---|---|---|---|");
    for (what, adapter, bare) in [
        ("training step", "masked_train_step", "bare_train_step"),
        ("optimizer update", "masked_update", "bare_update"),
        (
            "8 steps, GeN lazy_every = 8",
            "gen_8_steps",
            "masked_8_steps",
        ),
        (
            "one step that probes",
            "gen_probe_only",
            "masked_train_step",
        ),
    ] {
        if let Some((a, b)) = ratio(adapter, bare) {
            println!(
                "| {what} | {:.3} ms | {:.3} ms | {:.3} |",
                a / 1e6,
                b / 1e6,
                a / b
            );
        }
    }
}
