//! The study's record of training runs: one CSV row per run, appended as soon as the run
//! ends (`runs-<task>.csv`), read back so that a stopped study resumes where it was.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use crate::data::Task;
use crate::methods::Method;

type Error = Box<dyn std::error::Error>;

/// One training run: a method on a task with one seed at one encoder learning rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub task: String,
    /// The method's row label ([`Method::name`]).
    pub method: String,
    pub seed: u64,
    /// The encoder's Adam rate (`0`: the encoder does not move, as in the linear probe).
    pub rate: f64,
    /// The rate the method's selection recommends by `RateRule::LowestLoss`, the rule of
    /// the binaries before 7e69906 (AdaPEFT with held-out batches; `0` when no trial lowered
    /// the held-out loss), `None` for the other methods.
    pub recommended: Option<f64>,
    /// The rate it recommends by the library's default, `RateRule::StepBelow`, from the
    /// task's recommendations file (not a column of the runs file: [`read_all`] fills it in).
    pub step_below: Option<f64>,
    /// Accuracy on the validation split.
    pub validation: f64,
    /// Accuracy on the test split.
    pub test: f64,
    pub trainable: u64,
    pub total: u64,
    pub steps: usize,
    /// Seconds the selection took (held-out trials included); 0 for fixed rules.
    pub select_seconds: f64,
    pub train_seconds: f64,
    /// Peak resident set size of the process during training, in bytes (0: not measured).
    pub peak_rss: u64,
    /// Size of the file `save_trained` (or `save_tensors`) writes of the trained tensors.
    pub saved_bytes: u64,
    /// Size of the pretrained checkpoint, for the ratio.
    pub checkpoint_bytes: u64,
    /// What the selection trains, in words (selection methods).
    pub chosen: String,
}

const HEADER: [&str; 16] = [
    "task",
    "method",
    "seed",
    "rate",
    "recommended_rate",
    "validation_accuracy",
    "test_accuracy",
    "trainable_params",
    "total_params",
    "steps",
    "select_seconds",
    "train_seconds",
    "peak_rss_bytes",
    "saved_bytes",
    "checkpoint_bytes",
    "trained",
];

impl Run {
    fn record(&self) -> Vec<String> {
        vec![
            self.task.clone(),
            self.method.clone(),
            self.seed.to_string(),
            format!("{:e}", self.rate),
            self.recommended.map_or(String::new(), |r| format!("{r:e}")),
            format!("{:.6}", self.validation),
            format!("{:.6}", self.test),
            self.trainable.to_string(),
            self.total.to_string(),
            self.steps.to_string(),
            format!("{:.3}", self.select_seconds),
            format!("{:.3}", self.train_seconds),
            self.peak_rss.to_string(),
            self.saved_bytes.to_string(),
            self.checkpoint_bytes.to_string(),
            self.chosen.clone(),
        ]
    }

    fn parse(record: &csv::StringRecord) -> Result<Self, String> {
        if record.len() != HEADER.len() {
            return Err(format!(
                "{} fields, expected {}",
                record.len(),
                HEADER.len()
            ));
        }
        fn num<T: std::str::FromStr>(record: &csv::StringRecord, i: usize) -> Result<T, String> {
            record[i]
                .parse()
                .map_err(|_| format!("{} = {:?} is not a number", HEADER[i], &record[i]))
        }
        Ok(Run {
            task: record[0].to_string(),
            method: record[1].to_string(),
            seed: num(record, 2)?,
            rate: num(record, 3)?,
            recommended: if record[4].is_empty() {
                None
            } else {
                Some(num(record, 4)?)
            },
            validation: num(record, 5)?,
            test: num(record, 6)?,
            trainable: num(record, 7)?,
            total: num(record, 8)?,
            steps: num(record, 9)?,
            select_seconds: num(record, 10)?,
            train_seconds: num(record, 11)?,
            peak_rss: num(record, 12)?,
            saved_bytes: num(record, 13)?,
            checkpoint_bytes: num(record, 14)?,
            chosen: record[15].to_string(),
            step_below: None,
        })
    }
}

