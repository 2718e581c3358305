//! The MiniLM study: AdaPEFT against the fine-tuning rules users know, on a real pretrained
//! transformer (sentence-transformers' all-MiniLM-L6-v2, loaded from its safetensors) and
//! real text (WordNet 3.0 definitions classified into 26 noun and 15 verb lexicographer
//! classes, vendored in `data/wordnet/`), measured the way the field measures PEFT.
//!
//! - **Splits**: every training row of the file (up to 80 per class), of which the last 20%
//!   of each class are the validation split; the file's 20 test rows per class are only
//!   used for the final numbers.
//! - **Training**: every method trains the same classifier (mean-pooled encoder and a new
//!   linear head, always trained, at `1e-2`) with Adam for two epochs of batches of 16 in the
//!   same order.
//! - **Rates**: each method's encoder rate is the best on validation (first seed) of a grid:
//!   full fine-tuning `{1e-5, 3e-5, 1e-4}`, every other method `{3e-4, 1e-3, 3e-3}`. AdaPEFT
//!   is also trained at the rate its own selection recommends (held-out batches of the
//!   training split), each seed at its own: by the library's default rule (a step below the
//!   trials' best) and by the older one (the trials' best), the "(own rate)" and "(own rate,
//!   lowest loss)" rows.
//! - **Seeds**: three (the head's initial weights, the batch order, the selection batches);
//!   means with 95% Student-t intervals, and wins or losses only where the 95% interval of
//!   the paired (same seed) difference excludes zero.
//! - **Methods**: linear probe, full fine-tuning, BitFit, LayerNorm, LoRA r = 4 and 8 (every
//!   linear layer), gradient norm, Fisher and AdaPEFT at 0.1%, 0.5%, 1% and 5%, AdaPEFT
//!   `Auto`, AdaPEFT with LoRA choices at 1%, and AdaPEFT selected on 2 layers and
//!   transferred to 6 at 1% (see `methods.rs`); with `--units` also LoRA r = 1 and 2 and, at
//!   0.1% and 1%, selections of units below the tensor: AdaPEFT over blocks and rows, SMT's
//!   blocks, GPS-like rows and random neurons (issue 21).
//! - **Costs** per run: seconds per training step, the peak resident memory of training, the
//!   selection's seconds, the saved adapter's size.
//!
//! Every finished training run is appended to `runs-<task>.csv` at once (its
//! `recommended_rate` is the older rule's; the default rule's rate of each selection goes to
//! `recommended-<task>.csv` when the selection is made), and a run of the
//! study skips the runs already there: stopped, it resumes where it was (`--fresh` starts
//! over). `--task noun` (or `verb`) runs one task, so that two processes can share the work, and
//! `--methods` some of the methods (a partial run: its outputs are not validated).
//!
//! ```text
//! cargo run -p adapeft-studies --bin minilm                      # the full study on the real weights (hours; docs/minilm/)
//! cargo run -p adapeft-studies --bin minilm -- --quick           # a tiny random BERT written to disk (CI)
//! cargo run -p adapeft-studies --bin minilm -- --check [--quick] # only validate a past run's outputs
//! cargo run -p adapeft-studies --bin minilm -- --units           # then units below the tensor and LoRA r = 1, 2 (issue 21)
//! cargo run -p adapeft-studies --bin minilm -- --report [--units] # the report of the runs so far, training nothing
//! cargo run -p adapeft-studies --bin minilm -- --units --task verb --adapter-sizes  # each selection's adapter file size
//! ```
//!
//! Outputs (in `target/adapeft/minilm-study/`, or `minilm-study-quick/`; `target/adapeft/minilm/`
//! is the weight cache): `runs-<task>.csv` (every training run), `results.csv` and
//! `results.md` (per method at its chosen rate: test accuracy with its interval, the costs;
//! the wins, ties and losses; the targets), `tuning.csv` (validation accuracy per rate) and
//! `accuracy-<task>.svg` (test accuracy against trainable parameters). A run ends by
//! validating them and exits non-zero if anything is wrong.

mod data;
mod methods;
mod plots;
mod report;
mod runs;
mod train;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use adapeft::HeldOut;
use adapeft_bert::{BertClassifier, BertTokenizer, TextBatch};
use burn::tensor::Device;

