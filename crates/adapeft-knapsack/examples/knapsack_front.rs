//! The trade-off between trainable parameters and predicted loss reduction for a BERT-base
//! sized encoder, read off the knapsack's Pareto front.
//!
//! One knapsack item per tensor: its weight is the tensor's parameter count and its value the
//! loss reduction training it is predicted to bring. **The values here are synthetic** (a
//! deterministic random model in which biases and LayerNorm parameters are worth the most per
//! parameter and deeper layers more than shallow ones): this example exercises the solver
//! alone, on an instance of realistic size, without burn. On a real model the values come
//! from adapeft's estimators (`AdaPeft::select`, as in the `digits` study at the workspace
//! root); the parameter counts here are those of a 12-layer, 768-wide encoder.
//!
//! Run with `cargo run -p adapeft-knapsack --example knapsack_front` (it needs only this
//! crate, not burn).

use std::time::Instant;

use adapeft_knapsack::{FrontOptions, Item, ParetoFront, greedy, pareto_front_with, solve};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const LAYERS: usize = 12;
const D_MODEL: u64 = 768;
const D_FFN: u64 = 3072;
const VOCAB: u64 = 30_522;
const POSITIONS: u64 = 512;
const LABELS: u64 = 2;

/// What a tensor is, which sets its synthetic value per parameter.
#[derive(Clone, Copy)]
enum Kind {
    Embedding,
    Matrix,
    Bias,
    Norm,
    Head,
}

struct Tensor {
    name: String,
    params: u64,
    kind: Kind,
    /// 0 for the embeddings, 1..=12 for the layers, 13 for the pooler and head.
    depth: usize,
}

fn tensors() -> Vec<Tensor> {
    let mut t = Vec::new();
    let mut push = |name: String, params: u64, kind: Kind, depth: usize| {
        t.push(Tensor {
            name,
            params,
            kind,
            depth,
        })
    };
    push(
        "embeddings.word".into(),
        VOCAB * D_MODEL,
        Kind::Embedding,
        0,
    );
    push(
        "embeddings.position".into(),
        POSITIONS * D_MODEL,
        Kind::Embedding,
        0,
    );
    push(
        "embeddings.token_type".into(),
        2 * D_MODEL,
        Kind::Embedding,
        0,
    );
    push("embeddings.norm.gamma".into(), D_MODEL, Kind::Norm, 0);
    push("embeddings.norm.beta".into(), D_MODEL, Kind::Norm, 0);
    for l in 0..LAYERS {
        let depth = l + 1;
        for m in ["q", "k", "v", "o"] {
            push(
                format!("layer.{l}.attn.{m}.weight"),
                D_MODEL * D_MODEL,
                Kind::Matrix,
                depth,
            );
            push(
                format!("layer.{l}.attn.{m}.bias"),
                D_MODEL,
                Kind::Bias,
                depth,
            );
        }
        push(
            format!("layer.{l}.attn_norm.gamma"),
            D_MODEL,
            Kind::Norm,
            depth,
        );
        push(
            format!("layer.{l}.attn_norm.beta"),
            D_MODEL,
            Kind::Norm,
            depth,
        );
        push(
            format!("layer.{l}.ffn.in.weight"),
            D_MODEL * D_FFN,
            Kind::Matrix,
            depth,
        );
        push(format!("layer.{l}.ffn.in.bias"), D_FFN, Kind::Bias, depth);
        push(
            format!("layer.{l}.ffn.out.weight"),
            D_FFN * D_MODEL,
            Kind::Matrix,
            depth,
        );
        push(
            format!("layer.{l}.ffn.out.bias"),
            D_MODEL,
            Kind::Bias,
            depth,
        );
        push(
            format!("layer.{l}.ffn_norm.gamma"),
            D_MODEL,
            Kind::Norm,
            depth,
        );
        push(
            format!("layer.{l}.ffn_norm.beta"),
            D_MODEL,
            Kind::Norm,
            depth,
        );
    }
    push(
        "pooler.weight".into(),
        D_MODEL * D_MODEL,
        Kind::Matrix,
        LAYERS + 1,
    );
    push("pooler.bias".into(), D_MODEL, Kind::Bias, LAYERS + 1);
    push(
        "head.weight".into(),
        D_MODEL * LABELS,
        Kind::Head,
        LAYERS + 1,
    );
    push("head.bias".into(), LABELS, Kind::Head, LAYERS + 1);
    t
}

