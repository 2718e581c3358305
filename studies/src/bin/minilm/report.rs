//! The results: one row per (task, method) at the rate chosen on validation, and one more per
//! AdaPEFT method at its own recommended rate, over the seeds; as CSV and Markdown with the
//! wins, ties and losses (decided by the 95% interval of the paired difference), the
//! issue's targets, the tuning grid and the validation a run ends with.

use std::fmt::Write as _;
use std::path::Path;

use adapeft::Selection;
use adapeft_studies::outputs::{self, write_csv};
use adapeft_studies::stats::{Verdict, interval95, mean, paired};

use crate::StudyConfig;
use crate::data::Task;
use crate::methods::Method;
use crate::runs::{Run, best_rate};

/// At which rate a row's runs trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Variant {
    /// The grid's rate with the best validation accuracy (first seed), for every seed.
    Tuned,
    /// Each seed's selection's own recommended rate by the older rule, the lowest held-out
    /// loss of its trials (AdaPEFT; the rule of the binaries before 7e69906).
    Own,
    /// Each seed's selection's own recommended rate by the library's default, the rate
    /// tried a step below the lowest held-out loss's (AdaPEFT).
    OwnBelow,
}

impl Variant {
    /// Whether the rows train at the selection's own rate.
    pub fn is_own(self) -> bool {
        self != Variant::Tuned
    }
}

/// One (task, method, variant) over the seeds.
#[derive(Debug, Clone)]
pub struct Row {
    pub task: String,
    pub method: Method,
    pub variant: Variant,
    /// The rates trained at, per seed.
    pub rates: Vec<f64>,
    pub seeds: Vec<u64>,
    /// Test accuracy per seed (in `seeds` order).
    pub tests: Vec<f64>,
    pub test_mean: f64,
    /// Half-width of the 95% interval of the test accuracy (NaN for one seed).
    pub test_half: f64,
    pub validation_mean: f64,
    pub trainable: f64,
    pub total: f64,
    pub select_seconds: f64,
    pub train_seconds: f64,
    pub seconds_per_step: f64,
    pub peak_rss: f64,
    pub saved_bytes: f64,
    pub checkpoint_bytes: f64,
    pub chosen: String,
}

impl Row {
    /// The row's label: the method's, with "(own rate)" for [`Variant::OwnBelow`] and "(own rate,
    /// lowest loss)" for [`Variant::Own`].
    pub fn label(&self) -> String {
        match self.variant {
            Variant::Tuned => self.method.name(),
            Variant::Own => format!("{} (own rate, lowest loss)", self.method.name()),
            Variant::OwnBelow => format!("{} (own rate)", self.method.name()),
        }
    }

    /// The rates in words: one rate, or each seed's.
    pub fn rate_label(&self) -> String {
        let all = crate::runs::unique(self.rates.clone());
        let show = |r: &f64| {
            if *r == 0.0 {
                "-".to_string()
            } else {
                format!("{r:e}")
            }
        };
        all.iter().map(show).collect::<Vec<_>>().join(", ")
    }

    /// Test accuracy with its interval.
    pub fn accuracy_label(&self) -> String {
        if self.test_half.is_nan() {
            format!("{:.3}", self.test_mean)
        } else {
            format!("{:.3} ± {:.3}", self.test_mean, self.test_half)
        }
    }

    /// Selection time as a share of the training run's.
    pub fn select_share(&self) -> f64 {
        self.select_seconds / self.train_seconds
    }

    /// The test accuracies of `self` and `other` on the seeds both have, and those seeds.
    fn paired_with(&self, other: &Row) -> Option<(Vec<f64>, Vec<f64>, Vec<u64>)> {
        let (mut a, mut b, mut seeds) = (Vec::new(), Vec::new(), Vec::new());
        for (i, s) in self.seeds.iter().enumerate() {
            if let Some(j) = other.seeds.iter().position(|t| t == s) {
                a.push(self.tests[i]);
                b.push(other.tests[j]);
                seeds.push(*s);
            }
        }
        (!a.is_empty()).then_some((a, b, seeds))
    }