use adapeft_studies::memory;
use adapeft_studies::paths::{data_dir, target_dir};
use adapeft_studies::progress::Progress;
use data::{Batches, ModelFiles, Task};
use methods::{LR_HEAD, Method};
use runs::{Run, RunLog};

/// The study's size and protocol.
#[derive(Debug, Clone)]
pub struct StudyConfig {
    pub quick: bool,
    /// The study's tasks.
    pub tasks: Vec<&'static str>,
    /// The one task this process trains (`--task`; `None`: all of them). The report always
    /// covers every task with runs.
    pub only_task: Option<&'static str>,
    /// The methods this process trains, by name (`--methods`; `None`: all of them). The
    /// report always covers every method with runs.
    pub only_methods: Option<Vec<String>>,
    /// Training rows kept per class, validation included.
    pub train_per_class: usize,
    /// The share of each class's training rows held out as the validation split.
    pub validation_fraction: f64,
    pub test_per_class: usize,
    pub max_len: usize,
    pub batch_size: usize,
    pub epochs: usize,
    pub seeds: Vec<u64>,
    /// Batches (of the training split) the estimators score on; AdaPEFT's held-out batches
    /// come after them.
    pub select_batches: usize,
    /// AdaPEFT's held-out batches, rates and trial steps (its recommended rate and `Auto`).
    pub held_out: HeldOut,
    /// The encoder rates tried for full fine-tuning.
    pub full_rates: Vec<f64>,
    /// The encoder rates tried for every other method but the linear probe.
    pub subset_rates: Vec<f64>,
    pub methods: Vec<Method>,
}

impl StudyConfig {
    /// Every method, the budgeted ones at `fractions` (the rows at 1% at `one`).
    fn methods(fractions: [f64; 4], one: f64) -> Vec<Method> {
        let mut methods = vec![
            Method::Probe,
            Method::Full,
            Method::BitFit,
            Method::LayerNorm,
            Method::Lora(4),
            Method::Lora(8),
        ];
        for f in fractions {
            methods.push(Method::GradientNorm(f));
            methods.push(Method::Fisher(f));
        }
        for f in fractions {
            methods.push(Method::AdaPeft(f));
        }
        methods.extend([
            Method::AdaPeftAuto,
            Method::AdaPeftLora(one),
            Method::AdaPeftTransfer(one),
        ]);
        methods
    }

    /// The full study on the real weights.
    pub fn full() -> Self {
        StudyConfig {
            quick: false,
            tasks: vec!["verb", "noun"],
            only_task: None,
            only_methods: None,
            train_per_class: 80,
            validation_fraction: 0.2,
            test_per_class: 20,
            max_len: 32,
            batch_size: 16,
            epochs: 2,
            seeds: vec![1, 2, 3],
            select_batches: 16,
            held_out: HeldOut::last(4),
            full_rates: vec![1e-5, 3e-5, 1e-4],
            subset_rates: vec![3e-4, 1e-3, 3e-3],
            methods: Self::methods([0.001, 0.005, 0.01, 0.05], 0.01),
        }
    }

    /// `--quick`: a tiny random BERT, every method and code path (at budgets that hold its
    /// head, about 2% of it), two rates, two seeds, one epoch of a few rows per class.
    pub fn quick() -> Self {
        StudyConfig {
            quick: true,
            tasks: vec!["verb", "noun"],
            only_task: None,
            only_methods: None,
            train_per_class: 5,
            validation_fraction: 0.4,
            test_per_class: 2,
            max_len: 24,
            batch_size: 8,
            epochs: 1,
            seeds: vec![1, 2],
            select_batches: 3,
            held_out: HeldOut::last(1)
                .with_rates(&[1e-3, 1e-2])
                .with_steps(2)
                .with_auto_fractions(&[0.05, 0.2]),
            full_rates: vec![1e-4, 1e-3],
            subset_rates: vec![1e-3, 1e-2],
            // The new head is about 2% of the tiny BERT: the budgets must hold it.
            methods: Self::methods([0.03, 0.05, 0.1, 0.2], 0.1),
        }
    }

