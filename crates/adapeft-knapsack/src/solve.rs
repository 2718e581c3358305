//! Exact solutions for one capacity: list merging pruned by capacity and by the LP bound.

use crate::bound::LpBound;
use crate::class::{Class, Pick};
use crate::core_problem::{CORE_SEGMENTS, core_incumbent};
use crate::error::KnapsackError;
use crate::instance::{Group, Instance};
use crate::item::Item;
use crate::merge::{MergeOptions, Merged, heaviest, merge_all, total_value};
use crate::pareto::pick_table;
use crate::reduce::{Reduced, greedy_fill, reduce, selection_of};
use crate::solution::Solution;

/// The exact optimum of the 0-1 knapsack: the most valuable subset of `items` whose total
/// weight is at most `capacity`.
///
/// # Algorithm
///
/// Dynamic programming over non-dominated states (Nemhauser-Ullmann list merging), pruned
/// like branch and bound. After each merge the list holds the non-dominated (weight, value)
/// pairs of subsets of the merged items, and a pair is dropped when it is
/// - heavier than `capacity`, or
/// - hopeless: its value plus the Dantzig (LP) bound of the items not merged yet, for the
///   capacity it leaves, is below the best value already reached (the incumbent).
///
/// Before merging, the incumbent is set to the optimum of a small core problem (the items
/// around the LP's break solved exactly, every other item as the greedy fill has it), and
/// Lagrangian reduction fixes every item whose bound falls below it. The heaviest items left
/// are merged first, which makes the LP bound over the light ones nearly integral; when
/// thousands are left, each partial selection over the heavy ones is completed separately,
/// after a reduction of the light items at its own capacity and price. Each step only
/// removes what cannot beat the incumbent, so the result is still an optimum.
///
/// Dominance makes this robust where depth-first branch and bound is not (many items of
/// similar ratio, many equal weights), and the bound keeps the lists short: an item whose
/// ratio is far from the critical one is decided as soon as it is merged. No table over the
/// capacity is built, so weights may be as large as `u64` allows. The result is exact up to
/// floating-point rounding of the values (ties within `1e-9` of the total value are kept, never
/// pruned).
///
/// Weightless items with positive value are always taken; items without value never are.
/// Which of several optimal subsets is returned is deterministic but otherwise unspecified
/// (a tie with the incumbent found before merging keeps the incumbent, whatever its weight).
/// Items heavier than `capacity` are ignored,
/// and sums that would overflow `u64` exceed any capacity, so this never reports
/// [`KnapsackError::WeightOverflow`].
///
/// # Errors
///
/// [`KnapsackError::NonFiniteValue`] or [`KnapsackError::NegativeValue`] for the first bad item.
///
/// ```
/// use adapeft_knapsack::{solve, Item};
///
/// let items = [Item::new(5, 10.0), Item::new(4, 7.0), Item::new(3, 5.5), Item::new(6, 12.5)];
/// let sol = solve(&items, 10)?;
/// assert_eq!(sol.chosen, vec![1, 3]);
/// assert_eq!((sol.weight, sol.value), (10, 19.5));
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
pub fn solve(items: &[Item], capacity: u64) -> Result<Solution, KnapsackError> {
    solve_with(items, capacity, SolveOptions::default())
}

/// Options of [`solve_with`] and [`solve_classes_with`].
///
/// ```
/// use adapeft_knapsack::SolveOptions;
///
/// let opts = SolveOptions::new().with_gap(1e-6);
/// assert_eq!(opts.gap, 1e-6);
/// assert_eq!(SolveOptions::default().gap, 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SolveOptions {
    /// Relative optimality gap in `[0, 1)`; `0` (the default) solves exactly.
    ///
    /// With `gap > 0` the solution is worth at least `(1 - gap)` times the optimum: the
    /// greedy fill is kept as the incumbent, and everything that cannot beat it by more than
    /// the gap is pruned. The values adapeft solves over are estimates whose noise is far
    /// above `1e-6` of their sum, and on a million model-shaped items that gap is what makes
    /// a selection take a second instead of minutes (`docs/performance.md` has the times).
    pub gap: f64,
}

