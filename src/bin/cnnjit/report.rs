//! Side-by-side comparison of networks, as the lecture closes: a table sorted
//! by FLOPs and a bubble chart in the style of Canziani et al. (x: GFLOPs,
//! y: measured latency when benchmarked, else parameters; bubble area:
//! parameters). Used by `cnnjit compare`.

use cnnjit::ir::summary::{clip, thousands, Summary, MAX_CELL};
use plotters::prelude::*;
use std::fmt::Write;

/// One network's figures for the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The net's name.
    pub name: String,
    /// Learnable parameters.
    pub params: u64,
    /// Multiply-accumulates.
    pub macs: u64,
    /// FLOPs by the lecture's rule.
    pub flops: u64,
    /// The inference arena for one image, bytes.
    pub inference_bytes: u64,
    /// Memory to train at batch 32, bytes (no optimizer state).
    pub train_bytes_32: u64,
    /// Measured batch-1 latency in milliseconds, when benchmarked.
    pub latency_ms: Option<f64>,
}

impl Row {
    /// The static figures of a summary.
    pub fn of(summary: &Summary) -> Row {
        Row {
            name: summary.name.to_string(),
            params: summary.params,
            macs: summary.macs,
            flops: summary.flops,
            inference_bytes: summary.peak_inference_bytes,
            train_bytes_32: summary.training_bytes(32),
            latency_ms: None,
        }
    }
}

/// Sorts rows by FLOPs, smallest first.
pub fn sort_by_flops(rows: &mut [Row]) {
    rows.sort_by(|a, b| a.flops.cmp(&b.flops).then_with(|| a.name.cmp(&b.name)));
}

/// The comparison as a Markdown table (readable in a terminal too); names
/// are clipped to [`MAX_CELL`] characters.
pub fn table(rows: &[Row]) -> String {
    let bench = rows.iter().any(|r| r.latency_ms.is_some());
    let mut out =
        String::from("| network | params | MACs | FLOPs | inference MB | training MB (batch 32) |");
    out.push_str(if bench {
        " latency ms | images/s |\n"
    } else {
        "\n"
    });
    out.push_str("|---|---:|---:|---:|---:|---:|");
    out.push_str(if bench { "---:|---:|\n" } else { "\n" });
    for r in rows {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.1} |",
            clip(&r.name, MAX_CELL),
            thousands(r.params),
            thousands(r.macs),
            thousands(r.flops),
            r.inference_bytes as f64 / 1e6,
            r.train_bytes_32 as f64 / 1e6
        );
        if bench {
            match r.latency_ms {
                Some(ms) => {
                    let _ = write!(out, " {ms:.3} | {:.1} |", 1000.0 / ms);
                }
                None => out.push_str(" - | - |"),
            }
        }
        out.push('\n');
    }
    out
}

/// The bubble chart as an SVG document.
pub fn bubble_chart(rows: &[Row]) -> Result<String, String> {
    if rows.is_empty() {
        return Err("no network to draw".into());
    }
    let measured = rows.iter().all(|r| r.latency_ms.is_some());
    let xs: Vec<f64> = rows
        .iter()
        .map(|r| (r.flops as f64 / 1e9).max(1e-6))
        .collect();
    let ys: Vec<f64> = rows
        .iter()
        .map(|r| match (measured, r.latency_ms) {
            (true, Some(ms)) => ms.max(1e-6),
            _ => (r.params as f64 / 1e6).max(1e-6),
        })
        .collect();
    let span = |v: &[f64]| {
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(0.0, f64::max);
        (lo / 3.0, hi * 3.0)
    };
    let ((x0, x1), (y0, y1)) = (span(&xs), span(&ys));
    let max_params = rows.iter().map(|r| r.params).max().unwrap_or(1).max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 640)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let y_label = if measured {
            "batch-1 latency (ms, measured)"
        } else {
            "parameters (millions)"
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "The lecture's networks: FLOPs, size and speed (bubble area = parameters)",
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("GFLOPs (lecture's rule, one image)")
            .y_desc(y_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, r) in rows.iter().enumerate() {
            let radius = (6.0 + 44.0 * (r.params as f64 / max_params).sqrt()) as i32;
            let colour = Palette99::pick(i).mix(0.45);
            chart
                .draw_series(std::iter::once(Circle::new(
                    (xs[i], ys[i]),
                    radius,
                    colour.filled(),
                )))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    clip(&r.name, MAX_CELL).into_owned(),
                    (xs[i], ys[i]),
                    ("sans-serif", 14).into_font().color(&BLACK),
                )))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> Row {
        Row {
            name: name.to_string(),
            params: 1,
            macs: 2,
            flops: 3,
            inference_bytes: 4,
            train_bytes_32: 5,
            latency_ms: None,
        }
    }

    #[test]
    fn no_network_is_no_chart() {
        assert_eq!(bubble_chart(&[]), Err("no network to draw".to_string()));
    }

    /// A name of 65,536 characters used to panic the formatter ("Formatting
    /// argument out of range"); the table clips it to `MAX_CELL` characters.
    #[test]
    fn a_long_name_is_clipped() {
        let name = format!("s{}", "t".repeat(65_535));
        let text = table(&[row(&name)]);
        let clipped = format!("{}…", &name[..MAX_CELL - 1]);
        assert!(text.contains(&format!("| {clipped} |")), "{text:.2000}");
        assert!(!text.contains(&name[..MAX_CELL]), "not clipped");
        assert!(
            text.lines().all(|l| l.chars().count() < 400),
            "{text:.2000}"
        );
    }
}