    /// `--units`: the study plus LoRA r = 1 and 2 and the selections of units below the
    /// tensor (AdaPEFT over blocks and rows, SMT, GPS-like rows, random neurons; issue 21) at
    /// 0.1% and 1% (3% and 10% in `--quick`, where the head alone is about 2%). Their runs go
    /// to the same files: run the study first, then `--units` adds its methods.
    pub fn with_units(mut self) -> Self {
        let fractions = if self.quick {
            [0.03, 0.1]
        } else {
            [0.001, 0.01]
        };
        self.methods.extend([Method::Lora(1), Method::Lora(2)]);
        for f in fractions {
            self.methods.extend([
                Method::AdaPeftBlocks(f),
                Method::AdaPeftRows(f),
                Method::SmtBlocks(f),
                Method::GpsRows(f),
                Method::RandomNeurons(f),
            ]);
        }
        self
    }

    pub fn dir_name(&self) -> &'static str {
        // Not `minilm`: that folder is the weight cache (`minilm_cache_dir`).
        if self.quick {
            "minilm-study-quick"
        } else {
            "minilm-study"
        }
    }

    /// The encoder rates of `method`'s grid (`[0]` for the linear probe: no encoder trains).
    pub fn rates(&self, method: &Method) -> Vec<f64> {
        match method {
            Method::Probe => vec![0.0],
            Method::Full => self.full_rates.clone(),
            _ => self.subset_rates.clone(),
        }
    }

    /// The tasks this process trains.
    pub fn trained_tasks(&self) -> Vec<&'static str> {
        match self.only_task {
            Some(t) => vec![t],
            None => self.tasks.clone(),
        }
    }

    /// Whether this process trains `method`.
    pub fn trains_method(&self, method: &Method) -> bool {
        self.only_methods
            .as_ref()
            .is_none_or(|only| only.contains(&method.name()))
    }

    /// Training steps on `task`: `epochs` passes over its training rows in whole batches.
    pub fn steps(&self, task: &Task) -> usize {
        self.epochs * (task.train.len() / self.batch_size)
    }
}

