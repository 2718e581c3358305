//! The digits study: Hessian-informed parameter-efficient fine-tuning against every baseline,
//! on real data (1,797 handwritten 8x8 digits, vendored in `data/digits/`).
//!
//! Two models (an MLP and a row-token transformer) are pretrained on the plain ten-class task
//! (cached under `target/adapeft/digits/cache/`), then fine-tuned on three target tasks that
//! need different parts of the network (permuted labels, inverted intensities, rotated images)
//! with every method at matched steps: full fine-tuning, head only, BitFit, LayerNorm tuning,
//! LoRA at several ranks, and knapsack selections at matched budgets from random, gradient-norm,
//! Fisher and AdaPEFT (forward probe and gradient probe) scores.
//!
//! Run:
//!
//! ```text
//! cargo run -p adapeft-studies --bin digits                       # the full study (3 seeds; the README gives its time)
//! cargo run -p adapeft-studies --bin digits -- --quick            # the reduced study CI runs
//! cargo run -p adapeft-studies --bin digits -- --check [--quick]  # only validate the outputs of a past run
//! cargo run -p adapeft-studies --bin digits -- --oracle [--quick] # the oracle benchmark of the value models
//! cargo run -p adapeft-studies --bin digits -- --units [--quick]  # units below the tensor against the oracle and SMT, GPS, S2FT
//! cargo test --workspace                                          # with its unit tests (data, tasks, methods, training)
//! ```
//!
//! Outputs (in `target/adapeft/digits/`, or `target/adapeft/digits-quick/` for `--quick`):
//! `results.csv`, `results.md` (with the win/tie/loss summary), `runs.csv` (every seed), `accuracy-<task>.svg`,
//! `selected-groups.svg` and `selections/*.json`. A run ends by validating them (every file
//! present, every number finite) and exits non-zero if anything is wrong.

mod data;
mod methods;
mod models;
mod oracle;
mod plots;
mod report;
mod study;
mod tasks;
mod train;
mod units;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use adapeft_studies::paths::target_dir;
use adapeft_studies::progress::Progress;
use study::{HEATMAP_BUDGET, StudyConfig};

/// What the command line asked for.
struct Args {
    quick: bool,
    check_only: bool,
    oracle: bool,
    units: bool,
    /// `--oracle-subsets PATH`: with --units, the oracle benchmark's subsets file to compare
    /// with (default: the committed `docs/digits/oracle-subsets.csv`).
    oracle_subsets: Option<std::path::PathBuf>,
    mlp_only: bool,
    /// `--transformer-seeds N`: the transformer's seeds in the oracle benchmark.
    transformer_seeds: Option<usize>,
    /// `--transformer-subsets N`: random subsets in the transformer's reference front.
    transformer_subsets: Option<usize>,
}

