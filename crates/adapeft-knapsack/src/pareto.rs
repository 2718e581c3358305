//! Pareto fronts of (total weight, total value) over all selections.

use std::iter::FusedIterator;
use std::ops::Range;

use crate::arena::{Arena, ROOT};
use crate::class::{Class, Pick};
use crate::error::KnapsackError;
use crate::instance::Instance;
use crate::item::Item;
use crate::merge::{MergeOptions, merge_all};

/// How to compute a front: exactly (the default) or within a factor `1 - epsilon`, and
/// optionally only up to a maximum weight.
///
/// ```
/// use adapeft_knapsack::FrontOptions;
///
/// let opts = FrontOptions::new().with_epsilon(0.01).with_max_weight(1_000_000);
/// assert_eq!(opts.epsilon, 0.01);
/// assert_eq!(FrontOptions::default().epsilon, 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FrontOptions {
    /// Approximation parameter in `[0, 1)`; `0` (the default) computes the exact front.
    ///
    /// With `epsilon > 0`, for every capacity `c` (up to `max_weight`),
    /// `front.best_within(c).value >= (1 - epsilon) * OPT(c)`, where `OPT(c)` is the exact
    /// optimum for capacity `c`. The front then has at most `2 ln(V / v_1) / epsilon + 2`
    /// points, where `V` is its largest value and `v_1` its smallest positive one.
    pub epsilon: f64,
    /// Drop every point heavier than this (`None`, the default: keep all). The front then
    /// answers exactly (or within `epsilon`) for capacities up to `max_weight`, and is much
    /// cheaper when only small budgets matter.
    pub max_weight: Option<u64>,
}

impl FrontOptions {
    /// The default options: the exact, complete front.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`FrontOptions::epsilon`].
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Sets [`FrontOptions::max_weight`].
    pub fn with_max_weight(mut self, max_weight: u64) -> Self {
        self.max_weight = Some(max_weight);
        self
    }

    fn check(&self) -> Result<(), KnapsackError> {
        check_epsilon(self.epsilon)
    }
}

fn check_epsilon(epsilon: f64) -> Result<(), KnapsackError> {
    if (0.0..1.0).contains(&epsilon) {
        Ok(())
    } else {
        Err(KnapsackError::InvalidEpsilon { epsilon })
    }
}

/// One point of a front with the selection that achieves it.
///
/// `C` is the type of one choice: an item index (`usize`) or a [`Pick`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Point<C = usize> {
    /// Total weight of the selection.
    pub weight: u64,
    /// Total value of the selection (accumulated during merging; recomputing it from
    /// `chosen` may differ in the last bits).
    pub value: f64,
    /// The chosen items (or picks), sorted ascending.
    pub chosen: Vec<C>,
}

/// A front point without its selection: cheap to copy and to list.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PointSummary {
    /// Total weight of the point's selection.
    pub weight: u64,
    /// Total value of the point's selection.
    pub value: f64,
}

/// The Pareto front of a knapsack instance: every (total weight, total value) pair that no
/// other selection beats in both, lightest first, each with a selection achieving it.
///
/// Weights and values both strictly increase along the front, so the best selection within a
/// capacity is the heaviest point that fits ([`ParetoFront::best_within`], a binary search).
/// The first point is the lightest selection: weight 0, with the weightless items that have
/// value. Selections are stored as shared chains of links (see the crate docs) and built
/// only when a [`Point`] is asked for; [`ParetoFront::weights`], [`ParetoFront::values`] and
/// [`ParetoFront::summaries`] never build them.
///
/// ```
/// use adapeft_knapsack::{pareto_front, Item};
///
/// let items = [Item::new(2, 3.0), Item::new(3, 4.0), Item::new(4, 5.0)];
/// let front = pareto_front(&items)?;
/// assert_eq!(front.weights(), &[0, 2, 3, 4, 5, 6, 7, 9]);
/// assert_eq!(front.values(), &[0.0, 3.0, 4.0, 5.0, 7.0, 8.0, 9.0, 12.0]);
/// let best = front.best_within(8).unwrap();
/// assert_eq!((best.weight, best.value, best.chosen), (7, 9.0, vec![1, 2]));
/// assert!(front.is_exact());
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ParetoFront<C = usize> {
    weights: Vec<u64>,
    values: Vec<f64>,
    nodes: Vec<u32>,
    arena: Arena,
    /// Flat option id -> choice.
    choices: Vec<C>,
    epsilon: f64,
    exact: bool,
    max_weight: Option<u64>,
}

