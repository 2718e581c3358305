//! The results: one row per (task, method) over the seeds, as CSV and Markdown with a plain
//! win/tie/loss summary, and the validation a run ends with.

use std::fmt::Write as _;
use std::path::Path;

use adapeft::Selection;
use adapeft_studies::outputs::{self, write_csv};
use adapeft_studies::stats::{mean, sample_std};

use crate::methods::Method;
use crate::{Run, StudyConfig};

/// One (task, method) over the seeds.
#[derive(Debug, Clone)]
pub struct Row {
    pub task: String,
    pub method: Method,
    pub seeds: usize,
    pub acc_mean: f64,
    pub acc_std: f64,
    pub trainable: f64,
    pub total: f64,
    pub select_seconds: f64,
    pub select_steps: f64,
    pub train_seconds: f64,
    pub saved_bytes: f64,
    pub checkpoint_bytes: f64,
    pub chosen: String,
}

/// The trained tensors of a selection in words: kinds and counts, LoRA ranks.
pub fn describe(selection: &Selection) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut lora = [0usize; 2];
    for g in selection.chosen() {
        match g.lora {
            Some(o) if o.rank == 4 => lora[0] += 1,
            Some(_) => lora[1] += 1,
            None => parts.push(g.score.name.replace("bert.", "")),
        }
    }
    if lora[0] + lora[1] > 0 {
        parts.push(format!("LoRA r4 x{} r8 x{}", lora[0], lora[1]));
    }
    parts.join(" ")
}

pub fn rows(config: &StudyConfig, runs: &[Run]) -> Vec<Row> {
    let mut rows = Vec::new();
    for task in &config.tasks {
        for method in &config.methods {
            let of: Vec<&Run> = runs
                .iter()
                .filter(|r| r.task == *task && r.method == *method)
                .collect();
            if of.is_empty() {
                continue;
            }
            let m = |f: fn(&Run) -> f64| mean(&of.iter().map(|r| f(r)).collect::<Vec<_>>());
            let acc: Vec<f64> = of.iter().map(|r| r.accuracy).collect();
            rows.push(Row {
                task: task.to_string(),
                method: method.clone(),
                seeds: of.len(),
                acc_mean: mean(&acc),
                acc_std: sample_std(&acc),
                trainable: m(|r| r.trainable as f64),
                total: m(|r| r.total as f64),
                select_seconds: m(|r| r.select_seconds),
                select_steps: m(|r| r.select_steps),
                train_seconds: m(|r| r.train_seconds),
                saved_bytes: m(|r| r.saved_bytes as f64),
                checkpoint_bytes: m(|r| r.checkpoint_bytes as f64),
                chosen: of[0].chosen.clone(),
            });
        }
    }
    rows
}

const HEADER: [&str; 13] = [
    "task",
    "method",
    "seeds",
    "accuracy",
    "accuracy_std",
    "trainable_params",
    "trainable_pct",
    "select_seconds",
    "select_step_equivalents",
    "train_seconds",
    "saved_bytes",
    "saved_pct_of_checkpoint",
    "trained",
];

fn csv_rows(rows: &[Row]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            vec![
                r.task.clone(),
                r.method.name(),
                r.seeds.to_string(),
                format!("{:.4}", r.acc_mean),
                format!("{:.4}", r.acc_std),
                format!("{:.0}", r.trainable),
                format!("{:.4}", 100.0 * r.trainable / r.total),
                format!("{:.2}", r.select_seconds),
                format!("{:.1}", r.select_steps),
                format!("{:.1}", r.train_seconds),
                format!("{:.0}", r.saved_bytes),
                format!("{:.3}", 100.0 * r.saved_bytes / r.checkpoint_bytes),
                r.chosen.clone(),
            ]
        })
        .collect()
}

