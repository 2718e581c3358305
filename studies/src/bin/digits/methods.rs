//! The fine-tuning methods compared by the study and how each prepares a pretrained model.
//!
//! Every method ends in the same place: a model in which exactly the parameters that should
//! train require gradients, trained by the same loop (burn's Adam, same steps and batches). A
//! plain burn optimizer only updates parameters that received a gradient, so the require-grad
//! mask *is* the method.
//!
//! - fixed rules (a mask by path): full fine-tuning, head only (linear probing), BitFit (every
//!   bias, including the LayerNorm `beta`s, as in Ben Zaken et al.), LayerNorm tuning (every
//!   `gamma` and `beta`; N/A for the MLP, which has none);
//! - LoRA through burn's `Module::apply_lora` at ranks 1, 2, 4, 8 on every 2-D weight (every
//!   `Linear`, the head's included; the 3-D position embedding has none). Following burn's LoRA
//!   contract only the adapter factors train: biases and the head's plain weights stay frozen,
//!   so the head can change only through its own low-rank adapter. The adapters are the
//!   whole trainable budget, which keeps the parameter counts comparable with the others;
//! - selections at a budget from the same knapsack, differing only in the per-group scores:
//!   random scores (a random subset of the same size), gradient norm, empirical Fisher, and
//!   AdaPEFT's Hessian-informed scores from `ForwardProbe` (the paper's) and `GradientProbe`,
//!   and the library's default, `ShortRun` (the loss-change allocation of a 15-step run by the
//!   trapezoid rule, on 15 fresh batches of the selection stream); the selection is applied with
//!   `Selection::apply`.
//!
//! Learning rates (Adam), one per family, not tuned per task: full fine-tuning `1e-3` (every
//! weight moves, and a larger rate forgets the pretrained features within a few steps);
//! every subset method `1e-2` (few parameters must absorb the whole change; the same rate for
//! head, BitFit, LayerNorm, random, gradient norm, Fisher and AdaPEFT, so that they differ only
//! in *which* parameters train); LoRA `5e-3` with `alpha = rank` (scale 1; the `B` factor
//! starts at zero and the product of two trained factors moves faster than one tensor).

use std::fmt;

use adapeft::importance::{Direction, discover, set_require_grad};
use adapeft::{
    AdaPeftConfig, AnyEstimator, Baseline, Budget, ForwardProbe, GradientProbe, ShortRun,
};
use burn::module::{Lora, Module};

/// Learning rate of full fine-tuning.
pub const LR_FULL: f64 = 1e-3;
/// Learning rate of every method that trains a subset of the tensors.
pub const LR_SUBSET: f64 = 1e-2;
/// Learning rate of LoRA.
pub const LR_LORA: f64 = 5e-3;

/// How a selection-based method scores the groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scorer {
    /// Uniform random scores: a random subset that fills the budget.
    Random,
    /// `||G_k||^2`.
    GradientNorm,
    /// Empirical Fisher, `sum over batches ||G_k^batch||^2`.
    Fisher,
    /// AdaPEFT with the paper's forward probe.
    AdaForward,
    /// AdaPEFT with the gradient probe (16 orthogonal random-sign probes, or exact for up to
    /// 64 groups: both of the study's models).
    AdaGradient,
    /// AdaPEFT with the library's default: the loss-change allocation of a short Adam run by
    /// the trapezoid rule (`ShortRun`, 15 steps at the subset rate on fresh batches).
    AdaRun,
}

impl Scorer {
    /// Every scorer, in report order.
    pub const ALL: [Scorer; 6] = [
        Scorer::Random,
        Scorer::GradientNorm,
        Scorer::Fisher,
        Scorer::AdaForward,
        Scorer::AdaGradient,
        Scorer::AdaRun,
    ];

    /// Steps of the `AdaRun` short run (5% of the full study's 300 fine-tuning steps).
    pub const RUN_STEPS: usize = 15;

    /// The method family's name.
    pub fn name(self) -> &'static str {
        match self {
            Scorer::Random => "random",
            Scorer::GradientNorm => "gradnorm",
            Scorer::Fisher => "fisher",
            Scorer::AdaForward => "adapeft-fwd",
            Scorer::AdaGradient => "adapeft-grad",
            Scorer::AdaRun => "adapeft-run",
        }
    }

    /// Whether this is AdaPEFT (Hessian-informed).
    pub fn is_adapeft(self) -> bool {
        matches!(
            self,
            Scorer::AdaForward | Scorer::AdaGradient | Scorer::AdaRun
        )
    }

    /// The adapeft configuration (per-tensor groups, the default front precision).
    pub fn config(self, seed: u64) -> AdaPeftConfig {
        let estimator: AnyEstimator = match self {
            Scorer::Random => Baseline::Random { seed }.into(),
            Scorer::GradientNorm => Baseline::GradientNorm.into(),
            Scorer::Fisher => Baseline::Fisher.into(),
            // Fine-tuning uses Adam, so the update direction `g` is Adam's (the method scores
            // the optimizer's own step, `docs/algorithm.md` section 2).
            Scorer::AdaForward => ForwardProbe {
                direction: Direction::adam(),
                ..ForwardProbe::default()
            }
            .into(),
            Scorer::AdaGradient => GradientProbe {
                probes: 16,
                seed,
                direction: Direction::adam(),
                ..Default::default()
            }
            .into(),
            Scorer::AdaRun => ShortRun {
                steps: Self::RUN_STEPS,
                learning_rate: LR_SUBSET,
                ..Default::default()
            }
            .into(),
        };
        AdaPeftConfig::new().with_estimator(estimator)
    }
}