impl SolveOptions {
    /// The default options: exact.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`SolveOptions::gap`].
    pub fn with_gap(mut self, gap: f64) -> Self {
        self.gap = gap;
        self
    }

    fn check(&self) -> Result<(), KnapsackError> {
        if (0.0..1.0).contains(&self.gap) {
            Ok(())
        } else {
            Err(KnapsackError::InvalidGap { gap: self.gap })
        }
    }
}

/// [`solve`] with a relative optimality gap (see [`SolveOptions`]): a subset of `items`
/// within `capacity` worth at least `(1 - gap)` times the optimum.
///
/// # Errors
///
/// As [`solve`], plus [`KnapsackError::InvalidGap`].
///
/// ```
/// use adapeft_knapsack::{solve, solve_with, Item, SolveOptions};
///
/// let items: Vec<Item> = (1..=300u64).map(|i| Item::new(i % 17 + 1, (i % 7) as f64 + 1.0)).collect();
/// let exact = solve(&items, 400)?;
/// let near = solve_with(&items, 400, SolveOptions::new().with_gap(0.01))?;
/// assert!(near.weight <= 400 && near.value >= 0.99 * exact.value);
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
pub fn solve_with(
    items: &[Item],
    capacity: u64,
    opts: SolveOptions,
) -> Result<Solution, KnapsackError> {
    opts.check()?;
    let inst = Instance::from_items(items, Some(capacity))?;
    let chosen = solve_instance(&inst, capacity, opts.gap, TUNING)?.0;
    Ok(Solution::of_items(
        items,
        chosen.into_iter().map(|flat| flat as usize).collect(),
    ))
}

/// Settings of the exact solver that change its speed, never its answer. Tests set them to
/// extremes so that every path runs on instances small enough for brute force.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// Half-width of the core problem, in hull segments ([`crate::core_problem`]).
    pub core: usize,
    /// Free groups left by the reduction from which [`solve_split`] branches on the heavy
    /// ones instead of merging them all.
    pub split_from: usize,
    /// The split's threshold weight in units of `allowance / price`: the weight whose value
    /// at the LP's price of capacity equals the gap between the LP bound and the incumbent.
    pub split_weight: f64,
}

/// The settings outside tests, from the model-shaped instances of the crate's bench
/// (`docs/performance.md`, five seeds): with fixed thresholds from 3,000 to 100,000
/// parameters the exact time at 10^5 groups stayed within 35 to 103 ms, against 0.2 to 1.2 s
/// for thresholds that leave nothing heavy; a `split_weight` of 30 put the threshold between
/// 5,600 and 130,000 on those seeds. The core's width was chosen the same way: 300 segments
/// on either side gave 36 to 54 ms at 10^5, 100 up to 0.73 s, 30 up to 0.85 s.
const TUNING: Tuning = Tuning {
    core: CORE_SEGMENTS,
    split_from: 1_000,
    split_weight: 30.0,
};

/// The picks (flat ids) of the best selection found for `inst` at `capacity`: exact with
/// `gap == 0`, else within the gap.
///
/// 1. The incumbent is the better of the greedy fill and the optimum of a core problem
///    around the LP's break ([`crate::core_problem`]).
/// 2. The Lagrangian reduction ([`crate::reduce`]) fixes every group it decides against that
///    incumbent.
/// 3. When many groups are left, [`solve_split`] branches on the heavy ones; otherwise (or
///    when there is nothing to branch on) the bounded merge solves what is left, pruning
///    against the incumbent too.
///
/// With a gap, merges also prune against their own greedy fill over `1 - gap`, so the answer
/// is the best of the merges' best points, those greedy fills and the incumbent (see
/// `MergeOptions::gap`).
pub(crate) fn solve_instance(
    inst: &Instance,
    capacity: u64,
    gap: f64,
    tuning: Tuning,
) -> Result<(Vec<u32>, f64), KnapsackError> {
    let lp = LpBound::new(inst);
    let choice = lp.greedy(inst, capacity);
    let greedy = selection_of(inst, &choice);
    let in_core = core_incumbent(inst, &lp, &choice, capacity, tuning)?;
    let incumbent = if in_core.1 > greedy.1 {
        in_core
    } else {
        greedy
    };
    let reduced = reduce(inst, &lp, capacity, gap, incumbent);
    drop(lp);
    if reduced.certified {
        return Ok(reduced.incumbent);
    }
    if reduced.inst.groups.len() >= tuning.split_from
        && let Some(best) = solve_split(&reduced, gap, tuning.split_weight)?
    {
        return Ok(best);
    }
    let mut best = reduced.incumbent;
    merge_rest(&reduced.inst, reduced.capacity, gap, &mut best)?;
    Ok(best)
}