/// The runs file of `task` in `dir`.
pub fn path(dir: &Path, task: &str) -> PathBuf {
    dir.join(format!("runs-{task}.csv"))
}

/// Reads a runs file (no file: no runs).
fn read(path: &Path) -> Result<Vec<Run>, Error> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let header: Vec<String> = reader.headers()?.iter().map(String::from).collect();
    if header != HEADER {
        return Err(format!(
            "{}: the columns are not this study's (written by another version? run with --fresh)",
            path.display()
        )
        .into());
    }
    reader
        .records()
        .enumerate()
        .map(|(i, r)| {
            let r = r.map_err(|e| format!("{}: row {}: {e}", path.display(), i + 1))?;
            Run::parse(&r).map_err(|e| format!("{}: row {}: {e}", path.display(), i + 1).into())
        })
        .collect()
}

/// Every run of every task in `tasks` recorded in `dir`, each with its selection's
/// step-below recommendation when the task's recommendations file has it.
pub fn read_all(dir: &Path, tasks: &[Task]) -> Result<Vec<Run>, Error> {
    let mut runs = Vec::new();
    for task in tasks {
        let recommendations = Recommendations::open(dir, &task.name, false)?;
        runs.extend(read(&path(dir, &task.name))?.into_iter().map(|mut r| {
            r.step_below = recommendations.get(&r.method, r.seed);
            r
        }));
    }
    Ok(runs)
}

/// The recommendations file of `task` in `dir`.
pub fn recommendations_path(dir: &Path, task: &str) -> PathBuf {
    dir.join(format!("recommended-{task}.csv"))
}

const RECOMMENDATIONS_HEADER: [&str; 4] = ["task", "method", "seed", "step_below_rate"];

/// What each AdaPEFT selection recommends by the library's default rule
/// (`RateRule::StepBelow`), one row per (method, seed), appended when the selection is
/// made (`recommended-<task>.csv`). A file of its own, so that the runs file keeps its
/// columns (its `recommended_rate` is the older rule's) and a selection whose step-below
/// rate already has a run (a grid rate) needs no second run to record it.
pub struct Recommendations {
    path: PathBuf,
    task: String,
    /// (method, seed, rate; `0` for none).
    rows: Vec<(String, u64, f64)>,
}

