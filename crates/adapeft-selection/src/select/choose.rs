//! The knapsack and the front over the scores: additive values (the paper's 0-1 knapsack),
//! LoRA options (a multiple-choice knapsack), or the joint value over the cross-group
//! curvature; then the [`Selection`] that records it.

use adapeft_importance::{Groups, Scores};
use adapeft_knapsack::{
    Class, FrontOptions, Item, ParetoFront, greedy_subset_front, maximize_subset,
    pareto_front_classes_with, pareto_front_with, solve, solve_classes,
};

use super::{AdaPeftConfig, SelectError, always};
use crate::budget::{self, Budget, BudgetOutcome, Candidates};
use crate::selection::{CellChoice, GroupChoice, LoraOption, Selection, SelectionSettings};

/// A group's value as a knapsack item's: unreliable or non-positive values count as 0, so
/// such groups are never chosen.
fn positive(value: f64) -> f64 {
    if value > 0.0 { value } else { 0.0 }
}

/// What a knapsack dispatch returns: the front, the chosen `(group, option)` pairs (option 0
/// is the full group, `j` its LoRA option `j - 1`), the budget in parameters, and the chosen
/// subset's predicted reduction when it is not the sum of the chosen values.
struct Choice {
    front: ParetoFront,
    picks: Vec<(usize, usize)>,
    budget_params: u64,
    predicted: Option<f64>,
}

impl AdaPeftConfig {
    /// The knapsack and the front over `scores`, at `budget` resolved to `capacity`
    /// parameters (`None` for [`Budget::Knee`]); `candidates` records which groups were
    /// scored, `options` each group's LoRA options and `always` which groups always train
    /// (left out of the knapsack and its front, which get the budget they leave).
    pub(super) fn choose(
        &self,
        groups: &Groups,
        (scores, candidates): (Scores, Candidates),
        (options, always): (&[Vec<LoraOption>], &[bool]),
        budget: Budget,
        capacity: Option<u64>,
        batches: usize,
    ) -> Result<Selection, SelectError> {
        let always_params = always::always_params(groups, always);
        let others = always::budget_for_others(capacity, always_params)?;
        let choice = if options.iter().any(|o| !o.is_empty()) {
            self.choose_classes(&scores, options, always, others)?
        } else if self.value_model.is_additive() {
            self.choose_additive(&scores, always, others)?
        } else {
            self.choose_joint(&scores, always, others)?
        };
        // `picked[k]`: group k's chosen option, if any; the always-trained groups train fully.
        let mut picked: Vec<Option<usize>> = vec![None; scores.groups.len()];
        for &(k, option) in &choice.picks {
            picked[k] = Some(option);
        }
        for (k, _) in always.iter().enumerate().filter(|&(_, &a)| a) {
            picked[k] = Some(0);
        }
        let grouped: u64 = groups.groups().iter().map(|g| g.numel).sum();
        let outcome = if capacity.is_some_and(|c| c >= grouped) {
            BudgetOutcome::EverythingFits
        } else if picked.iter().all(Option::is_none) {
            BudgetOutcome::Empty
        } else {
            BudgetOutcome::Within
        };
        let choices = scores
            .groups
            .into_iter()
            .zip(groups.groups())
            .zip(picked)
            .zip(options)
            .zip(always)
            .map(|((((score, group), pick), options), &always)| GroupChoice {
                score,
                chosen: pick.is_some(),
                always,
                paths: group
                    .members
                    .iter()
                    .map(|&m| groups.params()[m].path.clone())
                    .collect(),
                cells: group
                    .parts
                    .iter()
                    .map(|p| CellChoice {
                        path: groups.params()[p.param as usize].path.clone(),
                        cell: p.cell,
                    })
                    .collect(),
                lora: pick.filter(|&o| o > 0).map(|o| options[o - 1]),
                options: options.clone(),
            })
            .collect();
        let settings = SelectionSettings {
            estimator: self.estimator.clone(),
            grouping: match &self.units {
                Some(rules) => format!("{}, cut into units: {rules}", self.grouping),
                None => self.grouping.to_string(),
            },
            budget,
            budget_params: choice.budget_params + always_params,
            front_epsilon: self.front_epsilon,
            batches,
            value_model: self.value_model,
            candidates,
            always: self.always.as_ref().map(ToString::to_string),
            held_out: self.held_out.clone(),
        };
        let tilings = groups
            .params()
            .iter()
            .zip(groups.tilings())
            .filter_map(|(p, t)| t.map(|t| (p.path.clone(), t)))
            .collect();
        let selection = Selection::new(
            choices,
            groups.total_params(),
            choice.front,
            outcome,
            (scores.cost, scores.loss),
            settings,
        )
        .with_tilings(tilings);
        Ok(match choice.predicted {
            Some(p) => selection.with_predicted_reduction(p),
            None => selection,
        })
    }

