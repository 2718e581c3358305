//! The pictures (plotters, SVG): per task, test accuracy against trainable parameters beside
//! AdaPEFT's predicted Pareto front, for both models; and the heat map of the groups each task
//! selected.

use std::error::Error;
use std::path::Path;

use plotters::coord::combinators::LogCoord;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use adapeft_studies::outputs::plot_error as err;

use crate::methods::Method;
use crate::models::ModelKind;
use crate::report::Row;
use crate::study::{Front, HeatColumn};
use crate::tasks::Task;

type LogChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<LogCoord<f64>, RangedCoordf64>>;

/// Colour and marker shape (0 circle, 1 triangle, 2 cross, 3 square) of a method family.
fn family_style(family: &str) -> (RGBColor, usize) {
    match family {
        "full" => (RGBColor(0, 0, 0), 3),
        "head" => (RGBColor(230, 159, 0), 1),
        "bitfit" => (RGBColor(86, 180, 233), 1),
        "layernorm" => (RGBColor(0, 158, 115), 1),
        "lora" => (RGBColor(204, 121, 167), 3),
        "random" => (RGBColor(140, 140, 140), 2),
        "gradnorm" => (RGBColor(0, 114, 178), 2),
        "fisher" => (RGBColor(213, 94, 0), 2),
        "adapeft-fwd" => (RGBColor(200, 0, 40), 0),
        "adapeft-grad" => (RGBColor(110, 0, 170), 0),
        "adapeft-run" => (RGBColor(0, 150, 60), 0),
        _ => (RGBColor(100, 100, 100), 0),
    }
}

const FAMILIES: [&str; 11] = [
    "full",
    "head",
    "bitfit",
    "layernorm",
    "lora",
    "random",
    "gradnorm",
    "fisher",
    "adapeft-fwd",
    "adapeft-grad",
    "adapeft-run",
];

/// Markers of one family, with its legend entry.
fn draw_markers(
    chart: &mut LogChart<'_, '_>,
    points: &[(f64, f64)],
    family: &'static str,
) -> Result<(), Box<dyn Error>> {
    let (color, shape) = family_style(family);
    let fill = color.filled();
    let line = color.stroke_width(2);
    match shape {
        0 => chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 5, fill)))
            .map_err(err)?
            .label(family)
            .legend(move |(x, y)| Circle::new((x, y), 5, fill)),
        1 => chart
            .draw_series(points.iter().map(|&p| TriangleMarker::new(p, 6, fill)))
            .map_err(err)?
            .label(family)
            .legend(move |(x, y)| TriangleMarker::new((x, y), 6, fill)),
        2 => chart
            .draw_series(points.iter().map(|&p| Cross::new(p, 5, line)))
            .map_err(err)?
            .label(family)
            .legend(move |(x, y)| Cross::new((x, y), 5, line)),
        _ => chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], fill)),
            )
            .map_err(err)?
            .label(family)
            .legend(move |(x, y)| Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], fill)),
    };
    Ok(())
}

