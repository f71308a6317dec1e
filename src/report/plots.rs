//! Report figures, drawn with plotters into PNG (rasterised, text included) and SVG.
//!
//! Text in PNGs is rasterised by ab_glyph with DejaVu Sans, embedded in the binary by the
//! `dejavu` crate, so no system font (fontconfig, freetype) is needed. SVGs name the generic
//! `sans-serif` family and leave text to the viewer.
use super::metrics::{GroupMetrics, Metrics};
use crate::cost::Stage;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

/// Figure size in pixels (PNG) and user units (SVG).
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 760;

const FONT: &str = "sans-serif";
const TITLE_SIZE: u32 = 34;
const DESC_SIZE: u32 = 26;
const LABEL_SIZE: u32 = 22;
const LEGEND_SIZE: u32 = 22;

/// One figure in both formats.
pub struct Figure {
    /// File stem, e.g. `accuracy_vs_labels`.
    pub stem: &'static str,
    pub title: String,
    pub png: Vec<u8>,
    pub svg: String,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans is a valid TrueType font; failing to parse it would be a packaging bug.
        if plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_err()
        {
            tracing::warn!("cannot load the embedded DejaVu Sans font: PNG text will be missing");
        }
    });
}

fn pe<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

/// Something that draws itself on any plotters backend.
trait Draw {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

fn render(stem: &'static str, title: String, fig: &impl Draw) -> Result<Figure> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        fig.draw(&root)?;
        root.present().map_err(pe)?;
    }
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        fig.draw(&root)?;
        root.present().map_err(pe)?;
    }
    let png = encode_png(&rgb, WIDTH, HEIGHT)?;
    Ok(Figure {
        stem,
        title,
        png,
        svg,
    })
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| anyhow!("PNG encoding failed: {e}"))?;
        writer
            .write_image_data(rgb)
            .map_err(|e| anyhow!("PNG encoding failed: {e}"))?;
    }
    Ok(out)
}

/// Okabe–Ito colour-blind-safe palette; policies get fixed colours where possible.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x55, 0x55, 0x55), // grey: random
    RGBColor(0x00, 0x72, 0xB2), // blue: standard
    RGBColor(0xE6, 0x9F, 0x00), // orange: svpp
    RGBColor(0x00, 0x9E, 0x73), // green: asvp
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0xCC, 0x79, 0xA7), // purple
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
];

/// A colour per group: the policy's own colour the first time, then unused palette colours.
pub(crate) fn group_colors(groups: &[GroupMetrics]) -> Vec<RGBColor> {
    let mut used = [false; PALETTE.len()];
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let pref = match g.policy.as_str() {
            "random" => Some(0),
            "standard" => Some(1),
            "svpp" => Some(2),
            "asvp" => Some(3),
            _ => None,
        };
        let idx = match pref {
            Some(i) if !used[i] => i,
            _ => (0..PALETTE.len())
                .find(|&i| !used[i])
                .unwrap_or(out.len() % PALETTE.len()),
        };
        used[idx] = true;
        out.push(PALETTE[idx]);
    }
    out
}

struct Series {
    label: String,
    color: RGBColor,
    /// (x, mean y, std y)
    points: Vec<(f64, f64, Option<f64>)>,
    /// Where the target is first reached (x), if it is.
    crossing: Option<f64>,
}

struct LineChart {
    title: String,
    x_desc: String,
    y_desc: String,
    series: Vec<Series>,
    /// Horizontal target line (y) and its legend text.
    target: Option<(f64, String)>,
    x_axis: XAxis,
    /// The y axis never extends past these (accuracy: 0–100 %).
    y_limits: (f64, f64),
    /// Where the legend sits (clear of the curves' usual end).
    legend: SeriesLabelPosition,
}

/// How the x values of a [`LineChart`] read.
#[derive(Clone, Copy, PartialEq)]
enum XAxis {
    Count,
    Money,
    /// Points are placed at log10 of a count and labelled with the count.
    Log10Count,
}

