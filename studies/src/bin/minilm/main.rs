//! The MiniLM study: AdaPEFT against the fine-tuning rules users know, on a real pretrained
//! transformer (sentence-transformers' all-MiniLM-L6-v2, loaded from its safetensors) and
//! real text (WordNet 3.0 definitions classified into 26 noun and 15 verb lexicographer
//! classes, vendored in `data/wordnet/`).
//!
//! Every method trains the same classifier (mean-pooled encoder and a new linear head) for
//! the same Adam steps on the same batches: linear probe, full fine-tuning, BitFit, LayerNorm
//! tuning, the last k layers, LoRA on every linear layer at ranks 4 and 8, gradient-norm and
//! Fisher selections, and AdaPEFT (the library default) at several budgets and `Knee`, with
//! LoRA choices per linear layer, and selected on a 2-layer truncation then transferred.
//!
//! ```text
//! cargo run -p adapeft-studies --bin minilm                      # the full study on the real weights (README: time)
//! cargo run -p adapeft-studies --bin minilm -- --quick           # a tiny random BERT written to disk (CI)
//! cargo run -p adapeft-studies --bin minilm -- --check [--quick] # only validate a past run's outputs
//! ```
//!
//! Outputs (in `target/adapeft/minilm-study/`, or `minilm-study-quick/`; `target/adapeft/minilm/`
//! is the weight cache): `results.csv`, `results.md`
//! (table, win/tie/loss summary, settings), `runs.csv` (every seed), `accuracy-<task>.svg`.
//! A run ends by validating them and exits non-zero if anything is wrong.

mod data;
mod methods;
mod plots;
mod report;
mod train;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use adapeft_bert::{BertClassifier, BertTokenizer};
use burn::tensor::Device;

use adapeft_studies::paths::{data_dir, target_dir};
use adapeft_studies::progress::Progress;
use data::{Batches, ModelFiles, Task};
use methods::{LR_HEAD, Method, SharedScores};

/// The study's size.
#[derive(Debug, Clone)]
pub struct StudyConfig {
    pub quick: bool,
    pub tasks: Vec<&'static str>,
    pub train_per_class: usize,
    pub test_per_class: usize,
    pub max_len: usize,
    pub batch_size: usize,
    pub steps: usize,
    pub seeds: Vec<u64>,
    /// Batches the selections score on (the default short run takes one per step).
    pub select_batches: usize,
    pub methods: Vec<Method>,
}

impl StudyConfig {
    fn methods() -> Vec<Method> {
        vec![
            Method::Probe,
            Method::Full,
            Method::BitFit,
            Method::LayerNorm,
            Method::LastLayers(1),
            Method::Lora(4),
            Method::Lora(8),
            Method::GradientNorm(0.01),
            Method::Fisher(0.01),
            Method::AdaPeft(Some(0.001)),
            Method::AdaPeft(Some(0.005)),
            Method::AdaPeft(Some(0.01)),
            Method::AdaPeft(Some(0.05)),
            Method::AdaPeft(None),
            Method::AdaPeftLora(0.01),
            Method::AdaPeftTransfer(0.01),
        ]
    }

    /// The full study on the real weights, sized to about 45 minutes on 2 cores.
    pub fn full() -> Self {
        StudyConfig {
            quick: false,
            tasks: vec!["noun", "verb"],
            train_per_class: 40,
            test_per_class: 20,
            max_len: 32,
            batch_size: 16,
            steps: 25,
            seeds: vec![1],
            select_batches: 15,
            methods: Self::methods(),
        }
    }

    /// `--quick`: a tiny random BERT, every method, a few steps.
    pub fn quick() -> Self {
        StudyConfig {
            quick: true,
            tasks: vec!["noun", "verb"],
            train_per_class: 6,
            test_per_class: 2,
            max_len: 24,
            batch_size: 8,
            steps: 8,
            seeds: vec![1],
            select_batches: 3,
            methods: Self::methods(),
        }
    }

    pub fn dir_name(&self) -> &'static str {
        // Not `minilm`: that folder is the weight cache (`minilm_cache_dir`).
        if self.quick {
            "minilm-study-quick"
        } else {
            "minilm-study"
        }
    }
}

/// One trained run (one method, task and seed).
#[derive(Debug, Clone)]
pub struct Run {
    pub task: String,
    pub method: Method,
    pub seed: u64,
    pub accuracy: f64,
    pub trainable: u64,
    pub total: u64,
    pub select_seconds: f64,
    /// Selection seconds in units of one full fine-tuning step of the same seed.
    pub select_steps: f64,
    pub train_seconds: f64,
    pub saved_bytes: u64,
    pub checkpoint_bytes: u64,
    /// What the selection trains, in words (selection methods).
    pub chosen: String,
}

const USAGE: &str = "usage: cargo run -p adapeft-studies --bin minilm -- [--quick] [--check]

  --quick   a tiny random BERT written to disk, every method, a few steps (CI; < 3 minutes)
  --check   only validate the outputs of a previous run (of the same mode)
  --steps N  train every method N steps instead of the mode's default (for timing)
  --seeds N  seeds 1..=N instead of the mode's default (outputs in <dir>-<N>seeds)
  --seed S   seed S alone (outputs in <dir>-seed<S>)";

