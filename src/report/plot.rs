//! The report's SVG plots, drawn with plotters. Text is laid out with
//! plotters' built-in estimate rather than system fonts, so a report renders
//! the same on any machine.

use plotters::prelude::*;

use super::Step;
use crate::stage::StageError;

const SIZE: (u32, u32) = (760, 380);
const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Loss per step, one line per stage, each stage's steps after the previous
/// stage's last.
pub fn loss_curves(curves: &[(&str, Vec<Step>)]) -> Result<String, StageError> {
    let mut offset = 0;
    let mut series = Vec::new();
    for (stage, steps) in curves {
        let points: Vec<(f64, f64)> = steps
            .iter()
            .filter(|s| s.loss.is_finite())
            .map(|s| ((offset + s.step) as f64, s.loss))
            .collect();
        offset += steps.last().map_or(0, |s| s.step);
        series.push((*stage, points));
    }
    let all = series.iter().flat_map(|(_, p)| p);
    let (lo, hi) = all
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| {
            (lo.min(y), hi.max(y))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let max_step = (offset as f64).max(1.0);

    let mut svg = String::new();
    draw(&mut svg, &series, (0.0, max_step), (lo - pad, hi + pad)).map_err(|e| {
        StageError::Unsupported(format!("report: cannot draw the loss curves: {e}"))
    })?;
    Ok(svg)
}

fn draw<'a>(
    svg: &'a mut String,
    series: &[(&str, Vec<(f64, f64)>)],
    x: (f64, f64),
    y: (f64, f64),
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("training loss", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .draw()?;
    for (i, (stage, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*stage)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_is_a_labelled_line_after_the_previous_one() {
        let steps = |losses: &[f64]| -> Vec<Step> {
            losses
                .iter()
                .enumerate()
                .map(|(i, &loss)| Step {
                    step: i as u64 + 1,
                    loss,
                })
                .collect()
        };
        let svg = loss_curves(&[
            ("distill", steps(&[3.0, 2.0, 1.5])),
            ("qat", steps(&[1.7, 1.4])),
        ])
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for color in ["#1F77B4", "#D62728"] {
            let lines = svg
                .matches(&format!("stroke=\"{color}\" stroke-width=\"2\""))
                .count();
            assert_eq!(lines, 2, "{color}: a line and its legend mark\n{svg}");
        }
        assert!(
            svg.contains("\ndistill\n</text>") && svg.contains("\nqat\n</text>"),
            "{svg}"
        );
        // The qat line starts where distill's ends: steps 4 and 5 of 5.
        let qat = svg
            .lines()
            .find(|l| l.contains("#D62728") && l.contains("points"))
            .unwrap();
        let first_x: f64 = qat
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let last_distill = svg
            .lines()
            .find(|l| l.contains("#1F77B4") && l.contains("points"))
            .unwrap();
        let last_x: f64 = last_distill
            .rsplit(' ')
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(first_x > last_x, "qat from {first_x}, distill to {last_x}");
    }
}