/// Test accuracy against trainable parameters (log x) for one (task, model).
fn accuracy_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    task: Task,
    model: ModelKind,
    rows: &[Row],
) -> Result<(), Box<dyn Error>> {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.task == task && r.model == model)
        .collect();
    let total = rows.first().map_or(1, |r| r.total) as f64;
    let x_max = rows.iter().map(|r| r.trainable).fold(total, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}: {} — test accuracy", task.name(), model.name()),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("trainable parameters (log)")
        .y_desc("test accuracy")
        .draw()
        .map_err(err)?;
    if let Some(frozen) = rows.iter().find(|r| r.method == Method::Frozen) {
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(LineSeries::new(
                [(1.0, frozen.acc_mean), (x_max, frozen.acc_mean)],
                grey.stroke_width(1),
            ))
            .map_err(err)?
            .label("frozen (no fine-tuning)")
            .legend(move |(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], grey));
    }
    for family in FAMILIES {
        let of: Vec<&&Row> = rows
            .iter()
            .filter(|r| r.method.family() == family && r.trainable >= 1.0)
            .collect();
        if of.is_empty() {
            continue;
        }
        let (color, _) = family_style(family);
        chart
            .draw_series(of.iter().map(|r| {
                PathElement::new(
                    [
                        (r.trainable, (r.acc_mean - r.acc_std).max(0.0)),
                        (r.trainable, (r.acc_mean + r.acc_std).min(1.0)),
                    ],
                    color,
                )
            }))
            .map_err(err)?;
        let points: Vec<(f64, f64)> = of.iter().map(|r| (r.trainable, r.acc_mean)).collect();
        draw_markers(&mut chart, &points, family)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// AdaPEFT's predicted Pareto fronts (both estimators) for one (task, model), with the
/// selections that were trained marked on them.
fn front_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    task: Task,
    model: ModelKind,
    fronts: &[Front],
    total: f64,
) -> Result<(), Box<dyn Error>> {
    let fronts: Vec<&Front> = fronts
        .iter()
        .filter(|f| f.task == task && f.model == model)
        .collect();
    // Each front is scaled to its own maximum: the two estimators' values are comparable in
    // shape, not necessarily in level.
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}: {} — predicted Pareto front", task.name(), model.name()),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((1.0..total * 1.5).log_scale(), 0.0..1.05)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("trainable parameters (log)")
        .y_desc("predicted loss reduction / its maximum")
        .draw()
        .map_err(err)?;
    for front in fronts {
        let family = front.scorer.name();
        let (color, _) = family_style(family);
        let max = front
            .points
            .iter()
            .map(|p| p.1)
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        // A staircase: the best predicted reduction within each budget.
        let mut stairs = Vec::new();
        let mut last = 0.0;
        for &(w, v) in front.points.iter().filter(|p| p.0 >= 1) {
            stairs.push((w as f64, last));
            stairs.push((w as f64, v / max));
            last = v / max;
        }
        stairs.push((total * 1.5, last));
        chart
            .draw_series(LineSeries::new(stairs, color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{family} front"))
            .legend(move |(x, y)| {
                PathElement::new([(x - 8, y), (x + 8, y)], color.stroke_width(2))
            });
        let marks: Vec<(f64, f64)> = front
            .chosen
            .iter()
            .filter(|c| c.1 >= 1)
            .map(|c| (c.1 as f64, c.2 / max))
            .collect();
        draw_markers(&mut chart, &marks, family)?;
        chart
            .draw_series(front.chosen.iter().filter(|c| c.1 >= 1).map(|c| {
                Text::new(
                    c.0.clone(),
                    (c.1 as f64, c.2 / max - 0.04),
                    ("sans-serif", 10).into_font().color(&color),
                )
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// `accuracy-<task>.svg`: one row per model, accuracy on the left and the front on the right.
pub fn accuracy_figure(
    path: &Path,
    task: Task,
    rows: &[Row],
    fronts: &[Front],
) -> Result<(), Box<dyn Error>> {
    let models = ModelKind::STUDY;
    let root = SVGBackend::new(path, (1400, 520 * models.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((models.len(), 2));
    for (i, model) in models.into_iter().enumerate() {
        let total = rows
            .iter()
            .find(|r| r.task == task && r.model == model)
            .map_or(1, |r| r.total) as f64;
        accuracy_panel(&panels[2 * i], task, model, rows)?;
        front_panel(&panels[2 * i + 1], task, model, fronts, total)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// `selected-groups.svg`: for each model, which groups (rows) each task (columns) selected
/// with AdaPEFT's gradient probe at the heat-map budget; the shade is the fraction of seeds.
pub fn heatmap_figure(
    path: &Path,
    heat: &[HeatColumn],
    tasks: &[Task],
    budget_pct: f64,
) -> Result<(), Box<dyn Error>> {
    const CELL_W: i32 = 90;
    const CELL_H: i32 = 14;
    const LABEL_W: i32 = 300;
    const TOP: i32 = 70;
    let models = ModelKind::STUDY;
    let rows_of = |m: ModelKind| {
        heat.iter()
            .find(|h| h.model == m)
            .map_or(0, |h| h.groups.len()) as i32
    };
    let max_rows = models.iter().map(|&m| rows_of(m)).max().unwrap_or(0);
    let panel_w = LABEL_W + CELL_W * tasks.len() as i32 + 30;
    let width = panel_w * models.len() as i32;
    let height = TOP + CELL_H * max_rows + 60;
    let root = SVGBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let title = format!(
        "Groups AdaPEFT (GradientProbe) selected at a {budget_pct}% budget, by task (shade: fraction of seeds)"
    );
    root.draw(&Text::new(title, (10, 10), ("sans-serif", 16)))
        .map_err(err)?;
    let small = ("sans-serif", 11).into_font();
    let fill = RGBColor(110, 0, 170);
    for (m, model) in models.into_iter().enumerate() {
        let x0 = m as i32 * panel_w;
        root.draw(&Text::new(
            model.name().to_string(),
            (x0 + 10, 35),
            ("sans-serif", 14),
        ))
        .map_err(err)?;
        for (t, task) in tasks.iter().enumerate() {
            let x = x0 + LABEL_W + CELL_W * t as i32;
            root.draw(&Text::new(
                task.name().to_string(),
                (x + 2, TOP - 16),
                small.clone(),
            ))
            .map_err(err)?;
            let Some(col) = heat.iter().find(|h| h.model == model && h.task == *task) else {
                continue;
            };
            for (g, (_, _, count)) in col.groups.iter().enumerate() {
                let y = TOP + CELL_H * g as i32;
                let share = *count as f64 / col.seeds.max(1) as f64;
                let style = if share > 0.0 {
                    fill.mix(0.15 + 0.85 * share).filled()
                } else {
                    RGBColor(245, 245, 245).filled()
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL_W - 2, y + CELL_H - 2)],
                    style,
                ))
                .map_err(err)?;
            }
        }
        if let Some(col) = heat.iter().find(|h| h.model == model) {
            for (g, (name, params, _)) in col.groups.iter().enumerate() {
                let y = TOP + CELL_H * g as i32;
                root.draw(&Text::new(
                    format!("{name} ({params})"),
                    (x0 + 10, y),
                    small.clone(),
                ))
                .map_err(err)?;
            }
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Every picture of the study into `dir`.
pub fn draw_all(
    dir: &Path,
    tasks: &[Task],
    rows: &[Row],
    fronts: &[Front],
    heat: &[HeatColumn],
    heat_budget_pct: f64,
) -> Result<(), Box<dyn Error>> {
    for &task in tasks {
        let path = dir.join(format!("accuracy-{}.svg", task.name()));
        accuracy_figure(&path, task, rows, fronts)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let path = dir.join("selected-groups.svg");
    heatmap_figure(&path, heat, tasks, heat_budget_pct)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}
