//! The fine-tuning methods the study compares, and how each prepares the pretrained
//! classifier: after `prepare`, exactly the parameters that should train require gradients.
//!
//! - fixed rules: the linear probe (head only), full fine-tuning, BitFit (every bias and
//!   LayerNorm `beta`), LayerNorm tuning (every `gamma` and `beta`), the last `k` encoder
//!   layers; each also trains the new head;
//! - LoRA through burn's `Module::apply_lora` on every linear layer of the encoder (query,
//!   key, value, attention output, feed-forward in and out: Hugging Face peft's `all-linear`,
//!   which leaves out the classifier) with `alpha = rank`, the head trained fully (peft's
//!   `modules_to_save` for a classifier);
//! - knapsack selections over the per-tensor groups (the head is one group among the others,
//!   it is *not* forced): gradient norm and empirical Fisher, and AdaPEFT with the library's
//!   default estimator (`AdaPeftConfig::new()`, whatever it is; its short run at the study's
//!   subset learning rate) at several budgets and `Knee` (the knee of the predicted front), with and without LoRA choices per
//!   linear layer, and selected on a 2-layer truncation then carried over with `transfer_to`.

use adapeft::importance::set_require_grad;
use adapeft::{AdaPeftConfig, AnyEstimator, Baseline, Budget, LoraChoices, Selection};
use adapeft_bert::{BertClassifier, TextBatch};
use burn::module::{Lora, Module, ParamGroup};

/// Adam learning rate of the new head, whenever it trains (it starts from random weights).
pub const LR_HEAD: f64 = 1e-2;
/// Adam learning rate of the encoder in full fine-tuning.
pub const LR_FULL: f64 = 1e-4;
/// Adam learning rate of every other method's encoder parameters (subsets and adapters), and
/// of AdaPEFT's short run.
pub const LR_SUBSET: f64 = 1e-3;
/// Every linear layer of the encoder (peft's `all-linear`).
pub const LINEAR_WEIGHTS: &str = r"^bert\.layers\.[0-9]+\.(attention\.(query|key|value|output)|ffn\.(intermediate|output))\.weight$";

/// A method of the study.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    Probe,
    Full,
    BitFit,
    LayerNorm,
    LastLayers(usize),
    Lora(usize),
    GradientNorm(f64),
    Fisher(f64),
    /// AdaPEFT at a fraction of the parameters, `None` for `Budget::Knee` (the knee of the predicted front).
    AdaPeft(Option<f64>),
    /// AdaPEFT with LoRA ranks 4 and 8 offered per linear layer.
    AdaPeftLora(f64),
    /// AdaPEFT selected on the first two layers, transferred to the whole encoder.
    AdaPeftTransfer(f64),
}

impl Method {
    /// The row label.
    pub fn name(&self) -> String {
        let pct = |f: &f64| format!("{}%", f * 100.0);
        match self {
            Method::Probe => "linear probe".into(),
            Method::Full => "full fine-tuning".into(),
            Method::BitFit => "BitFit".into(),
            Method::LayerNorm => "LayerNorm".into(),
            Method::LastLayers(k) => format!("last {k} layers"),
            Method::Lora(r) => format!("LoRA r={r}"),
            Method::GradientNorm(f) => format!("gradient norm {}", pct(f)),
            Method::Fisher(f) => format!("Fisher {}", pct(f)),
            Method::AdaPeft(Some(f)) => format!("AdaPEFT {}", pct(f)),
            Method::AdaPeft(None) => "AdaPEFT Knee".into(),
            Method::AdaPeftLora(f) => format!("AdaPEFT+LoRA {}", pct(f)),
            Method::AdaPeftTransfer(f) => format!("AdaPEFT 2->6 {}", pct(f)),
        }
    }

    /// The method's family (plots and the summary).
    pub fn family(&self) -> &'static str {
        match self {
            Method::Probe => "probe",
            Method::Full => "full",
            Method::BitFit | Method::LayerNorm | Method::LastLayers(_) => "rule",
            Method::Lora(_) => "lora",
            Method::GradientNorm(_) | Method::Fisher(_) => "baseline",
            Method::AdaPeft(_) | Method::AdaPeftLora(_) | Method::AdaPeftTransfer(_) => "adapeft",
        }
    }

    /// The encoder's learning rate.
    pub fn lr(&self) -> f64 {
        if *self == Method::Full {
            LR_FULL
        } else {
            LR_SUBSET
        }
    }

    /// Whether this method selects with the library default's scores (shared per seed).
    pub fn uses_default_scores(&self) -> bool {
        matches!(self, Method::AdaPeft(_))
    }
}

