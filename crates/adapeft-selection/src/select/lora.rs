//! LoRA choices: every targeted weight matrix as a multiple-choice class "frozen / its full
//! weight / a LoRA adapter of each rank", and how an adapter is valued before it exists.

use std::collections::{HashMap, HashSet};

use adapeft_importance::{Estimator, Groups, LossFn, Scores, discover};
use burn::module::{Lora, Module, ParamGroup};

use super::{AdaPeftConfig, LoraChoicesError, SelectError};
use crate::selection::LoraOption;

/// LoRA adapters offered to the selector: every targeted weight matrix becomes one
/// multiple-choice class "frozen / its full weight / a LoRA adapter of rank `r` for each of
/// `ranks`", of which the knapsack takes at most one option
/// ([`adapeft_knapsack::solve_classes`]).
///
/// # How an adapter is valued before it exists
/// The selector scores the adapters themselves, with the configured estimator, on copies of
/// the model: one copy per rank with burn's `Module::apply_lora(Lora::new(rank, alpha))` on
/// the targeted weights, in which each adapter (`<path>.lora`, factors `a` and `b`) replaces
/// its base weight as a group and every other group stays as it is. So an adapter's value is
/// measured the same way, in the same units (predicted or, for the default `ShortRun`,
/// realised loss reduction) and next to the same other groups as its full weight's, and
/// whatever the estimator knows about the optimizer (Adam's normalised steps, the learning
/// rate) applies to the adapter as it will train. A closed form from the full weight's
/// gradient was the alternative: at burn's initialisation (`B = 0`) the adapter's first
/// gradient is `dL/dB = s A^T G` and `dL/dA = 0`, so `E ||dL/dB||^2 = s^2 ||G||^2 / r` for
/// `A ~ N(0, 1/r)`; but that describes only the first step of plain gradient descent (the
/// `A` factor starts moving only after `B` has), not an Adam run, and it would value an
/// adapter without looking at the loss it is meant to reduce. The price is one more
/// estimation per rank (the selection's [`Cost`](adapeft_importance::Cost) adds them up).
///
/// An adapter is offered to a group only when the group is exactly one targeted 2-D weight
/// (per-tensor grouping, the default, does this for every weight); other groups keep the plain
/// take-or-leave choice. Only the additive value model supports choices.
#[derive(Debug, Clone)]
pub struct LoraChoices {
    /// The ranks offered (each one an option per weight).
    pub ranks: Vec<usize>,
    /// `alpha / rank`, the adapter's scale (default `1`: `alpha = rank`).
    pub scale: f64,
    /// The weights that get the options (default: every 2-D parameter, burn's `Lora`
    /// default). Use `ParamGroup::from_regex` to leave out, for example, embeddings.
    pub targets: ParamGroup,
}

impl LoraChoices {
    /// Adapters of `ranks` at scale 1 on every 2-D weight.
    pub fn new(ranks: &[usize]) -> Self {
        LoraChoices {
            ranks: ranks.to_vec(),
            scale: 1.0,
            targets: ParamGroup::all(),
        }
    }

    /// Sets the adapters' scale `alpha / rank`.
    pub fn with_scale(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }

    /// Sets the weights that get the options.
    pub fn with_targets(mut self, targets: ParamGroup) -> Self {
        self.targets = targets;
        self
    }

    /// Checks the ranks and the scale.
    fn validate(&self) -> Result<(), LoraChoicesError> {
        if let Some(&rank) = self.ranks.iter().find(|&&r| r == 0) {
            return Err(LoraChoicesError::ZeroRank { rank });
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(LoraChoicesError::Scale { scale: self.scale });
        }
        Ok(())
    }

    /// Scores the adapters on a LoRA-applied copy of `model` per rank, with `config`'s
    /// grouping and estimator (the always-trained groups at their own rate, as in the main
    /// estimate): the options of each group, in `groups`' order, none for an always-trained
    /// group (it trains fully). The copies' costs are added to `scores.cost`.
    pub(super) fn options<M, B, F>(
        &self,
        config: &AdaPeftConfig,
        model: &M,
        batches: &[B],
        (groups, always): (&Groups, &[bool]),
        scores: &mut Scores,
        loss: &F,
    ) -> Result<Vec<Vec<LoraOption>>, SelectError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        self.validate()?;
        // The group that is exactly one tensor, by that tensor's path.
        let single: HashMap<&str, usize> = groups
            .groups()
            .iter()
            .enumerate()
            .filter(|(_, g)| g.members.len() == 1)
            .map(|(k, g)| (groups.params()[g.members[0]].path.as_str(), k))
            .collect();
        let mut options = vec![Vec::new(); groups.len()];
        for &rank in &self.ranks {
            let alpha = self.scale * rank as f64;
            let lora = Lora::new(rank, alpha).set_param_group(self.targets.clone());
            let adapted = model.clone().apply_lora(lora);
            let params = discover(&adapted);
            let bases: HashSet<String> = params.iter().filter_map(|p| p.lora_of.clone()).collect();
            // Each adapter replaces its base weight as a group; the other groups stay.
            let mut adapted_groups = config.grouping.group(params)?;
            adapted_groups
                .retain(|g, params| !g.members.iter().any(|&m| bases.contains(&params[m].path)));
            let adapted_always = config.always_flags(&adapted_groups)?;
            let adapted_groups = config.with_always_rates(adapted_groups, &adapted_always);
            let adapter_scores =
                config
                    .estimator
                    .estimate_with(&adapted, batches, &adapted_groups, loss)?;
            scores.cost += adapter_scores.cost;
            for (group, score) in adapted_groups.groups().iter().zip(&adapter_scores.groups) {
                let member = &adapted_groups.params()[group.members[0]];
                let Some(base) = &member.lora_of else {
                    continue;
                };
                let Some(&k) = single.get(base.as_str()) else {
                    continue;
                };
                if always[k] {
                    continue;
                }
                options[k].push(LoraOption {
                    rank,
                    alpha,
                    params: group.numel,
                    value: if score.unreliable.is_none() && score.value > 0.0 {
                        score.value
                    } else {
                        0.0
                    },
                });
            }
        }
        Ok(options)
    }
}