/// The exact Pareto front of a 0-1 knapsack instance (Nemhauser-Ullmann list merging).
///
/// Items are merged one at a time; after each merge the list holds the non-dominated points of
/// the items merged so far, each merge costing time linear in the list. Exact fronts grow fast:
/// with weights log-uniform in `[1, 1e7]` and values `sqrt(weight) * lognormal(0, 1.5)`, about
/// 0.5 to 1 million points at 100 items, 11 million at 500 (20 s) and 28 million at 1,000 (2 minutes,
/// 5 GB). Instances with structure (many equal weights, as the tensors of a transformer) have far
/// smaller fronts. See [`pareto_front_with`] for the approximate and weight-bounded versions,
/// which stay small.
///
/// # Errors
///
/// [`KnapsackError::NonFiniteValue`] or [`KnapsackError::NegativeValue`] for the first bad
/// item; [`KnapsackError::WeightOverflow`] if the total weight does not fit in a `u64`.
pub fn pareto_front(items: &[Item]) -> Result<ParetoFront, KnapsackError> {
    pareto_front_with(items, FrontOptions::default())
}

/// The Pareto front of a 0-1 knapsack instance, exact or approximate (see [`FrontOptions`]).
///
/// With `epsilon > 0` the lists are **trimmed**: walking a list by increasing weight, a point
/// `(w, v)` is dropped when the last kept point's value is at least
/// `v - delta * max(v, LB(w))`, where `LB(w)` is the value of a cheap feasible selection of
/// weight at most `w` (the greedy prefixes along the LP relaxation, and single options). A
/// dropped selection is thus represented by a lighter kept point that loses at most
/// `delta * OPT(w)`; merging preserves that, losses add up over the trims, and the trims are
/// scheduled so that their tolerances sum to `epsilon`, which gives the guarantee stated on
/// [`FrontOptions::epsilon`] (the proof is in the source, `trim.rs`): half of the budget goes
/// to trims during the merging, each made only once the list has doubled since the previous
/// one and spending what has accrued evenly over the merges since; the rest goes to one final
/// trim of the result. (Trimming after every one of the `K` merges with `delta = epsilon / K`,
/// the textbook schedule, gives the same guarantee but keeps lists at a resolution `K` times
/// finer: 5 to 20 times slower at a thousand items.)
/// [`ParetoFront::is_exact`] reports whether trimming dropped anything.
///
/// With many items (200 or more, after weightless and valueless ones are set aside) the
/// merging costs about (items) x (list length), so approximate fronts then merge fewer
/// items: the capacities are cut into ranges `[lo, 3 lo - 1]`, and for each range only the
/// items worth more than a small share of `LB(lo)` are merged (with a weight limit at the
/// range's end); the others, each worth too little to matter at any capacity of the range,
/// are added as the prefixes of the ratio-greedy order that fit beside each merged point. The
/// best combinations of all ranges are pooled and trimmed once with half the budget, so the
/// guarantee and the size bound of [`FrontOptions::epsilon`] are unchanged (the proof is in
/// the source, `split.rs`). Below 20,000 items it is used only when the items are large in
/// few ranges (at most 2 ranges per item on average), which is what makes it faster; from
/// 20,000 on always (`docs/performance.md` has the times). Fronts built this way report
/// [`ParetoFront::is_exact`] as `false`. Their ranges are independent and are built on
/// scoped threads, as many as [`std::thread::available_parallelism`] reports (all joined
/// before this returns); the front is the same whatever their number.
///
/// # Errors
///
/// As [`pareto_front`], plus [`KnapsackError::InvalidEpsilon`]. With a `max_weight` the
/// total weight may exceed `u64` (points heavier than `max_weight` are never formed).
///
/// ```
/// use adapeft_knapsack::{pareto_front_with, FrontOptions, Item};
///
/// let items: Vec<Item> = (1..=40).map(|i| Item::new(i * 7 % 23 + 1, (i as f64).sqrt())).collect();
/// let front = pareto_front_with(&items, FrontOptions::new().with_epsilon(0.05))?;
/// let exact = adapeft_knapsack::solve(&items, 50)?;
/// assert!(front.best_within(50).unwrap().value >= 0.95 * exact.value);
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
pub fn pareto_front_with(items: &[Item], opts: FrontOptions) -> Result<ParetoFront, KnapsackError> {
    opts.check()?;
    let inst = Instance::from_items(items, opts.max_weight)?;
    ParetoFront::build(&inst, opts, (0..items.len()).collect())
}

