//! The fine-tuning methods the study compares, and how each prepares the pretrained
//! classifier: after `prepare`, exactly the parameters that should train require gradients.
//! Every method trains the new head (at [`LR_HEAD`]).
//!
//! - fixed rules: the linear probe (head only), full fine-tuning, BitFit (every bias and
//!   LayerNorm `beta`), LayerNorm tuning (every `gamma` and `beta`);
//! - LoRA through burn's `Module::apply_lora` on every linear layer of the encoder (query,
//!   key, value, attention output, feed-forward in and out: Hugging Face peft's `all-linear`,
//!   which leaves out the classifier) with `alpha = rank`, the head trained fully (peft's
//!   `modules_to_save` for a classifier);
//! - knapsack selections over the per-tensor groups, the head always trained and counted in
//!   the budget ([`AlwaysTrain`]): gradient norm and empirical Fisher, and AdaPEFT with the
//!   library's default estimator and held-out batches ([`HeldOut`], which give the selection
//!   its recommended learning rate) at several budgets and [`Budget::Auto`], with LoRA choices
//!   per linear layer, and selected on a 2-layer truncation then carried over with
//!   `transfer_to`;
//! - with `--units`, selections of units below the tensor of every encoder linear layer
//!   (issue 21), the head always trained and counted: AdaPEFT over 24 x 24 blocks and over
//!   input rows, and the published baselines over units, at equal budgets: SMT (blocks by
//!   mean absolute gradient after a warm-up of full fine-tuning on the scored batches,
//!   arXiv 2405.15525; the warm-up only scores, the blocks train from the pretrained model),
//!   GPS-like rows (empirical Fisher, arXiv 2312.10136) and random output neurons (S2FT's
//!   default, arXiv 2412.06289); plus LoRA r = 1 and 2. Units train through `Masked`, which
//!   keeps every other entry of a partly trained tensor bit-identical (`train.rs`).

use adapeft::importance::{Unit, UnitRules, set_require_grad};
use adapeft::{AdaPeftConfig, AlwaysTrain, Baseline, Budget, HeldOut, LoraChoices, Selection};
use adapeft_bert::{BertClassifier, TextBatch};
use burn::module::{Lora, Module, ParamGroup};

/// Adam learning rate of the new head, in every method (it starts from random weights).
pub const LR_HEAD: f64 = 1e-2;
/// Every linear layer of the encoder (peft's `all-linear`).
pub const LINEAR_WEIGHTS: &str = r"^bert\.layers\.[0-9]+\.(attention\.(query|key|value|output)|ffn\.(intermediate|output))\.weight$";
/// The same layers as modules (what `UnitRules` match).
pub const LINEAR_MODULES: &str =
    r"^bert\.layers\.[0-9]+\.(attention\.(query|key|value|output)|ffn\.(intermediate|output))$";
/// Side of the square blocks (SMT's 256 on 4,096-wide matrices is 1/16 of a side; 24 is
/// 1/16 of MiniLM's 384).
pub const BLOCK: usize = 24;
/// Full fine-tuning rate of SMT's warm-up (the middle of the study's full fine-tuning grid).
pub const LR_WARMUP: f64 = 3e-5;

