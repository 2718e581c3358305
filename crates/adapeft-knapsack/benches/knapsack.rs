//! Benchmarks of the knapsack solvers on instances shaped like real models.
//!
//! Items have weights log-uniform in `[1, 1e7]` (parameter counts from a bias to a large
//! matrix) and values `sqrt(weight) * lognormal(0, 1.5)`: bigger groups predict a bigger loss
//! reduction but less per parameter, with heavy-tailed noise. Fixed seed.
//!
//! The exact Pareto front of such instances grows very fast with the number of items: about a
//! million points at 100 items, 11 million at 500 (20 s) and 28 million at 1,000 (almost two
//! minutes and 5 GB, measured once), so the exact front is only benchmarked at 100 items. The
//! bench prints the front sizes of every case it runs.
//!
//! Multiple-choice fronts are benchmarked on classes built the same way: each class is a
//! matrix with `weight` parameters (its full option) and three LoRA-like options of ranks 1,
//! 4 and 16 (`2 r sqrt(weight)` parameters, worth `sqrt(r / 32)` of the full value with
//! log-normal noise, never more than it).
//!
//! Run with `cargo bench -p adapeft-knapsack --bench knapsack` (it needs only this crate, not
//! burn).

use std::hint::black_box;
use std::time::Duration;

use adapeft_knapsack::{
    Class, FrontOptions, Item, greedy, pareto_front, pareto_front_classes_with, pareto_front_with,
    solve,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // in (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` items: weights log-uniform in [1, 1e7], values sqrt(weight) * lognormal(0, 1.5).
fn instance(n: usize, seed: u64) -> Vec<Item> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let weight = (rng.random::<f64>() * 1e7f64.ln()).exp().round().max(1.0) as u64;
            let value = (weight as f64).sqrt() * (1.5 * normal(&mut rng)).exp();
            Item::new(weight, value)
        })
        .collect()
}

/// `n` classes: a full option as in [`instance`] plus LoRA-like options of ranks 1, 4, 16.
fn classes(n: usize, seed: u64) -> Vec<Class> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let weight = (rng.random::<f64>() * 1e7f64.ln()).exp().round().max(1.0) as u64;
            let value = (weight as f64).sqrt() * (1.5 * normal(&mut rng)).exp();
            let side = (weight as f64).sqrt();
            let mut options = vec![Item::new(weight, value)];
            for rank in [1.0f64, 4.0, 16.0] {
                let w = (2.0 * rank * side).round().max(1.0) as u64;
                let share = (rank / 32.0).sqrt() * (0.3 * normal(&mut rng)).exp();
                options.push(Item::new(w, value * share.min(1.0)));
            }
            Class::new(options)
        })
        .collect()
}

const SIZES: [usize; 3] = [100, 1_000, 10_000];

fn bench_solve(c: &mut Criterion) {
    let mut group = c.benchmark_group("solve_1pct");
    for n in SIZES {
        let items = instance(n, 7);
        let capacity = items.iter().map(|it| it.weight).sum::<u64>() / 100;
        let exact = solve(&items, capacity).expect("valid instance");
        let approx = greedy(&items, capacity).expect("valid instance");
        eprintln!(
            "solve n={n}: capacity {capacity}, {} items chosen, value {:.6e} (greedy {:.6e})",
            exact.chosen.len(),
            exact.value,
            approx.value
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &items, |b, items| {
            b.iter(|| solve(black_box(items), capacity))
        });
    }
    group.finish();
}

fn bench_greedy(c: &mut Criterion) {
    let mut group = c.benchmark_group("greedy_1pct");
    for n in SIZES {
        let items = instance(n, 7);
        let capacity = items.iter().map(|it| it.weight).sum::<u64>() / 100;
        group.bench_with_input(BenchmarkId::from_parameter(n), &items, |b, items| {
            b.iter(|| greedy(black_box(items), capacity))
        });
    }
    group.finish();
}

fn bench_front(c: &mut Criterion) {
    let mut group = c.benchmark_group("front_exact");
    group.sample_size(10);
    // 1,000 and 10,000 items: far too many points (see the module docs).
    let items = instance(100, 7);
    let front = pareto_front(&items).expect("valid instance");
    eprintln!("front_exact n=100: {} points", front.len());
    group.bench_with_input(BenchmarkId::from_parameter(100), &items, |b, items| {
        b.iter(|| pareto_front(black_box(items)))
    });
    group.finish();

    let mut group = c.benchmark_group("front_eps_0.01");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let opts = FrontOptions::new().with_epsilon(0.01);
    for n in SIZES {
        let items = instance(n, 7);
        let front = pareto_front_with(&items, opts).expect("valid instance");
        eprintln!(
            "front_eps_0.01 n={n}: {} points (exact: {})",
            front.len(),
            front.is_exact()
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &items, |b, items| {
            b.iter(|| pareto_front_with(black_box(items), opts))
        });
    }
    group.finish();
}

fn bench_classes(c: &mut Criterion) {
    let mut group = c.benchmark_group("front_classes_eps_0.01");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let opts = FrontOptions::new().with_epsilon(0.01);
    for n in SIZES {
        let classes = classes(n, 7);
        group.bench_with_input(BenchmarkId::from_parameter(n), &classes, |b, classes| {
            b.iter(|| pareto_front_classes_with(black_box(classes), opts))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_solve,
    bench_greedy,
    bench_front,
    bench_classes
);
criterion_main!(benches);
