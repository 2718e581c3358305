//! Which groups are scored once the budget is known ([`Candidates`]).

use adapeft_importance::{Cost, EstimateError, GroupScore, Groups, Quality, Scores, Unreliable};

use super::{AdaPeftConfig, SelectError};
use crate::budget::Candidates;

impl AdaPeftConfig {
    /// Scores the candidates with `estimate` (every group, or under
    /// [`Candidates::WithinBudget`] those that fit `capacity` and the always-trained ones),
    /// and which were scored.
    pub(super) fn score_candidates(
        &self,
        groups: &Groups,
        always: &[bool],
        capacity: Option<u64>,
        estimate: impl FnOnce(&Groups) -> Result<Scores, EstimateError>,
    ) -> Result<(Scores, Candidates), SelectError> {
        let Some((keep, budget)) = self.scored_candidates(groups, always, capacity) else {
            return Ok((estimate(groups)?, Candidates::All));
        };
        let scores = if keep.is_empty() {
            None
        } else {
            Some(estimate(&groups.subset(&keep))?)
        };
        Ok((
            self.expand(groups, &keep, scores, budget),
            Candidates::WithinBudget,
        ))
    }

    /// The groups to score when not all of them are: `Some((indices, budget))` under
    /// [`Candidates::WithinBudget`] at a resolved budget that some group exceeds.
    fn scored_candidates(
        &self,
        groups: &Groups,
        always: &[bool],
        capacity: Option<u64>,
    ) -> Option<(Vec<usize>, u64)> {
        let capacity = capacity?;
        if !self.value_model.is_additive() {
            return None;
        }
        let keep: Vec<usize> = (0..groups.len())
            .filter(|&g| {
                always[g]
                    || self
                        .candidates
                        .admits(groups.groups()[g].numel, Some(capacity))
            })
            .collect();
        (keep.len() < groups.len()).then_some((keep, capacity))
    }

    /// Scores of every group from the scores of the candidates `keep` (`None`: nothing was
    /// scored); the others are unscored, value 0, [`Unreliable::LargerThanBudget`]. The
    /// cross-group curvature, over the candidates only, is not kept.
    fn expand(
        &self,
        groups: &Groups,
        keep: &[usize],
        scores: Option<Scores>,
        budget: u64,
    ) -> Scores {
        let (estimator, cost, loss, mut scored) = match scores {
            Some(s) => (s.estimator, s.cost, s.loss, s.groups.into_iter()),
            None => (
                self.estimator.to_string(),
                Cost::default(),
                None,
                Vec::new().into_iter(),
            ),
        };
        let groups = groups
            .groups()
            .iter()
            .enumerate()
            .map(|(g, group)| {
                if keep.contains(&g) {
                    scored.next().expect("one score per candidate")
                } else {
                    GroupScore {
                        name: group.name.clone(),
                        params: group.numel,
                        b: 0.0,
                        a: 0.0,
                        value: 0.0,
                        unreliable: Some(Unreliable::LargerThanBudget { budget }),
                        quality: Quality::Exact,
                    }
                }
            })
            .collect();
        Scores {
            estimator,
            groups,
            cost,
            loss,
            curvature: None,
        }
    }
}
