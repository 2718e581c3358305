//! The pictures (plotters, SVG): per task, test accuracy (mean and 95% interval over the
//! seeds) against trainable parameters on a log scale, one colour per method family; AdaPEFT
//! at its own recommended rate hollow.

use std::error::Error;
use std::path::Path;

use adapeft_studies::outputs::plot_error as err;
use plotters::prelude::*;

use crate::StudyConfig;
use crate::data::Task;
use crate::report::{Row, rows};
use crate::runs::Run;

const FAMILIES: [(&str, RGBColor); 6] = [
    ("probe", RGBColor(230, 159, 0)),
    ("full", RGBColor(0, 0, 0)),
    ("rule", RGBColor(86, 180, 233)),
    ("lora", RGBColor(204, 121, 167)),
    ("baseline", RGBColor(0, 114, 178)),
    ("adapeft", RGBColor(0, 150, 60)),
];

fn accuracy_figure(path: &Path, task: &str, rows: &[&Row]) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x_max = rows.iter().map(|r| r.trainable).fold(1.0, f64::max) * 3.0;
    let x_min = rows
        .iter()
        .map(|r| r.trainable)
        .fold(f64::INFINITY, f64::min)
        .max(1.0)
        / 3.0;
    let half = |r: &Row| {
        if r.test_half.is_nan() {
            0.0
        } else {
            r.test_half
        }
    };
    let y_min = rows
        .iter()
        .map(|r| r.test_mean - half(r))
        .fold(1.0, f64::min)
        .clamp(0.0, 1.0);
    let y_max = rows
        .iter()
        .map(|r| r.test_mean + half(r))
        .fold(0.0, f64::max)
        .clamp(0.0, 1.0);
    let pad = ((y_max - y_min) * 0.08).max(0.01);
    let (y_min, y_max) = ((y_min - pad).max(0.0), (y_max + pad).min(1.0));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{task}: test accuracy (95% interval over seeds) against trainable parameters"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((x_min..x_max).log_scale(), y_min..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("trainable parameters (log scale)")
        .y_desc("test accuracy")
        .draw()
        .map_err(err)?;
    for (family, color) in FAMILIES {
        let of: Vec<&&Row> = rows
            .iter()
            .filter(|r| r.method.family() == family)
            .collect();
        if of.is_empty() {
            continue;
        }
        chart
            .draw_series(of.iter().map(|r| {
                PathElement::new(
                    vec![
                        (r.trainable, r.test_mean - half(r)),
                        (r.trainable, r.test_mean + half(r)),
                    ],
                    color.stroke_width(1),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(of.iter().map(|r| {
                let style = if r.variant.is_own() {
                    color.stroke_width(2)
                } else {
                    color.filled()
                };
                EmptyElement::at((r.trainable, r.test_mean))
                    + Circle::new((0, 0), 5, style)
                    + Text::new(r.label(), (7, -4), ("sans-serif", 10))
            }))
            .map_err(err)?
            .label(family)
            .legend(move |(x, y)| Circle::new((x, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// `accuracy-<task>.svg` for every task with runs.
pub fn draw_all(
    out: &Path,
    config: &StudyConfig,
    tasks: &[Task],
    runs: &[Run],
) -> Result<(), Box<dyn Error>> {
    let rows = rows(config, tasks, runs);
    for task in tasks {
        let of: Vec<&Row> = rows.iter().filter(|r| r.task == task.name).collect();
        if !of.is_empty() {
            accuracy_figure(
                &out.join(format!("accuracy-{}.svg", task.name)),
                &task.name,
                &of,
            )?;
        }
    }
    Ok(())
}