/// Merges all groups of `inst` within `capacity` and replaces `best` (a feasible selection
/// of the whole problem: picks and value) by anything better it finds, the merge's own
/// greedy fill included when `gap > 0` (see `MergeOptions::gap`).
///
/// Exact with `gap == 0`: the merge keeps every point that ties with `best`, so its best
/// point is worth at least as much as the optimum of `inst` when that beats `best`.
fn merge_rest(
    inst: &Instance,
    capacity: u64,
    gap: f64,
    best: &mut (Vec<u32>, f64),
) -> Result<(), KnapsackError> {
    let opts = MergeOptions {
        capacity: Some(capacity),
        epsilon: 0.0,
        bound: true,
        gap,
        incumbent: best.1,
        stop_after: usize::MAX,
    };
    let merged = merge_all(inst, opts)?;
    let value = merged.v.last().copied().unwrap_or(inst.base_value);
    if value > best.1 {
        *best = (best_picks(&merged).collect(), value);
    }
    if gap > 0.0 {
        let lp = LpBound::new(inst);
        let fill = greedy_fill(inst, &lp, capacity);
        if fill.1 > best.1 {
            *best = fill;
        }
    }
    Ok(())
}

/// Branches on the heavy free groups of `reduced` and solves the light ones per branch.
///
/// Why: after the reduction, the gap between the LP bound and the incumbent is mostly the
/// heavy groups' integrality (the LP takes a fraction of a large group near its break), so
/// every light group near the break passes the reduction's test, and merging keeps
/// hundreds of partial selections over tens of thousands of light groups. Once the heavy
/// groups are fixed, the light groups' own LP is nearly integral and its break moves, so a
/// reduction at that branch's price fixes almost all of them.
///
/// How: the free groups whose heaviest option weighs more than `split_weight * allowance /
/// price` (the allowance being the gap between the LP bound and the incumbent, the price the
/// LP's break slope) are merged first, with the LP bound over every free group pruning, as
/// the plain merge would. Each surviving partial selection is a branch: in decreasing order of
/// its LP bound, and while that bound can still beat the best selection found, the light
/// groups are reduced at the branch's own capacity and price, against the best selection so
/// far, and merged. Exact, since the branches are the plain merge's own states and each is
/// completed exactly; with a gap, within it as [`merge_rest`] is.
///
/// Returns `None` when the threshold leaves nothing to branch on (no heavy or no light
/// group): the plain merge is then no slower.
fn solve_split(
    reduced: &Reduced,
    gap: f64,
    split_weight: f64,
) -> Result<Option<(Vec<u32>, f64)>, KnapsackError> {
    let inst = &reduced.inst;
    let capacity = reduced.capacity;
    let lp = LpBound::new(inst);
    let price = lp.break_slope(capacity);
    let allowance = inst.base_value + lp.bounds(capacity).1 - reduced.incumbent.1;
    if !(price > 0.0 && allowance > 0.0) {
        return Ok(None);
    }
    let threshold = split_weight * allowance / price;
    let is_heavy = |g: &Group| heaviest(g) as f64 > threshold;
    // The bounded merge takes the heaviest groups first, so the heavy ones are its first steps.
    let heavy = inst.groups.iter().filter(|&g| is_heavy(g)).count();
    if heavy == 0 || heavy == inst.groups.len() {
        return Ok(None);
    }
    let mut best = reduced.incumbent.clone();
    if gap > 0.0 {
        // The merge of the heavy groups prunes against this over `1 - gap`: keep it.
        let fill = greedy_fill(inst, &lp, capacity);
        if fill.1 > best.1 {
            best = fill;
        }
    }
    drop(lp);
    let branches = merge_all(
        inst,
        MergeOptions {
            capacity: Some(capacity),
            epsilon: 0.0,
            bound: true,
            gap,
            incumbent: reduced.incumbent.1,
            stop_after: heavy,
        },
    )?;
    let mut light = Instance {
        groups: inst
            .groups
            .iter()
            .filter(|&g| !is_heavy(g))
            .cloned()
            .collect(),
        base_value: 0.0,
        base_picks: Vec::new(),
    };
    let lp = LpBound::new(&light);
    let mut order: Vec<(f64, usize)> = (0..branches.w.len())
        .map(|i| (branches.v[i] + lp.bounds(capacity - branches.w[i]).1, i))
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // The merges' tie slack (`1e-9` of the total value): a branch that may tie is solved.
    let slack = 1e-9 * (inst.base_value + total_value(inst));
    for (bound, i) in order {
        if bound < best.1 / (1.0 - gap) - slack {
            break;
        }
        light.base_value = branches.v[i];
        light.base_picks = branches.arena.picks(branches.node[i]).collect();
        let residual = capacity - branches.w[i];
        let branch = reduce(&light, &lp, residual, gap, best.clone());
        best = branch.incumbent;
        if branch.certified {
            continue;
        }
        merge_rest(&branch.inst, branch.capacity, gap, &mut best)?;
    }
    Ok(Some(best))
}