/// A method of the study.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    Probe,
    Full,
    BitFit,
    LayerNorm,
    Lora(usize),
    GradientNorm(f64),
    Fisher(f64),
    /// AdaPEFT at a fraction of the parameters.
    AdaPeft(f64),
    /// AdaPEFT at `Budget::Auto` (the size chosen on held-out batches).
    AdaPeftAuto,
    /// AdaPEFT with LoRA ranks 4 and 8 offered per linear layer.
    AdaPeftLora(f64),
    /// AdaPEFT selected on the first two layers, transferred to the whole encoder.
    AdaPeftTransfer(f64),
    /// AdaPEFT over [`BLOCK`]-square blocks of every encoder linear layer (`--units`).
    AdaPeftBlocks(f64),
    /// AdaPEFT over the input rows of every encoder linear layer (`--units`).
    AdaPeftRows(f64),
    /// SMT: blocks by mean absolute gradient after a warm-up (`--units`).
    SmtBlocks(f64),
    /// GPS-like: input rows by empirical Fisher (`--units`).
    GpsRows(f64),
    /// S2FT's default: random output neurons (`--units`).
    RandomNeurons(f64),
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
            Method::Lora(r) => format!("LoRA r={r}"),
            Method::GradientNorm(f) => format!("gradient norm {}", pct(f)),
            Method::Fisher(f) => format!("Fisher {}", pct(f)),
            Method::AdaPeft(f) => format!("AdaPEFT {}", pct(f)),
            Method::AdaPeftAuto => "AdaPEFT Auto".into(),
            Method::AdaPeftLora(f) => format!("AdaPEFT+LoRA {}", pct(f)),
            Method::AdaPeftTransfer(f) => format!("AdaPEFT 2->6 {}", pct(f)),
            Method::AdaPeftBlocks(f) => format!("AdaPEFT blocks {}", pct(f)),
            Method::AdaPeftRows(f) => format!("AdaPEFT rows {}", pct(f)),
            Method::SmtBlocks(f) => format!("SMT blocks {}", pct(f)),
            Method::GpsRows(f) => format!("GPS rows {}", pct(f)),
            Method::RandomNeurons(f) => format!("random neurons {}", pct(f)),
        }
    }

    /// The method's family (plots and the summary).
    pub fn family(&self) -> &'static str {
        match self {
            Method::Probe => "probe",
            Method::Full => "full",
            Method::BitFit | Method::LayerNorm => "rule",
            Method::Lora(_) => "lora",
            Method::GradientNorm(_)
            | Method::Fisher(_)
            | Method::SmtBlocks(_)
            | Method::GpsRows(_)
            | Method::RandomNeurons(_) => "baseline",
            Method::AdaPeft(_)
            | Method::AdaPeftAuto
            | Method::AdaPeftLora(_)
            | Method::AdaPeftTransfer(_)
            | Method::AdaPeftBlocks(_)
            | Method::AdaPeftRows(_) => "adapeft",
        }
    }

    /// Whether the method's selection recommends its own learning rate (AdaPEFT with
    /// held-out batches): such a method is also trained at that rate.
    pub fn recommends_rate(&self) -> bool {
        self.family() == "adapeft"
    }

    /// The budget fraction the method is held to, if any (checked on the outputs).
    pub fn fraction(&self) -> Option<f64> {
        match self {
            Method::GradientNorm(f)
            | Method::Fisher(f)
            | Method::AdaPeft(f)
            | Method::AdaPeftLora(f)
            | Method::AdaPeftBlocks(f)
            | Method::AdaPeftRows(f)
            | Method::SmtBlocks(f)
            | Method::GpsRows(f)
            | Method::RandomNeurons(f) => Some(*f),
            _ => None,
        }
    }

    /// How the method cuts the encoder's linear layers, if it selects units below the tensor.
    pub fn units(&self) -> Option<UnitRules> {
        let unit = match self {
            Method::AdaPeftBlocks(_) | Method::SmtBlocks(_) => Unit::Blocks {
                rows: BLOCK,
                cols: BLOCK,
            },
            Method::AdaPeftRows(_) | Method::GpsRows(_) => Unit::Inputs,
            Method::RandomNeurons(_) => Unit::Outputs,
            _ => return None,
        };
        Some(
            UnitRules::new()
                .with(LINEAR_MODULES, unit)
                .expect("a valid pattern"),
        )
    }
}

/// The new head, trained by every selection at [`LR_HEAD`] and counted in its budget.
fn head() -> AlwaysTrain {
    AlwaysTrain::module("head").with_learning_rate(LR_HEAD)
}

/// The AdaPEFT configuration of the study: the library default with the head always trained
/// at [`LR_HEAD`] and the last `held_out` of the selection batches held out.
pub fn adapeft_config(held_out: &HeldOut) -> AdaPeftConfig {
    AdaPeftConfig::new()
        .with_always(head())
        .with_held_out(held_out.clone())
}