/// The exact Pareto front of a multiple-choice knapsack instance: selections take at most one
/// option per class.
///
/// Merging a class replaces the list `L` by the non-dominated points of
/// `L ∪ (L + option_1) ∪ ... ∪ (L + option_m)`; a plain item is a one-option class, so this is
/// the same algorithm as [`pareto_front`].
///
/// # Errors
///
/// [`KnapsackError::EmptyClass`], [`KnapsackError::NonFiniteOptionValue`] or
/// [`KnapsackError::NegativeOptionValue`] for the first bad class;
/// [`KnapsackError::WeightOverflow`] if the heaviest options do not sum within `u64`.
///
/// ```
/// use adapeft_knapsack::{pareto_front_classes, Class, Item, Pick};
///
/// let classes = [
///     Class::new(vec![Item::new(100, 5.0), Item::new(10, 3.0)]), // full or LoRA
///     Class::new(vec![Item::new(20, 2.0)]),                      // a bias
/// ];
/// let front = pareto_front_classes(&classes)?;
/// assert_eq!(front.weights(), &[0, 10, 30, 120]);
/// let knee = front.knee().unwrap();
/// assert_eq!(knee.chosen, vec![Pick { class: 0, option: 1 }, Pick { class: 1, option: 0 }]);
/// # Ok::<(), adapeft_knapsack::KnapsackError>(())
/// ```
pub fn pareto_front_classes(classes: &[Class]) -> Result<ParetoFront<Pick>, KnapsackError> {
    pareto_front_classes_with(classes, FrontOptions::default())
}

/// The Pareto front of a multiple-choice knapsack instance, exact or approximate; trimming and
/// its guarantee are as in [`pareto_front_with`].
///
/// Approximate fronts of 1,000 classes or more are built by capacity ranges as described
/// there, with ranges `[lo, 8 lo - 1]` (wider than for plain items, since a class's merge
/// costs several times more): a class is merged only if one of its options within the range is worth more than
/// a small share of `LB(lo)`, and the others are added as prefixes of the LP's greedy path
/// (hull segments of all their options in order of decreasing slope). 10,000 model-shaped
/// classes of four options at `epsilon = 0.01` take about a tenth of the time of the merging
/// alone.
///
/// # Errors
///
/// As [`pareto_front_classes`], plus [`KnapsackError::InvalidEpsilon`].
pub fn pareto_front_classes_with(
    classes: &[Class],
    opts: FrontOptions,
) -> Result<ParetoFront<Pick>, KnapsackError> {
    opts.check()?;
    let inst = Instance::from_classes(classes, opts.max_weight)?;
    ParetoFront::build(&inst, opts, pick_table(classes))
}

/// Flat option id -> pick, for the options of `classes` numbered class by class.
pub(crate) fn pick_table(classes: &[Class]) -> Vec<Pick> {
    classes
        .iter()
        .enumerate()
        .flat_map(|(class, c)| (0..c.options().len()).map(move |option| Pick { class, option }))
        .collect()
}

impl<C> ParetoFront<C> {
    fn build(inst: &Instance, opts: FrontOptions, choices: Vec<C>) -> Result<Self, KnapsackError> {
        let split = if crate::split::applies(inst, opts.epsilon) {
            crate::split::front(inst, opts.epsilon, opts.max_weight)?
        } else {
            None
        };
        let merged = if let Some(merged) = split {
            merged
        } else {
            merge_all(
                inst,
                MergeOptions {
                    capacity: opts.max_weight,
                    epsilon: opts.epsilon,
                    bound: false,
                    gap: 0.0,
                    incumbent: f64::NEG_INFINITY,
                    stop_after: usize::MAX,
                },
            )?
        };
        Ok(Self {
            weights: merged.w,
            values: merged.v,
            nodes: merged.node,
            arena: merged.arena,
            choices,
            epsilon: opts.epsilon,
            exact: !merged.trimmed,
            max_weight: opts.max_weight,
        })
    }

