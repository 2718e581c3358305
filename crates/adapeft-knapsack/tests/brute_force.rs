//! Every solver against brute force over all subsets, on random small instances.

use adapeft_knapsack::{
    Class, FrontOptions, Item, KnapsackError, ParetoFront, Pick, SolveOptions, greedy,
    pareto_front, pareto_front_classes, pareto_front_classes_with, pareto_front_with, solve,
    solve_classes, solve_classes_with, solve_with,
};
use proptest::prelude::*;

/// Relative tolerance for comparing sums of the same values added in different orders.
const TOL: f64 = 1e-9;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * a.abs().max(b.abs())
}

fn at_least(a: f64, b: f64) -> bool {
    a >= b - TOL * a.abs().max(b.abs())
}

/// Weights spanning 1..1e7 log-uniformly, plus zeros and a few values shared by many items.
fn weight() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        4 => (0.0f64..7.0).prop_map(|e| 10f64.powf(e) as u64),
        2 => prop::sample::select(vec![1u64, 768, 768, 3072, 589_824, 2_359_296]),
    ]
}

/// Heavy-tailed values (log-normal and Pareto), plus zeros and repeated values.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => Just(0.0),
        3 => (-1.0f64..1.0, -1.0f64..1.0).prop_map(|(a, b)| ((a + b) * 4.0).exp()),
        2 => (0.0f64..0.999).prop_map(|u| (1.0 - u).powf(-1.0 / 1.2)),
        1 => prop::sample::select(vec![0.5, 1.0, 2.0]),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    (weight(), value()).prop_map(|(w, v)| Item::new(w, v))
}

/// All selections of a multiple-choice instance as (weight, value), by enumeration.
/// `classes[i]` lists the options of class i; "none" is implicit.
fn enumerate(classes: &[Vec<Item>]) -> Vec<(u64, f64)> {
    let mut all = vec![(0u64, 0.0f64)];
    for options in classes {
        let mut next = Vec::with_capacity(all.len() * (options.len() + 1));
        for &(w, v) in &all {
            next.push((w, v));
            for o in options {
                next.push((w + o.weight, v + o.value));
            }
        }
        all = next;
    }
    all
}

/// The optimum as a step function of the capacity: sorted (weight, best value up to it).
struct Brute {
    steps: Vec<(u64, f64)>,
    all: Vec<(u64, f64)>,
}

impl Brute {
    fn new(classes: &[Vec<Item>]) -> Self {
        let all = enumerate(classes);
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut steps: Vec<(u64, f64)> = Vec::new();
        for (w, v) in sorted {
            if steps.last().is_none_or(|&(_, best)| v > best) {
                steps.push((w, v));
            }
        }
        Self { steps, all }
    }

    fn opt(&self, capacity: u64) -> f64 {
        let k = self.steps.partition_point(|&(w, _)| w <= capacity);
        self.steps[k - 1].1
    }

    fn total_weight(&self) -> u64 {
        self.steps.last().map_or(0, |s| s.0)
    }
}

/// Weight and value of a selection of items, recomputed.
fn items_total(items: &[Item], chosen: &[usize]) -> (u64, f64) {
    chosen.iter().fold((0, 0.0), |(w, v), &i| {
        (w + items[i].weight, v + items[i].value)
    })
}

fn picks_total(classes: &[Class], chosen: &[Pick]) -> (u64, f64) {
    let mut seen = std::collections::HashSet::new();
    for p in chosen {
        assert!(
            seen.insert(p.class),
            "class {} picked twice in {chosen:?}",
            p.class
        );
    }
    chosen.iter().fold((0, 0.0), |(w, v), p| {
        let o = classes[p.class].options()[p.option];
        (w + o.weight, v + o.value)
    })
}

