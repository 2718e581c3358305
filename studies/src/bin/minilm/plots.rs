//! The pictures (plotters, SVG): per task, test accuracy against trainable parameters, one
//! colour per method family.

use std::error::Error;
use std::path::Path;

use adapeft_studies::outputs::plot_error as err;
use plotters::prelude::*;

use crate::report::{Row, rows};
use crate::{Run, StudyConfig};

const FAMILIES: [(&str, RGBColor); 6] = [
    ("probe", RGBColor(230, 159, 0)),
    ("full", RGBColor(0, 0, 0)),
    ("rule", RGBColor(86, 180, 233)),
    ("lora", RGBColor(204, 121, 167)),
    ("baseline", RGBColor(0, 114, 178)),
    ("adapeft", RGBColor(0, 150, 60)),
];

fn accuracy_figure(path: &Path, task: &str, rows: &[&Row]) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x_max = rows.iter().map(|r| r.trainable).fold(1.0, f64::max) * 3.0;
    let x_min = rows
        .iter()
        .map(|r| r.trainable)
        .fold(f64::INFINITY, f64::min)
        .max(1.0)
        / 3.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{task}: test accuracy against trainable parameters"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("trainable parameters (log)")
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
                EmptyElement::at((r.trainable, r.acc_mean))
                    + Circle::new((0, 0), 5, color.filled())
                    + Text::new(r.method.name(), (7, -4), ("sans-serif", 10))
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

/// `accuracy-<task>.svg` for every task.
pub fn draw_all(out: &Path, config: &StudyConfig, runs: &[Run]) -> Result<(), Box<dyn Error>> {
    let rows = rows(config, runs);
    for task in &config.tasks {
        let of: Vec<&Row> = rows.iter().filter(|r| r.task == *task).collect();
        accuracy_figure(&out.join(format!("accuracy-{task}.svg")), task, &of)?;
    }
    Ok(())
}