    /// `self - other` on the seeds both have: mean, 95% half-width, verdict.
    pub fn against(&self, other: &Row) -> Option<(f64, f64, Verdict)> {
        self.paired_with(other).map(|(a, b, _)| paired(&a, &b))
    }
}

/// The trained tensors of a selection in words: kinds and counts, LoRA ranks.
pub fn describe(selection: &Selection) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut lora = [0usize; 2];
    // Units below the tensor (`<module>.block[i,j]`, `.in[i]`, `.out[j]`), counted by kind:
    // a selection at 1% holds hundreds of them.
    let mut units: std::collections::BTreeMap<String, usize> = Default::default();
    for g in selection.chosen() {
        let name = &g.score.name;
        match g.lora {
            Some(o) if o.rank == 4 => lora[0] += 1,
            Some(_) => lora[1] += 1,
            None => match name
                .rsplit('.')
                .next()
                .and_then(|leaf| leaf.split_once('['))
            {
                Some((kind, _)) => *units.entry(kind.to_string()).or_default() += 1,
                None => parts.push(name.replace("bert.", "")),
            },
        }
    }
    if lora[0] + lora[1] > 0 {
        parts.push(format!("LoRA r4 x{} r8 x{}", lora[0], lora[1]));
    }
    for (kind, count) in units {
        parts.push(format!("{kind} x{count}"));
    }
    parts.join(" ")
}

fn row_of(task: &str, method: &Method, variant: Variant, of: Vec<&Run>) -> Option<Row> {
    if of.is_empty() {
        return None;
    }
    let m = |f: fn(&Run) -> f64| mean(&of.iter().map(|r| f(r)).collect::<Vec<_>>());
    let tests: Vec<f64> = of.iter().map(|r| r.test).collect();
    let (test_mean, test_half) = interval95(&tests);
    Some(Row {
        task: task.to_string(),
        method: method.clone(),
        variant,
        rates: of.iter().map(|r| r.rate).collect(),
        seeds: of.iter().map(|r| r.seed).collect(),
        tests,
        test_mean,
        test_half,
        validation_mean: m(|r| r.validation),
        trainable: m(|r| r.trainable as f64),
        total: m(|r| r.total as f64),
        select_seconds: m(|r| r.select_seconds),
        train_seconds: m(|r| r.train_seconds),
        seconds_per_step: m(|r| r.train_seconds / r.steps.max(1) as f64),
        peak_rss: m(|r| r.peak_rss as f64),
        saved_bytes: m(|r| r.saved_bytes as f64),
        checkpoint_bytes: m(|r| r.checkpoint_bytes as f64),
        chosen: of[0].chosen.clone(),
    })
}

/// The rows of `runs`: per task and method, the tuned row and (AdaPEFT) the own-rate row.
pub fn rows(config: &StudyConfig, tasks: &[Task], runs: &[Run]) -> Vec<Row> {
    let mut rows = Vec::new();
    let first = config.seeds[0];
    for task in tasks {
        for method in &config.methods {
            let name = method.name();
            let mut of: Vec<&Run> = runs
                .iter()
                .filter(|r| r.task == task.name && r.method == name)
                .collect();
            of.sort_by_key(|r| r.seed);
            let firsts: Vec<Run> = of
                .iter()
                .filter(|r| r.seed == first)
                .map(|r| (*r).clone())
                .collect();
            if let Some(rate) = best_rate(&firsts, &config.rates(method)) {
                let tuned: Vec<&Run> = config
                    .seeds
                    .iter()
                    .filter_map(|s| of.iter().find(|r| r.seed == *s && r.rate == rate).copied())
                    .collect();
                rows.extend(row_of(&task.name, method, Variant::Tuned, tuned));
            }
            if method.recommends_rate() {
                let own: Vec<&Run> = config
                    .seeds
                    .iter()
                    .filter_map(|s| {
                        of.iter()
                            .find(|r| r.seed == *s && Some(r.rate) == r.recommended)
                            .copied()
                    })
                    .collect();
                rows.extend(row_of(&task.name, method, Variant::Own, own));
                let below: Vec<&Run> = config
                    .seeds
                    .iter()
                    .filter_map(|s| {
                        of.iter()
                            .find(|r| r.seed == *s && r.step_below == Some(r.rate))
                            .copied()
                    })
                    .collect();
                rows.extend(row_of(&task.name, method, Variant::OwnBelow, below));
            }
        }
    }
    rows
}

