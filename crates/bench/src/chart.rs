//! The chart in `docs/performance.md`: `/me` throughput against the number of users, one
//! line per backend, and the ceiling's `/me` as a dashed reference line.

use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use plotters::prelude::*;

/// One line of the chart: its name and `(users, requests per second)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's text.
    pub name: String,
    /// The points, in order of users.
    pub points: Vec<(u64, f64)>,
}

const COLOURS: [RGBColor; 3] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
];

/// Writes the SVG chart to `path`: `series` on a logarithmic users axis, and `ceiling`
/// (requests per second) as a dashed horizontal line across it.
///
/// # Errors
/// When there is nothing to draw or the file cannot be written.
pub fn me_vs_users(
    path: &Path,
    title: &str,
    series: &[Series],
    ceiling: Option<f64>,
) -> Result<()> {
    let all_users = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (min_users, max_users) =
        all_users.fold((u64::MAX, 0), |(lo, hi), u| (lo.min(u), hi.max(u)));
    if min_users > max_users {
        return Err(anyhow!("no points to chart"));
    }
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(ceiling)
        .fold(0.0_f64, f64::max)
        * 1.4;
    // The users axis is logarithmic: x is log10(users), labelled at the powers of ten.
    let log = |users: u64| (users.max(1) as f64).log10();
    let x_range = (log(min_users) - 0.25)..(log(max_users) + 0.25);

    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone(), 0.0..top.max(1.0))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("users in the database (logarithmic)")
        .y_desc("GET /api/auth/me, requests/s")
        .light_line_style(TRANSPARENT)
        .x_labels(4 * (x_range.end - x_range.start).ceil() as usize)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format_users(10_f64.powf(x.round()))
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;

    for (i, line) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(f64, f64)> = line.points.iter().map(|&(u, r)| (log(u), r)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(line.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )
            .map_err(|e| anyhow!("{e}"))?;
    }
    if let Some(rate) = ceiling {
        let grey = RGBColor(0x55, 0x55, 0x55);
        let (lo, hi) = (x_range.start, x_range.end);
        let steps = 60;
        let dashes = (0..steps).step_by(2).map(move |i| {
            let at = |k: i32| lo + (hi - lo) * f64::from(k) / f64::from(steps);
            PathElement::new([(at(i), rate), (at(i + 1), rate)], grey.stroke_width(2))
        });
        chart
            .draw_series(dashes)
            .map_err(|e| anyhow!("{e}"))?
            .label("ceiling (no database)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 8, y)], grey.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("writing {}", path.display()))
}

fn format_users(users: f64) -> String {
    let n = users.round() as u64;
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        let series = [
            Series {
                name: "SQLite".into(),
                points: vec![(100, 30_000.0), (100_000, 28_000.0)],
            },
            Series {
                name: "PostgreSQL".into(),
                points: vec![(100, 12_000.0), (100_000, 11_000.0)],
            },
        ];
        me_vs_users(&path, "test", &series, Some(60_000.0)).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("SQLite") && svg.contains("ceiling"));
        assert!(me_vs_users(&path, "empty", &[], None).is_err());
    }
}