/// A budget of a selection-based method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SelectBudget {
    /// A fraction of all parameters.
    Fraction(f64),
    /// The knee of the predicted Pareto front.
    Knee,
}

impl SelectBudget {
    /// adapeft's budget.
    pub fn budget(self) -> Budget {
        match self {
            SelectBudget::Fraction(f) => Budget::Fraction(f),
            SelectBudget::Knee => Budget::Knee,
        }
    }
}

impl fmt::Display for SelectBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectBudget::Fraction(x) => write!(f, "{}%", 100.0 * x),
            SelectBudget::Knee => f.write_str("knee"),
        }
    }
}

/// A fine-tuning method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// No fine-tuning: the pretrained model as it is (the floor).
    Frozen,
    /// Every parameter.
    Full,
    /// The head only (linear probing).
    Head,
    /// Every bias (BitFit).
    BitFit,
    /// Every LayerNorm scale and shift.
    LayerNorm,
    /// LoRA adapters on every 2-D weight.
    Lora { rank: usize },
    /// The groups a scorer picks at a budget.
    Selected {
        scorer: Scorer,
        budget: SelectBudget,
    },
}

impl Method {
    /// The method's family (one marker per family in the plots).
    pub fn family(self) -> &'static str {
        match self {
            Method::Frozen => "frozen",
            Method::Full => "full",
            Method::Head => "head",
            Method::BitFit => "bitfit",
            Method::LayerNorm => "layernorm",
            Method::Lora { .. } => "lora",
            Method::Selected { scorer, .. } => scorer.name(),
        }
    }

    /// Whether this is a fixed rule (head, BitFit, LayerNorm, LoRA): the baselines AdaPEFT has
    /// to match at a similar budget.
    pub fn is_fixed_rule(self) -> bool {
        matches!(
            self,
            Method::Head | Method::BitFit | Method::LayerNorm | Method::Lora { .. }
        )
    }

    /// The budget column of the table.
    pub fn budget_label(self) -> String {
        match self {
            Method::Lora { rank } => format!("r={rank}"),
            Method::Selected { budget, .. } => budget.to_string(),
            _ => "-".into(),
        }
    }

    /// The learning rate (see the module documentation).
    pub fn learning_rate(self) -> f64 {
        match self {
            Method::Full => LR_FULL,
            Method::Lora { .. } => LR_LORA,
            _ => LR_SUBSET,
        }
    }

    /// The trainable-parameter rule by path, for the fixed-rule methods.
    pub fn rule(self) -> Option<fn(&str) -> bool> {
        fn leaf(path: &str) -> &str {
            path.rsplit('.').next().unwrap_or(path)
        }
        Some(match self {
            Method::Frozen => |_| false,
            Method::Full => |_| true,
            Method::Head => |p| p.starts_with("head."),
            Method::BitFit => |p| matches!(leaf(p), "bias" | "beta"),
            Method::LayerNorm => |p| matches!(leaf(p), "gamma" | "beta"),
            Method::Lora { .. } | Method::Selected { .. } => return None,
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Lora { rank } => write!(f, "lora r={rank}"),
            Method::Selected { scorer, budget } => write!(f, "{} @{budget}", scorer.name()),
            m => f.write_str(m.family()),
        }
    }
}

/// `model` with exactly the parameters whose path satisfies `rule` requiring gradients.
pub fn with_trainable<M: Module>(model: M, rule: impl Fn(&str) -> bool) -> M {
    set_require_grad(model, rule)
}

/// `model` with LoRA adapters of `rank` on every 2-D weight; only the adapters train.
pub fn with_lora<M: Module>(model: M, rank: usize) -> M {
    model.apply_lora(Lora::new(rank, rank as f64))
}

/// The number of parameters that require gradients, and of all float parameters.
pub fn count_trainable<M: Module>(model: &M) -> (u64, u64) {
    let params = discover(model);
    let trainable = params
        .iter()
        .filter(|p| p.require_grad)
        .map(|p| p.numel)
        .sum();
    (trainable, params.iter().map(|p| p.numel).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Tiny {
        body: Linear,
        norm: LayerNorm,
        head: Linear,
    }

    fn tiny() -> Tiny {
        let device = Device::flex().autodiff();
        Tiny {
            body: LinearConfig::new(4, 3).init(&device),
            norm: LayerNormConfig::new(3).init(&device),
            head: LinearConfig::new(3, 2).init(&device),
        }
    }

    /// The paths each fixed rule trains, counted by hand on a 4-3-2 network with a norm.
    #[test]
    fn fixed_rules_train_exactly_their_tensors() {
        let total = 4 * 3 + 3 + 3 + 3 + 3 * 2 + 2;
        for (method, want) in [
            (Method::Frozen, 0),
            (Method::Full, total),
            (Method::Head, 3 * 2 + 2),
            (Method::BitFit, 3 + 3 + 2),
            (Method::LayerNorm, 3 + 3),
        ] {
            let rule = method.rule().expect("a fixed rule");
            let model = with_trainable(tiny(), rule);
            assert_eq!(count_trainable(&model), (want, total), "{method}");
        }
        assert!(Method::Lora { rank: 2 }.rule().is_none());
    }

    /// LoRA adapters of rank r on the two weights: r (4 + 3) + r (3 + 2) parameters train.
    #[test]
    fn lora_trains_only_its_adapters() {
        let model = with_lora(tiny(), 2);
        let (trainable, _) = count_trainable(&model);
        assert_eq!(trainable, 2 * (4 + 3) + 2 * (3 + 2));
    }
}