const HEADER: [&str; 18] = [
    "task",
    "method",
    "rate",
    "seeds",
    "test_accuracy",
    "test_ci95_half_width",
    "validation_accuracy",
    "trainable_params",
    "trainable_pct",
    "seconds_per_step",
    "peak_rss_mb",
    "select_seconds",
    "select_pct_of_training",
    "train_seconds",
    "saved_bytes",
    "saved_pct_of_checkpoint",
    "test_per_seed",
    "trained",
];

fn csv_rows(rows: &[Row]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            vec![
                r.task.clone(),
                r.label(),
                r.rate_label(),
                r.seeds.len().to_string(),
                format!("{:.4}", r.test_mean),
                if r.test_half.is_nan() {
                    String::new()
                } else {
                    format!("{:.4}", r.test_half)
                },
                format!("{:.4}", r.validation_mean),
                format!("{:.0}", r.trainable),
                format!("{:.4}", 100.0 * r.trainable / r.total),
                format!("{:.3}", r.seconds_per_step),
                format!("{:.0}", r.peak_rss / 1e6),
                format!("{:.2}", r.select_seconds),
                format!("{:.1}", 100.0 * r.select_share()),
                format!("{:.1}", r.train_seconds),
                format!("{:.0}", r.saved_bytes),
                format!("{:.3}", 100.0 * r.saved_bytes / r.checkpoint_bytes),
                r.tests
                    .iter()
                    .map(|t| format!("{t:.4}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                r.chosen.clone(),
            ]
        })
        .collect()
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

fn markdown_table(rows: &[&Row]) -> String {
    let mut s = String::from(
        "| method | rate | seeds | test accuracy | validation | trainable | % | s / step | peak RSS | selection s | selection / training | saved |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.3} | {} | {:.3} | {:.2} | {:.0} MB | {:.1} | {:.0}% | {}B |",
            r.label(),
            r.rate_label(),
            r.seeds.len(),
            r.accuracy_label(),
            r.validation_mean,
            fmt_params(r.trainable),
            100.0 * r.trainable / r.total,
            r.seconds_per_step,
            r.peak_rss / 1e6,
            r.select_seconds,
            100.0 * r.select_share(),
            fmt_params(r.saved_bytes),
        );
    }
    s
}

fn find<'a>(rows: &[&'a Row], method: &Method, variant: Variant) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.method == *method && r.variant == variant)
        .copied()
}

fn versus(ours: &Row, theirs: &Row) -> String {
    match ours.against(theirs) {
        Some((d, h, v)) if h.is_nan() => {
            format!("{} {} ({:+.1} points)", v.verb(), theirs.label(), 100.0 * d)
        }
        Some((d, h, v)) => format!(
            "{} {} ({:+.1} ± {:.1} points)",
            v.verb(),
            theirs.label(),
            100.0 * d,
            100.0 * h
        ),
        None => format!("no common seed with {}", theirs.label()),
    }
}

/// The references AdaPEFT is compared with.
fn references() -> Vec<Method> {
    vec![
        Method::Lora(1),
        Method::Lora(2),
        Method::Lora(4),
        Method::Lora(8),
        Method::BitFit,
        Method::LayerNorm,
        Method::Probe,
        Method::Full,
    ]
}

/// Where AdaPEFT wins, ties and loses, per task.
pub fn summary(rows: &[Row], tasks: &[Task]) -> String {
    let mut s = String::new();
    for task in tasks {
        let of: Vec<&Row> = rows.iter().filter(|r| r.task == task.name).collect();
        if of.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n**{}** ({} test rows):\n", task.name, task.test.len());
        for ours in of.iter().filter(|r| r.method.family() == "adapeft") {
            let parts: Vec<String> = references()
                .iter()
                .filter_map(|m| find(&of, m, Variant::Tuned))
                .map(|t| versus(ours, t))
                .collect();
            let _ = writeln!(
                s,
                "- {} ({:.3}% trainable, {}): {}",
                ours.label(),
                100.0 * ours.trainable / ours.total,
                ours.accuracy_label(),
                parts.join("; ")
            );
        }
    }
    s
}

