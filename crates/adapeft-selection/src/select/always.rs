//! Always-trained groups ([`AlwaysTrain`]): parameters that train whatever their value, such
//! as a new, randomly initialised head (peft's `modules_to_save`).

use std::fmt;

use adapeft_importance::{Groups, ParamInfo};
use burn::module::ParamGroup;

use super::{AdaPeftConfig, SelectError};

/// Parameters that train whatever the budget and their value: a new head or classifier
/// that starts random and must learn, as peft's `modules_to_save`. Given to
/// [`AdaPeftConfig::with_always`].
///
/// - They **count against the budget**: at [`Budget::Params(n)`](crate::Budget::Params) the
///   selection trains at most `n` parameters in all, and the knapsack chooses among the other
///   groups within what the always-trained ones leave. A budget smaller than them is
///   [`SelectError::AlwaysOverBudget`].
/// - They are scored like every group (their value is in the table), marked
///   [`GroupChoice::always`](crate::GroupChoice::always), shown as `always` in the table,
///   trained by [`Selection::apply`](crate::Selection::apply) and stored by `save_trained`.
/// - The Pareto front ([`Selection::front`](crate::Selection::front)) is over the groups the
///   budget chooses among: its weights and (additive) values leave the always-trained ones
///   out; add [`Selection::always_params`](crate::Selection::always_params) for the size
///   that trains.
/// - With [`AlwaysTrain::with_learning_rate`], the estimator's short run trains them at their
///   own rate (a new head at `1e-2` beside an encoder at `1e-4`, say).
///
/// The rule works on whole groups: every member of a group must match, or none
/// ([`SelectError::AlwaysSplitsGroup`] names a group it would cut: with
/// [`Grouping::by_kind`](adapeft_importance::Grouping::by_kind), every bias is one group, so
/// a head's bias cannot train alone; use the default per-tensor grouping, or one that keeps
/// the head a group of its own), and it must match some grouped parameter
/// ([`SelectError::AlwaysMatchesNothing`] catches a misspelt path). One rule per
/// configuration: a second [`AdaPeftConfig::with_always`] replaces the first (a
/// [`ParamGroup`] can match several modules).
///
/// ```
/// use adapeft_importance::Objective;
/// use adapeft_selection::{AdaPeftConfig, AlwaysTrain, Budget};
/// use burn::module::Module;
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::{Device, Distribution, Tensor};
///
/// #[derive(Module, Debug)]
/// struct Model {
///     hidden: Linear,
///     head: Linear,
/// }
///
/// impl Objective<Tensor<2>> for Model {
///     fn loss(&self, x: &Tensor<2>) -> Tensor<1> {
///         (self.head.forward(self.hidden.forward(x.clone()).tanh()) - 1.0).square().mean()
///     }
/// }
///
/// let device = Device::flex().autodiff();
/// let model = Model {
///     hidden: LinearConfig::new(16, 16).init(&device),
///     head: LinearConfig::new(16, 2).init(&device),
/// };
/// let x = Tensor::random([32, 16], Distribution::Normal(0.0, 1.0), &device);
/// let selection = AdaPeftConfig::new()
///     .with_always(AlwaysTrain::module("head").with_learning_rate(1e-2))
///     .select(&model, &[x], Budget::Params(60))?;
/// // The head (34 parameters) trains, and the rest of the budget went to the others.
/// assert_eq!(selection.always_params(), 34);
/// assert!(selection.chosen_paths().contains(&"head.weight".to_string()));
/// assert!(selection.trainable_params() <= 60);
/// # Ok::<(), adapeft_selection::SelectError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AlwaysTrain {
    rule: Rule,
    learning_rate: Option<f64>,
}

#[derive(Debug, Clone)]
enum Rule {
    /// The module at this path: the parameter `path` itself or every one under `path.`.
    Module(String),
    /// The parameters a burn `ParamGroup` matches (by id or path).
    Group(ParamGroup),
}

impl AlwaysTrain {
    /// The parameters of the module at `path` (`"head"`: `head.weight`, `head.bias`; a
    /// nested `"classifier.out"` works the same), or the parameter at `path` itself.
    pub fn module(path: impl Into<String>) -> Self {
        Self::new(Rule::Module(path.into()))
    }

    /// The parameters a burn [`ParamGroup`] matches (by id or by path).
    pub fn group(group: ParamGroup) -> Self {
        Self::new(Rule::Group(group))
    }

    fn new(rule: Rule) -> Self {
        AlwaysTrain {
            rule,
            learning_rate: None,
        }
    }