/// The library's default configuration, with the short run (if the default is one) at the
/// study's learning rate.
pub fn adapeft_config() -> AdaPeftConfig {
    let mut config = AdaPeftConfig::new();
    if let AnyEstimator::ShortRun(run) = config.estimator.clone() {
        config.estimator = run.with_learning_rate(LR_SUBSET).into();
    }
    config
}

/// A model ready to train, with what was trained and how it was chosen.
pub struct Prepared {
    pub model: BertClassifier,
    /// The selection, for the selection methods.
    pub selection: Option<Selection>,
    /// Paths of the trained tensors (what `save_trained` / `save_tensors` writes).
    pub trained_paths: Vec<String>,
    /// Seconds spent choosing (0 for fixed rules).
    pub select_seconds: f64,
}

fn rule(model: BertClassifier, trains: impl Fn(&str) -> bool) -> Prepared {
    let model = set_require_grad(model, |p| p.starts_with("head.") || trains(p));
    let trained_paths = adapeft::importance::discover(&model)
        .into_iter()
        .filter(|p| p.require_grad)
        .map(|p| p.path)
        .collect();
    Prepared {
        model,
        selection: None,
        trained_paths,
        select_seconds: 0.0,
    }
}

fn selected(model: BertClassifier, selection: Selection, seconds: f64) -> Prepared {
    let model = selection.apply(model);
    Prepared {
        trained_paths: selection.chosen_paths(),
        model,
        selection: Some(selection),
        select_seconds: seconds,
    }
}

/// Scores of the default estimator, computed once per seed and shared by the AdaPEFT budgets.
pub struct SharedScores {
    pub scored: adapeft::Scored,
}

impl SharedScores {
    pub fn new(
        model: &BertClassifier,
        batches: &[TextBatch],
    ) -> Result<Self, adapeft::AdaPeftError> {
        Ok(SharedScores {
            scored: adapeft_config().score(model, batches)?,
        })
    }
}

/// Prepares `model` for `method`; `batches` are the selection batches, `shared` the default
/// estimator's scores (for `Method::AdaPeft`).
pub fn prepare(
    method: &Method,
    model: BertClassifier,
    batches: &[TextBatch],
    shared: &SharedScores,
    layers: usize,
) -> Result<Prepared, adapeft::AdaPeftError> {
    let start = std::time::Instant::now();
    let seconds = |start: std::time::Instant| start.elapsed().as_secs_f64();
    Ok(match method {
        Method::Probe => rule(model, |_| false),
        Method::Full => rule(model, |_| true),
        Method::BitFit => rule(model, |p| p.ends_with(".bias") || p.ends_with(".beta")),
        Method::LayerNorm => rule(model, |p| p.contains("norm.")),
        Method::LastLayers(k) => {
            let first = layers.saturating_sub(*k);
            rule(model, move |p| {
                p.strip_prefix("bert.layers.")
                    .and_then(|rest| rest.split('.').next())
                    .and_then(|i| i.parse::<usize>().ok())
                    .is_some_and(|i| i >= first)
            })
        }
        Method::Lora(rank) => {
            let targets = ParamGroup::from_regex(LINEAR_WEIGHTS).expect("a valid pattern");
            let model = model.apply_lora(Lora::new(*rank, *rank as f64).set_param_group(targets));
            rule(model, |p| p.contains(".lora."))
        }
        Method::GradientNorm(f) | Method::Fisher(f) => {
            let baseline = if matches!(method, Method::Fisher(_)) {
                Baseline::Fisher
            } else {
                Baseline::GradientNorm
            };
            let selection = AdaPeftConfig::new().with_estimator(baseline).select(
                &model,
                batches,
                Budget::Fraction(*f),
            )?;
            selected(model, selection, seconds(start))
        }
        Method::AdaPeft(f) => {
            let budget = f.map_or(Budget::Knee, Budget::Fraction);
            let selection = adapeft_config().select_scored(&shared.scored, budget)?;
            // The estimate is shared by every budget: each row reports its whole cost.
            selected(model, selection, shared.scored.scores().cost.seconds)
        }
        Method::AdaPeftLora(f) => {
            let targets = ParamGroup::from_regex(LINEAR_WEIGHTS).expect("a valid pattern");
            let selection = adapeft_config()
                .with_lora_choices(LoraChoices::new(&[4, 8]).with_targets(targets))
                .select(&model, batches, Budget::Fraction(*f))?;
            selected(model, selection, seconds(start))
        }
        Method::AdaPeftTransfer(f) => {
            let shallow = BertClassifier {
                bert: model.bert.clone().truncated(2),
                head: model.head.clone(),
            };
            let selection = adapeft_config().select(&shallow, batches, Budget::Fraction(*f))?;
            let selection = selection.transfer_to(&model)?;
            selected(model, selection, seconds(start))
        }
    })
}

