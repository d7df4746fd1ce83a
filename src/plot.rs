//! Charts for `mxrt sweep` (plotters): each chart is drawn once per backend, as PNG and as SVG. Text uses the
//! DejaVu Sans font compiled into the binary, so no system font library is needed.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use image::ImageEncoder;
use mxrt_format::write_atomically;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One curve: a legend label and its points in x order.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Points joined by a line (a curve, a Pareto front), or markers alone (a cloud of trials).
    pub joined: bool,
}

/// What a chart shows.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Decimals of the x tick labels.
    pub x_decimals: usize,
    /// Legend in the upper right corner (for falling curves) instead of the lower right.
    pub legend_upper: bool,
    pub series: Vec<Series>,
    /// Points drawn as labelled markers instead of curves (the encodings of an encoding sweep).
    pub labelled_points: Vec<(String, f64, f64)>,
    /// The legend entry of the labelled points.
    pub labelled_legend: &'a str,
    /// The FP32 reference: a dashed horizontal line at this value, with this legend label; and a marker at
    /// `(x, value)` when `x` is given.
    pub reference: Option<(String, f64, Option<f64>)>,
}

const SIZE: (u32, u32) = (900, 560);

/// Past this many series the legend would hide the curves: it moves right of the plot, on a wider image.
const SERIES_IN_PLOT: usize = 8;
const LEGEND_WIDTH: u32 = 330;

fn size(chart: &Chart) -> (u32, u32) {
    match legend_outside(chart) {
        true => (SIZE.0 + LEGEND_WIDTH, SIZE.1),
        false => SIZE,
    }
}

fn legend_outside(chart: &Chart) -> bool {
    chart.series.len() > SERIES_IN_PLOT
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // A bundled, valid TTF: registration cannot fail; if it somehow did, text would be missing, not wrong.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Writes `<stem>.png` and `<stem>.svg`. Both are drawn in memory first and written atomically, so a failed
/// write (a full disk) leaves no truncated image, and the error is the I/O error, named with the file.
pub fn write(chart: &Chart, stem: &Path) -> Result<()> {
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let size = size(chart);
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area(),
        chart,
    )
    .map_err(|e| anyhow!("drawing {}: {e}", png.display()))?;
    write_png(&png, &pixels, size)?;
    let mut text = String::new();
    draw(
        SVGBackend::with_string(&mut text, size).into_drawing_area(),
        chart,
    )
    .map_err(|e| anyhow!("drawing {}: {e}", svg.display()))?;
    write_atomically(&svg, |w| w.write_all(text.as_bytes()))?;
    Ok(())
}

fn padded(lo: f64, hi: f64, fraction: f64) -> (f64, f64) {
    let span = (hi - lo).abs().max(1e-9);
    (lo - span * fraction, hi + span * fraction)
}

/// Tableau's ten colours; past ten series the marker shape changes too, so no two series look alike.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
];

/// The marker of series `i`: circles for the first ten, then squares, then triangles.
#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Square,
    Triangle,
}

fn series_style(i: usize) -> (RGBColor, Marker) {
    let marker = match (i / PALETTE.len()) % 3 {
        0 => Marker::Circle,
        1 => Marker::Square,
        _ => Marker::Triangle,
    };
    (PALETTE[i % PALETTE.len()], marker)
}