/// The two-sided 95% tie band of a difference of two accuracies on `n` test rows each (1
/// seed: binomial standard errors; more seeds: also the seeds' spread).
fn tie_band(a: &Row, b: &Row, n: usize) -> f64 {
    let var =
        |r: &Row| r.acc_mean * (1.0 - r.acc_mean) / n as f64 + r.acc_std.powi(2) / r.seeds as f64;
    1.96 * (var(a) + var(b)).sqrt()
}

fn verdict(ours: &Row, theirs: &Row, n: usize) -> &'static str {
    let d = ours.acc_mean - theirs.acc_mean;
    let band = tie_band(ours, theirs, n);
    if d > band {
        "wins"
    } else if d < -band {
        "loses"
    } else {
        "ties"
    }
}

/// Where AdaPEFT wins, ties and loses against LoRA, BitFit and the linear probe, per task.
pub fn summary(config: &StudyConfig, rows: &[Row], test_rows: &[(String, usize)]) -> String {
    let mut s = String::new();
    for task in &config.tasks {
        let n = test_rows.iter().find(|(t, _)| t == task).map_or(1, |t| t.1);
        let of: Vec<&Row> = rows.iter().filter(|r| r.task == *task).collect();
        let find = |m: &Method| of.iter().find(|r| r.method == *m).copied();
        let _ = writeln!(
            s,
            "\n**{task}** ({n} test rows; a difference inside the 95% band of the two accuracies' standard errors is a tie):\n"
        );
        for ours in of.iter().filter(|r| r.method.family() == "adapeft") {
            let mut parts = Vec::new();
            for theirs in [
                Method::Lora(4),
                Method::Lora(8),
                Method::BitFit,
                Method::Probe,
            ] {
                if let Some(t) = find(&theirs) {
                    parts.push(format!(
                        "{} {} ({:+.1} points)",
                        verdict(ours, t, n),
                        theirs.name(),
                        100.0 * (ours.acc_mean - t.acc_mean)
                    ));
                }
            }
            let _ = writeln!(
                s,
                "- {} ({:.3}% trainable, accuracy {:.3}): {}",
                ours.method.name(),
                100.0 * ours.trainable / ours.total,
                ours.acc_mean,
                parts.join("; ")
            );
        }
    }
    s
}

fn fmt_params(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn markdown_table(rows: &[Row], task: &str) -> String {
    let mut s = String::from(
        "| method | accuracy | trainable | % | selection s | selection (steps) | training s | saved | % of checkpoint |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows.iter().filter(|r| r.task == task) {
        let acc = if r.seeds > 1 {
            format!("{:.3} ± {:.3}", r.acc_mean, r.acc_std)
        } else {
            format!("{:.3}", r.acc_mean)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} | {:.1} | {:.1} | {:.1} | {} | {:.2} |",
            r.method.name(),
            acc,
            fmt_params(r.trainable),
            100.0 * r.trainable / r.total,
            r.select_seconds,
            r.select_steps,
            r.train_seconds,
            fmt_params(r.saved_bytes) + "B",
            100.0 * r.saved_bytes / r.checkpoint_bytes,
        );
    }
    s
}