#[cfg(test)]
mod tests {
    use adapeft_bert::{BertTokenizer, MINILM, WeightCache, minilm_cache_dir};
    use adapeft_studies::paths::{data_dir, target_dir};
    use burn::tensor::Device;

    use super::*;
    use crate::data::{self, Batches, Task};

    /// Trainable parameters of `method` on `model`, computed from the shapes alone: `hidden`
    /// width, `inter` feed-forward width, `layers` layers, `classes` head outputs.
    fn expected(method: &Method, hidden: u64, inter: u64, layers: u64, classes: u64) -> u64 {
        let head = hidden * classes + classes;
        match method {
            Method::Probe => head,
            // Per layer: four hidden x hidden projections and the two feed-forward matrices.
            Method::Lora(r) => {
                let r = *r as u64;
                layers * r * (4 * 2 * hidden + 2 * (hidden + inter)) + head
            }
            // Per layer: 4 attention biases + 2 norms (beta) + the ffn biases; the embeddings'
            // norm beta.
            Method::BitFit => layers * (4 * hidden + inter + hidden + 2 * hidden) + hidden + head,
            Method::LayerNorm => layers * 4 * hidden + 2 * hidden + head,
            _ => unreachable!(),
        }
    }

    fn check_counts(model: &BertClassifier, hidden: u64, inter: u64) {
        let layers = model.bert.layers.len() as u64;
        let classes = model.classes() as u64;
        let groups = adapeft_config()
            .grouping
            .group(adapeft::importance::discover(model))
            .unwrap();
        let scores = adapeft::importance::Scores {
            estimator: String::new(),
            groups: groups
                .groups()
                .iter()
                .map(|g| adapeft::importance::GroupScore {
                    name: g.name.clone(),
                    params: g.numel,
                    b: 0.0,
                    a: 0.0,
                    value: 0.0,
                    unreliable: None,
                    quality: adapeft::importance::Quality::Exact,
                })
                .collect(),
            cost: Default::default(),
            loss: None,
            curvature: None,
        };
        let shared = SharedScores {
            scored: adapeft::Scored::new(groups, scores, 0).unwrap(),
        };
        for method in [
            Method::Probe,
            Method::Lora(4),
            Method::Lora(8),
            Method::BitFit,
            Method::LayerNorm,
        ] {
            let p = prepare(&method, model.clone(), &[], &shared, layers as usize).unwrap();
            let trainable: u64 = adapeft::importance::discover(&p.model)
                .iter()
                .filter(|p| p.require_grad)
                .map(|p| p.numel)
                .sum();
            assert_eq!(
                trainable,
                expected(&method, hidden, inter, layers, classes),
                "{}",
                method.name()
            );
        }
    }

    #[test]
    fn fixed_rules_and_lora_train_exactly_their_parameters_on_the_tiny_bert() {
        let dir = adapeft_testing::temp_dir("minilm-methods");
        let task = Task::load(&data_dir("wordnet"), "verb", 2, 1).unwrap();
        let files = data::write_tiny_bert(dir.path(), std::slice::from_ref(&task), 3).unwrap();
        let device = Device::flex().autodiff();
        let bert = data::load_bert(&files, &device).unwrap();
        check_counts(&BertClassifier::new(bert, task.classes, &device), 32, 64);
    }

    #[test]
    fn every_method_prepares_on_the_real_minilm_when_its_weights_are_cached() {
        let target = target_dir();
        let Ok(files) = WeightCache::new(minilm_cache_dir(&target)).find(&MINILM) else {
            // CI fetches the weights before the tests (`.ci/run`): there this must run.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set, but all-MiniLM-L6-v2 is not cached under {}",
                target.display()
            );
            eprintln!(
                "skipped: all-MiniLM-L6-v2 is not cached under {}",
                target.display()
            );
            return;
        };
        let files = data::ModelFiles {
            config: files.config(),
            safetensors: files.safetensors(),
            tokenizer: files.tokenizer(),
        };
        let device = Device::flex().autodiff();
        let bert = data::load_bert(&files, &device).unwrap();
        let model = BertClassifier::new(bert, 26, &device);
        check_counts(&model, 384, 1536);
        // The study's loss on real definitions is finite and near ln(26) for the new head.
        let task = Task::load(&data_dir("wordnet"), "noun", 1, 1).unwrap();
        let tokenizer = BertTokenizer::from_file(&files.tokenizer, 32).unwrap();
        let batches = Batches {
            task: &task,
            tokenizer: &tokenizer,
            device: device.clone(),
            batch_size: 8,
        };
        let batch = batches.stream(1).next().unwrap();
        let loss: f32 = adapeft::Objective::loss(&model, &batch).into_scalar();
        assert!((loss - 26f32.ln()).abs() < 1.0, "loss {loss}");
    }
}
