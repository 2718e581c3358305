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
//! Run with `cargo bench --bench knapsack`.

use std::hint::black_box;
use std::time::Duration;

use adapeft_knapsack::{FrontOptions, Item, greedy, pareto_front, pareto_front_with, solve};
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

criterion_group!(benches, bench_solve, bench_greedy, bench_front);
criterion_main!(benches);
