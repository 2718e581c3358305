//! The one-line count PEFT users know, and the table of groups.

use std::fmt;

use crate::select::RateRule;
use crate::selection::Selection;

/// `1234567` -> `"1,234,567"`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Selection {
    /// `trainable params: 12,345 || all params: 1,234,567 || trainable%: 1.0000`.
    pub fn summary(&self) -> String {
        format!(
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            thousands(self.trainable_params()),
            thousands(self.total_params()),
            100.0 * self.trainable_fraction()
        )
    }
}

/// The summary line, the outcome, then one row per group sorted by value per parameter
/// (highest first), chosen groups marked with `*`.
impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary())?;
        writeln!(
            f,
            "predicted loss reduction: {:.4e} ({:?}; {} groups, front of {} points)",
            self.predicted_reduction(),
            self.outcome(),
            self.groups().len(),
            self.front().len()
        )?;
        if let Some(v) = self.validation() {
            let tried: Vec<String> = v
                .trials
                .iter()
                .map(|t| match t.after {
                    Some(after) => format!("{:e}: {after:.4}", t.learning_rate),
                    None => format!("{:e}: diverged", t.learning_rate),
                })
                .collect();
            let before = v.trials.first().map_or(f64::NAN, |t| t.before);
            match v.learning_rate {
                _ if v.trials.is_empty() => {
                    writeln!(f, "recommended learning rate: none (nothing trains)")?
                }
                Some(rate) => writeln!(
                    f,
                    "recommended learning rate: {rate:e} ({}; held-out loss {before:.4} -> after {} steps at each rate: {})",
                    self.settings()
                        .held_out
                        .as_ref()
                        .map_or(RateRule::LowestLoss, |h| h.rate_rule),
                    v.steps,
                    tried.join(", ")
                )?,
                None => writeln!(
                    f,
                    "recommended learning rate: none (held-out loss {before:.4} -> after {} steps: {}; no run lowered it, or only groups with a rate of their own train)",
                    v.steps,
                    tried.join(", ")
                )?,
            }
            for c in &v.auto {
                writeln!(
                    f,
                    "{} auto tried {} params: held-out reduction {} at {}",
                    if c.taken { "*" } else { " " },
                    thousands(c.params),
                    c.reduction.map_or("none".into(), |r| format!("{r:.4}")),
                    c.learning_rate
                        .map_or("no rate".into(), |r| format!("{r:e}")),
                )?;
            }
        }
        if let Some(rule) = &self.settings().always {
            writeln!(
                f,
                "always trained ({rule}): {} params, counted in the budget",
                thousands(self.always_params())
            )?;
        }
        let name_width = self
            .groups()
            .iter()
            .map(|g| g.score.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "  {:<name_width$}  {:>12}  {:>11}  {:>11}  {:>11}  {:>11}  note",
            "group", "params", "value", "value/param", "b", "a"
        )?;
        let mut order: Vec<usize> = (0..self.groups().len()).collect();
        order.sort_by(|&i, &j| {
            self.groups()[j]
                .value_per_param()
                .total_cmp(&self.groups()[i].value_per_param())
        });
        for i in order {
            let g = &self.groups()[i];
            let mut note = g
                .score
                .unreliable
                .map(|u| u.to_string())
                .unwrap_or_default();
            if g.always {
                note = format!("always {note}");
            }
            if let Some(lora) = g.lora {
                note = format!(
                    "LoRA rank {} ({} params) {note}",
                    lora.rank,
                    thousands(lora.params)
                );
            }
            writeln!(
                f,
                "{} {:<name_width$}  {:>12}  {:>11.4e}  {:>11.4e}  {:>11.4e}  {:>11.4e}  {}",
                if g.chosen { "*" } else { " " },
                g.score.name,
                thousands(g.score.params),
                g.score.value,
                g.value_per_param(),
                g.score.b,
                g.score.a,
                note
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12345), "12,345");
    }
}