    /// The rate the estimator's short run trains them at (default: the run's own rate).
    pub fn with_learning_rate(mut self, rate: f64) -> Self {
        self.learning_rate = Some(rate);
        self
    }

    /// Their own learning rate, if set.
    pub fn learning_rate(&self) -> Option<f64> {
        self.learning_rate
    }

    /// Whether the rule takes `param`.
    fn matches(&self, param: &ParamInfo) -> bool {
        match &self.rule {
            Rule::Module(path) => {
                param.path == *path
                    || param
                        .path
                        .strip_prefix(path.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            }
            Rule::Group(group) => group.matches(&param.id, Some(&param.path)),
        }
    }
}

/// `module head` or `param group`, with ` at 1e-2` when it has its own rate: what
/// a selection records ([`SelectionSettings::always`](crate::SelectionSettings::always)).
impl fmt::Display for AlwaysTrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::Module(path) => write!(f, "module {path}")?,
            Rule::Group(_) => write!(f, "param group")?,
        }
        if let Some(rate) = self.learning_rate {
            write!(f, " at {rate:e}")?;
        }
        Ok(())
    }
}

impl AdaPeftConfig {
    /// Which groups always train (one flag per group; all false without
    /// [`AdaPeftConfig::always`]).
    ///
    /// # Errors
    /// [`SelectError::AlwaysSplitsGroup`], [`SelectError::AlwaysMatchesNothing`] and
    /// [`SelectError::AlwaysLearningRate`].
    pub(super) fn always_flags(&self, groups: &Groups) -> Result<Vec<bool>, SelectError> {
        let Some(always) = &self.always else {
            return Ok(vec![false; groups.len()]);
        };
        if let Some(rate) = always.learning_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(SelectError::AlwaysLearningRate { rate });
        }
        let params = groups.params();
        let mut flags = Vec::with_capacity(groups.len());
        for group in groups.groups() {
            let (inside, outside): (Vec<usize>, Vec<usize>) = group
                .members
                .iter()
                .partition(|&&m| always.matches(&params[m]));
            if let (Some(&i), Some(&o)) = (inside.first(), outside.first()) {
                return Err(SelectError::AlwaysSplitsGroup {
                    group: group.name.clone(),
                    inside: params[i].path.clone(),
                    outside: params[o].path.clone(),
                });
            }
            flags.push(!inside.is_empty());
        }
        if !flags.contains(&true) {
            return Err(SelectError::AlwaysMatchesNothing {
                rule: always.to_string(),
            });
        }
        Ok(flags)
    }

    /// [`SelectError::AlwaysOnUnits`] when the always-train rule takes a tensor that the unit
    /// rules cut into units (`groups` after the split).
    pub(super) fn refuse_always_on_units(&self, groups: &Groups) -> Result<(), SelectError> {
        let Some(always) = &self.always else {
            return Ok(());
        };
        let cut = groups
            .params()
            .iter()
            .zip(groups.tilings())
            .find(|(p, t)| t.is_some() && always.matches(p));
        match cut {
            Some((param, _)) => Err(SelectError::AlwaysOnUnits {
                path: param.path.clone(),
            }),
            None => Ok(()),
        }
    }

    /// `groups` with the always-trained ones at their own rate, when one is set.
    pub(super) fn with_always_rates(&self, groups: Groups, flags: &[bool]) -> Groups {
        match self.always.as_ref().and_then(AlwaysTrain::learning_rate) {
            Some(rate) => flags
                .iter()
                .enumerate()
                .filter(|&(_, &f)| f)
                .fold(groups, |groups, (g, _)| groups.with_learning_rate(g, rate)),
            None => groups,
        }
    }
}

/// The budget left for the other groups once the always-trained ones (`always` parameters)
/// are paid for: `None` stays `None` ([`Budget::Auto`](crate::Budget::Auto) and
/// [`Budget::Knee`](crate::Budget::Knee)).
///
/// # Errors
/// [`SelectError::AlwaysOverBudget`] when they alone exceed the budget.
pub(super) fn budget_for_others(
    capacity: Option<u64>,
    always: u64,
) -> Result<Option<u64>, SelectError> {
    match capacity {
        Some(c) if c < always => Err(SelectError::AlwaysOverBudget { always, budget: c }),
        Some(c) => Ok(Some(c - always)),
        None => Ok(None),
    }
}

/// The size of the flagged groups.
pub(super) fn always_params(groups: &Groups, flags: &[bool]) -> u64 {
    groups
        .groups()
        .iter()
        .zip(flags)
        .filter(|&(_, &f)| f)
        .map(|(g, _)| g.numel)
        .sum()
}