const USAGE: &str =
    "usage: cargo run -p adapeft-studies --bin digits -- [--quick] [--check] [--oracle] [--units [--oracle-subsets PATH]]

  --quick   the reduced study (1 seed, fewer steps, budgets and LoRA ranks; < 2 minutes)
  --check   only validate the outputs of a previous run (of the same mode)
  --oracle  the oracle benchmark instead: every subset of the MLP's tensors (and a reference
            front of the transformer's) fine-tuned, each value model's rank correlation and
            regret (see studies/src/bin/digits/oracle.rs)
  --units   units below the tensor instead: AdaPEFT over output neurons against its
            per-tensor selection, the oracle's best per-tensor subset at the same budget, random
            neurons (S2FT), SMT's blocks and GPS-like rows (see studies/src/bin/digits/units.rs)
  --oracle-subsets PATH  with --units: the oracle benchmark's oracle-subsets.csv to compare
            with (default: the committed docs/digits/oracle-subsets.csv)
  --mlp-only  with --oracle: the MLP's 63 subsets only (minutes instead of an hour)
  --transformer-seeds N  with --oracle: the transformer's seeds (default 3; its runs cost
            ten times the MLP's)
  --transformer-subsets N  with --oracle: random subsets in the transformer's reference
            front, per task and seed (default 60)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        check_only: false,
        oracle: false,
        units: false,
        oracle_subsets: None,
        mlp_only: false,
        transformer_seeds: None,
        transformer_subsets: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--transformer-seeds" => {
                let n = argv.next().and_then(|n| n.parse().ok()).ok_or_else(|| {
                    format!("--transformer-seeds needs a number of seeds\n{USAGE}")
                })?;
                args.transformer_seeds = Some(n);
            }
            "--oracle-subsets" => {
                let path = argv.next().ok_or_else(|| {
                    format!("--oracle-subsets needs the path of an oracle-subsets.csv\n{USAGE}")
                })?;
                args.oracle_subsets = Some(path.into());
            }
            "--transformer-subsets" => {
                let n = argv.next().and_then(|n| n.parse().ok()).ok_or_else(|| {
                    format!("--transformer-subsets needs a number of subsets\n{USAGE}")
                })?;
                args.transformer_subsets = Some(n);
            }
            "--quick" => args.quick = true,
            "--check" => args.check_only = true,
            "--oracle" => args.oracle = true,
            "--units" => args.units = true,
            "--mlp-only" => args.mlp_only = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if args.units {
        return run_units(args.quick, args.oracle_subsets.as_deref());
    }
    if args.oracle {
        return run_oracle(
            args.quick,
            args.mlp_only,
            args.transformer_seeds,
            args.transformer_subsets,
        );
    }
    let config = if args.quick {
        StudyConfig::quick()
    } else {
        StudyConfig::full()
    };
    let base = target_dir().join("adapeft");
    let out = base.join(if args.quick { "digits-quick" } else { "digits" });
    if !args.check_only
        && let Err(e) = run(&config, &out, &base.join("digits").join("cache"))
    {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let problems = report::validate(&out, &config);
    if problems.is_empty() {
        println!(
            "check: every output in {} is present and every number finite",
            out.display()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("check failed for {}:", out.display());
        for p in &problems {
            eprintln!("  - {p}");
        }
        ExitCode::FAILURE
    }
}

/// The oracle benchmark: runs it and writes `oracle.md`, `oracle-subsets.csv` and
/// `oracle-regret.csv`.
fn run_oracle(
    quick: bool,
    mlp_only: bool,
    transformer_seeds: Option<usize>,
    transformer_subsets: Option<usize>,
) -> ExitCode {
    let mut config = if quick {
        oracle::OracleConfig::quick()
    } else {
        oracle::OracleConfig::full()
    };
    if let Some(n) = transformer_seeds {
        config.transformer_seeds = n;
    }
    if let Some(n) = transformer_subsets {
        config.transformer_subsets = n;
    }
    if mlp_only {
        config.transformer_seeds = 0;
    }
    let base = target_dir().join("adapeft");
    let out = base.join(match (quick, mlp_only) {
        (true, _) => "digits-oracle-quick",
        (false, true) => "digits-oracle-mlp",
        (false, false) => "digits-oracle",
    });
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let all = data::load(&data::default_path())?;
        let split = data::split(&all);
        let progress = Progress::new();
        let outcome = oracle::run(
            &config,
            &split,
            &base.join("digits").join("cache"),
            &progress,
        )?;
        std::fs::create_dir_all(&out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let mut command = match (quick, mlp_only) {
            (true, _) => "cargo run -p adapeft-studies --bin digits -- --oracle --quick",
            (false, true) => "cargo run -p adapeft-studies --bin digits -- --oracle --mlp-only",
            (false, false) => "cargo run -p adapeft-studies --bin digits -- --oracle",
        }
        .to_string();
        if let (Some(n), false) = (transformer_seeds, mlp_only) {
            command += &format!(" --transformer-seeds {n}");
        }
        if let (Some(n), false) = (transformer_subsets, mlp_only) {
            command += &format!(" --transformer-subsets {n}");
        }
        let md = oracle::markdown(&config, &outcome, &command);
        println!("\n{md}");
        std::fs::write(out.join("oracle.md"), &md)?;
        oracle::write_csv(&out.join("oracle-subsets.csv"), &outcome)?;
        oracle::write_regret_csv(&out.join("oracle-regret.csv"), &outcome)?;
        let problems = oracle::validate(&outcome);
        if !problems.is_empty() {
            return Err(problems.join("; ").into());
        }
        println!(
            "wrote {} ({} subset runs) in {:.1} s",
            out.display(),
            outcome.runs.len(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    })();
    exit_code(result)
}

/// The units benchmark: runs it and writes `units.md` and `units-runs.csv`, then validates
/// them (every run present, within its budget, every number finite).
fn run_units(quick: bool, oracle_subsets: Option<&Path>) -> ExitCode {
    let config = if quick {
        units::UnitsConfig::quick()
    } else {
        units::UnitsConfig::full()
    };
    let base = target_dir().join("adapeft");
    let out = base.join(if quick {
        "digits-units-quick"
    } else {
        "digits-units"
    });
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let all = data::load(&data::default_path())?;
        let split = data::split(&all);
        let progress = Progress::new();
        let outcome = units::run(
            &config,
            &split,
            &base.join("digits").join("cache"),
            &progress,
        )?;
        std::fs::create_dir_all(&out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("docs")
            .join("digits")
            .join("oracle-subsets.csv");
        let oracle_csv = oracle_subsets.map_or(committed, Path::to_path_buf);
        let mut oracle = units::Oracle::read(&oracle_csv)?;
        if oracle_subsets.is_none() {
            oracle.origin = "docs/digits/oracle-subsets.csv".into();
        }
        let mut command = if quick {
            "cargo run -p adapeft-studies --bin digits -- --units --quick"
        } else {
            "cargo run -p adapeft-studies --bin digits -- --units"
        }
        .to_string();
        if let Some(path) = oracle_subsets {
            command += &format!(" --oracle-subsets {}", path.display());
        }
        let md = units::markdown(&config, &outcome, Some(&oracle), &command);
        println!("\n{md}");
        std::fs::write(out.join("units.md"), &md)?;
        units::write_csv(&out.join("units-runs.csv"), &outcome)?;
        let problems = units::validate(&config, &outcome);
        if !problems.is_empty() {
            return Err(problems.join("; ").into());
        }
        println!(
            "wrote {} ({} runs) in {:.1} s",
            out.display(),
            outcome.runs.len(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    })();
    exit_code(result)
}

/// The exit code of a benchmark's run, printing its error.
fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &StudyConfig, out: &Path, cache: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let path = data::default_path();
    let all = data::load(&path)?;
    // The study's run is its own test: the data and the transforms are checked every time.
    data::check_split(&all).map_err(|e| format!("split check failed: {e}"))?;
    tasks::check_transforms(&all).map_err(|e| format!("task transform check failed: {e}"))?;
    let split = data::split(&all);
    println!(
        "digits: {} images from {} (train {}, test {}); mode: {}",
        all.len(),
        path.display(),
        split.train.len(),
        split.test.len(),
        if config.quick { "--quick" } else { "full" }
    );
    for task in &config.tasks {
        println!("  target task {:<16} needs {}", task.name(), task.needs());
    }

    let progress = Progress::new();
    let outcome = study::run(config, &split, cache, &progress)?;

    std::fs::create_dir_all(out.join("selections"))
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let rows = report::rows(config, &outcome.runs);
    println!();
    report::print_table(&rows);
    let summary = report::summary(config, &rows);
    println!("\n{summary}");

    let command = if config.quick {
        "cargo run -p adapeft-studies --bin digits -- --quick"
    } else {
        "cargo run -p adapeft-studies --bin digits"
    };
    report::write_csv(&out.join("results.csv"), &rows)?;
    report::write_runs_csv(&out.join("runs.csv"), &outcome.runs)?;
    let md = out.join("results.md");
    std::fs::write(&md, report::markdown(config, &outcome, &rows, command))
        .map_err(|e| format!("cannot write {}: {e}", md.display()))?;
    for (stem, json) in &outcome.selections {
        let p = out.join("selections").join(format!("{stem}.json"));
        std::fs::write(&p, json).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    plots::draw_all(
        out,
        &config.tasks,
        &rows,
        &outcome.fronts,
        &outcome.heat,
        100.0 * HEATMAP_BUDGET,
    )?;
    println!(
        "wrote {} ({} runs) in {:.1} s",
        out.display(),
        outcome.runs.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