/// Synthetic predicted loss reductions: `rate(kind) * depth factor * params^0.85 * noise`,
/// normalised so that training everything is predicted to reduce the loss by 1.0.
fn synthetic_values(tensors: &[Tensor], seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut normal = move || {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let raw: Vec<f64> = tensors
        .iter()
        .map(|t| {
            let rate = match t.kind {
                Kind::Embedding => 0.3,
                Kind::Matrix => 1.0,
                Kind::Bias => 2.0,
                Kind::Norm => 1.5,
                Kind::Head => 8.0,
            };
            let depth = 0.5 + 1.5 * t.depth as f64 / (LAYERS + 1) as f64;
            rate * depth * (t.params as f64).powf(0.85) * (0.8 * normal()).exp()
        })
        .collect();
    let total: f64 = raw.iter().sum();
    raw.iter().map(|v| v / total).collect()
}

fn pct(part: f64, whole: f64) -> f64 {
    100.0 * part / whole
}

/// The chosen tensors, compactly: names that differ only by layer are merged into one
/// `layer.{0-3,7}.attn.q.bias` entry; entries are wrapped to lines of about 88 characters.
fn names(tensors: &[Tensor], chosen: &[usize]) -> String {
    // (name with the layer index taken out, layers) in order of first appearance.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for &i in chosen {
        let name = &tensors[i].name;
        let (key, layer) = match name.strip_prefix("layer.").and_then(|r| r.split_once('.')) {
            Some((l, rest)) => (rest.to_string(), l.parse().ok()),
            None => (name.clone(), None),
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, layers)) => layers.extend(layer),
            None => groups.push((key, layer.into_iter().collect())),
        }
    }
    let entries = groups
        .into_iter()
        .map(|(key, layers)| match layers.as_slice() {
            [] => key,
            [one] => format!("layer.{one}.{key}"),
            _ => format!("layer.{{{}}}.{key}", ranges(&layers)),
        });
    let mut out = String::from("      ");
    let mut line = 0;
    for entry in entries {
        if line > 0 && line + entry.len() > 88 {
            out.push_str("\n      ");
            line = 0;
        } else if line > 0 {
            out.push_str("  ");
            line += 2;
        }
        line += entry.len();
        out.push_str(&entry);
    }
    out
}

/// `[0, 1, 2, 3, 7]` as `0-3,7`.
fn ranges(sorted: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut k = 0;
    while k < sorted.len() {
        let start = sorted[k];
        while k + 1 < sorted.len() && sorted[k + 1] == sorted[k] + 1 {
            k += 1;
        }
        let end = sorted[k];
        parts.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        k += 1;
    }
    parts.join(",")
}

fn print_front(front: &ParetoFront, total_params: u64) {
    println!(
        "  {:>12}  {:>9}  {:>10}  {:>7}",
        "params", "% params", "reduction", "tensors"
    );
    let mut shown = Vec::new();
    // 15 budgets log-spaced from 0.001% to 100% of the parameters.
    for k in 0..15 {
        let budget = total_params as f64 * 10f64.powf(-5.0 + 5.0 * k as f64 / 14.0);
        let Some(i) = front.best_index_within(budget as u64) else {
            continue;
        };
        if shown.contains(&i) {
            continue;
        }
        shown.push(i);
        let p = front.summary(i).expect("index from the front");
        let tensors = front.chosen(i).map_or(0, |c| c.len());
        println!(
            "  {:>12}  {:>8.4}%  {:>10.4}  {:>7}",
            p.weight,
            pct(p.weight as f64, total_params as f64),
            p.value,
            tensors
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tensors = tensors();
    let values = synthetic_values(&tensors, 2025);
    let items: Vec<Item> = tensors
        .iter()
        .zip(&values)
        .map(|(t, &v)| Item::new(t.params, v))
        .collect();
    let total_params: u64 = items.iter().map(|it| it.weight).sum();

    println!("NOTE: the values below are SYNTHETIC (a seeded random model), not estimates from a");
    println!("real model; only the parameter counts are those of a BERT-base sized encoder.\n");
    println!(
        "{} tensors, {} parameters; training all of them: predicted reduction 1.0\n",
        items.len(),
        total_params
    );

    let start = Instant::now();
    let exact = pareto_front_with(&items, FrontOptions::new())?;
    println!(
        "exact Pareto front: {} points in {:.2?}",
        exact.len(),
        start.elapsed()
    );
    let start = Instant::now();
    let approx = pareto_front_with(&items, FrontOptions::new().with_epsilon(0.01))?;
    println!(
        "front within 1% (epsilon = 0.01): {} points in {:.2?}\n",
        approx.len(),
        start.elapsed()
    );
    print_front(&exact, total_params);

    let knee = exact.knee().expect("a front has points");
    println!(
        "\nknee (farthest above the chord, both axes normalised): {} params ({:.3}%), \
         reduction {:.4} ({:.1}% of the maximum), {} tensors",
        knee.weight,
        pct(knee.weight as f64, total_params as f64),
        knee.value,
        pct(knee.value, exact.values().last().copied().unwrap_or(1.0)),
        knee.chosen.len()
    );
    println!("{}", names(&tensors, &knee.chosen));

    for fraction in [0.001, 0.005, 0.01, 0.05] {
        let budget = (total_params as f64 * fraction) as u64;
        let start = Instant::now();
        let best = solve(&items, budget)?;
        let took = start.elapsed();
        let fast = greedy(&items, budget)?;
        let from_front = exact.best_within(budget).map_or(0.0, |p| p.value);
        println!(
            "\nbudget {:.1}% = {} params: exact {:.4} ({} tensors, {} params, solved in {:.2?}); \
             greedy {:.4} ({:.2}% of exact); front {:.4}",
            100.0 * fraction,
            budget,
            best.value,
            best.chosen.len(),
            best.weight,
            took,
            fast.value,
            pct(fast.value, best.value),
            from_front
        );
        println!("{}", names(&tensors, &best.chosen));
    }
    Ok(())
}