/// A marker of `style` centred `at` pixels from its anchor, for the plot and the legend alike.
fn marker<DB: DrawingBackend>(
    (color, shape): (RGBColor, Marker),
    at: (i32, i32),
) -> DynElement<'static, DB, (i32, i32)> {
    let (x, y) = at;
    match shape {
        Marker::Circle => Circle::new(at, 4, color.filled()).into_dyn(),
        Marker::Square => {
            Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], color.filled()).into_dyn()
        }
        Marker::Triangle => TriangleMarker::new(at, 6, color.filled()).into_dyn(),
    }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let xs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(chart.labelled_points.iter().map(|p| p.1))
        .chain(chart.reference.iter().filter_map(|r| r.2));
    let ys = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(chart.labelled_points.iter().map(|p| p.2))
        .chain(chart.reference.iter().map(|r| r.1));
    let fold = |it: &mut dyn Iterator<Item = f64>| {
        it.filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (x0, x1) = fold(&mut xs.into_iter());
    let (y0, y1) = fold(&mut ys.into_iter());
    if !x0.is_finite() || !y0.is_finite() {
        return Err("nothing to plot".into());
    }
    let (x0, x1) = padded(x0, x1, 0.04);
    let (y0, y1) = padded(y0, y1, 0.08);
    let (plot_area, legend_area) = match legend_outside(chart) {
        true => {
            let (plot, legend) = root.split_horizontally(SIZE.0);
            (plot, Some(legend))
        }
        false => (root.clone(), None),
    };
    let mut c = ChartBuilder::on(&plot_area)
        .caption(chart.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_label_formatter(&|v| format!("{v:.*}", chart.x_decimals))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for (i, s) in chart.series.iter().enumerate() {
        let style = series_style(i);
        let color = style.0;
        let line = if s.joined { 2 } else { 0 };
        c.draw_series(LineSeries::new(
            s.points
                .iter()
                .copied()
                .take(if s.joined { usize::MAX } else { 0 }),
            color.stroke_width(line),
        ))
        .map_err(err)?
        .label(s.label.clone())
        .legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(
                    vec![(0, 0), (20 * line as i32 / 2, 0)],
                    color.stroke_width(line),
                )
                + marker::<DB>(style, (10, 0))
        });
        c.draw_series(
            s.points
                .iter()
                .map(|&p| EmptyElement::at(p) + marker::<DB>(style, (0, 0))),
        )
        .map_err(err)?;
    }
    if !chart.labelled_points.is_empty() {
        // Apart from the series' colours when both are drawn.
        let color = if chart.series.is_empty() {
            PALETTE[0]
        } else {
            RGBColor(40, 40, 40)
        };
        // Label placement: for each point (in x order) the first of a few offsets whose text box (about 7.5 px
        // per character, 14 px high) overlaps no label placed before and no other point.
        let mut order: Vec<&(String, f64, f64)> = chart.labelled_points.iter().collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1));
        let pixels: Vec<(i32, i32)> = order.iter().map(|p| c.backend_coord(&(p.1, p.2))).collect();
        // The plotting area in pixels: a label is kept inside it (one past the right edge is cut off).
        let (area_x, _) = c.plotting_area().get_pixel_range();
        let mut boxes: Vec<(i32, i32, i32, i32)> = Vec::new();
        let mut offsets = Vec::with_capacity(order.len());
        for (i, p) in order.iter().enumerate() {
            let w = (p.0.chars().count() as f64 * 7.5) as i32;
            let (px, py) = pixels[i];
            let candidates = [
                (7, -18),
                (7, 4),
                (-7 - w, -18),
                (-7 - w, 4),
                (7, 22),
                (7, -36),
            ];
            let free = |(dx, dy): (i32, i32)| {
                let b = (px + dx, py + dy, px + dx + w, py + dy + 14);
                let clear_of_labels = boxes
                    .iter()
                    .all(|o| b.2 < o.0 || o.2 < b.0 || b.3 < o.1 || o.3 < b.1);
                let clear_of_points = pixels.iter().enumerate().all(|(j, &(qx, qy))| {
                    j == i || qx + 5 < b.0 || b.2 < qx - 5 || qy + 5 < b.1 || b.3 < qy - 5
                });
                let inside = area_x.start <= b.0 && b.2 <= area_x.end;
                clear_of_labels && clear_of_points && inside
            };
            let chosen = candidates
                .iter()
                .copied()
                .find(|&c| free(c))
                .unwrap_or(candidates[0]);
            boxes.push((
                px + chosen.0,
                py + chosen.1,
                px + chosen.0 + w,
                py + chosen.1 + 14,
            ));
            offsets.push(chosen);
        }
        c.draw_series(order.iter().zip(offsets).map(|((label, x, y), offset)| {
            EmptyElement::at((*x, *y))
                + Circle::new((0, 0), 5, color.filled())
                + Text::new(label.clone(), offset, ("sans-serif", 14))
        }))
        .map_err(err)?
        .label(chart.labelled_legend)
        .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
    }
    if let Some((label, value, at)) = &chart.reference {
        let grey = RGBColor(90, 90, 90);
        let dashes: Vec<(f64, f64)> = (0..60)
            .filter(|k| k % 2 == 0)
            .flat_map(|k| {
                let a = x0 + (x1 - x0) * f64::from(k) / 60.0;
                let b = x0 + (x1 - x0) * f64::from(k + 1) / 60.0;
                [(a, *value), (b, *value)]
            })
            .collect();
        c.draw_series(
            dashes
                .chunks(2)
                .map(|seg| PathElement::new(seg.to_vec(), grey.stroke_width(1))),
        )
        .map_err(err)?
        .label(label.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
        if let Some(x) = at {
            c.draw_series(std::iter::once(
                EmptyElement::at((*x, *value))
                    + TriangleMarker::new((0, 0), 7, BLACK.filled())
                    + Text::new("FP32", (8, 4), ("sans-serif", 14)),
            ))
            .map_err(err)?;
        }
    }
    match legend_area {
        // Many series: the legend in its own column right of the plot, one row per series.
        Some(area) => {
            let row = |i: usize| 40 + 18 * i as i32;
            for (i, s) in chart.series.iter().enumerate() {
                let style = series_style(i);
                area.draw(
                    &(EmptyElement::at((8, row(i)))
                        + PathElement::new(vec![(0, 0), (20, 0)], style.0.stroke_width(2))
                        + marker::<DB>(style, (10, 0))
                        + Text::new(s.label.clone(), (28, -7), ("sans-serif", 14))),
                )
                .map_err(err)?;
            }
            if let Some((label, _, _)) = &chart.reference {
                let grey = RGBColor(90, 90, 90);
                area.draw(
                    &(EmptyElement::at((8, row(chart.series.len())))
                        + PathElement::new(vec![(0, 0), (6, 0)], grey.stroke_width(1))
                        + PathElement::new(vec![(12, 0), (20, 0)], grey.stroke_width(1))
                        + Text::new(label.clone(), (28, -7), ("sans-serif", 14))),
                )
                .map_err(err)?;
            }
        }
        None => c
            .configure_series_labels()
            .position(if chart.legend_upper {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            })
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?,
    }
    root.present().map_err(err)?;
    Ok(())
}