    /// The paper's knapsack over per-group values. Groups without value (unreliable, value
    /// 0) are never chosen; the always-trained ones are left out (no weight, no value).
    fn choose_additive(
        &self,
        scores: &Scores,
        always: &[bool],
        capacity: Option<u64>,
    ) -> Result<Choice, SelectError> {
        let items: Vec<Item> = scores
            .groups
            .iter()
            .zip(always)
            .map(|(s, &a)| match a {
                true => Item::new(0, 0.0),
                false => Item::new(s.params, positive(s.value)),
            })
            .collect();
        let front =
            pareto_front_with(&items, FrontOptions::new().with_epsilon(self.front_epsilon))?;
        let chosen = match capacity {
            Some(c) => solve(&items, c)?.chosen,
            None => budget::knee_point(&front),
        };
        let picks: Vec<(usize, usize)> = chosen
            .into_iter()
            .filter(|&i| items[i].value > 0.0)
            .map(|i| (i, 0))
            .collect();
        let budget_params =
            capacity.unwrap_or_else(|| picks.iter().map(|&(i, _)| items[i].weight).sum());
        Ok(Choice {
            front,
            picks,
            budget_params,
            predicted: None,
        })
    }

    /// The multiple-choice knapsack: group `k` is a class whose option 0 is the full group and
    /// option `j` its LoRA option `j - 1`. Options without value are never chosen.
    fn choose_classes(
        &self,
        scores: &Scores,
        options: &[Vec<LoraOption>],
        always: &[bool],
        capacity: Option<u64>,
    ) -> Result<Choice, SelectError> {
        let classes: Vec<Class> = scores
            .groups
            .iter()
            .zip(options)
            .zip(always)
            .map(|((s, opts), &a)| match a {
                // Trained fully whatever the budget: no option competes.
                true => std::iter::once(Item::new(0, 0.0)).collect(),
                false => std::iter::once(Item::new(s.params, positive(s.value)))
                    .chain(opts.iter().map(|o| Item::new(o.params, positive(o.value))))
                    .collect(),
            })
            .collect();
        let front = pareto_front_classes_with(
            &classes,
            FrontOptions::new().with_epsilon(self.front_epsilon),
        )?;
        let picks = match capacity {
            Some(c) => solve_classes(&classes, c)?.chosen,
            None => budget::knee_point(&front),
        };
        let item = |class: usize, option: usize| &classes[class].options()[option];
        let picks: Vec<(usize, usize)> = picks
            .into_iter()
            .filter(|p| item(p.class, p.option).value > 0.0)
            .map(|p| (p.class, p.option))
            .collect();
        let budget_params =
            capacity.unwrap_or_else(|| picks.iter().map(|&(c, o)| item(c, o).weight).sum());
        Ok(Choice {
            front: front.map_choices(|p| p.class),
            picks,
            budget_params,
            predicted: None,
        })
    }

    /// The joint value over the cross-group curvature: the greedy chain as the front, and
    /// the chosen subset's joint value as its predicted reduction.
    /// The always-trained groups weigh nothing and are in every subset valued, so the joint
    /// value of a subset is that of it together with them.
    fn choose_joint(
        &self,
        scores: &Scores,
        always: &[bool],
        capacity: Option<u64>,
    ) -> Result<Choice, SelectError> {
        if scores.curvature().is_none() {
            return Err(SelectError::NoCurvature {
                value_model: self.value_model.to_string(),
                estimator: scores.estimator.clone(),
            });
        }
        let forced: Vec<usize> = (0..always.len()).filter(|&k| always[k]).collect();
        let value = |s: &[usize]| {
            let mut with: Vec<usize> = s.iter().copied().filter(|k| !always[*k]).collect();
            with.extend(&forced);
            with.sort_unstable();
            self.value_model
                .value(scores, &with)
                .expect("the curvature is present")
        };
        let weights: Vec<u64> = scores
            .groups
            .iter()
            .zip(always)
            .map(|(g, &a)| if a { 0 } else { g.params })
            .collect();
        let front = greedy_subset_front(&weights, value)?;
        let chosen = match capacity {
            Some(c) => maximize_subset(&weights, c, value)?.chosen,
            None => budget::knee_point(&front),
        };
        let predicted = value(&chosen);
        let budget_params = capacity.unwrap_or_else(|| chosen.iter().map(|&i| weights[i]).sum());
        Ok(Choice {
            front,
            picks: chosen
                .into_iter()
                .filter(|&i| !always[i])
                .map(|i| (i, 0))
                .collect(),
            budget_params,
            predicted: Some(predicted),
        })
    }
}
