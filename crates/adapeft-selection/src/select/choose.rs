//! The knapsack and the front over the scores: additive values (the paper's 0-1 knapsack),
//! LoRA options (a multiple-choice knapsack), or the joint value over the cross-group
//! curvature; then the [`Selection`] that records it.

use adapeft_importance::{Groups, Scores};
use adapeft_knapsack::{
    Class, FrontOptions, Item, ParetoFront, greedy_subset_front, maximize_subset,
    pareto_front_classes_with, pareto_front_with, solve, solve_classes,
};

use super::{AdaPeftConfig, SelectError};
use crate::budget::{self, Budget, BudgetOutcome, Candidates};
use crate::selection::{GroupChoice, LoraOption, Selection, SelectionSettings};

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
    /// parameters (`None` for [`Budget::Auto`]); `candidates` records which groups were scored.
    pub(super) fn choose(
        &self,
        groups: &Groups,
        (scores, candidates): (Scores, Candidates),
        options: &[Vec<LoraOption>],
        budget: Budget,
        capacity: Option<u64>,
        batches: usize,
    ) -> Result<Selection, SelectError> {
        let choice = if options.iter().any(|o| !o.is_empty()) {
            self.choose_classes(&scores, options, capacity)?
        } else if self.value_model.is_additive() {
            self.choose_additive(&scores, capacity)?
        } else {
            self.choose_joint(&scores, capacity)?
        };
        // `picked[k]`: group k's chosen option, if any.
        let mut picked: Vec<Option<usize>> = vec![None; scores.groups.len()];
        for &(k, option) in &choice.picks {
            picked[k] = Some(option);
        }
        let grouped: u64 = groups.groups().iter().map(|g| g.numel).sum();
        let outcome = if capacity.is_some_and(|c| c >= grouped) {
            BudgetOutcome::EverythingFits
        } else if choice.picks.is_empty() {
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
            .map(|(((score, group), pick), options)| GroupChoice {
                score,
                chosen: pick.is_some(),
                paths: group
                    .members
                    .iter()
                    .map(|&m| groups.params()[m].path.clone())
                    .collect(),
                lora: pick.filter(|&o| o > 0).map(|o| options[o - 1]),
                options: options.clone(),
            })
            .collect();
        let settings = SelectionSettings {
            estimator: self.estimator.clone(),
            grouping: self.grouping.to_string(),
            budget,
            budget_params: choice.budget_params,
            front_epsilon: self.front_epsilon,
            batches,
            value_model: self.value_model,
            candidates,
        };
        let selection = Selection::new(
            choices,
            groups.total_params(),
            choice.front,
            outcome,
            (scores.cost, scores.loss),
            settings,
        );
        Ok(match choice.predicted {
            Some(p) => selection.with_predicted_reduction(p),
            None => selection,
        })
    }

    /// The paper's knapsack over per-group values. Groups without value (unreliable, value
    /// 0) are never chosen.
    fn choose_additive(
        &self,
        scores: &Scores,
        capacity: Option<u64>,
    ) -> Result<Choice, SelectError> {
        let items: Vec<Item> = scores
            .groups
            .iter()
            .map(|s| Item::new(s.params, positive(s.value)))
            .collect();
        let front =
            pareto_front_with(&items, FrontOptions::new().with_epsilon(self.front_epsilon))?;
        let chosen = match capacity {
            Some(c) => solve(&items, c)?.chosen,
            None => budget::auto_point(&front),
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
        capacity: Option<u64>,
    ) -> Result<Choice, SelectError> {
        let classes: Vec<Class> = scores
            .groups
            .iter()
            .zip(options)
            .map(|(s, opts)| {
                std::iter::once(Item::new(s.params, positive(s.value)))
                    .chain(opts.iter().map(|o| Item::new(o.params, positive(o.value))))
                    .collect()
            })
            .collect();
        let front = pareto_front_classes_with(
            &classes,
            FrontOptions::new().with_epsilon(self.front_epsilon),
        )?;
        let picks = match capacity {
            Some(c) => solve_classes(&classes, c)?.chosen,
            None => budget::auto_point(&front),
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
    fn choose_joint(&self, scores: &Scores, capacity: Option<u64>) -> Result<Choice, SelectError> {
        if scores.curvature().is_none() {
            return Err(SelectError::NoCurvature {
                value_model: self.value_model.to_string(),
                estimator: scores.estimator.clone(),
            });
        }
        let value = |s: &[usize]| {
            self.value_model
                .value(scores, s)
                .expect("the curvature is present")
        };
        let weights: Vec<u64> = scores.groups.iter().map(|g| g.params).collect();
        let front = greedy_subset_front(&weights, value)?;
        let chosen = match capacity {
            Some(c) => maximize_subset(&weights, c, value)?.chosen,
            None => budget::auto_point(&front),
        };
        let predicted = value(&chosen);
        let budget_params = capacity.unwrap_or_else(|| chosen.iter().map(|&i| weights[i]).sum());
        Ok(Choice {
            front,
            picks: chosen.into_iter().map(|i| (i, 0)).collect(),
            budget_params,
            predicted: Some(predicted),
        })
    }
}