    /// The same front with every choice mapped through `f` (for example a multiple-choice
    /// front's [`Pick`]s to their class index, when the option is recorded elsewhere).
    ///
    /// ```
    /// use adapeft_knapsack::{Class, Item, pareto_front_classes};
    ///
    /// let classes = [Class::new(vec![Item::new(4, 3.0), Item::new(1, 2.0)])];
    /// let front = pareto_front_classes(&classes)?.map_choices(|p| p.class);
    /// assert_eq!(front.best_within(2).unwrap().chosen, vec![0]);
    /// # Ok::<(), adapeft_knapsack::KnapsackError>(())
    /// ```
    pub fn map_choices<D>(self, f: impl Fn(&C) -> D) -> ParetoFront<D> {
        ParetoFront {
            weights: self.weights,
            values: self.values,
            nodes: self.nodes,
            arena: self.arena,
            choices: self.choices.iter().map(f).collect(),
            epsilon: self.epsilon,
            exact: self.exact,
            max_weight: self.max_weight,
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether the front has no points (never true for a computed front: it always holds the
    /// lightest selection).
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Whether this is the exact front: computed with `epsilon = 0`, or trimming happened not
    /// to drop any point (approximate fronts of many items built by ranges, see
    /// [`pareto_front_with`], always report `false`).
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// The `epsilon` the front was computed with (its guarantee when not exact).
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The weight limit the front was computed with, if any: answers are only valid for
    /// capacities up to it.
    pub fn max_weight(&self) -> Option<u64> {
        self.max_weight
    }

    /// Total weights of the points, strictly increasing.
    pub fn weights(&self) -> &[u64] {
        &self.weights
    }

    /// Total values of the points, strictly increasing.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The weight and value of point `index`.
    pub fn summary(&self, index: usize) -> Option<PointSummary> {
        Some(PointSummary {
            weight: *self.weights.get(index)?,
            value: self.values[index],
        })
    }

    /// Weights and values of all points, lightest first, without building selections.
    pub fn summaries(&self) -> impl ExactSizeIterator<Item = PointSummary> + '_ {
        self.weights
            .iter()
            .zip(&self.values)
            .map(|(&weight, &value)| PointSummary { weight, value })
    }

    /// Index of the most valuable point with weight at most `capacity` (the heaviest that
    /// fits). `None` only for an empty front.
    pub fn best_index_within(&self, capacity: u64) -> Option<usize> {
        self.weights
            .partition_point(|&w| w <= capacity)
            .checked_sub(1)
    }

    /// Index of the knee; see [`ParetoFront::knee`].
    pub fn knee_index(&self) -> Option<usize> {
        let (&w_max, &v_max) = (self.weights.last()?, self.values.last()?);
        if w_max == 0 || v_max <= 0.0 {
            return Some(0);
        }
        let y0 = self.values[0] / v_max;
        // Signed distance to the chord from (0, y0) to (1, 1), up to the constant factor
        // 1 / |chord|: positive above the chord. Endpoints score 0, so the result is >= 0.
        let score = |i: usize| {
            let x = self.weights[i] as f64 / w_max as f64;
            let y = self.values[i] / v_max;
            (y - y0) - (1.0 - y0) * x
        };
        let mut best = 0;
        for i in 1..self.len() {
            if score(i) > score(best) {
                best = i;
            }
        }
        Some(best)
    }
}

impl<C: Copy + Ord> ParetoFront<C> {
    /// The selection of point `index`, sorted ascending.
    pub fn chosen(&self, index: usize) -> Option<Vec<C>> {
        let node = *self.nodes.get(index)?;
        let mut chosen: Vec<C> = self
            .arena
            .picks(node)
            .map(|flat| self.choices[flat as usize])
            .collect();
        chosen.sort_unstable();
        Some(chosen)
    }

    /// Point `index` with its selection.
    pub fn get(&self, index: usize) -> Option<Point<C>> {
        let s = self.summary(index)?;
        Some(Point {
            weight: s.weight,
            value: s.value,
            chosen: self.chosen(index)?,
        })
    }

    /// All points with their selections, lightest first.
    pub fn iter(&self) -> Points<'_, C> {
        Points {
            front: self,
            range: 0..self.len(),
        }
    }

    /// The most valuable selection with weight at most `capacity`: the heaviest point that
    /// fits, found by binary search. Exact if the front is; otherwise its value is at least
    /// `(1 - epsilon)` times the optimum. `None` only for an empty front.
    ///
    /// For a front computed with a `max_weight`, only capacities up to it are meaningful.
    pub fn best_within(&self, capacity: u64) -> Option<Point<C>> {
        self.get(self.best_index_within(capacity)?)
    }

    /// The knee of the front: the point farthest above the chord from the first (lightest)
    /// point to the last (heaviest) one, after normalising weights by the largest weight and
    /// values by the largest value so that both axes run over `[0, 1]`.
    ///
    /// Distance is the perpendicular distance to the chord, counted positive above it; points
    /// below the chord (where the front is locally convex) never win. The endpoints are at
    /// distance 0, so a front whose points all lie on or below the chord has its first point as
    /// knee; ties go to the lighter point. The first point is the empty selection unless there
    /// are weightless items with value. Beyond the knee, each extra unit of weight buys less
    /// value than the front's average rate.
    pub fn knee(&self) -> Option<Point<C>> {
        self.get(self.knee_index()?)
    }

    /// The front as plain data (all selections materialised), e.g. for serialisation.
    pub fn to_data(&self) -> FrontData<C> {
        FrontData {
            epsilon: self.epsilon,
            exact: self.exact,
            max_weight: self.max_weight,
            points: self.iter().collect(),
        }
    }
}

/// Iterator over the points of a [`ParetoFront`], lightest first (see [`ParetoFront::iter`]).
#[derive(Debug, Clone)]
pub struct Points<'a, C> {
    front: &'a ParetoFront<C>,
    range: Range<usize>,
}