/// A count in short form: 3000 → "3k", 3e6 → "3M".
fn fmt_count(v: f64) -> String {
    let (d, unit) = match v.abs() {
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let q = v / d;
    if (q - q.round()).abs() < 0.05 {
        format!("{:.0}{unit}", q.round())
    } else {
        format!("{q:.1}{unit}")
    }
}

fn nice_floor(v: f64, step: f64) -> f64 {
    (v / step).floor() * step
}
fn nice_ceil(v: f64, step: f64) -> f64 {
    (v / step).ceil() * step
}

fn fmt_money(v: f64, span: f64) -> String {
    if span >= 20.0 {
        format!("${v:.0}")
    } else if span >= 2.0 {
        format!("${v:.1}")
    } else {
        format!("${v:.2}")
    }
}

impl Draw for LineChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(pe)?;
        let mut xmax = 0f64;
        let mut xmin = f64::INFINITY;
        let (mut ymin, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY);
        for s in &self.series {
            for &(x, y, sd) in &s.points {
                let sd = sd.unwrap_or(0.0);
                xmax = xmax.max(x);
                xmin = xmin.min(x);
                ymin = ymin.min(y - sd);
                ymax = ymax.max(y + sd);
            }
        }
        if let Some((t, _)) = &self.target {
            ymin = ymin.min(*t);
            ymax = ymax.max(*t);
        }
        if !ymin.is_finite() {
            (ymin, ymax) = (0.0, 100.0);
        }
        let pad = ((ymax - ymin) * 0.06).max(0.5);
        let (lo, hi) = self.y_limits;
        let y0 = nice_floor((ymin - pad).max(lo), 1.0);
        let y1 = nice_ceil((ymax + pad).min(hi), 1.0).max(y0 + 1.0);
        let x1 = if xmax > 0.0 { xmax * 1.04 } else { 1.0 };
        // The x axis starts just left of the first point (curves rarely start at zero labels).
        let x0 = if xmin.is_finite() && xmin > 0.0 {
            let pad = if xmax > xmin {
                (xmax - xmin) * 0.04
            } else {
                xmin * 0.1
            };
            (xmin - pad).max(0.0)
        } else {
            0.0
        };

        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_SIZE).into_font())
            .margin(24)
            .x_label_area_size(70)
            .y_label_area_size(96)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(pe)?;
        let money = |v: &f64| fmt_money(*v, x1 - x0);
        let count = |v: &f64| format!("{v:.0}");
        // Whole percents unless the axis spans only a few.
        let fine = y1 - y0 <= 5.0;
        let pct = |v: &f64| {
            if fine {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        };
        let log_count = |v: &f64| fmt_count(10f64.powf(*v));
        let xfmt: &dyn Fn(&f64) -> String = match self.x_axis {
            XAxis::Money => &money,
            XAxis::Count => &count,
            XAxis::Log10Count => &log_count,
        };
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .axis_desc_style((FONT, DESC_SIZE))
            .label_style((FONT, LABEL_SIZE))
            .x_label_formatter(xfmt)
            .y_label_formatter(&pct)
            .x_labels(10)
            .y_labels(10)
            .max_light_lines(1)
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(205, 205, 205))
            .draw()
            .map_err(pe)?;

        if let Some((t, label)) = &self.target {
            let style = ShapeStyle::from(&BLACK).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x0, *t), (x1, *t)],
                    12,
                    8,
                    style,
                ))
                .map_err(pe)?
                .label(label.clone())
                // A dashed swatch, so the target is not mistaken for a black series.
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(-4, 0), (4, 0)], style)
                        + PathElement::new(vec![(10, 0), (18, 0)], style)
                });
        }
        for s in &self.series {
            let c = s.color;
            // ± std band over seeds.
            if s.points.iter().any(|p| p.2.is_some_and(|sd| sd > 0.0)) {
                let mut poly: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .map(|&(x, y, sd)| (x, y + sd.unwrap_or(0.0)))
                    .collect();
                poly.extend(
                    s.points
                        .iter()
                        .rev()
                        .map(|&(x, y, sd)| (x, y - sd.unwrap_or(0.0))),
                );
                chart
                    .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))
                    .map_err(pe)?;
            }
            let line = ShapeStyle::from(&c).stroke_width(3);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().map(|&(x, y, _)| (x, y)),
                    line,
                ))
                .map_err(pe)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x - 4, y), (x + 18, y)], line));
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&(x, y, _)| Circle::new((x, y), 5, c.filled())),
                )
                .map_err(pe)?;
            if let (Some(x), Some((t, _))) = (s.crossing, &self.target) {
                let mark = ShapeStyle::from(&c).stroke_width(3);
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, y0), (x, *t)],
                        mark.stroke_width(1),
                    )))
                    .map_err(pe)?;
                chart
                    .draw_series(std::iter::once(Cross::new((x, *t), 9, mark)))
                    .map_err(pe)?;
            }
        }
        chart
            .configure_series_labels()
            .position(self.legend.clone())
            .margin(16)
            .label_font((FONT, LEGEND_SIZE))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(150, 150, 150))
            .draw()
            .map_err(pe)?;
        Ok(())
    }
}

struct StackedBars {
    title: String,
    y_desc: String,
    /// Unit divisor for seconds (1, 60 or 3600).
    unit: f64,
    groups: Vec<String>,
    /// (stage name, colour, value per group in seconds)
    stacks: Vec<(String, RGBColor, Vec<f64>)>,
}