impl Recommendations {
    /// Opens the file of `task` in `dir` and reads it; `fresh` deletes it first.
    pub fn open(dir: &Path, task: &str, fresh: bool) -> Result<Self, Error> {
        let path = recommendations_path(dir, task);
        forget(&path, fresh)?;
        let mut rows = Vec::new();
        if path.exists() {
            let mut reader = csv::Reader::from_path(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if reader.headers()?.iter().ne(RECOMMENDATIONS_HEADER) {
                return Err(format!("{}: the columns are not this study's", path.display()).into());
            }
            for (i, record) in reader.records().enumerate() {
                let bad = |what: &str| format!("{}: row {}: {what}", path.display(), i + 1);
                let record = record.map_err(|e| bad(&e.to_string()))?;
                if record.len() != 4 || record[0] != *task {
                    return Err(bad("not a row of this task").into());
                }
                let seed = record[2].parse().map_err(|_| bad("seed is not a number"))?;
                let rate = record[3].parse().map_err(|_| bad("rate is not a number"))?;
                rows.push((record[1].to_string(), seed, rate));
            }
        }
        Ok(Recommendations {
            path,
            task: task.to_string(),
            rows,
        })
    }

    /// The step-below rate recorded for the selection of `method` (its row label) with
    /// `seed`.
    pub fn get(&self, method: &str, seed: u64) -> Option<f64> {
        self.rows
            .iter()
            .find(|(m, s, _)| m == method && *s == seed)
            .map(|&(_, _, rate)| rate)
    }

    /// Records the step-below rate of `method`'s selection with `seed` (`0`: none).
    pub fn push(&mut self, method: &Method, seed: u64, rate: f64) -> Result<(), Error> {
        let rate_text = format!("{rate:e}");
        append(
            &self.path,
            &RECOMMENDATIONS_HEADER,
            &[
                self.task.clone(),
                method.name(),
                seed.to_string(),
                rate_text.clone(),
            ],
        )?;
        self.rows.push((method.name(), seed, rate_text.parse()?));
        Ok(())
    }
}

/// Deletes the file at `path`, if there is one, when `fresh` (a study started over).
fn forget(path: &Path, fresh: bool) -> Result<(), Error> {
    if fresh && path.exists() {
        std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Appends `record` to the CSV file at `path` at once (flushed), writing `header` first when
/// the file is new.
fn append(path: &Path, header: &[&str], record: &[String]) -> Result<(), Error> {
    let new = !path.exists();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut w = csv::Writer::from_writer(file);
    if new {
        w.write_record(header)?;
    }
    w.write_record(record)?;
    w.flush()?;
    Ok(())
}

/// `values` without repeats, in first-seen order.
pub fn unique(values: Vec<f64>) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The runs of one task: those already in its file, and each new one appended to it at once.
pub struct RunLog {
    path: PathBuf,
    task: String,
    runs: Vec<Run>,
}

impl RunLog {
    /// Opens the runs file of `task` in `dir` and reads it; `fresh` deletes it first.
    pub fn open(dir: &Path, task: &str, fresh: bool) -> Result<Self, Error> {
        let path = path(dir, task);
        forget(&path, fresh)?;
        let runs = read(&path)?;
        if let Some(r) = runs.iter().find(|r| r.task != task) {
            return Err(format!("{}: a run of task {:?}", path.display(), r.task).into());
        }
        Ok(RunLog {
            path,
            task: task.to_string(),
            runs,
        })
    }

    /// Every run recorded so far.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The recorded runs of `method` with `seed`.
    pub fn of(&self, method: &Method, seed: u64) -> Vec<Run> {
        let name = method.name();
        self.runs
            .iter()
            .filter(|r| r.method == name && r.seed == seed)
            .cloned()
            .collect()
    }

    /// The rate of `grid` whose run of `method` with `seed` reached the best validation
    /// accuracy (the first of equals, in grid order).
    pub fn best_rate(&self, method: &Method, seed: u64, grid: &[f64]) -> Result<f64, Error> {
        best_rate(&self.of(method, seed), grid).ok_or_else(|| {
            format!(
                "{}: {} with seed {seed} has no run at any of the rates {grid:?}",
                self.task,
                method.name()
            )
            .into()
        })
    }

    /// The encoder rates still to train for `method` with `seed`: on `first_seed` the whole
    /// `grid`, on the other seeds the grid's rate that was best on `first_seed`'s validation;
    /// and, for a method whose selection recommends a rate, the rates it recommends (`own`,
    /// by each rule, once known); less the rates already recorded.
    pub fn to_run(
        &self,
        method: &Method,
        seed: u64,
        first_seed: u64,
        grid: &[f64],
        own: &[Option<f64>],
    ) -> Result<Vec<f64>, Error> {
        let mut rates = if seed == first_seed {
            grid.to_vec()
        } else {
            vec![self.best_rate(method, first_seed, grid)?]
        };
        rates.extend(own.iter().flatten().filter(|_| method.recommends_rate()));
        let done = self.of(method, seed);
        let mut rates = unique(rates);
        rates.retain(|r| !done.iter().any(|d| d.rate == *r));
        Ok(rates)
    }

    /// Appends `run` to the file (creating it with its header) and to the record.
    pub fn push(&mut self, run: Run) -> Result<(), Error> {
        let record = run.record();
        append(&self.path, &HEADER, &record)?;
        // What the file holds (accuracies to 6 digits), so that a resumed study, which reads
        // the file, chooses the same rates as this one.
        let stored = Run::parse(&csv::StringRecord::from(record))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.runs.push(stored);
        Ok(())
    }
}

/// The rate of `grid` with the best validation accuracy among `runs` (first of equals).
pub fn best_rate(runs: &[Run], grid: &[f64]) -> Option<f64> {
    let mut best: Option<(f64, f64)> = None;
    for &rate in grid {
        if let Some(r) = runs.iter().find(|r| r.rate == rate)
            && best.is_none_or(|(_, acc)| r.validation > acc)
        {
            best = Some((rate, r.validation));
        }
    }
    best.map(|(rate, _)| rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(method: &Method, seed: u64, rate: f64, validation: f64) -> Run {
        Run {
            task: "verb".into(),
            method: method.name(),
            seed,
            rate,
            recommended: method.recommends_rate().then_some(3e-4),
            validation,
            test: 0.5,
            trainable: 1234,
            total: 99_999,
            steps: 10,
            select_seconds: 1.5,
            train_seconds: 20.25,
            peak_rss: 1 << 30,
            saved_bytes: 4096,
            checkpoint_bytes: 1 << 20,
            chosen: "head.weight, \"quoted\" layers.0.ffn.output.bias".into(),
            step_below: None,
        }
    }

    #[test]
    fn runs_round_trip_through_the_file_and_a_reopened_log_resumes() {
        let dir = adapeft_testing::temp_dir("minilm-runs");
        let ada = Method::AdaPeft(0.01);
        let mut log = RunLog::open(dir.path(), "verb", false).unwrap();
        assert!(log.runs().is_empty());
        let written = [
            run(&ada, 1, 3e-4, 0.61),
            run(&ada, 1, 1e-3, 0.7),
            run(&ada, 1, 3e-3, 0.7),
            run(&Method::Probe, 1, 0.0, 0.4),
        ];
        for r in &written {
            log.push(r.clone()).unwrap();
        }
        let reopened = RunLog::open(dir.path(), "verb", false).unwrap();
        assert_eq!(reopened.runs(), &written[..]);
        assert_eq!(reopened.of(&ada, 1).len(), 3);
        assert!(reopened.of(&ada, 2).is_empty());
        // 1e-3 and 3e-3 tie on validation: the first in grid order wins.
        assert_eq!(
            reopened.best_rate(&ada, 1, &[3e-4, 1e-3, 3e-3]).unwrap(),
            1e-3
        );
        assert_eq!(reopened.best_rate(&ada, 1, &[3e-3, 1e-3]).unwrap(), 3e-3);
        assert!(reopened.best_rate(&ada, 2, &[1e-3]).is_err());
        // The file of another task, or another layout, is refused; --fresh starts over.
        std::fs::copy(path(dir.path(), "verb"), path(dir.path(), "noun")).unwrap();
        assert!(RunLog::open(dir.path(), "noun", false).is_err());
        assert!(
            RunLog::open(dir.path(), "verb", true)
                .unwrap()
                .runs()
                .is_empty()
        );
        assert!(!path(dir.path(), "verb").exists());
    }

    #[test]
    fn the_first_seed_runs_the_grid_the_others_its_best_rate_and_adapeft_also_its_own() {
        let dir = adapeft_testing::temp_dir("minilm-to-run");
        let (ada, lora) = (Method::AdaPeft(0.01), Method::Lora(4));
        let grid = [3e-4, 1e-3, 3e-3];
        let mut log = RunLog::open(dir.path(), "verb", false).unwrap();
        // Nothing yet: the grid (the own rate is not known before the selection).
        assert_eq!(log.to_run(&ada, 1, 1, &grid, &[None]).unwrap(), grid);
        // Known: appended once, even when it is a grid rate; other methods have none.
        assert_eq!(
            log.to_run(&ada, 1, 1, &grid, &[Some(1e-2)]).unwrap(),
            [3e-4, 1e-3, 3e-3, 1e-2]
        );
        assert_eq!(log.to_run(&ada, 1, 1, &grid, &[Some(1e-3)]).unwrap(), grid);
        assert_eq!(log.to_run(&lora, 1, 1, &grid, &[Some(1e-2)]).unwrap(), grid);
        // The second seed needs the first seed's validation.
        assert!(log.to_run(&ada, 2, 1, &grid, &[None]).is_err());
        for (rate, acc) in [(3e-4, 0.5), (1e-3, 0.6), (3e-3, 0.55), (1e-2, 0.58)] {
            log.push(run(&ada, 1, rate, acc)).unwrap();
        }
        assert!(
            log.to_run(&ada, 1, 1, &grid, &[Some(1e-2)])
                .unwrap()
                .is_empty()
        );
        assert_eq!(log.to_run(&ada, 2, 1, &grid, &[None]).unwrap(), [1e-3]);
        assert_eq!(
            log.to_run(&ada, 2, 1, &grid, &[Some(3e-4)]).unwrap(),
            [1e-3, 3e-4]
        );
        // A run recorded on the second seed is not repeated; the own rate's neither.
        log.push(run(&ada, 2, 3e-4, 0.5)).unwrap();
        assert_eq!(
            log.to_run(&ada, 2, 1, &grid, &[Some(3e-4)]).unwrap(),
            [1e-3]
        );
        // Both rules' rates, each once.
        assert_eq!(
            log.to_run(&ada, 2, 1, &grid, &[Some(3e-3), Some(1e-4), Some(3e-3)])
                .unwrap(),
            [1e-3, 3e-3, 1e-4]
        );
    }

    #[test]
    fn recommendations_round_trip_and_join_the_runs_they_belong_to() {
        let dir = adapeft_testing::temp_dir("minilm-recommended");
        let (ada, auto) = (Method::AdaPeft(0.01), Method::AdaPeftAuto);
        let mut recs = Recommendations::open(dir.path(), "verb", false).unwrap();
        assert_eq!(recs.get(&ada.name(), 1), None);
        recs.push(&ada, 1, 1e-3).unwrap();
        recs.push(&auto, 2, 0.0).unwrap();
        let reopened = Recommendations::open(dir.path(), "verb", false).unwrap();
        assert_eq!(reopened.get(&ada.name(), 1), Some(1e-3));
        assert_eq!(reopened.get(&auto.name(), 2), Some(0.0));
        assert_eq!(reopened.get(&ada.name(), 2), None);
        let mut log = RunLog::open(dir.path(), "verb", false).unwrap();
        log.push(run(&ada, 1, 1e-3, 0.6)).unwrap();
        log.push(run(&ada, 2, 1e-3, 0.6)).unwrap();
        let task = Task::load(
            &adapeft_studies::paths::data_dir("wordnet"),
            "verb",
            2,
            0.0,
            1,
        )
        .unwrap();
        let runs = read_all(dir.path(), std::slice::from_ref(&task)).unwrap();
        assert_eq!(
            runs.iter().map(|r| r.step_below).collect::<Vec<_>>(),
            [Some(1e-3), None]
        );
        // Another task's file is refused.
        std::fs::copy(
            recommendations_path(dir.path(), "verb"),
            recommendations_path(dir.path(), "noun"),
        )
        .unwrap();
        assert!(Recommendations::open(dir.path(), "noun", false).is_err());
        assert!(
            Recommendations::open(dir.path(), "verb", true)
                .unwrap()
                .get(&ada.name(), 1)
                .is_none()
        );
    }

    #[test]
    fn unique_keeps_the_first_of_each_value_in_order() {
        assert_eq!(
            unique(vec![1e-3, 3e-4, 1e-3, 0.0, 3e-4]),
            vec![1e-3, 3e-4, 0.0]
        );
    }
}