impl<C: Copy + Ord> Iterator for Points<'_, C> {
    type Item = Point<C>;

    fn next(&mut self) -> Option<Point<C>> {
        self.front.get(self.range.next()?)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl<C: Copy + Ord> DoubleEndedIterator for Points<'_, C> {
    fn next_back(&mut self) -> Option<Point<C>> {
        self.front.get(self.range.next_back()?)
    }
}

impl<C: Copy + Ord> ExactSizeIterator for Points<'_, C> {}

impl<C: Copy + Ord> FusedIterator for Points<'_, C> {}

impl<'a, C: Copy + Ord> IntoIterator for &'a ParetoFront<C> {
    type Item = Point<C>;
    type IntoIter = Points<'a, C>;

    fn into_iter(self) -> Points<'a, C> {
        self.iter()
    }
}

/// A [`ParetoFront`] as plain data: every point with its selection materialised.
///
/// Converting back checks that the points form a front. With the `serde` feature it
/// serialises as it is, every point with its whole selection; `ParetoFront` itself
/// serialises more compactly, each point as its change from the point before it (see
/// [`ParetoFront`]'s `Serialize`), and reads both forms.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FrontData<C = usize> {
    /// See [`ParetoFront::epsilon`].
    pub epsilon: f64,
    /// See [`ParetoFront::is_exact`].
    pub exact: bool,
    /// See [`ParetoFront::max_weight`].
    pub max_weight: Option<u64>,
    /// The points, lightest first.
    pub points: Vec<Point<C>>,
}

impl<C: Copy + Ord> From<&ParetoFront<C>> for FrontData<C> {
    fn from(front: &ParetoFront<C>) -> Self {
        front.to_data()
    }
}

impl<C: Copy + Ord> TryFrom<FrontData<C>> for ParetoFront<C> {
    type Error = KnapsackError;

    /// Rebuilds a front, checking that there is at least one point, that weights and values
    /// strictly increase, that values are finite and non-negative and that `epsilon` is valid.
    /// (Selections are taken as given; they cannot be checked without the instance.)
    fn try_from(data: FrontData<C>) -> Result<Self, KnapsackError> {
        let invalid = |reason: String| Err(KnapsackError::InvalidFront { reason });
        check_epsilon(data.epsilon)?;
        if data.points.is_empty() {
            return invalid("a front has at least one point".into());
        }
        for (i, p) in data.points.iter().enumerate() {
            if !(p.value.is_finite() && p.value >= 0.0) {
                return invalid(format!("point {i} has value {}", p.value));
            }
            if i > 0
                && !(p.weight > data.points[i - 1].weight && p.value > data.points[i - 1].value)
            {
                return invalid(format!("point {i} does not improve on point {}", i - 1));
            }
        }
        let mut choices: Vec<C> = data
            .points
            .iter()
            .flat_map(|p| p.chosen.iter().copied())
            .collect();
        choices.sort_unstable();
        choices.dedup();
        if choices.len() >= u32::MAX as usize {
            return Err(KnapsackError::TooLarge {
                what: "too many distinct choices".into(),
            });
        }
        let mut arena = Arena::default();
        let mut nodes = Vec::with_capacity(data.points.len());
        for p in &data.points {
            let mut node = ROOT;
            for c in &p.chosen {
                // Present by construction of `choices`.
                let flat = choices.binary_search(c).unwrap_or_default();
                node = arena.push(node, flat as u32)?;
            }
            nodes.push(node);
        }
        Ok(Self {
            weights: data.points.iter().map(|p| p.weight).collect(),
            values: data.points.iter().map(|p| p.value).collect(),
            nodes,
            arena,
            choices,
            epsilon: data.epsilon,
            exact: data.exact,
            max_weight: data.max_weight,
        })
    }
}