impl Draw for StackedBars {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(pe)?;
        let root = root
            .titled(&self.title, (FONT, TITLE_SIZE).into_font())
            .map_err(pe)?;
        let legend_w = 300;
        let (plot, side) = root.split_horizontally(WIDTH - legend_w);
        let n = self.groups.len();
        let totals: Vec<f64> = (0..n)
            .map(|g| self.stacks.iter().map(|s| s.2[g]).sum::<f64>() / self.unit)
            .collect();
        let ymax = totals.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.12;
        let mut chart = ChartBuilder::on(&plot)
            .margin(24)
            .x_label_area_size(70)
            .y_label_area_size(110)
            .build_cartesian_2d((0..n).into_segmented(), 0f64..ymax)
            .map_err(pe)?;
        let names = self.groups.clone();
        let xfmt = move |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let yfmt = |v: &f64| {
            if ymax >= 20.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("run group (mean over seeds)")
            .y_desc(&self.y_desc)
            .axis_desc_style((FONT, DESC_SIZE))
            .label_style((FONT, LABEL_SIZE))
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .x_labels(n.max(1))
            .y_labels(10)
            .y_max_light_lines(1)
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(205, 205, 205))
            .draw()
            .map_err(pe)?;
        let mut base = vec![0.0; n];
        for (_, color, vals) in &self.stacks {
            let c = *color;
            let rects: Vec<Rectangle<(SegmentValue<usize>, f64)>> = (0..n)
                .map(|g| {
                    let y0 = base[g];
                    let y1 = y0 + vals[g] / self.unit;
                    base[g] = y1;
                    let mut r = Rectangle::new(
                        [
                            (SegmentValue::Exact(g), y0),
                            (SegmentValue::Exact(g + 1), y1),
                        ],
                        c.filled(),
                    );
                    r.set_margin(0, 0, 30, 30);
                    r
                })
                .collect();
            chart.draw_series(rects).map_err(pe)?;
        }
        // Totals above the bars.
        let unit_name = unit_suffix(self.unit);
        chart
            .draw_series((0..n).map(|g| {
                Text::new(
                    format!("{:.1} {unit_name}", totals[g]),
                    (SegmentValue::CenterOf(g), totals[g] + ymax * 0.015),
                    (FONT, LABEL_SIZE)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))
            .map_err(pe)?;
        // Legend beside the plot, top to bottom in the order the stages are stacked (top first).
        let font = (FONT, LEGEND_SIZE)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        side.draw(&Text::new(
            "stage",
            (10, 40),
            (FONT, LEGEND_SIZE + 2).into_font().color(&BLACK),
        ))
        .map_err(pe)?;
        for (k, (name, color, _)) in self.stacks.iter().rev().enumerate() {
            let y = 90 + 36 * k as i32;
            side.draw(&Rectangle::new(
                [(10, y - 11), (34, y + 11)],
                color.filled(),
            ))
            .map_err(pe)?;
            side.draw(&Rectangle::new(
                [(10, y - 11), (34, y + 11)],
                RGBColor(120, 120, 120).stroke_width(1),
            ))
            .map_err(pe)?;
            side.draw(&Text::new(name.clone(), (44, y), font.clone()))
                .map_err(pe)?;
        }
        Ok(())
    }
}

fn unit_suffix(unit: f64) -> &'static str {
    if unit >= 3600.0 {
        "h"
    } else if unit >= 60.0 {
        "min"
    } else {
        "s"
    }
}

fn stage_color(s: Stage) -> RGBColor {
    match s {
        Stage::Ingest => RGBColor(0x99, 0x99, 0x99),
        Stage::Embed => RGBColor(0x56, 0xB4, 0xE9),
        Stage::Refresh => RGBColor(0x00, 0x72, 0xB2),
        Stage::ProxyFit => RGBColor(0xE6, 0x9F, 0x00),
        Stage::Scoring => RGBColor(0xF0, 0xE4, 0x42),
        Stage::Selection => RGBColor(0xCC, 0x79, 0xA7),
        Stage::Indicator => RGBColor(0x88, 0x44, 0xAA),
        Stage::Labelling => RGBColor(0x44, 0x44, 0x44),
        Stage::FineTune => RGBColor(0xD5, 0x5E, 0x00),
        Stage::LinearProbe => RGBColor(0x00, 0x9E, 0x73),
        Stage::Ship => RGBColor(0xB2, 0x22, 0x22),
        Stage::Evaluation => RGBColor(0xDD, 0xDD, 0xDD),
        Stage::Other => RGBColor(0x66, 0x33, 0x00),
    }
}