fn main() -> ExitCode {
    let (mut quick, mut check) = (false, false);
    let mut steps = None;
    let mut seeds = None;
    let mut seed = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--check" => check = true,
            "--steps" => steps = args.next().and_then(|s| s.parse().ok()),
            "--seeds" => seeds = args.next().and_then(|s| s.parse::<u64>().ok()),
            "--seed" => seed = args.next().and_then(|s| s.parse::<u64>().ok()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let mut config = if quick {
        StudyConfig::quick()
    } else {
        StudyConfig::full()
    };
    if let Some(steps) = steps {
        config.steps = steps;
    }
    let mut dir = config.dir_name().to_string();
    if let Some(n) = seeds {
        config.seeds = (1..=n).collect();
        dir = format!("{dir}-{n}seeds");
    }
    if let Some(s) = seed {
        config.seeds = vec![s];
        dir = format!("{dir}-seed{s}");
    }
    let out = target_dir().join("adapeft").join(dir);
    if !check {
        let start = Instant::now();
        if let Err(e) = run(&config, &out) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        println!(
            "study finished in {:.1} min",
            start.elapsed().as_secs_f64() / 60.0
        );
    }
    let problems = report::validate(&out, &config);
    if problems.is_empty() {
        println!("outputs in {} are complete", out.display());
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("invalid output: {p}");
        }
        ExitCode::FAILURE
    }
}

fn run(config: &StudyConfig, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(out)?;
    let data_dir = data_dir("wordnet");
    let tasks: Vec<Task> = config
        .tasks
        .iter()
        .map(|t| Task::load(&data_dir, t, config.train_per_class, config.test_per_class))
        .collect::<Result<_, _>>()?;
    let files: ModelFiles = if config.quick {
        data::write_tiny_bert(&out.join("tiny-bert"), &tasks, 5)?
    } else {
        data::minilm_files(&target_dir())?
    };
    let checkpoint_bytes = std::fs::metadata(&files.safetensors)?.len();
    let tokenizer = BertTokenizer::from_file(&files.tokenizer, config.max_len)?;
    let device = Device::flex().autodiff();
    let progress = Progress::new();
    let mut runs = Vec::new();
    let scratch = out.join("saved");
    std::fs::create_dir_all(&scratch)?;
    for task in &tasks {
        for &seed in &config.seeds {
            let bar = progress.bar(
                (config.steps * config.methods.len()) as u64,
                &format!("{} seed {seed}", task.name),
            );
            let batches = Batches {
                task,
                tokenizer: &tokenizer,
                device: device.clone(),
                batch_size: config.batch_size,
            };
            // Every method starts from the same pretrained encoder and the same new head.
            device.seed(seed);
            let bert = data::load_bert(&files, &device)?;
            let layers = bert.layers.len();
            let base = BertClassifier::new(bert, task.classes, &device);
            let select: Vec<_> = batches
                .stream(seed + 1000)
                .take(config.select_batches)
                .collect();
            let start = Instant::now();
            let shared = SharedScores::new(&base, &select)?;
            progress.log(format!(
                "{} seed {seed}: default estimator scored {} groups in {:.1} s",
                task.name,
                shared.scored.groups().len(),
                start.elapsed().as_secs_f64()
            ));
            let mut full_step = None;
            for method in &config.methods {
                device.seed(seed + 7);
                let prepared = methods::prepare(method, base.clone(), &select, &shared, layers)?;
                let trainable: u64 = adapeft::importance::discover(&prepared.model)
                    .iter()
                    .filter(|p| p.require_grad)
                    .map(|p| p.numel)
                    .sum();
                let total = adapeft::importance::discover(&base)
                    .iter()
                    .map(|p| p.numel)
                    .sum();
                let (model, train_seconds) = train::train(
                    prepared.model,
                    batches.stream(seed),
                    config.steps,
                    method.lr(),
                    LR_HEAD,
                    &bar,
                );
                if *method == Method::Full {
                    full_step = Some(train_seconds / config.steps as f64);
                }
                let accuracy = train::accuracy(&model, task, &tokenizer, &device);
                let file = scratch.join("trained.safetensors");
                match &prepared.selection {
                    Some(s) => adapeft::save_trained(&model, s, &file)?,
                    None => adapeft::selection::save_tensors(
                        &model,
                        &prepared.trained_paths,
                        &format!("{{\"method\":\"{}\"}}", method.name()),
                        &file,
                    )?,
                }
                let saved_bytes = std::fs::metadata(&file)?.len();
                std::fs::remove_file(&file)?;
                let chosen = prepared
                    .selection
                    .as_ref()
                    .map(report::describe)
                    .unwrap_or_default();
                let run = Run {
                    task: task.name.clone(),
                    method: method.clone(),
                    seed,
                    accuracy,
                    trainable,
                    total,
                    select_seconds: prepared.select_seconds,
                    select_steps: match full_step {
                        _ if prepared.select_seconds == 0.0 => 0.0,
                        Some(s) => prepared.select_seconds / s,
                        None => f64::NAN,
                    },
                    train_seconds,
                    saved_bytes,
                    checkpoint_bytes,
                    chosen,
                };
                progress.log(format!(
                    "{:>6} seed {seed} {:<22} acc {:.3}  trainable {:>10}  select {:>6.1} s  train {:>6.1} s",
                    task.name,
                    method.name(),
                    run.accuracy,
                    run.trainable,
                    run.select_seconds,
                    run.train_seconds
                ));
                runs.push(run);
            }
            bar.finish();
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
    let test_rows: Vec<(String, usize)> = tasks
        .iter()
        .map(|t| (t.name.clone(), t.test.len()))
        .collect();
    report::write_all(out, config, &runs, &test_rows)?;
    plots::draw_all(out, config, &runs)?;
    Ok(())
}