/// Writes `results.csv`, `runs.csv` and `results.md`.
pub fn write_all(
    out: &Path,
    config: &StudyConfig,
    runs: &[Run],
    test_rows: &[(String, usize)],
) -> Result<(), Box<dyn std::error::Error>> {
    let rows = rows(config, runs);
    write_csv(&out.join("results.csv"), HEADER, csv_rows(&rows))?;
    let run_rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.task.clone(),
                r.method.name(),
                r.seed.to_string(),
                format!("{:.4}", r.accuracy),
                r.trainable.to_string(),
                format!("{:.2}", r.select_seconds),
                format!("{:.1}", r.train_seconds),
                r.saved_bytes.to_string(),
                r.chosen.clone(),
            ]
        })
        .collect();
    write_csv(
        &out.join("runs.csv"),
        &[
            "task",
            "method",
            "seed",
            "accuracy",
            "trainable_params",
            "select_seconds",
            "train_seconds",
            "saved_bytes",
            "trained",
        ],
        run_rows,
    )?;
    let mut md = String::from("# MiniLM study results\n\n");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut command = "cargo run -p adapeft-studies --bin minilm".to_string();
    if !args.is_empty() {
        command = format!("{command} -- {}", args.join(" "));
    }
    let _ = writeln!(md, "Command: `{command}`.\n");
    let _ = writeln!(
        md,
        "Settings: {} training rows and {} test rows per class, max {} tokens, batch {}, {} Adam steps, seeds {:?}, {} selection batches; learning rates: head {}, full fine-tuning {}, every other method {} (LoRA alpha = rank).\n",
        config.train_per_class,
        config.test_per_class,
        config.max_len,
        config.batch_size,
        config.steps,
        config.seeds,
        config.select_batches,
        crate::methods::LR_HEAD,
        crate::methods::LR_FULL,
        crate::methods::LR_SUBSET,
    );
    md.push_str("\"selection (steps)\": the selection's wall time in units of one full fine-tuning step of the same run; the AdaPEFT budgets and Knee share one estimate and each shows its whole cost. \"saved\": the file `save_trained` (or, for the fixed rules, `save_tensors`) writes of the trained tensors, against the checkpoint's `model.safetensors`.\n");
    for task in &config.tasks {
        let _ = writeln!(md, "\n## {task}\n\n{}", markdown_table(&rows, task));
    }
    md.push_str("\n## Where AdaPEFT wins, ties and loses\n");
    md.push_str(&summary(config, &rows, test_rows));
    md.push_str("\n## What the selections trained (first seed)\n\n");
    for r in rows.iter().filter(|r| !r.chosen.is_empty()) {
        let _ = writeln!(md, "- {} / {}: {}", r.task, r.method.name(), r.chosen);
    }
    std::fs::write(out.join("results.md"), md)?;
    Ok(())
}

/// The files a run writes.
pub fn expected_files(config: &StudyConfig) -> Vec<String> {
    let mut files = vec![
        "results.csv".to_string(),
        "runs.csv".into(),
        "results.md".into(),
    ];
    files.extend(config.tasks.iter().map(|t| format!("accuracy-{t}.svg")));
    files
}

/// Every problem with a run's outputs: missing files, wrong row count, numbers that are not
/// finite, accuracies outside `[0, 1]`, selections over their budget.
pub fn validate(dir: &Path, config: &StudyConfig) -> Vec<String> {
    let mut problems = outputs::check_files(dir, &expected_files(config));
    let path = dir.join("results.csv");
    let Ok(mut reader) = csv::Reader::from_path(&path) else {
        return problems;
    };
    let mut n = 0;
    for (i, record) in reader.records().enumerate() {
        let Ok(record) = record else {
            problems.push(format!("{}: row {} unreadable", path.display(), i + 1));
            continue;
        };
        n += 1;
        for (j, field) in record.iter().enumerate().skip(2).take(10) {
            match field.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    if j == 3 && !(0.0..=1.0).contains(&v) {
                        problems.push(format!("row {}: accuracy {v}", i + 1));
                    }
                }
                _ => problems.push(format!("row {}: {} = {field:?}", i + 1, HEADER[j])),
            }
        }
        let method = &record[1];
        if let Some(pct) = method
            .strip_prefix("AdaPEFT ")
            .and_then(|m| m.strip_suffix('%'))
            .and_then(|p| p.parse::<f64>().ok())
        {
            let trainable: f64 = record[6].parse().unwrap_or(f64::NAN);
            if trainable > pct * 1.0001 {
                problems.push(format!("row {}: {method} trains {trainable}%", i + 1));
            }
        }
    }
    let expected = config.tasks.len() * config.methods.len();
    if n != expected {
        problems.push(format!("{}: {n} rows, expected {expected}", path.display()));
    }
    problems
}