/// Every figure of a report.
pub fn figures(m: &Metrics) -> Result<Vec<Figure>> {
    let colors = group_colors(&m.groups);
    let target_pct = m.target.accuracy * 100.0;
    let target = Some((target_pct, format!("target a = {target_pct:.1}%")));
    let acc_series = |money: bool| -> Vec<Series> {
        m.groups
            .iter()
            .zip(&colors)
            .map(|(g, &c)| Series {
                label: if g.runs.len() > 1 {
                    format!("{} (n={})", g.label, g.runs.len())
                } else {
                    g.label.clone()
                },
                color: c,
                points: g
                    .curve
                    .iter()
                    .map(|p| {
                        let x = if money { p.total_cost.mean } else { p.labels };
                        (
                            x,
                            p.accuracy.mean * 100.0,
                            p.accuracy.std.map(|s| s * 100.0),
                        )
                    })
                    .collect(),
                crossing: if money {
                    g.total_cost.map(|s| s.mean)
                } else {
                    g.labels.map(|s| s.mean)
                },
            })
            .collect()
    };
    let p = &m.prices;
    let hourly: Vec<String> = p
        .price_per_device_hour
        .iter()
        .map(|(d, v)| format!("{d} ${v}/h"))
        .collect();
    let mut figs = Vec::new();
    let title = format!("Test accuracy vs labels bought — {}", m.dataset);
    figs.push(render(
        "accuracy_vs_labels",
        title.clone(),
        &LineChart {
            title,
            x_desc: "labels bought (count)".into(),
            y_desc: "test accuracy (%)".into(),
            series: acc_series(false),
            target: target.clone(),
            x_axis: XAxis::Count,
            y_limits: (0.0, 100.0),
            legend: SeriesLabelPosition::LowerRight,
        },
    )?);
    let title = format!("Test accuracy vs total cost — {}", m.dataset);
    figs.push(render(
        "accuracy_vs_cost",
        title.clone(),
        &LineChart {
            title,
            x_desc: format!(
                "total cost (US$): labels at ${}/label + compute at {}",
                p.price_per_label,
                hourly.join(", ")
            ),
            y_desc: "test accuracy (%)".into(),
            series: acc_series(true),
            target,
            x_axis: XAxis::Money,
            y_limits: (0.0, 100.0),
            legend: SeriesLabelPosition::LowerRight,
        },
    )?);
    // Compute by stage, whole run.
    let stages: Vec<Stage> = Stage::ALL
        .iter()
        .copied()
        .filter(|s| {
            m.groups
                .iter()
                .any(|g| g.seconds_by_stage.get(s).copied().unwrap_or(0.0) > 0.0)
        })
        .collect();
    let max_total = m
        .groups
        .iter()
        .map(|g| g.seconds_by_stage.values().sum::<f64>())
        .fold(0.0, f64::max);
    let unit = if max_total >= 2.0 * 3600.0 {
        3600.0
    } else if max_total >= 120.0 {
        60.0
    } else {
        1.0
    };
    let unit_word = match unit_suffix(unit) {
        "h" => "hours",
        "min" => "minutes",
        _ => "seconds",
    };
    let title = format!(
        "Metered wall-clock time by stage, whole run — {}",
        m.dataset
    );
    figs.push(render(
        "compute_by_stage",
        title.clone(),
        &StackedBars {
            title,
            y_desc: format!("wall-clock {unit_word} per run"),
            unit,
            groups: m.groups.iter().map(|g| g.label.clone()).collect(),
            stacks: stages
                .iter()
                .map(|&s| {
                    let name = if s == Stage::Evaluation {
                        "evaluation (not a cost)".to_string()
                    } else if s == Stage::Ship {
                        "ship (every point's model; the last one is a cost)".to_string()
                    } else {
                        s.as_str().replace('_', " ")
                    };
                    (
                        name,
                        stage_color(s),
                        m.groups
                            .iter()
                            .map(|g| g.seconds_by_stage.get(&s).copied().unwrap_or(0.0))
                            .collect(),
                    )
                })
                .collect(),
        },
    )?);
    Ok(figs)
}

/// `proxal plan --plot`: the projected saving of each policy over standard (%, at equal labels)
/// against the pool size (log scale), one line per policy and label price.
pub fn plan_savings(
    title: String,
    desc: String,
    series: &[(String, Vec<(usize, f64)>)],
) -> Result<Figure> {
    let series = series
        .iter()
        .enumerate()
        .map(|(i, (label, points))| Series {
            label: label.clone(),
            color: PALETTE[(i + 1) % PALETTE.len()],
            points: points
                .iter()
                .map(|&(pool, saving)| ((pool as f64).log10(), saving, None))
                .collect(),
            crossing: None,
        })
        .collect();
    render(
        "plan_savings",
        title.clone(),
        &LineChart {
            title,
            x_desc: desc,
            y_desc: "saving over standard at equal labels (%)".into(),
            series,
            target: None,
            x_axis: XAxis::Log10Count,
            y_limits: (-100.0, 100.0),
            legend: SeriesLabelPosition::UpperLeft,
        },
    )
}