/// Checks a front against brute force; `epsilon = 0` demands exactness.
fn check_front<C: Copy + Ord + std::fmt::Debug>(
    front: &ParetoFront<C>,
    brute: &Brute,
    epsilon: f64,
    total: impl Fn(&[C]) -> (u64, f64),
) {
    // Strictly increasing in both: no point dominates another.
    for k in 1..front.len() {
        assert!(front.weights()[k] > front.weights()[k - 1]);
        assert!(front.values()[k] > front.values()[k - 1]);
    }
    // Every point is achieved by its stored selection, and is not beaten by any selection.
    for p in front.iter() {
        let (w, v) = total(&p.chosen);
        assert!(
            p.chosen.windows(2).all(|c| c[0] < c[1]),
            "unsorted {:?}",
            p.chosen
        );
        assert_eq!(w, p.weight, "{p:?}");
        assert!(close(v, p.value), "{p:?}: recomputed {v}");
        assert!(at_least(p.value, brute.opt(p.weight) * (1.0 - epsilon)) || epsilon > 0.0);
        assert!(
            at_least(brute.opt(p.weight), p.value),
            "{p:?} beats brute force"
        );
    }
    // Every selection is dominated by (or within 1 - epsilon of) a point of the front.
    for &(w, v) in &brute.all {
        let best = front.best_within(w).unwrap();
        assert!(
            at_least(best.value, (1.0 - epsilon) * v),
            "({w}, {v}) vs {best:?}"
        );
    }
    // The guarantee at every capacity where either step function changes.
    let capacities = brute
        .steps
        .iter()
        .map(|s| s.0)
        .chain(front.weights().iter().copied());
    for c in capacities {
        let best = front.best_within(c).unwrap();
        assert!(best.weight <= c);
        assert!(
            at_least(best.value, (1.0 - epsilon) * brute.opt(c)),
            "capacity {c}"
        );
        if epsilon == 0.0 {
            assert!(close(best.value, brute.opt(c)) || best.value == brute.opt(c));
        }
    }
    if epsilon == 0.0 {
        assert!(front.is_exact());
        // No superfluous points: as many steps as the optimum has, up to sums that differ only
        // by rounding (the same values added in another order).
        let brute_values = brute.steps.iter().map(|s| s.1);
        assert_eq!(
            significant_steps(front.values().iter().copied()),
            significant_steps(brute_values)
        );
    }
}

/// What an approximate front owes at capacity `c`, whose exact optimum is `opt`: its best
/// point within `c` is worth at least `(1 - epsilon) opt` and no more than `opt`, and its
/// selection (totalled by `total`) achieves exactly that weight and value.
fn check_guarantee<C: Copy + Ord>(
    front: &ParetoFront<C>,
    c: u64,
    opt: f64,
    epsilon: f64,
    total: impl Fn(&[C]) -> (u64, f64),
) -> Result<(), String> {
    let best = front
        .best_within(c)
        .ok_or_else(|| format!("capacity {c}: no point"))?;
    if best.weight > c {
        return Err(format!("capacity {c}: best point weighs {}", best.weight));
    }
    if !at_least(best.value, (1.0 - epsilon) * opt) {
        return Err(format!(
            "capacity {c}: {} < (1 - {epsilon}) * {opt}",
            best.value
        ));
    }
    if !at_least(opt, best.value) {
        return Err(format!(
            "capacity {c}: {} beats the optimum {opt}",
            best.value
        ));
    }
    let (w, v) = total(&best.chosen);
    if w != best.weight || !close(v, best.value) {
        return Err(format!(
            "capacity {c}: the selection totals ({w}, {v}), the point says ({}, {})",
            best.weight, best.value
        ));
    }
    Ok(())
}

/// The documented size of an approximate front: at most `2 ln(V / v_1) / epsilon + 2` points.
fn check_size_bound<C>(front: &ParetoFront<C>, epsilon: f64) {
    let values = front.values();
    let positive = values.iter().copied().find(|&v| v > 0.0);
    if let (Some(v1), Some(&v_max)) = (positive, values.last()) {
        let bound = 2.0 * (v_max / v1).ln() / epsilon + 2.0;
        assert!(
            front.len() as f64 <= bound + 1e-6,
            "{} points > {bound}",
            front.len()
        );
    }
}