/// One point of a serialised front as its change from the point before it: the choices its
/// selection adds and removes (both ascending). The first point changes the empty selection.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct Step<C> {
    weight: u64,
    value: f64,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    added: Vec<C>,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    removed: Vec<C>,
}

/// The serialised form of a [`ParetoFront`]: [`FrontData`]'s fields, with `steps` (each
/// point as a [`Step`]) where `FrontData` has `points`. Neighbouring points of a front share
/// most of their selection, so this is about as long as the choices that change along the
/// front, where `points` repeats every selection whole (a front of 700 points over 18,000
/// units below the tensor: 0.2 MB against 7.4 MB of JSON).
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct FrontForm<C> {
    epsilon: f64,
    exact: bool,
    max_weight: Option<u64>,
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    points: Option<Vec<Point<C>>>,
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<Step<C>>>,
}

/// The choices in `new` and not in `old`, and those in `old` and not in `new` (both sorted
/// ascending, as the results are).
#[cfg(feature = "serde")]
fn difference<C: Copy + Ord>(old: &[C], new: &[C]) -> (Vec<C>, Vec<C>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => (i, j) = (i + 1, j + 1),
            (Some(a), Some(b)) if a < b => {
                removed.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                removed.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                added.push(*b);
                j += 1;
            }
            (None, None) => unreachable!("the loop runs while one is left"),
        }
    }
    (added, removed)
}

/// The points of `steps`, each selection rebuilt from the one before it.
#[cfg(feature = "serde")]
fn replay<C: Copy + Ord>(steps: Vec<Step<C>>) -> Result<Vec<Point<C>>, KnapsackError> {
    let invalid = |reason: String| KnapsackError::InvalidFront { reason };
    let mut chosen: Vec<C> = Vec::new();
    let mut points = Vec::with_capacity(steps.len());
    for (i, step) in steps.into_iter().enumerate() {
        for list in [&step.added, &step.removed] {
            if list.windows(2).any(|w| w[0] >= w[1]) {
                return Err(invalid(format!(
                    "step {i}'s changes are not strictly ascending"
                )));
            }
        }
        if step
            .removed
            .iter()
            .any(|c| chosen.binary_search(c).is_err())
        {
            return Err(invalid(format!(
                "step {i} removes a choice the point before it does not hold"
            )));
        }
        if step.added.iter().any(|c| chosen.binary_search(c).is_ok()) {
            return Err(invalid(format!(
                "step {i} adds a choice the point before it already holds"
            )));
        }
        chosen.retain(|c| step.removed.binary_search(c).is_err());
        chosen.extend_from_slice(&step.added);
        chosen.sort_unstable();
        points.push(Point {
            weight: step.weight,
            value: step.value,
            chosen: chosen.clone(),
        });
    }
    Ok(points)
}

/// A front serialises with its points as steps: `{"epsilon", "exact", "max_weight",
/// "steps": [{"weight", "value", "added": [..], "removed": [..]}, ..]}`, each point's
/// selection as the choices it adds to and removes from the point before it (empty lists
/// left out).
#[cfg(feature = "serde")]
impl<C: Copy + Ord + serde::Serialize> serde::Serialize for ParetoFront<C> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut before: Vec<C> = Vec::new();
        let mut steps = Vec::with_capacity(self.len());
        for (i, s) in self.summaries().enumerate() {
            let chosen = self.chosen(i).unwrap_or_default();
            let (added, removed) = difference(&before, &chosen);
            steps.push(Step {
                weight: s.weight,
                value: s.value,
                added,
                removed,
            });
            before = chosen;
        }
        FrontForm {
            epsilon: self.epsilon,
            exact: self.exact,
            max_weight: self.max_weight,
            points: None,
            steps: Some(steps),
        }
        .serialize(serializer)
    }
}