/// A model ready to train, with what was trained and how it was chosen.
pub struct Prepared {
    pub model: BertClassifier,
    /// The selection, for the selection methods.
    pub selection: Option<Selection>,
    /// Paths of the trained tensors (what `save_trained` / `save_tensors` writes).
    pub trained_paths: Vec<String>,
    /// Seconds spent choosing (0 for fixed rules), held-out trials included.
    pub select_seconds: f64,
}

impl Prepared {
    /// The encoder rate the selection recommends (AdaPEFT with held-out batches, by the
    /// library's default rule, `RateRule::StepBelow`), if it recommends one.
    pub fn recommended_rate(&self) -> Option<f64> {
        self.selection
            .as_ref()
            .and_then(Selection::recommended_learning_rate)
    }

    /// The rate the older rule, `RateRule::LowestLoss`, recommends from the same trials
    /// (the rate of the study's `recommended_rate` column), if the selection recommends one.
    pub fn lowest_loss_rate(&self) -> Option<f64> {
        let validation = self.selection.as_ref()?.validation()?;
        self.recommended_rate()?;
        let trials = adapeft::importance::Trials {
            trials: validation.trials.clone(),
            cost: validation.cost,
        };
        adapeft::RateRule::LowestLoss
            .pick(&trials)
            .map(|t| t.learning_rate)
    }
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

/// Prepares `model` for `method`. `batches` are the selection batches; AdaPEFT holds out the
/// last `held_out.batches` of them, the baselines score on the others.
pub fn prepare(
    method: &Method,
    model: BertClassifier,
    batches: &[TextBatch],
    held_out: &HeldOut,
    seed: u64,
) -> Result<Prepared, adapeft::AdaPeftError> {
    let start = std::time::Instant::now();
    let seconds = |start: std::time::Instant| start.elapsed().as_secs_f64();
    let config = adapeft_config(held_out);
    let linear = || ParamGroup::from_regex(LINEAR_WEIGHTS).expect("a valid pattern");
    Ok(match method {
        Method::Probe => rule(model, |_| false),
        Method::Full => rule(model, |_| true),
        Method::BitFit => rule(model, |p| p.ends_with(".bias") || p.ends_with(".beta")),
        Method::LayerNorm => rule(model, |p| p.contains("norm.")),
        Method::Lora(rank) => {
            let model = model.apply_lora(Lora::new(*rank, *rank as f64).set_param_group(linear()));
            rule(model, |p| p.contains(".lora."))
        }
        Method::GradientNorm(f) | Method::Fisher(f) => {
            let baseline = if matches!(method, Method::Fisher(_)) {
                Baseline::Fisher
            } else {
                Baseline::GradientNorm
            };
            let scored = &batches[..batches.len() - held_out.batches];
            let selection = AdaPeftConfig::new()
                .with_estimator(baseline)
                .with_always(head())
                .select(&model, scored, Budget::Fraction(*f))?;
            selected(model, selection, seconds(start))
        }
        Method::AdaPeft(f) => {
            let selection = config.select(&model, batches, Budget::Fraction(*f))?;
            selected(model, selection, seconds(start))
        }
        Method::AdaPeftAuto => {
            let selection = config.select(&model, batches, Budget::Auto)?;
            selected(model, selection, seconds(start))
        }
        Method::AdaPeftLora(f) => {
            let selection = config
                .with_lora_choices(LoraChoices::new(&[4, 8]).with_targets(linear()))
                .select(&model, batches, Budget::Fraction(*f))?;
            selected(model, selection, seconds(start))
        }
        Method::AdaPeftTransfer(f) => {
            let shallow = BertClassifier {
                bert: model.bert.clone().truncated(2),
                head: model.head.clone(),
            };
            let selection = config.select(&shallow, batches, Budget::Fraction(*f))?;
            let selection = selection.transfer_to(&model)?;
            selected(model, selection, seconds(start))
        }
        Method::AdaPeftBlocks(f) | Method::AdaPeftRows(f) => {
            let rules = method.units().expect("a method over units");
            let selection =
                config
                    .with_units(rules)
                    .select(&model, batches, Budget::Fraction(*f))?;
            selected(model, selection, seconds(start))
        }
        Method::SmtBlocks(f) | Method::GpsRows(f) | Method::RandomNeurons(f) => {
            let rules = method.units().expect("a method over units");
            let scored = &batches[..batches.len() - held_out.batches];
            let (estimator, scored_model) = match method {
                // SMT scores the model after a short full fine-tuning (one pass over the
                // scored batches); the chosen blocks then train from the pretrained model.
                Method::SmtBlocks(_) => {
                    let warm = crate::train::train(
                        model.clone(),
                        scored.iter().cloned(),
                        scored.len(),
                        LR_WARMUP,
                        LR_HEAD,
                        &indicatif::ProgressBar::hidden(),
                        None,
                    );
                    (Baseline::MeanAbsGradient, warm.0)
                }
                Method::GpsRows(_) => (Baseline::Fisher, model.clone()),
                _ => (Baseline::Random { seed }, model.clone()),
            };
            let selection = AdaPeftConfig::new()
                .with_estimator(estimator)
                .with_always(head())
                .with_units(rules)
                .select(&scored_model, scored, Budget::Fraction(*f))?;
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
        for method in [
            Method::Probe,
            Method::Lora(4),
            Method::Lora(8),
            Method::BitFit,
            Method::LayerNorm,
        ] {
            let p = prepare(&method, model.clone(), &[], &HeldOut::last(1), 0).unwrap();
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
        let task = Task::load(&data_dir("wordnet"), "verb", 2, 0.0, 1).unwrap();
        let files = data::write_tiny_bert(dir.path(), std::slice::from_ref(&task), 3).unwrap();
        let device = Device::flex().autodiff();
        let bert = data::load_bert(&files, &device).unwrap();
        check_counts(&BertClassifier::new(bert, task.classes, &device), 32, 64);
    }

    /// The verb task at 4 rows per class, a tiny BERT written for it under `dir`, its
    /// tokenizer and a classifier on it (seeded), on the flex autodiff device.
    fn tiny(dir: &std::path::Path) -> (Task, BertTokenizer, BertClassifier) {
        let task = Task::load(&data_dir("wordnet"), "verb", 4, 0.0, 1).unwrap();
        let files = data::write_tiny_bert(dir, std::slice::from_ref(&task), 3).unwrap();
        let tokenizer = BertTokenizer::from_file(&files.tokenizer, 24).unwrap();
        let device = Device::flex().autodiff();
        device.seed(3);
        let bert = data::load_bert(&files, &device).unwrap();
        let model = BertClassifier::new(bert, task.classes, &device);
        (task, tokenizer, model)
    }

    #[test]
    fn every_selection_trains_the_new_head_within_its_budget_and_adapeft_recommends_a_rate() {
        let dir = adapeft_testing::temp_dir("minilm-selections");
        let (task, tokenizer, model) = tiny(dir.path());
        let batches = Batches {
            task: &task,
            tokenizer: &tokenizer,
            device: Device::flex().autodiff(),
            batch_size: 8,
        };
        let select: Vec<_> = batches.stream(5).take(4).collect();
        let held_out = HeldOut::last(1)
            .with_rates(&[1e-3, 1e-2])
            .with_steps(2)
            .with_auto_fractions(&[0.05, 0.2]);
        let total: u64 = adapeft::importance::discover(&model)
            .iter()
            .map(|p| p.numel)
            .sum();
        for method in [
            Method::GradientNorm(0.05),
            Method::Fisher(0.05),
            Method::AdaPeft(0.05),
            Method::AdaPeftAuto,
            Method::AdaPeftLora(0.1),
            Method::AdaPeftTransfer(0.1),
        ] {
            let p = prepare(&method, model.clone(), &select, &held_out, 3).unwrap();
            let trains: Vec<_> = adapeft::importance::discover(&p.model)
                .into_iter()
                .filter(|p| p.require_grad)
                .collect();
            for head in ["head.weight", "head.bias"] {
                assert!(
                    trains.iter().any(|p| p.path == head),
                    "{}: {head} does not train",
                    method.name()
                );
            }
            let selection = p.selection.as_ref().unwrap();
            assert!(selection.always_params() > 0, "{}", method.name());
            if let Some(f) = method.fraction() {
                let trainable: u64 = trains.iter().map(|p| p.numel).sum();
                // The transfer's size is the deep model's, not held to the fraction.
                assert!(
                    trainable as f64 <= f * total as f64,
                    "{}: {trainable} of {total}",
                    method.name()
                );
            }
            // AdaPEFT's held-out trials ran: each rate, or one run when only the head (at
            // its own rate) trains, which recommends no rate. The baselines have none.
            let trials = selection.validation().map_or(0, |v| v.trials.len());
            if method.recommends_rate() {
                let head_only = selection.chosen().all(|g| g.always);
                assert_eq!(trials, if head_only { 1 } else { 2 }, "{}", method.name());
                if head_only {
                    assert!(p.recommended_rate().is_none(), "{}", method.name());
                }
            } else {
                assert_eq!(trials, 0, "{}", method.name());
                assert!(p.recommended_rate().is_none());
            }
        }
    }

    /// `--units`: every selection of units trains the new head and cells of the encoder's
    /// linear layers within its budget, and the study's training moves exactly the chosen
    /// cells of a partly trained tensor: every other entry stays bit-identical (checked on
    /// the raw bytes against the cells' rectangles), and the chosen ones move.
    #[test]
    fn unit_selections_train_the_head_and_exactly_their_cells_within_the_budget() {
        let dir = adapeft_testing::temp_dir("minilm-units");
        let (task, tokenizer, model) = tiny(dir.path());
        let batches = Batches {
            task: &task,
            tokenizer: &tokenizer,
            device: Device::flex().autodiff(),
            batch_size: 8,
        };
        let select: Vec<_> = batches.stream(5).take(4).collect();
        let held_out = HeldOut::last(1).with_rates(&[1e-2]).with_steps(2);
        let total: u64 = adapeft::importance::discover(&model)
            .iter()
            .map(|p| p.numel)
            .sum();
        let before = adapeft_testing::snapshot(&model);
        for method in [
            Method::AdaPeftBlocks(0.1),
            Method::AdaPeftRows(0.1),
            Method::SmtBlocks(0.1),
            Method::GpsRows(0.1),
            Method::RandomNeurons(0.1),
        ] {
            let name = method.name();
            let p = prepare(&method, model.clone(), &select, &held_out, 3).unwrap();
            let selection = p.selection.as_ref().unwrap();
            assert!(
                selection.trainable_params() as f64 <= 0.1 * total as f64,
                "{name}"
            );
            let paths = selection.chosen_paths();
            for head in ["head.weight", "head.bias"] {
                assert!(
                    paths.iter().any(|p| p == head),
                    "{name}: {head} does not train"
                );
            }
            let partial = selection.partial();
            assert!(!partial.is_empty(), "{name}: no unit chosen");
            let (trained, _) = crate::train::train(
                p.model.clone(),
                batches.stream(1),
                2,
                1e-2,
                LR_HEAD,
                &indicatif::ProgressBar::hidden(),
                Some(selection),
            );
            let after = adapeft_testing::snapshot(&trained);
            let mut moved = 0;
            for ((path, old, _), (_, new, _)) in before.iter().zip(&after) {
                let Some(cells) = partial.get(path) else {
                    continue;
                };
                let tiling = selection.tilings()[path];
                let mut inside = vec![false; tiling.rows * tiling.cols];
                for &cell in cells {
                    let (rows, cols) = tiling.cell_rect(cell as usize);
                    for r in rows {
                        for c in cols.clone() {
                            inside[r * tiling.cols + c] = true;
                        }
                    }
                }
                for (i, (a, b)) in old.chunks(4).zip(new.chunks(4)).enumerate() {
                    if inside[i] {
                        moved += usize::from(a != b);
                    } else {
                        assert_eq!(a, b, "{name}: {path} entry {i} is outside the chosen cells");
                    }
                }
            }
            assert!(moved > 0, "{name}: no chosen entry moved");
        }
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
        let task = Task::load(&data_dir("wordnet"), "noun", 1, 0.0, 1).unwrap();
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