/// Number of values in an increasing sequence that beat the last counted one by more than
/// the tolerance.
fn significant_steps(values: impl Iterator<Item = f64>) -> usize {
    let mut last = f64::NEG_INFINITY;
    let mut count = 0;
    for v in values {
        if !at_least(last, v) {
            last = v;
            count += 1;
        }
    }
    count
}

/// Capacities worth trying: none, all, fractions of the total, random.
fn capacities(total: u64, fractions: &[f64]) -> Vec<u64> {
    let mut caps = vec![0, 1, total, total + 1];
    caps.extend(fractions.iter().map(|f| (total as f64 * f) as u64));
    caps
}

proptest! {
    #[test]
    fn items_against_brute_force(
        items in prop::collection::vec(item(), 0..=18),
        fractions in prop::collection::vec(0.0f64..1.0, 4),
        epsilon in 0.001f64..0.5,
        gap in prop_oneof![Just(1e-6), 0.0f64..0.5],
    ) {
        let classes: Vec<Vec<Item>> = items.iter().map(|&it| vec![it]).collect();
        let brute = Brute::new(&classes);
        let total = |chosen: &[usize]| items_total(&items, chosen);

        for c in capacities(brute.total_weight(), &fractions) {
            let opt = brute.opt(c);
            let sol = solve(&items, c).unwrap();
            prop_assert!(sol.weight <= c);
            prop_assert!(sol.chosen.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(total(&sol.chosen).0, sol.weight);
            prop_assert!(close(total(&sol.chosen).1, sol.value));
            prop_assert!(close(sol.value, opt) || sol.value == opt, "solve {} vs {}", sol.value, opt);

            // Within the gap: feasible, consistent, at least (1 - gap) times the optimum.
            let near = solve_with(&items, c, SolveOptions::new().with_gap(gap)).unwrap();
            prop_assert!(near.weight <= c);
            prop_assert!(near.chosen.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(total(&near.chosen).0, near.weight);
            prop_assert!(close(total(&near.chosen).1, near.value));
            prop_assert!(at_least(opt, near.value));
            prop_assert!(at_least(near.value, (1.0 - gap) * opt), "gap {}: {} vs {}", gap, near.value, opt);

            let g = greedy(&items, c).unwrap();
            prop_assert!(g.weight <= c);
            prop_assert_eq!(total(&g.chosen).0, g.weight);
            prop_assert!(close(total(&g.chosen).1, g.value));
            prop_assert!(at_least(opt, g.value));
            prop_assert!(at_least(g.value, opt / 2.0), "greedy {} vs {}", g.value, opt);
        }

        check_front(&pareto_front(&items).unwrap(), &brute, 0.0, total);
        let approx = pareto_front_with(&items, FrontOptions::new().with_epsilon(epsilon)).unwrap();
        check_front(&approx, &brute, epsilon, total);
        check_size_bound(&approx, epsilon);
    }

    #[test]
    fn classes_against_brute_force(
        raw in prop::collection::vec(prop::collection::vec(item(), 1..=3), 0..=6),
        fractions in prop::collection::vec(0.0f64..1.0, 4),
        epsilon in 0.001f64..0.5,
        gap in prop_oneof![Just(1e-6), 0.0f64..0.5],
    ) {
        let classes: Vec<Class> = raw.iter().map(|o| Class::new(o.clone())).collect();
        let brute = Brute::new(&raw);
        let total = |chosen: &[Pick]| picks_total(&classes, chosen);

        for c in capacities(brute.total_weight(), &fractions) {
            let opt = brute.opt(c);
            let sol = solve_classes(&classes, c).unwrap();
            prop_assert!(sol.weight <= c);
            prop_assert_eq!(total(&sol.chosen).0, sol.weight);
            prop_assert!(close(total(&sol.chosen).1, sol.value));
            prop_assert!(close(sol.value, opt) || sol.value == opt, "solve {} vs {}", sol.value, opt);

            let near = solve_classes_with(&classes, c, SolveOptions::new().with_gap(gap)).unwrap();
            prop_assert!(near.weight <= c);
            prop_assert_eq!(total(&near.chosen).0, near.weight);
            prop_assert!(close(total(&near.chosen).1, near.value));
            prop_assert!(at_least(opt, near.value));
            prop_assert!(at_least(near.value, (1.0 - gap) * opt), "gap {}: {} vs {}", gap, near.value, opt);
        }

        check_front(&pareto_front_classes(&classes).unwrap(), &brute, 0.0, total);
        let opts = FrontOptions::new().with_epsilon(epsilon);
        check_front(&pareto_front_classes_with(&classes, opts).unwrap(), &brute, epsilon, total);
    }
}

/// Correlated values (value close to a multiple of the weight) make pruning by bound weak and
/// near-ties common: the hard case for branch and bound.
fn correlated_item() -> impl Strategy<Value = Item> {
    (1u64..100_000, 0.9f64..1.1, 0.0f64..1000.0)
        .prop_map(|(w, noise, offset)| Item::new(w, w as f64 * noise + offset))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Larger instances, where brute force is out of reach: the bound-pruned solver must agree
    /// with the exact front at every capacity tried.
    #[test]
    fn solve_agrees_with_the_front_on_larger_instances(
        items in prop_oneof![
            prop::collection::vec(item(), 20..60),
            prop::collection::vec(correlated_item(), 20..40),
        ],
        fractions in prop::collection::vec(0.0f64..1.0, 6),
    ) {
        let front = pareto_front(&items).unwrap();
        let total = front.weights().last().copied().unwrap_or(0);
        for c in capacities(total, &fractions) {
            let sol = solve(&items, c).unwrap();
            let best = front.best_within(c).unwrap();
            prop_assert!(close(sol.value, best.value) || sol.value == best.value,
                "capacity {}: solve {} vs front {}", c, sol.value, best.value);
            prop_assert!(sol.weight <= c);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Instances whose lists grow past the trimming threshold, so that trims happen during the
    /// merging and not only at the end: the guarantee against the exact front, at every
    /// capacity where the exact optimum changes.
    #[test]
    fn approximate_front_keeps_its_guarantee_on_larger_instances(
        items in prop::collection::vec(item(), 30..45),
        epsilon in 0.001f64..0.3,
    ) {
        let exact = pareto_front(&items).unwrap();
        let approx = pareto_front_with(&items, FrontOptions::new().with_epsilon(epsilon)).unwrap();
        check_size_bound(&approx, epsilon);
        for (&c, &opt) in exact.weights().iter().zip(exact.values()) {
            check_guarantee(&approx, c, opt, epsilon, |ch| items_total(&items, ch))
                .map_err(TestCaseError::fail)?;
        }
        for p in approx.iter() {
            let (w, v) = items_total(&items, &p.chosen);
            prop_assert_eq!(w, p.weight);
            prop_assert!(close(v, p.value));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same for multiple-choice classes: lists long enough to be trimmed during the
    /// merging, checked against the exact front at every capacity where the optimum changes.
    #[test]
    fn approximate_classes_front_keeps_its_guarantee_on_larger_instances(
        raw in prop::collection::vec(prop::collection::vec(item(), 1..=4), 10..16),
        epsilon in 0.001f64..0.3,
    ) {
        let classes: Vec<Class> = raw.iter().map(|o| Class::new(o.clone())).collect();
        let exact = pareto_front_classes(&classes).unwrap();
        let opts = FrontOptions::new().with_epsilon(epsilon);
        let approx = pareto_front_classes_with(&classes, opts).unwrap();
        check_size_bound(&approx, epsilon);
        for (&c, &opt) in exact.weights().iter().zip(exact.values()) {
            check_guarantee(&approx, c, opt, epsilon, |ch| picks_total(&classes, ch))
                .map_err(TestCaseError::fail)?;
        }
        for p in approx.iter() {
            let (w, v) = picks_total(&classes, &p.chosen);
            prop_assert_eq!(w, p.weight);
            prop_assert!(close(v, p.value));
        }
    }
}

/// Capacities at which to compare a front with the exact solver: fractions of the total
/// weight, the front's own weights and one less than them (just before a step).
fn probe_capacities<C>(front: &ParetoFront<C>, total: u64, fractions: &[f64]) -> Vec<u64> {
    let mut caps = capacities(total, fractions);
    let step = (front.len() / 12).max(1);
    for &w in front.weights().iter().step_by(step) {
        caps.push(w);
        caps.push(w.saturating_sub(1));
    }
    caps
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Instances far beyond brute force and the exact front, with many trims during the
    /// merging: the guarantee against the exact single-capacity solvers, at capacities spread
    /// over the whole front.
    #[test]
    fn approximate_fronts_against_the_exact_solvers_on_many_items(
        items in prop::collection::vec(item(), 100..300),
        raw in prop::collection::vec(prop::collection::vec(item(), 1..=4), 60..120),
        fractions in prop::collection::vec(0.0f64..1.0, 6),
        epsilon in 0.002f64..0.2,
    ) {
        let opts = FrontOptions::new().with_epsilon(epsilon);
        let front = pareto_front_with(&items, opts).unwrap();
        check_size_bound(&front, epsilon);
        let total: u64 = items.iter().map(|it| it.weight).sum();
        for c in probe_capacities(&front, total, &fractions) {
            let opt = solve(&items, c).unwrap().value;
            check_guarantee(&front, c, opt, epsilon, |ch| items_total(&items, ch))
                .map_err(|e| TestCaseError::fail(format!("items, {e}")))?;
        }

        let classes: Vec<Class> = raw.iter().map(|o| Class::new(o.clone())).collect();
        let front = pareto_front_classes_with(&classes, opts).unwrap();
        check_size_bound(&front, epsilon);
        let total: u64 = raw
            .iter()
            .map(|o| o.iter().map(|it| it.weight).max().unwrap_or(0))
            .sum();
        for c in probe_capacities(&front, total, &fractions) {
            let opt = solve_classes(&classes, c).unwrap().value;
            check_guarantee(&front, c, opt, epsilon, |ch| picks_total(&classes, ch))
                .map_err(|e| TestCaseError::fail(format!("classes, {e}")))?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Enough items for the large-instance construction of approximate fronts (capacity
    /// ranges, large items merged, small ones as ratio-order prefixes), with and without a
    /// weight limit: the guarantee against `solve` at capacities spread over the front, and
    /// every answer achieved by its selection.
    #[test]
    fn approximate_fronts_of_many_items_with_a_weight_limit(
        items in prop::collection::vec(item(), 200..400),
        fractions in prop::collection::vec(0.0f64..1.0, 6),
        limit in prop_oneof![Just(None), (0.0f64..1.0).prop_map(Some)],
        epsilon in 0.002f64..0.3,
    ) {
        let total: u64 = items.iter().map(|it| it.weight).sum();
        let mut opts = FrontOptions::new().with_epsilon(epsilon);
        if let Some(f) = limit {
            opts = opts.with_max_weight((total as f64 * f * f) as u64);
        }
        let front = pareto_front_with(&items, opts).unwrap();
        check_size_bound(&front, epsilon);
        let max = opts.max_weight.unwrap_or(u64::MAX);
        prop_assert!(*front.weights().last().unwrap() <= max);
        let caps = probe_capacities(&front, total.min(max), &fractions);
        for c in caps.into_iter().filter(|&c| c <= max) {
            let opt = solve(&items, c).unwrap().value;
            check_guarantee(&front, c, opt, epsilon, |ch| items_total(&items, ch))
                .map_err(TestCaseError::fail)?;
            let best = front.best_within(c).unwrap();
            prop_assert!(best.chosen.windows(2).all(|p| p[0] < p[1]));
        }
    }
}

/// Model-shaped instances as in the bench (weights log-uniform in 1..1e7, values
/// `sqrt(weight) * lognormal`), large enough that the front is trimmed many times: the
/// guarantee against the exact solvers at capacities spread over the front.
#[test]
fn model_shaped_fronts_against_the_exact_solvers() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(11);
    let normal = |rng: &mut StdRng| {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let full = |rng: &mut StdRng| {
        let weight = (rng.random::<f64>() * 1e7f64.ln()).exp().round().max(1.0) as u64;
        Item::new(weight, (weight as f64).sqrt() * (1.5 * normal(rng)).exp())
    };
    let items: Vec<Item> = (0..1500).map(|_| full(&mut rng)).collect();
    let classes: Vec<Class> = (0..400)
        .map(|_| {
            let it = full(&mut rng);
            let side = (it.weight as f64).sqrt();
            let mut options = vec![it];
            for (rank, share) in [(1.0, 0.2), (4.0, 0.4), (16.0, 0.7)] {
                let w = (2.0 * rank * side).round().max(1.0) as u64;
                options.push(Item::new(w, it.value * share * rng.random_range(0.8..1.2)));
            }
            Class::new(options)
        })
        .collect();
    let epsilon = 0.01;
    let opts = FrontOptions::new().with_epsilon(epsilon);

    let total: u64 = items.iter().map(|it| it.weight).sum();
    let fractions = [1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.03, 0.1, 0.3, 0.6, 0.9];
    // 0.01: the merging alone at this size; 0.03: few enough large items per capacity range
    // for the construction by ranges (see `pareto_front_with`).
    for eps in [epsilon, 0.03] {
        let front = pareto_front_with(&items, FrontOptions::new().with_epsilon(eps)).unwrap();
        assert!(!front.is_exact());
        check_size_bound(&front, eps);
        for c in probe_capacities(&front, total, &fractions) {
            let opt = solve(&items, c).unwrap().value;
            check_guarantee(&front, c, opt, eps, |ch| items_total(&items, ch))
                .unwrap_or_else(|e| panic!("items, epsilon {eps}, {e}"));
        }
    }

    let front = pareto_front_classes_with(&classes, opts).unwrap();
    let total: u64 = classes.iter().map(|c| c.options()[0].weight).sum();
    for c in probe_capacities(&front, total, &fractions) {
        let opt = solve_classes(&classes, c).unwrap().value;
        check_guarantee(&front, c, opt, epsilon, |ch| picks_total(&classes, ch))
            .unwrap_or_else(|e| panic!("classes, {e}"));
    }
}

/// Enough model-shaped classes (as in the bench: a full option and three LoRA-like ones) for
/// the construction by capacity ranges: the guarantee against `solve_classes` at capacities
/// spread over the front, with and without a weight limit, and the selections.
#[test]
fn many_model_shaped_classes_against_the_exact_solver() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(5);
    let classes: Vec<Class> = (0..1200)
        .map(|_| {
            let weight = (rng.random::<f64>() * 1e7f64.ln()).exp().round().max(1.0) as u64;
            let value = (weight as f64).sqrt() * (1.5 * rng.random_range(-2.0f64..2.0)).exp();
            let side = (weight as f64).sqrt();
            let mut options = vec![Item::new(weight, value)];
            for rank in [1.0f64, 4.0, 16.0] {
                let w = (2.0 * rank * side).round().max(1.0) as u64;
                let share = (rank / 32.0).sqrt() * rng.random_range(0.7..1.4);
                options.push(Item::new(w, value * share.min(1.0)));
            }
            Class::new(options)
        })
        .collect();
    let total: u64 = classes.iter().map(|c| c.options()[0].weight).sum();
    let fractions = [1e-6, 1e-4, 1e-3, 0.01, 0.1, 0.5, 0.9];
    for (epsilon, max_weight) in [(0.01, None), (0.02, Some(total / 50))] {
        let mut opts = FrontOptions::new().with_epsilon(epsilon);
        if let Some(m) = max_weight {
            opts = opts.with_max_weight(m);
        }
        let front = pareto_front_classes_with(&classes, opts).unwrap();
        check_size_bound(&front, epsilon);
        let limit = max_weight.unwrap_or(u64::MAX);
        assert!(*front.weights().last().unwrap() <= limit);
        for c in probe_capacities(&front, total.min(limit), &fractions) {
            let opt = solve_classes(&classes, c).unwrap().value;
            check_guarantee(&front, c, opt, epsilon, |ch| picks_total(&classes, ch))
                .unwrap_or_else(|e| panic!("epsilon {epsilon}, {e}"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A weight limit only cuts the exact front: the bounded front is the prefix of the full
    /// one up to `max_weight`, for items and classes (the merges skip the shifted points that
    /// do not fit). Values up to rounding: the limit drops options, which can change the order
    /// in which the same values are added.
    #[test]
    fn bounded_exact_fronts_are_prefixes_of_the_full_front(
        items in prop::collection::vec(item(), 0..=14),
        raw in prop::collection::vec(prop::collection::vec(item(), 1..=3), 0..=6),
        fraction in 0.0f64..1.0,
    ) {
        let full = pareto_front(&items).unwrap();
        let cap = (*full.weights().last().unwrap() as f64 * fraction) as u64;
        let bounded = pareto_front_with(&items, FrontOptions::new().with_max_weight(cap)).unwrap();
        let k = full.best_index_within(cap).unwrap() + 1;
        let (b, f) = (untied(&bounded), untied_prefix(&full, k));
        prop_assert_eq!(b.iter().map(|p| p.0).collect::<Vec<_>>(), f.iter().map(|p| p.0).collect::<Vec<_>>());
        prop_assert!(b.iter().zip(&f).all(|(x, y)| close(x.1, y.1)));

        let classes: Vec<Class> = raw.iter().map(|o| Class::new(o.clone())).collect();
        let full = pareto_front_classes(&classes).unwrap();
        let cap = (*full.weights().last().unwrap() as f64 * fraction) as u64;
        let opts = FrontOptions::new().with_max_weight(cap);
        let bounded = pareto_front_classes_with(&classes, opts).unwrap();
        let k = full.best_index_within(cap).unwrap() + 1;
        let (b, f) = (untied(&bounded), untied_prefix(&full, k));
        prop_assert_eq!(b.iter().map(|p| p.0).collect::<Vec<_>>(), f.iter().map(|p| p.0).collect::<Vec<_>>());
        prop_assert!(b.iter().zip(&f).all(|(x, y)| close(x.1, y.1)));
    }
}

/// The `(weight, value)` points of a front that are better than the previous point by more than
/// rounding: two merges that add the same values in another order can keep or drop a point
/// whose value ties another's up to an ulp (found by proptest: options of weight 0 and 56 in
/// two classes whose sums `2 + 0.064` and `1 + 1 + 0.064` differ in the last bit).
fn untied<C>(front: &ParetoFront<C>) -> Vec<(u64, f64)> {
    untied_prefix(front, front.len())
}

/// [`untied`] over the first `k` points.
fn untied_prefix<C>(front: &ParetoFront<C>, k: usize) -> Vec<(u64, f64)> {
    let mut kept = Vec::new();
    let mut last = f64::NEG_INFINITY;
    for (&w, &v) in front.weights()[..k].iter().zip(&front.values()[..k]) {
        if v > last + 1e-12 * last.abs().max(1.0) {
            kept.push((w, v));
            last = v;
        }
    }
    kept
}

#[test]
fn a_gap_outside_zero_to_one_is_refused_by_name() {
    let items = [Item::new(1, 1.0)];
    for gap in [-0.1, 1.0, f64::NAN, f64::INFINITY] {
        let err = solve_with(&items, 1, SolveOptions::new().with_gap(gap)).unwrap_err();
        assert!(
            matches!(err, KnapsackError::InvalidGap { .. }),
            "{gap}: {err:?}"
        );
        assert!(err.to_string().contains("gap"), "{err}");
        let classes = [Class::new(vec![Item::new(1, 1.0)])];
        let err = solve_classes_with(&classes, 1, SolveOptions::new().with_gap(gap)).unwrap_err();
        assert!(matches!(err, KnapsackError::InvalidGap { .. }));
    }
}