/// The targets, each with what the study shows.
/// A target's verdict in words.
fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

pub fn targets(rows: &[Row], tasks: &[Task]) -> String {
    let mut s = String::new();
    for task in tasks {
        let of: Vec<&Row> = rows.iter().filter(|r| r.task == task.name).collect();
        if of.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n**{}**\n", task.name);
        // Full fine-tuning above the probe: the encoder matters.
        if let (Some(full), Some(probe)) = (
            find(&of, &Method::Full, Variant::Tuned),
            find(&of, &Method::Probe, Variant::Tuned),
        ) {
            let _ = writeln!(
                s,
                "- The encoder matters (full fine-tuning above the linear probe by more than the interval): full fine-tuning {}",
                versus(full, probe)
            );
        }
        // AdaPEFT at <= 1%: no loss to the best reference, one win.
        let refs: Vec<&Row> = [
            Method::Lora(4),
            Method::Lora(8),
            Method::BitFit,
            Method::LayerNorm,
            Method::Probe,
        ]
        .iter()
        .filter_map(|m| find(&of, m, Variant::Tuned))
        .collect();
        let best_ref = refs
            .iter()
            .max_by(|a, b| a.test_mean.total_cmp(&b.test_mean))
            .copied();
        let small: Vec<&Row> = of
            .iter()
            .filter(
                |r| matches!(r.method, Method::AdaPeft(f) | Method::AdaPeftLora(f) if f <= 0.01),
            )
            .copied()
            .collect();
        if let Some(best) = best_ref {
            let verdicts: Vec<(String, Verdict)> = small
                .iter()
                .filter_map(|r| r.against(best).map(|(_, _, v)| (r.label(), v)))
                .collect();
            let losses: Vec<&String> = verdicts
                .iter()
                .filter(|(_, v)| *v == Verdict::Loss)
                .map(|(l, _)| l)
                .collect();
            let wins = refs
                .iter()
                .flat_map(|t| small.iter().filter_map(move |r| r.against(t)))
                .filter(|(_, _, v)| *v == Verdict::Win)
                .count();
            let _ = writeln!(
                s,
                "- AdaPEFT at <= 1% against the best of LoRA r=4/8, BitFit, LayerNorm and the probe ({}, {}): {} ({} of {} rows lose to it{}); wins over any of them: {wins}",
                best.label(),
                best.accuracy_label(),
                met(losses.is_empty() && wins > 0),
                losses.len(),
                verdicts.len(),
                if losses.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        losses
                            .iter()
                            .map(|l| l.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
        // Auto: never below the probe on any seed; within the interval of the best method
        // whose size is within 2x of its own.
        for variant in [Variant::Tuned, Variant::Own, Variant::OwnBelow] {
            let Some(auto) = find(&of, &Method::AdaPeftAuto, variant) else {
                continue;
            };
            if let Some(probe) = find(&of, &Method::Probe, Variant::Tuned) {
                let below: Vec<u64> = auto
                    .paired_with(probe)
                    .map(|(a, b, seeds)| {
                        a.iter()
                            .zip(&b)
                            .zip(&seeds)
                            .filter(|((x, y), _)| x < y)
                            .map(|(_, s)| *s)
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "- {} never below the linear probe on a seed: {}{}",
                    auto.label(),
                    met(below.is_empty()),
                    if below.is_empty() {
                        String::new()
                    } else {
                        format!(" (below on seeds {below:?})")
                    }
                );
            }
            let near = of
                .iter()
                .filter(|r| {
                    r.method != Method::AdaPeftAuto
                        && r.trainable <= 2.0 * auto.trainable
                        && r.trainable >= auto.trainable / 2.0
                })
                .max_by(|a, b| a.test_mean.total_cmp(&b.test_mean));
            if let Some(near) = near {
                let v = auto.against(near).map(|(_, _, v)| v);
                let _ = writeln!(
                    s,
                    "- {} ({} trainable) against the best method within 2x of its size: {}: {}",
                    auto.label(),
                    fmt_params(auto.trainable),
                    met(v != Some(Verdict::Loss)),
                    versus(auto, near)
                );
            }
        }
        // Own rate against the grid's best.
        for ours in of.iter().filter(|r| r.variant.is_own()) {
            if let Some(tuned) = find(&of, &ours.method, Variant::Tuned) {
                let v = ours.against(tuned).map(|(_, _, v)| v);
                let _ = writeln!(
                    s,
                    "- {} within the interval of the grid's best: {}: {}",
                    ours.label(),
                    met(v != Some(Verdict::Loss)),
                    versus(ours, tuned)
                );
            }
        }
        // Selection time.
        let shares: Vec<(String, f64)> = of
            .iter()
            .filter(|r| r.method.family() == "adapeft" && r.variant == Variant::Tuned)
            .map(|r| (r.label(), r.select_share()))
            .collect();
        if !shares.is_empty() {
            let worst = shares.iter().map(|(_, x)| *x).fold(0.0, f64::max);
            let _ = writeln!(
                s,
                "- AdaPEFT's selection time at most 5% of its training run's: {} (from {:.0}% to {:.0}%: {})",
                met(worst <= 0.05),
                100.0 * shares.iter().map(|(_, x)| *x).fold(f64::INFINITY, f64::min),
                100.0 * worst,
                shares
                    .iter()
                    .map(|(l, x)| format!("{l} {:.0}%", 100.0 * x))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        units_targets(&mut s, &of);
    }
    s
}

/// Issue 21's targets for units below the tensor on one task (nothing when the task has no
/// unit-level rows): at each unit budget (0.1% and 1% in the study), unit-level AdaPEFT (blocks, rows) against LoRA at the
/// same or a larger size and against the published baselines at its budget; and the unit
/// front against LoRA's up to 1%. "Beats each baseline on at least one task" is read across
/// the tasks' lines.
fn units_targets(s: &mut String, of: &[&Row]) {
    let tuned = |m: &Method| find(of, m, Variant::Tuned);
    let ours_all: Vec<&Row> = of
        .iter()
        .filter(|r| {
            r.variant == Variant::Tuned
                && matches!(r.method, Method::AdaPeftBlocks(_) | Method::AdaPeftRows(_))
        })
        .copied()
        .collect();
    if ours_all.is_empty() {
        return;
    }
    let mut loras: Vec<&Row> = of
        .iter()
        .filter(|r| r.variant == Variant::Tuned && matches!(r.method, Method::Lora(_)))
        .copied()
        .collect();
    loras.sort_by(|a, b| a.trainable.total_cmp(&b.trainable));
    // The study's unit budgets (0.1% and 1%; the quick form's own), in order.
    let mut fractions: Vec<f64> = ours_all
        .iter()
        .filter_map(|r| match r.method {
            Method::AdaPeftBlocks(f) | Method::AdaPeftRows(f) => Some(f),
            _ => None,
        })
        .collect();
    fractions.sort_by(f64::total_cmp);
    fractions.dedup();
    for fraction in fractions {
        for method in [
            Method::AdaPeftBlocks(fraction),
            Method::AdaPeftRows(fraction),
        ] {
            let Some(ours) = tuned(&method) else { continue };
            // LoRA of at least its size (1% slack: sizes are not exactly equal).
            let larger: Vec<&&Row> = loras
                .iter()
                .filter(|l| l.trainable >= 0.99 * ours.trainable)
                .collect();
            let losses = larger
                .iter()
                .filter(|l| matches!(ours.against(l), Some((_, _, Verdict::Loss))))
                .count();
            let _ = writeln!(
                s,
                "- {} ({} trainable, {}) against LoRA of the same or a larger size: {} ({})",
                ours.label(),
                fmt_params(ours.trainable),
                ours.accuracy_label(),
                met(losses == 0 && !larger.is_empty()),
                if larger.is_empty() {
                    "no LoRA row that large".to_string()
                } else {
                    larger
                        .iter()
                        .map(|l| versus(ours, l))
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            );
            let baselines: Vec<&Row> = [
                Method::RandomNeurons(fraction),
                Method::SmtBlocks(fraction),
                Method::GpsRows(fraction),
            ]
            .iter()
            .filter_map(&tuned)
            .collect();
            if !baselines.is_empty() {
                let _ = writeln!(
                    s,
                    "- {} against the published baselines at its budget: {}",
                    ours.label(),
                    baselines
                        .iter()
                        .map(|b| versus(ours, b))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
        }
    }
    // The front: every LoRA point of at most 1% of the parameters against the best unit row
    // no larger than it.
    let mut points = Vec::new();
    for lora in loras.iter().filter(|l| l.trainable <= 0.01 * l.total) {
        let best = ours_all
            .iter()
            .filter(|r| r.trainable <= lora.trainable)
            .max_by(|a, b| a.test_mean.total_cmp(&b.test_mean));
        points.push((lora, best.copied()));
    }
    if !points.is_empty() {
        let verdicts: Vec<Option<Verdict>> = points
            .iter()
            .map(|(l, b)| b.and_then(|b| b.against(l)).map(|(_, _, v)| v))
            .collect();
        let above = points.iter().zip(&verdicts).all(|((l, b), v)| {
            b.is_some_and(|b| b.test_mean >= l.test_mean) && *v != Some(Verdict::Loss)
        }) && verdicts.contains(&Some(Verdict::Win));
        let _ = writeln!(
            s,
            "- The unit front above LoRA's up to 1% (each LoRA point matched by a no larger unit row with a higher mean and no loss, one win): {} ({})",
            met(above),
            points
                .iter()
                .map(|(l, b)| match b {
                    Some(b) => format!("{} {}: {}", l.label(), fmt_params(l.trainable), {
                        let v = versus(b, l);
                        format!("{} {v}", b.label())
                    }),
                    None => format!("{}: no unit row that small", l.label()),
                })
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

fn tuning_rows(runs: &[Run], first_seed: u64) -> Vec<Vec<String>> {
    runs.iter()
        .filter(|r| r.seed == first_seed)
        .map(|r| {
            vec![
                r.task.clone(),
                r.method.clone(),
                format!("{:e}", r.rate),
                r.seed.to_string(),
                format!("{:.4}", r.validation),
                r.recommended.map_or(String::new(), |x| format!("{x:e}")),
            ]
        })
        .collect()
}

/// The current commit, for the record (`unknown` outside a git checkout).
fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Writes `results.csv`, `tuning.csv` and `results.md` from every recorded run.
pub fn write_all(
    out: &Path,
    config: &StudyConfig,
    tasks: &[Task],
    runs: &[Run],
) -> Result<(), Box<dyn std::error::Error>> {
    let rows = rows(config, tasks, runs);
    write_csv(&out.join("results.csv"), HEADER, csv_rows(&rows))?;
    write_csv(
        &out.join("tuning.csv"),
        [
            "task",
            "method",
            "rate",
            "seed",
            "validation_accuracy",
            "recommended_rate",
        ],
        tuning_rows(runs, config.seeds[0]),
    )?;
    let mut md = String::from("# MiniLM study results\n\n");
    let units = config.methods.iter().any(|m| m.units().is_some());
    let flags: Vec<&str> = [(config.quick, "--quick"), (units, "--units")]
        .into_iter()
        .filter_map(|(on, flag)| on.then_some(flag))
        .collect();
    let mut command = "cargo run -p adapeft-studies --bin minilm".to_string();
    if !flags.is_empty() {
        command.push_str(" -- ");
        command.push_str(&flags.join(" "));
    }
    let train_seconds: f64 = runs.iter().map(|r| r.train_seconds).sum();
    let _ = writeln!(
        md,
        "Command: `{command}` (at commit {}; {} training runs, {:.1} hours of training in all).\n",
        commit(),
        runs.len(),
        train_seconds / 3600.0
    );
    let _ = writeln!(
        md,
        "Protocol: every training row of the file up to {} per class, the last {:.0}% of each class held out as validation; {} test rows per class, used only for these numbers. Batches of {}, at most {} tokens, {} epochs of Adam; the new head always trained at {}. Encoder rates chosen on validation with seed {}: full fine-tuning from {:?}, every other method from {:?}; AdaPEFT also at its own recommended rate (its selection's held-out trials: the last {} of {} selection batches, rates {:?}, {} steps each). Seeds {:?}: mean test accuracy ± the half-width of its 95% Student-t interval; a win or loss only where the 95% interval of the paired (same-seed) difference excludes zero.\n",
        config.train_per_class,
        100.0 * config.validation_fraction,
        config.test_per_class,
        config.batch_size,
        config.max_len,
        config.epochs,
        crate::methods::LR_HEAD,
        config.seeds[0],
        config.full_rates,
        config.subset_rates,
        config.held_out.batches,
        config.select_batches + config.held_out.batches,
        config.held_out.rates,
        config.held_out.steps,
        config.seeds,
    );
    md.push_str("\"rate\": the encoder's Adam rate (`-`: the encoder does not train); \"seeds\": how many seeds the row has (fewer than the study's while it runs); \"peak RSS\": the process's peak resident memory during training (the model, its copies and the data included, and memory the allocator kept from earlier runs; 0: not measured); \"selection / training\": the selection's seconds (held-out trials included) against the training run's.\n");
    for task in tasks {
        let of: Vec<&Row> = rows.iter().filter(|r| r.task == task.name).collect();
        if of.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "\n## {} ({} training, {} validation, {} test rows)\n\n{}",
            task.name,
            task.train.len(),
            task.validation.len(),
            task.test.len(),
            markdown_table(&of)
        );
    }
    md.push_str("\n## Where AdaPEFT wins, ties and loses\n");
    md.push_str(&summary(&rows, tasks));
    md.push_str("\n## The targets\n");
    md.push_str(&targets(&rows, tasks));
    md.push_str("\n## What the selections trained (each row's first seed)\n\n");
    for r in rows
        .iter()
        .filter(|r| !r.chosen.is_empty() && r.variant == Variant::Tuned)
    {
        let _ = writeln!(md, "- {} / {}: {}", r.task, r.label(), r.chosen);
    }
    std::fs::write(out.join("results.md"), md)?;
    Ok(())
}

/// The files a run writes.
pub fn expected_files(config: &StudyConfig) -> Vec<String> {
    let mut files = vec![
        "results.csv".to_string(),
        "tuning.csv".into(),
        "results.md".into(),
    ];
    for t in config.trained_tasks() {
        files.push(format!("runs-{t}.csv"));
        files.push(format!("accuracy-{t}.svg"));
    }
    files
}

/// Every problem with a run's outputs: missing files, rows missing for a task this run
/// trained, numbers that are not finite, accuracies outside `[0, 1]`, selections over their
/// budget.
pub fn validate(dir: &Path, config: &StudyConfig) -> Vec<String> {
    let mut problems = outputs::check_files(dir, &expected_files(config));
    let path = dir.join("results.csv");
    let Ok(mut reader) = csv::Reader::from_path(&path) else {
        return problems;
    };
    let trained = config.trained_tasks();
    let mut per_task = std::collections::HashMap::<String, usize>::new();
    for (i, record) in reader.records().enumerate() {
        let Ok(record) = record else {
            problems.push(format!("{}: row {} unreadable", path.display(), i + 1));
            continue;
        };
        *per_task.entry(record[0].to_string()).or_default() += 1;
        if trained.contains(&&record[0]) && record[3] != config.seeds.len().to_string() {
            problems.push(format!(
                "row {}: {} on {} seeds, expected {}",
                i + 1,
                &record[1],
                &record[3],
                config.seeds.len()
            ));
        }
        for j in [4, 6, 7, 8, 9, 11, 12, 13, 14] {
            let field = &record[j];
            match field.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    if (j == 4 || j == 6) && !(0.0..=1.0).contains(&v) {
                        problems.push(format!("row {}: {} {v}", i + 1, HEADER[j]));
                    }
                }
                _ => problems.push(format!("row {}: {} = {field:?}", i + 1, HEADER[j])),
            }
        }
        let method = &record[1];
        let fraction = config
            .methods
            .iter()
            .find(|m| {
                let base = method
                    .strip_suffix(" (own rate)")
                    .or_else(|| method.strip_suffix(" (own rate, lowest loss)"))
                    .unwrap_or(method);
                base == m.name()
            })
            .and_then(Method::fraction);
        if let Some(f) = fraction {
            let pct: f64 = record[8].parse().unwrap_or(f64::NAN);
            if pct.is_nan() || pct > 100.0 * f * 1.0001 {
                problems.push(format!("row {}: {method} trains {pct}%", i + 1));
            }
        }
    }
    let own = config
        .methods
        .iter()
        .filter(|m| m.recommends_rate())
        .count();
    // The tuned row of every method, and AdaPEFT's two own-rate rows (each rule).
    let expected = config.methods.len() + 2 * own;
    for task in trained {
        let n = per_task.get(task).copied().unwrap_or(0);
        if n != expected {
            problems.push(format!(
                "{}: {n} rows of {task}, expected {expected}",
                path.display()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tuned row of `method` on "noun" with these per-seed test accuracies.
    fn row(method: Method, tests: &[f64], trainable: f64) -> Row {
        Row {
            task: "noun".into(),
            method,
            variant: Variant::Tuned,
            rates: vec![1e-3; tests.len()],
            seeds: (1..=tests.len() as u64).collect(),
            tests: tests.to_vec(),
            test_mean: interval95(tests).0,
            test_half: interval95(tests).1,
            validation_mean: 0.0,
            trainable,
            total: 22.6e6,
            select_seconds: 1.0,
            train_seconds: 100.0,
            seconds_per_step: 0.5,
            peak_rss: 0.0,
            saved_bytes: 0.0,
            checkpoint_bytes: 0.0,
            chosen: String::new(),
        }
    }

    fn lines(rows: &[Row]) -> Vec<String> {
        let of: Vec<&Row> = rows.iter().collect();
        let mut s = String::new();
        units_targets(&mut s, &of);
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn the_unit_targets_follow_the_intervals() {
        let good = [0.70, 0.72, 0.71];
        let bad = [0.60, 0.61, 0.62];
        // Blocks at 0.1% beat LoRA r = 1 (larger) and every baseline: met, front above.
        let rows = vec![
            row(Method::AdaPeftBlocks(0.001), &good, 22_000.0),
            row(Method::Lora(1), &bad, 47_000.0),
            row(Method::RandomNeurons(0.001), &bad, 22_000.0),
            row(Method::SmtBlocks(0.001), &bad, 22_000.0),
        ];
        let out = lines(&rows);
        assert!(
            out[0].contains("against LoRA of the same or a larger size: met"),
            "{out:?}"
        );
        assert!(out[1].contains("wins random neurons 0.1%"), "{out:?}");
        assert!(out[1].contains("wins SMT blocks 0.1%"), "{out:?}");
        assert!(out.last().unwrap().contains("up to 1%") && out.last().unwrap().contains(": met"));
        // The same with the accuracies swapped: a loss to LoRA, no front above it.
        let rows = vec![
            row(Method::AdaPeftBlocks(0.001), &bad, 22_000.0),
            row(Method::Lora(1), &good, 47_000.0),
        ];
        let out = lines(&rows);
        assert!(
            out[0].contains("**missed**") && out[0].contains("loses LoRA r=1"),
            "{out:?}"
        );
        assert!(out.last().unwrap().contains("**missed**"), "{out:?}");
        // LoRA smaller than every unit row: not a comparison "at the same or a larger size",
        // and the front has no unit row to put against it.
        let rows = vec![
            row(Method::AdaPeftRows(0.01), &good, 225_000.0),
            row(Method::Lora(1), &bad, 47_000.0),
        ];
        let out = lines(&rows);
        assert!(out[0].contains("no LoRA row that large"), "{out:?}");
        assert!(
            out.last().unwrap().contains("no unit row that small"),
            "{out:?}"
        );
        // No unit-level row: nothing is written.
        assert!(lines(&[row(Method::Lora(1), &bad, 47_000.0)]).is_empty());
    }
}