/// The exact optimum of the multiple-choice knapsack: at most one option from each class,
/// total weight at most `capacity`, greatest total value.
///
/// Same algorithm as [`solve`], merging one class at a time; the bound is the LP relaxation of
/// the classes not merged yet (greedy over the upper convex hulls of their options, in order
/// of decreasing slope). Options without value, heavier than `capacity`, or dominated by a
/// lighter and at-least-as-valuable option of the same class are never chosen.
///
/// # Errors
///
/// [`KnapsackError::EmptyClass`], [`KnapsackError::NonFiniteOptionValue`] or
/// [`KnapsackError::NegativeOptionValue`] for the first bad class.
///
/// ```
/// use adapeft_knapsack::{solve_classes, Class, Item, Pick};
///
/// let classes = [
///     // a matrix: trained fully, or a rank-4 or rank-8 adapter
///     Class::new(vec![Item::new(1000, 10.0), Item::new(80, 4.0), Item::new(160, 6.0)]),
///     // a bias vector
///     Class::new(vec![Item::new(40, 3.0)]),
/// ];
/// let sol = solve_classes(&classes, 200)?;
/// assert_eq!(sol.chosen, vec![Pick { class: 0, option: 2 }, Pick { class: 1, option: 0 }]);
/// assert_eq!(sol.value, 9.0);
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
pub fn solve_classes(classes: &[Class], capacity: u64) -> Result<Solution<Pick>, KnapsackError> {
    solve_classes_with(classes, capacity, SolveOptions::default())
}

/// [`solve_classes`] with a relative optimality gap (see [`SolveOptions`]).
///
/// # Errors
///
/// As [`solve_classes`], plus [`KnapsackError::InvalidGap`].
pub fn solve_classes_with(
    classes: &[Class],
    capacity: u64,
    opts: SolveOptions,
) -> Result<Solution<Pick>, KnapsackError> {
    opts.check()?;
    let inst = Instance::from_classes(classes, Some(capacity))?;
    let table = pick_table(classes);
    let chosen = solve_instance(&inst, capacity, opts.gap, TUNING)?
        .0
        .into_iter()
        .map(|flat| table[flat as usize])
        .collect();
    Ok(Solution::of_picks(classes, chosen))
}