/// A front reads from either form: its own (`steps`, see its `Serialize`) or [`FrontData`]'s
/// (`points`, every selection whole, as fronts were written before steps), and is checked as
/// [`FrontData`] is converted.
#[cfg(feature = "serde")]
impl<'de, C: Copy + Ord + serde::Deserialize<'de>> serde::Deserialize<'de> for ParetoFront<C> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let form = FrontForm::<C>::deserialize(deserializer)?;
        let points = match (form.points, form.steps) {
            (Some(points), None) => points,
            (None, Some(steps)) => replay(steps).map_err(D::Error::custom)?,
            _ => {
                return Err(D::Error::custom(
                    "a front has either `points` or `steps`, exactly one of them",
                ));
            }
        };
        let data = FrontData {
            epsilon: form.epsilon,
            exact: form.exact,
            max_weight: form.max_weight,
            points,
        };
        ParetoFront::try_from(data).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front_of(points: &[(u64, f64)]) -> ParetoFront {
        let data = FrontData {
            epsilon: 0.0,
            exact: true,
            max_weight: None,
            points: points
                .iter()
                .enumerate()
                .map(|(i, &(weight, value))| Point {
                    weight,
                    value,
                    chosen: (0..i).collect(),
                })
                .collect(),
        };
        ParetoFront::try_from(data).unwrap()
    }

    #[test]
    fn empty_input_has_the_empty_selection() {
        let front = pareto_front(&[]).unwrap();
        assert_eq!(front.len(), 1);
        assert_eq!(
            front.best_within(0),
            Some(Point {
                weight: 0,
                value: 0.0,
                chosen: vec![]
            })
        );
        assert_eq!(front.knee_index(), Some(0));
        let front = pareto_front_classes(&[]).unwrap();
        assert_eq!(front.weights(), &[0]);
    }

    #[test]
    fn weightless_items_are_in_every_point() {
        let items = [
            Item::new(3, 1.0),
            Item::new(0, 2.0),
            Item::new(0, 0.0),
            Item::new(2, 0.0),
        ];
        let front = pareto_front(&items).unwrap();
        assert_eq!(front.weights(), &[0, 3]);
        assert_eq!(front.values(), &[2.0, 3.0]);
        assert_eq!(front.chosen(0), Some(vec![1]));
        assert_eq!(front.chosen(1), Some(vec![0, 1]));
        assert_eq!(front.best_within(2).unwrap().value, 2.0);
    }

    #[test]
    fn epsilon_is_validated() {
        let items = [Item::new(1, 1.0)];
        for epsilon in [-0.1, 1.0, 1.5, f64::NAN, f64::INFINITY] {
            let err = pareto_front_with(&items, FrontOptions::new().with_epsilon(epsilon));
            assert!(
                matches!(err, Err(KnapsackError::InvalidEpsilon { .. })),
                "{epsilon}"
            );
        }
        let front = pareto_front_with(&items, FrontOptions::new().with_epsilon(0.5)).unwrap();
        assert_eq!(front.epsilon(), 0.5);
        // Nothing to trim: still exact.
        assert!(front.is_exact());
    }

    #[test]
    fn trimming_drops_close_points_and_says_so() {
        // One merge, so delta = epsilon: 1.0 and 1.05 are within 10 % of each other.
        let items = [Item::new(1, 1.0), Item::new(2, 1.05)];
        let opts = FrontOptions::new().with_epsilon(0.1);
        let classes = [Class::new(items.to_vec())];
        let front = pareto_front_classes_with(&classes, opts).unwrap();
        assert_eq!(front.weights(), &[0, 1]);
        assert!(!front.is_exact());
        assert!(pareto_front_classes(&classes).unwrap().is_exact());
    }

    #[test]
    fn max_weight_bounds_the_front() {
        let items = [
            Item::new(u64::MAX, 5.0),
            Item::new(u64::MAX, 5.0),
            Item::new(4, 1.0),
        ];
        assert_eq!(
            pareto_front(&items).unwrap_err(),
            KnapsackError::WeightOverflow
        );
        let front = pareto_front_with(&items, FrontOptions::new().with_max_weight(10)).unwrap();
        assert_eq!(front.weights(), &[0, 4]);
        assert_eq!(front.max_weight(), Some(10));
    }

    #[test]
    fn errors_name_the_input() {
        let items = [Item::new(1, 1.0), Item::new(1, f64::NAN)];
        assert!(matches!(
            pareto_front(&items),
            Err(KnapsackError::NonFiniteValue { item: 1, .. })
        ));
        let classes = [Class::new(vec![Item::new(1, 1.0)]), Class::new(vec![])];
        assert_eq!(
            pareto_front_classes(&classes).unwrap_err(),
            KnapsackError::EmptyClass { class: 1 }
        );
    }

    #[test]
    fn knee_on_a_hand_made_front() {
        // Normalised: (0, 0), (0.1, 0.6), (0.3, 0.8), (0.6, 0.9), (1, 1). Heights above the
        // diagonal: 0.5, 0.5, 0.3: a tie between the second and third point goes to the lighter.
        let front = front_of(&[(0, 0.0), (10, 6.0), (30, 8.0), (60, 9.0), (100, 10.0)]);
        assert_eq!(front.knee_index(), Some(1));
        assert_eq!(front.knee().unwrap().weight, 10);
        let front = front_of(&[(0, 0.0), (10, 6.0), (30, 8.5), (60, 9.0), (100, 10.0)]);
        assert_eq!(front.knee_index(), Some(2));
        // The chord starts at the first point, here above zero: (0, 0.5) to (1, 1).
        let front = front_of(&[(0, 5.0), (50, 9.0), (100, 10.0)]);
        assert_eq!(front.knee_index(), Some(1));
        // Convex front: everything on or below the chord, the first point wins.
        let front = front_of(&[(0, 0.0), (50, 1.0), (100, 10.0)]);
        assert_eq!(front.knee_index(), Some(0));
        let front = front_of(&[(7, 1.0)]);
        assert_eq!(front.knee_index(), Some(0));
    }

    #[test]
    fn best_within_is_the_heaviest_point_that_fits() {
        let front = front_of(&[(0, 0.0), (10, 6.0), (30, 8.0)]);
        assert_eq!(front.best_index_within(0), Some(0));
        assert_eq!(front.best_index_within(29), Some(1));
        assert_eq!(front.best_index_within(30), Some(2));
        assert_eq!(front.best_index_within(u64::MAX), Some(2));
        assert_eq!(
            front.iter().map(|p| p.chosen.len()).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(front.iter().next_back().unwrap().weight, 30);
    }

    #[test]
    fn data_round_trip_and_validation() {
        let classes = [
            Class::new(vec![Item::new(5, 2.0), Item::new(9, 3.0)]),
            Class::new(vec![Item::new(4, 1.5)]),
        ];
        let front = pareto_front_classes(&classes).unwrap();
        let data = front.to_data();
        let back = ParetoFront::try_from(data.clone()).unwrap();
        assert_eq!(back.to_data(), data);

        let mut bad = data.clone();
        bad.points.swap(1, 2);
        assert!(matches!(
            ParetoFront::try_from(bad),
            Err(KnapsackError::InvalidFront { .. })
        ));
        let mut bad = data.clone();
        bad.points.clear();
        assert!(matches!(
            ParetoFront::try_from(bad),
            Err(KnapsackError::InvalidFront { .. })
        ));
        let mut bad = data;
        bad.epsilon = 2.0;
        assert!(matches!(
            ParetoFront::try_from(bad),
            Err(KnapsackError::InvalidEpsilon { .. })
        ));
    }

    #[test]
    fn classes_pick_at_most_one_option() {
        let classes = [
            Class::new(vec![
                Item::new(1, 1.0),
                Item::new(1, 1.0),
                Item::new(2, 1.5),
            ]),
            Class::new(vec![Item::new(3, 1.0), Item::new(0, 0.5)]),
        ];
        let front = pareto_front_classes(&classes).unwrap();
        for p in &front {
            let mut seen = std::collections::HashSet::new();
            assert!(p.chosen.iter().all(|pick| seen.insert(pick.class)), "{p:?}");
        }
        // Class 1's weightless option beats taking nothing; two equal options: the first wins.
        assert_eq!(
            front.chosen(0).unwrap(),
            vec![Pick {
                class: 1,
                option: 1
            }]
        );
        assert_eq!(
            front.chosen(1).unwrap(),
            vec![
                Pick {
                    class: 0,
                    option: 0
                },
                Pick {
                    class: 1,
                    option: 1
                }
            ]
        );
        assert_eq!(front.values().last(), Some(&2.5));
    }
}