/// A table of values as a heat map: one row per `rows` label, one column per `cols` label, each cell shaded
/// from white (0 or less) to red (the largest value) and labelled with its value (`-` where missing).
pub struct HeatMap<'a> {
    pub title: &'a str,
    /// What the values are, with their unit (the colour scale's caption).
    pub value_label: &'a str,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
}

/// Writes `<stem>.png` and `<stem>.svg` of a heat map (atomically, as [`write`]).
pub fn write_heatmap(map: &HeatMap, stem: &Path) -> Result<()> {
    register_font();
    let label_width = 12
        + 7 * map
            .rows
            .iter()
            .map(|r| r.chars().count())
            .max()
            .unwrap_or(4) as u32;
    let (cell_w, cell_h) = (120u32, 20u32);
    // Wide enough for the cells and for the title (about 11 px per character at its size).
    let title_width = 24 + 11 * map.title.chars().count() as u32;
    let size = (
        (label_width + cell_w * map.cols.len() as u32 + 40)
            .max(520)
            .max(title_width),
        110 + cell_h * map.rows.len() as u32,
    );
    let png = stem.with_extension("png");
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    draw_heatmap(
        BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area(),
        map,
        (label_width, cell_w, cell_h),
    )
    .map_err(|e| anyhow!("drawing {}: {e}", png.display()))?;
    write_png(&png, &pixels, size)?;
    let svg = stem.with_extension("svg");
    let mut text = String::new();
    draw_heatmap(
        SVGBackend::with_string(&mut text, size).into_drawing_area(),
        map,
        (label_width, cell_w, cell_h),
    )
    .map_err(|e| anyhow!("drawing {}: {e}", svg.display()))?;
    write_atomically(&svg, |w| w.write_all(text.as_bytes()))?;
    Ok(())
}

fn draw_heatmap<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    map: &HeatMap,
    (label_width, cell_w, cell_h): (u32, u32, u32),
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let style = |size: u32| ("sans-serif", size).into_font().color(&BLACK);
    root.draw(&Text::new(map.title.to_string(), (12, 10), style(20)))
        .map_err(err)?;
    let largest = map
        .values
        .iter()
        .flatten()
        .flatten()
        .fold(0f64, |m, &v| m.max(v));
    root.draw(&Text::new(
        format!("{}: white 0 or less, red {:.2}", map.value_label, largest),
        (12, 38),
        style(13),
    ))
    .map_err(err)?;
    let (x0, y0) = (label_width as i32, 80i32);
    for (j, c) in map.cols.iter().enumerate() {
        let x = x0 + (j as u32 * cell_w) as i32;
        root.draw(&Text::new(c.clone(), (x + 6, y0 - 18), style(14)))
            .map_err(err)?;
    }
    for (i, r) in map.rows.iter().enumerate() {
        let y = y0 + (i as u32 * cell_h) as i32;
        root.draw(&Text::new(r.clone(), (8, y + 3), style(12)))
            .map_err(err)?;
        for (j, v) in map.values[i].iter().enumerate() {
            let x = x0 + (j as u32 * cell_w) as i32;
            let t = v.map_or(0.0, |v| {
                if largest > 0.0 {
                    (v / largest).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            });
            let shade = RGBColor(
                255,
                (255.0 * (1.0 - 0.8 * t)) as u8,
                (255.0 * (1.0 - 0.8 * t)) as u8,
            );
            root.draw(&Rectangle::new(
                [(x, y), (x + cell_w as i32 - 2, y + cell_h as i32 - 2)],
                shade.filled(),
            ))
            .map_err(err)?;
            let text = v.map_or("-".to_string(), |v| format!("{v:+.2}"));
            root.draw(&Text::new(text, (x + 6, y + 3), style(12)))
                .map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

/// RGB pixels of `size` encoded as PNG and written (atomically) to `png`.
fn write_png(png: &Path, pixels: &[u8], size: (u32, u32)) -> Result<()> {
    let mut encoded = Vec::new();
    image::codecs::png::PngEncoder::new(&mut encoded)
        .write_image(pixels, size.0, size.1, image::ColorType::Rgb8)
        .map_err(|e| anyhow!("encoding {}: {e}", png.display()))?;
    write_atomically(png, |w| w.write_all(&encoded))?;
    Ok(())
}