const USAGE: &str =
    "usage: cargo run -p adapeft-studies --bin minilm -- [--quick] [--units] [--check] [--report] [--task T] [--methods A,B] [--fresh] [--adapter-sizes]

  --quick   a tiny random BERT written to disk, every method, a few steps (CI)
  --units   also LoRA r = 1 and 2 and the selections of units below the tensor (AdaPEFT over
            blocks and rows, SMT, GPS-like rows, random neurons) at 0.1% and 1%
  --check   only validate the outputs of a previous run (of the same mode)
  --report  only rewrite the report, tables and pictures from the runs logged so far (trains
            nothing, so it is safe beside a running study; the outputs are partial until the
            study is done, and not validated)
  --task T  train only task T (noun or verb); the report covers every task with runs
  --methods A,B  train only the methods named (as in the tables: \"linear probe,full fine-tuning\");
            the outputs are then partial and not validated
  --fresh   forget the runs of a previous study in the same folder and start over
  --adapter-sizes  train nothing: make each method's selection (first task, first seed) and
            print its adapter file's size, the manifest's JSON and how the file stores it";

fn main() -> ExitCode {
    let (mut quick, mut check, mut fresh, mut units) = (false, false, false, false);
    let (mut report_only, mut sizes_only) = (false, false);
    let mut only = None;
    let mut methods = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--check" => check = true,
            "--fresh" => fresh = true,
            "--units" => units = true,
            "--report" => report_only = true,
            "--adapter-sizes" => sizes_only = true,
            "--task" | "--methods" => {
                let Some(value) = args.next() else {
                    eprintln!("{arg} needs a value\n\n{USAGE}");
                    return ExitCode::from(2);
                };
                if arg == "--task" {
                    only = Some(value);
                } else {
                    methods = Some(value);
                }
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if sizes_only && (report_only || check || fresh) {
        eprintln!(
            "--adapter-sizes trains nothing and writes no report: not with --report, --check or --fresh\n\n{USAGE}"
        );
        return ExitCode::from(2);
    }
    let mut config = if quick {
        StudyConfig::quick()
    } else {
        StudyConfig::full()
    };
    if units {
        config = config.with_units();
    }
    if let Some(task) = only {
        let Some(&t) = config.tasks.iter().find(|t| **t == task) else {
            eprintln!("unknown task {task:?}: the tasks are {:?}", config.tasks);
            return ExitCode::from(2);
        };
        config.only_task = Some(t);
    }
    if let Some(methods) = methods {
        let names: Vec<String> = methods.split(',').map(|m| m.trim().to_string()).collect();
        let known: Vec<String> = config.methods.iter().map(Method::name).collect();
        if let Some(bad) = names.iter().find(|n| !known.contains(n)) {
            eprintln!("unknown method {bad:?}: the methods are {known:?}");
            return ExitCode::from(2);
        }
        config.only_methods = Some(names);
    }
    let out = target_dir().join("adapeft").join(config.dir_name());
    if report_only {
        return match write_report(&config, &out) {
            Ok(runs) => {
                println!(
                    "report of the {runs} runs logged so far written to {} (not validated)",
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if sizes_only {
        return match adapter_sizes(&config, &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if !check {
        let start = Instant::now();
        if let Err(e) = run(&config, &out, fresh) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        println!(
            "study finished in {:.1} min",
            start.elapsed().as_secs_f64() / 60.0
        );
    }
    if config.only_methods.is_some() && !check {
        println!(
            "outputs in {} are partial (--methods): not validated",
            out.display()
        );
        return ExitCode::SUCCESS;
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

/// `--report`: the report, tables and pictures from the runs logged in `out`, training
/// nothing. Returns the number of runs.
fn write_report(config: &StudyConfig, out: &Path) -> Result<usize, Box<dyn std::error::Error>> {
    let all_tasks = load_tasks(config)?;
    let runs = runs::read_all(out, &all_tasks)?;
    if runs.is_empty() {
        return Err(format!("no runs logged in {}", out.display()).into());
    }
    write_outputs(config, out, &all_tasks, &runs)?;
    Ok(runs.len())
}

/// Writes the report, tables and pictures of `runs` (of `all_tasks`, the study's tasks) into
/// `out`: after a study, and for `--report`.
fn write_outputs(
    config: &StudyConfig,
    out: &Path,
    all_tasks: &[Task],
    runs: &[Run],
) -> Result<(), Box<dyn std::error::Error>> {
    report::write_all(out, config, all_tasks, runs)?;
    plots::draw_all(out, config, all_tasks, runs)?;
    Ok(())
}

/// The model's files: the tiny random BERT written into `out` for `--quick`, the cached
/// all-MiniLM-L6-v2 otherwise.
fn model_files(
    config: &StudyConfig,
    out: &Path,
    tasks: &[Task],
) -> Result<ModelFiles, Box<dyn std::error::Error>> {
    Ok(if config.quick {
        data::write_tiny_bert(&out.join("tiny-bert"), tasks, 5)?
    } else {
        data::minilm_files(&target_dir())?
    })
}

/// What every method of `seed` starts from: the pretrained encoder with the seed's new head,
/// and the seed's selection batches (scored and held-out, from the training split).
fn seed_start(
    config: &StudyConfig,
    files: &ModelFiles,
    batches: &Batches,
    device: &Device,
    seed: u64,
) -> Result<(BertClassifier, Vec<TextBatch>), Box<dyn std::error::Error>> {
    device.seed(seed);
    let bert = data::load_bert(files, device)?;
    let base = BertClassifier::new(bert, batches.task.classes, device);
    let select = batches
        .stream(seed + 1000)
        .take(config.select_batches + config.held_out.batches)
        .collect();
    Ok((base, select))
}

/// `method`'s selection (or rule) on `base`, from the device's seed for it: the same seed
/// makes the same selection.
fn prepare(
    config: &StudyConfig,
    method: &Method,
    base: &BertClassifier,
    select: &[TextBatch],
    seed: u64,
    device: &Device,
) -> Result<methods::Prepared, adapeft::AdaPeftError> {
    device.seed(seed + 7);
    methods::prepare(method, base.clone(), select, &config.held_out, seed)
}

/// `--adapter-sizes`: each selection method's selection on the first task and seed, saved by
/// `save_trained` (the model untrained: the size does not depend on the values), with the
/// length of its compact JSON and how the store keeps it (compressed above
/// `COMPRESS_ABOVE` bytes, the store's rule), after checking that the file reads back as the
/// same selection. Trains nothing and logs no run.
fn adapter_sizes(config: &StudyConfig, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let tasks = load_tasks(config)?;
    let task = tasks
        .iter()
        .find(|t| config.trained_tasks().contains(&t.name.as_str()))
        .ok_or("no task to size")?;
    let files = model_files(config, out, &tasks)?;
    let tokenizer = BertTokenizer::from_file(&files.tokenizer, config.max_len)?;
    let device = Device::flex().autodiff();
    let seed = config.seeds[0];
    let batches = Batches {
        task,
        tokenizer: &tokenizer,
        device: device.clone(),
        batch_size: config.batch_size,
    };
    let (base, select) = seed_start(config, &files, &batches, &device, seed)?;
    let scratch = out.join(format!("sizes-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    println!(
        "{} seed {seed}: method, groups scored, front points, manifest JSON bytes, stored as, file bytes, trained values x 4 bytes (f32)",
        task.name
    );
    for method in config.methods.iter().filter(|m| config.trains_method(m)) {
        let prepared = prepare(config, method, &base, &select, seed, &device)?;
        let Some(selection) = &prepared.selection else {
            continue;
        };
        let file = scratch.join("sized.safetensors");
        adapeft::save_trained(&prepared.model, selection, &file)?;
        let file_bytes = std::fs::metadata(&file)?.len();
        let json = selection.to_json_compact().len();
        // What was saved reads back: the same selection, whichever way the manifest is stored.
        let (_, back) = adapeft::load_trained(prepared.model.clone(), &file)?;
        if back.to_json_compact() != selection.to_json_compact() {
            return Err(
                format!("{}: the saved selection reads back changed", method.name()).into(),
            );
        }
        let stored = if json > adapeft::selection::COMPRESS_ABOVE {
            "compressed"
        } else {
            "plain"
        };
        println!(
            "{}, {}, {}, {json}, {stored}, {file_bytes}, {}",
            method.name(),
            selection.groups().len(),
            selection.front().len(),
            4 * selection.trainable_params()
        );
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// Loads every task of the study (all of them, for the report), with its splits.
fn load_tasks(config: &StudyConfig) -> Result<Vec<Task>, Box<dyn std::error::Error>> {
    let dir = data_dir("wordnet");
    config
        .tasks
        .iter()
        .map(|t| {
            Task::load(
                &dir,
                t,
                config.train_per_class,
                config.validation_fraction,
                config.test_per_class,
            )
        })
        .collect()
}

fn run(config: &StudyConfig, out: &Path, fresh: bool) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(out)?;
    let all_tasks = load_tasks(config)?;
    let files = model_files(config, out, &all_tasks)?;
    let checkpoint_bytes = std::fs::metadata(&files.safetensors)?.len();
    let tokenizer = BertTokenizer::from_file(&files.tokenizer, config.max_len)?;
    let device = Device::flex().autodiff();
    let progress = Progress::new();
    let first_seed = config.seeds[0];
    let trained = config.trained_tasks();
    for task in all_tasks
        .iter()
        .filter(|t| trained.contains(&t.name.as_str()))
    {
        let mut log = RunLog::open(out, &task.name, fresh)?;
        let mut recommendations = runs::Recommendations::open(out, &task.name, fresh)?;
        let steps = config.steps(task);
        if let Some(r) = log.runs().iter().find(|r| r.steps != steps) {
            return Err(format!(
                "{}: a run of {} with {} steps, this study trains {steps}: its settings changed (run with --fresh)",
                runs::path(out, &task.name).display(),
                r.method,
                r.steps
            )
            .into());
        }
        // Each process's and task's own scratch folder, removed when the task is done: two
        // processes can run side by side, on one task (`--units` beside the study's own
        // methods) or on two, and neither removes the other's.
        let scratch = out.join(format!("saved-{}-{}", task.name, std::process::id()));
        std::fs::create_dir_all(&scratch)?;
        let batches = Batches {
            task,
            tokenizer: &tokenizer,
            device: device.clone(),
            batch_size: config.batch_size,
        };
        progress.log(format!(
            "{}: {} training, {} validation, {} test rows; {steps} steps per run; {} runs already done",
            task.name,
            task.train.len(),
            task.validation.len(),
            task.test.len(),
            log.runs().len()
        ));
        for &seed in &config.seeds {
            let bar = progress.bar(
                config.methods.len() as u64,
                &format!("{} seed {seed}", task.name),
            );
            // Every method starts from the same pretrained encoder and the same new head.
            let (base, select) = seed_start(config, &files, &batches, &device, seed)?;
            let total: u64 = adapeft::importance::discover(&base)
                .iter()
                .map(|p| p.numel)
                .sum();
            for method in config.methods.iter().filter(|m| config.trains_method(m)) {
                let grid = config.rates(method);
                // The selection's own rates, once recorded: by the older rule (a column of
                // its runs) and by the library's default (the recommendations file).
                let own = log.of(method, seed).first().and_then(|r| r.recommended);
                let below = recommendations.get(&method.name(), seed);
                let rates = log.to_run(method, seed, first_seed, &grid, &[own, below])?;
                let unknown = method.recommends_rate() && (own.is_none() || below.is_none());
                if rates.is_empty() && !unknown {
                    bar.inc(1);
                    continue;
                }
                let prepared = prepare(config, method, &base, &select, seed, &device)?;
                // Units below the tensor train through `Masked` (see `train.rs`).
                let cells = prepared
                    .selection
                    .as_ref()
                    .filter(|s| !s.partial().is_empty());
                // `0` when the selection recommends no rate (no trial lowered the held-out
                // loss, or only the head trains): its subset then stays as it is.
                let recommended = own.or(prepared
                    .selection
                    .as_ref()
                    .map(|_| prepared.lowest_loss_rate().unwrap_or(0.0)));
                // The same seed makes the same selection: its older rule's rate is the one
                // its runs recorded.
                if let (Some(logged), Some(now)) = (own, prepared.lowest_loss_rate())
                    && logged != now
                {
                    progress.log(format!(
                        "{} seed {seed} {}: the selection now recommends {now:e} by the lowest loss, its runs recorded {logged:e}",
                        task.name,
                        method.name()
                    ));
                }
                let below = match below {
                    Some(rate) => Some(rate),
                    None if method.recommends_rate() => {
                        let rate = prepared.recommended_rate().unwrap_or(0.0);
                        recommendations.push(method, seed, rate)?;
                        Some(rate)
                    }
                    None => None,
                };
                let rates = log.to_run(method, seed, first_seed, &grid, &[recommended, below])?;
                // A partly trained tensor requires gradients as a whole: count its cells.
                let trainable: u64 = match cells {
                    Some(selection) => selection.trainable_params(),
                    None => adapeft::importance::discover(&prepared.model)
                        .iter()
                        .filter(|p| p.require_grad)
                        .map(|p| p.numel)
                        .sum(),
                };
                let chosen = prepared
                    .selection
                    .as_ref()
                    .map(report::describe)
                    .unwrap_or_default();
                for rate in rates {
                    // Without a reset the peak would be the process's: record none.
                    let measured = memory::reset_peak_rss();
                    let (model, train_seconds) = train::train(
                        prepared.model.clone(),
                        batches.stream(seed),
                        steps,
                        rate,
                        LR_HEAD,
                        &indicatif::ProgressBar::hidden(),
                        cells,
                    );
                    let peak_rss = memory::peak_rss_bytes().filter(|_| measured).unwrap_or(0);
                    let validation = train::accuracy(&model, &task.validation, &tokenizer, &device);
                    let test = train::accuracy(&model, &task.test, &tokenizer, &device);
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
                    let run = Run {
                        task: task.name.clone(),
                        method: method.name(),
                        seed,
                        rate,
                        recommended: recommended.filter(|_| method.recommends_rate()),
                        step_below: below,
                        validation,
                        test,
                        trainable,
                        total,
                        steps,
                        select_seconds: prepared.select_seconds,
                        train_seconds,
                        peak_rss,
                        saved_bytes,
                        checkpoint_bytes,
                        chosen: chosen.clone(),
                    };
                    progress.log(format!(
                        "{:>5} seed {seed} {:<20} rate {:<7} val {:.3} test {:.3} trainable {:>9} select {:>6.1} s  {:.2} s/step  peak {:.0} MB",
                        task.name,
                        run.method,
                        rate,
                        validation,
                        test,
                        trainable,
                        run.select_seconds,
                        train_seconds / steps.max(1) as f64,
                        peak_rss as f64 / 1e6,
                    ));
                    log.push(run)?;
                }
                bar.inc(1);
            }
            bar.finish();
        }
        std::fs::remove_dir_all(&scratch).ok();
    }
    let runs = runs::read_all(out, &all_tasks)?;
    write_outputs(config, out, &all_tasks, &runs)
}