/// The picks of the heaviest (so most valuable) state; the list always has the base state.
fn best_picks(merged: &Merged) -> impl Iterator<Item = u32> + '_ {
    let node = merged.node.last().copied().unwrap_or(crate::arena::ROOT);
    merged.arena.picks(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_and_zero_capacity() {
        assert_eq!(solve(&[], 100).unwrap(), Solution::default());
        let items = [Item::new(1, 5.0), Item::new(2, 1.0)];
        assert_eq!(solve(&items, 0).unwrap(), Solution::default());
        assert_eq!(solve_classes(&[], 7).unwrap(), Solution::default());
    }

    #[test]
    fn weightless_items_are_always_taken() {
        let items = [
            Item::new(0, 1.0),
            Item::new(5, 3.0),
            Item::new(0, 0.0),
            Item::new(0, 2.0),
        ];
        let sol = solve(&items, 0).unwrap();
        assert_eq!(sol.chosen, vec![0, 3]);
        assert_eq!((sol.weight, sol.value), (0, 3.0));
        let sol = solve(&items, 5).unwrap();
        assert_eq!(sol.chosen, vec![0, 1, 3]);
    }

    #[test]
    fn beats_the_greedy_fill() {
        // Greedy by ratio takes 0 and 2 (value 14); the optimum is 1 and 2 (value 15).
        let items = [Item::new(3, 6.0), Item::new(5, 7.0), Item::new(5, 8.0)];
        let sol = solve(&items, 10).unwrap();
        assert_eq!(sol.chosen, vec![1, 2]);
        assert_eq!(sol.value, 15.0);
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let items = [
            Item::new(u64::MAX - 1, 3.0),
            Item::new(u64::MAX - 1, 2.0),
            Item::new(1, 1.0),
        ];
        let sol = solve(&items, u64::MAX).unwrap();
        assert_eq!(sol.chosen, vec![0, 2]);
        assert_eq!(sol.weight, u64::MAX);
    }

    #[test]
    fn classes_take_at_most_one_option() {
        // Two cheap options of class 0 would together beat anything, but only one may be taken.
        let classes = [
            Class::new(vec![
                Item::new(1, 10.0),
                Item::new(1, 9.0),
                Item::new(2, 11.0),
            ]),
            Class::new(vec![Item::new(2, 2.0)]),
        ];
        let sol = solve_classes(&classes, 2).unwrap();
        assert_eq!(
            sol.chosen,
            vec![Pick {
                class: 0,
                option: 2
            }]
        );
        let sol = solve_classes(&classes, 3).unwrap();
        assert_eq!(
            sol.chosen,
            vec![
                Pick {
                    class: 0,
                    option: 0
                },
                Pick {
                    class: 1,
                    option: 0
                }
            ]
        );
        assert_eq!((sol.weight, sol.value), (3, 12.0));
    }

    /// All subsets' best value within `capacity` (at most one option per class).
    fn brute_force(classes: &[Class], capacity: u64) -> f64 {
        let steps = crate::testing::brute_steps(classes);
        steps[steps.partition_point(|s| s.0 <= capacity) - 1].1
    }

    /// The value of a selection given as flat ids of `classes`' options.
    fn value_of(classes: &[Class], picks: &[u32]) -> (u64, f64) {
        let table = pick_table(classes);
        let mut seen = std::collections::HashSet::new();
        picks.iter().fold((0, 0.0), |(w, v), &flat| {
            let pick = table[flat as usize];
            assert!(seen.insert(pick.class), "class {} picked twice", pick.class);
            let o = classes[pick.class].options()[pick.option];
            (w + o.weight, v + o.value)
        })
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    proptest::proptest! {
        /// With a core of a segment or two around the break, the core's optimum is often not
        /// the instance's, and with the split from any number of free groups, at thresholds
        /// from everything heavy to nothing heavy, the solver branches on small instances:
        /// it must still prove and return the optimum (or stay within the gap), and the
        /// core's selection must be feasible and at least as good as the greedy fill.
        #[test]
        fn any_tuning_leaves_the_answer_exact(
            classes in proptest::collection::vec(
                proptest::collection::vec((1u64..2_000, 0.0f64..100.0), 1..=3),
                0..=11,
            ),
            fraction in 0.0f64..1.0,
            core in 0usize..4,
            split_weight in proptest::sample::select(vec![0.0, 0.1, 1.0, 10.0, f64::INFINITY]),
            gap in proptest::sample::select(vec![0.0, 0.05]),
        ) {
            let classes: Vec<Class> = classes
                .iter()
                .map(|opts| Class::new(opts.iter().map(|&(w, v)| Item::new(w, v)).collect()))
                .collect();
            let total: u64 = classes
                .iter()
                .map(|c| c.options().iter().map(|o| o.weight).max().unwrap_or(0))
                .sum();
            let capacity = (total as f64 * fraction) as u64;
            let inst = Instance::from_classes(&classes, Some(capacity)).unwrap();
            let best = brute_force(&classes, capacity);

            let lp = LpBound::new(&inst);
            let choice = lp.greedy(&inst, capacity);
            let greedy = selection_of(&inst, &choice);
            let tuning = Tuning { core, split_from: 0, split_weight };
            let (picks, value) = core_incumbent(&inst, &lp, &choice, capacity, tuning).unwrap();
            let (w, v) = value_of(&classes, &picks);
            proptest::prop_assert!(w <= capacity && close(v, value));
            proptest::prop_assert!(value >= greedy.1 - 1e-9 && value <= best + 1e-9);

            let (w, v) = value_of(&classes, &solve_instance(&inst, capacity, gap, tuning).unwrap().0);
            proptest::prop_assert!(w <= capacity);
            if gap == 0.0 {
                proptest::prop_assert!(close(v, best), "{} vs brute force {}", v, best);
            } else {
                proptest::prop_assert!(v >= (1.0 - gap) * best - 1e-9, "{} vs {}", v, best);
            }
        }
    }

    /// On model-shaped instances large enough for the default tuning to split (thousands of
    /// free groups), the answer is the plain merge's: no core, no split.
    #[test]
    fn the_split_agrees_with_the_plain_merge_on_larger_instances() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let plain = Tuning {
            core: 0,
            split_from: usize::MAX,
            split_weight: 0.0,
        };
        for seed in 0..3 {
            let mut rng = StdRng::seed_from_u64(seed);
            let items: Vec<Item> = (0..20_000)
                .map(|_| {
                    let w = (rng.random::<f64>() * 1e7f64.ln()).exp().round().max(1.0);
                    let noise: f64 = rng.random::<f64>() + rng.random::<f64>() - 1.0;
                    Item::new(w as u64, w.sqrt() * (3.0 * noise).exp())
                })
                .collect();
            let capacity = items.iter().map(|i| i.weight).sum::<u64>() / 100;
            let inst = Instance::from_items(&items, Some(capacity)).unwrap();
            let (picks, value) = solve_instance(&inst, capacity, 0.0, TUNING).unwrap();
            let (_, expected) = solve_instance(&inst, capacity, 0.0, plain).unwrap();
            let weight: u64 = picks.iter().map(|&i| items[i as usize].weight).sum();
            let sum: f64 = picks.iter().map(|&i| items[i as usize].value).sum();
            assert!(weight <= capacity, "seed {seed}");
            assert!(
                close(sum, value) && close(value, expected),
                "seed {seed}: {value} vs {expected}"
            );
        }
    }

    #[test]
    fn errors_name_the_input() {
        assert_eq!(
            solve(&[Item::new(1, 1.0), Item::new(1, -1.0)], 3),
            Err(KnapsackError::NegativeValue {
                item: 1,
                value: -1.0
            })
        );
        assert_eq!(
            solve_classes(&[Class::new(vec![])], 3),
            Err(KnapsackError::EmptyClass { class: 0 })
        );
    }
}
