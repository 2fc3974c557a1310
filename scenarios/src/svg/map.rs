//! The report's map: the areas, the incidents and the responders, fitted to
//! the areas in emergency during the drill (the whole city when there were
//! none), with the whole city as a small locator inset beside the legend.
//!
//! A real city's boundaries are far finer than a picture can show (a
//! district of Hangzhou has up to 1,908 vertices, and 2,521 grids lie under
//! its 13 districts), so the map is simplified for display only; the
//! engine's areas are not touched. In the main view an area is cut to the
//! view, simplified to half a pixel, its parts smaller than a pixel dropped
//! and its coordinates written to 0.1 px; areas outside the view are drawn
//! only in the inset, coarsely. Names are given for one level, the one whose
//! areas are big enough at the view's scale, and a name that would collide
//! with another is left out.

use std::fmt::Write as _;

use geo::{Area, BooleanOps, BoundingRect, Centroid, Coord, LineString, MapCoords, MultiPolygon, Polygon, Rect, Simplify};
use pingji_engine::areas::{AreaImport, AreaLevel, AreaSpec};

use super::{GAP, LegendEntry, MARGIN, PRIORITY_COLOURS, Swatch, escape, header, legend, legend_size, text_width, wrap};
use crate::report::{IncidentFigures, Report, clock, plural};

/// Metres per degree of latitude (a sphere of 6,371 km).
const METRES_PER_DEGREE: f64 = 111_195.0;
/// The longer side of the mapped region, in pixels.
const VIEW_MAX: f64 = 720.0;
/// Room between the mapped region and the frame of the view, in pixels.
const PAD: f64 = 10.0;
/// Room around the areas in emergency, as a share of the longer side of
/// their bounds.
const EMERGENCY_MARGIN: f64 = 0.06;
/// A view fitted to the areas in emergency is at least this high for its
/// width (and wide for its height): a long thin strip of a map is hard to read.
const MIN_ASPECT: f64 = 0.4;
/// How far past the frame a cut area reaches, in pixels: the cut edges are
/// drawn there, where the clip hides them.
const OVERHANG: f64 = 4.0;
/// Half a pixel: finer detail than this is not seen.
const SIMPLIFY_PX: f64 = 0.5;
/// The inset is coarser: a pixel.
const INSET_SIMPLIFY_PX: f64 = 1.0;
/// A level is named when the median of its areas' shorter sides on the
/// view is at least this many pixels: room for a name and some of the dots.
const ROOM_FOR_NAMES: f64 = 56.0;
const INSET_MIN_WIDTH: f64 = 190.0;
const INSET_CAPTION: &str = "the whole city; red box: the view";
const EMERGENCY_FILL: &str = "#ffcc80";
const VIEW_FRAME_COLOUR: &str = "#d62728";
/// Incident dot radius, in pixels: small enough for hundreds in a district.
const DOT_RADIUS: f64 = 2.8;

/// A coordinate in pixels, to 0.1 px, without a trailing ".0".
fn px(value: f64) -> String {
    tenths_text((value * 10.0).round() as i64)
}

/// A whole number of tenths as a decimal: 123 → "12.3", 120 → "12", -5 → "-0.5".
fn tenths_text(tenths: i64) -> String {
    let sign = if tenths < 0 { "-" } else { "" };
    let (whole, tenth) = (tenths.abs() / 10, tenths.abs() % 10);
    if tenth == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{tenth}") }
}

/// One area with its outline on a plane: x is longitude times the cosine of
/// the city's middle latitude, y latitude, so that a unit is as long
/// (a degree of latitude) both ways.
struct Shape<'a> {
    spec: &'a AreaSpec,
    plane: MultiPolygon<f64>,
    bounds: Rect<f64>,
}

fn shape_of(spec: &AreaSpec, squash: f64) -> Option<Shape<'_>> {
    let ring =
        |points: &Vec<[f64; 2]>| LineString::from(points.iter().map(|[lon, lat]| (lon * squash, *lat)).collect::<Vec<_>>());
    let polygons: Vec<Polygon<f64>> = spec
        .polygons
        .iter()
        .filter_map(|rings| {
            let (exterior, interiors) = rings.split_first()?;
            Some(Polygon::new(ring(exterior), interiors.iter().map(ring).collect()))
        })
        .collect();
    let plane = MultiPolygon::new(polygons);
    let bounds = plane.bounding_rect()?;
    Some(Shape { spec, plane, bounds })
}

/// The smallest rectangle holding both.
fn union(a: Rect<f64>, b: Rect<f64>) -> Rect<f64> {
    Rect::new(
        Coord { x: a.min().x.min(b.min().x), y: a.min().y.min(b.min().y) },
        Coord { x: a.max().x.max(b.max().x), y: a.max().y.max(b.max().y) },
    )
}

fn grown(rect: Rect<f64>, by_x: f64, by_y: f64) -> Rect<f64> {
    Rect::new(Coord { x: rect.min().x - by_x, y: rect.min().y - by_y }, Coord { x: rect.max().x + by_x, y: rect.max().y + by_y })
}

fn meet(a: Rect<f64>, b: Rect<f64>) -> bool {
    a.min().x <= b.max().x && b.min().x <= a.max().x && a.min().y <= b.max().y && b.min().y <= a.max().y
}

fn holds(outer: Rect<f64>, inner: Rect<f64>) -> bool {
    outer.min().x <= inner.min().x
        && outer.min().y <= inner.min().y
        && inner.max().x <= outer.max().x
        && inner.max().y <= outer.max().y
}

/// Plane to pixels: `region` drawn at `scale` pixels per unit, north up,
/// its top-left corner at (`left`, `top`).
#[derive(Clone, Copy)]
struct Projection {
    region: Rect<f64>,
    scale: f64,
    left: f64,
    top: f64,
}

impl Projection {
    /// `region` as large as fits in `width` × `height` pixels.
    fn fit(region: Rect<f64>, width: f64, height: f64, left: f64, top: f64) -> Projection {
        let scale = (width / region.width().max(1e-9)).min(height / region.height().max(1e-9));
        Projection { region, scale, left, top }
    }

    fn x(&self, x: f64) -> f64 {
        self.left + (x - self.region.min().x) * self.scale
    }

    fn y(&self, y: f64) -> f64 {
        self.top + (self.region.max().y - y) * self.scale
    }

    fn width(&self) -> f64 {
        self.region.width() * self.scale
    }

    fn height(&self) -> f64 {
        self.region.height() * self.scale
    }

    /// The plane rectangle that `pixels` shows.
    fn plane_of(&self, pixels: Rect<f64>) -> Rect<f64> {
        let x = |px: f64| self.region.min().x + (px - self.left) / self.scale;
        let y = |py: f64| self.region.max().y - (py - self.top) / self.scale;
        Rect::new(Coord { x: x(pixels.min().x), y: y(pixels.max().y) }, Coord { x: x(pixels.max().x), y: y(pixels.min().y) })
    }

    fn pixels_of(&self, plane: Rect<f64>) -> Rect<f64> {
        Rect::new(
            Coord { x: self.x(plane.min().x), y: self.y(plane.max().y) },
            Coord { x: self.x(plane.max().x), y: self.y(plane.min().y) },
        )
    }
}

/// An area as drawn, in pixels: simplified to `tolerance` pixels, its parts
/// smaller than a pixel dropped, and cut to `cut` (pixels) when it reaches
/// out of it. `None` when nothing is left to draw.
fn drawn(shape: &Shape<'_>, projection: &Projection, tolerance: f64, cut: Option<Rect<f64>>) -> Option<MultiPolygon<f64>> {
    let bounds = projection.pixels_of(shape.bounds);
    if let Some(cut) = cut
        && !meet(cut, bounds)
    {
        return None;
    }
    let in_pixels = shape.plane.map_coords(|Coord { x, y }| Coord { x: projection.x(x), y: projection.y(y) });
    let big_enough = |polygons: MultiPolygon<f64>| -> MultiPolygon<f64> {
        MultiPolygon::new(polygons.into_iter().filter(|polygon| polygon.unsigned_area() >= 1.0).collect())
    };
    let mut simplified = big_enough(big_enough(in_pixels).simplify(tolerance));
    if let Some(cut) = cut
        && !holds(cut, bounds)
    {
        simplified = big_enough(simplified.intersection(&cut.to_polygon()));
    }
    if simplified.0.is_empty() { None } else { Some(simplified) }
}

/// SVG path data of polygons in pixels: every ring, to 0.1 px. Each ring
/// starts at an absolute point and goes on in steps from point to point
/// (shorter to write than absolute points); the steps are taken between
/// rounded points, so no rounding error adds up along a ring.
fn path_data(polygons: &MultiPolygon<f64>) -> String {
    let mut data = String::new();
    for polygon in polygons {
        for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
            let mut points: Vec<(i64, i64)> = Vec::new();
            for coord in ring.coords() {
                let point = ((coord.x * 10.0).round() as i64, (coord.y * 10.0).round() as i64);
                if points.last() != Some(&point) {
                    points.push(point);
                }
            }
            if points.len() > 1 && points.first() == points.last() {
                points.pop();
            }
            let (Some(&(first_x, first_y)), true) = (points.first(), points.len() >= 3) else { continue };
            let _ = write!(data, "M{},{}l", tenths_text(first_x), tenths_text(first_y));
            for pair in points.windows(2) {
                let _ = write!(data, "{},{} ", tenths_text(pair[1].0 - pair[0].0), tenths_text(pair[1].1 - pair[0].1));
            }
            data.pop();
            data.push('Z');
        }
    }
    data
}

/// A label's box in pixels: left, top, right, bottom.
type LabelBox = (f64, f64, f64, f64);

fn boxes_meet(a: LabelBox, b: LabelBox) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// A length for the scale bar: 1, 2 or 5 times a power of ten metres, about
/// `target_px` long at `px_per_metre`.
fn scale_length(px_per_metre: f64, target_px: f64) -> f64 {
    let metres = target_px / px_per_metre;
    let magnitude = 10f64.powf(metres.log10().floor());
    [5.0, 2.0, 1.0].iter().map(|m| m * magnitude).find(|length| *length <= metres).unwrap_or(magnitude)
}

/// How a level's outlines and names are drawn.
fn outline_style(level: AreaLevel) -> (&'static str, f64) {
    match level {
        AreaLevel::City => ("#222", 2.5),
        AreaLevel::District => ("#444", 2.0),
        AreaLevel::Street => ("#777", 1.4),
        AreaLevel::Community => ("#999", 1.0),
        _ => ("#ccc", 0.6),
    }
}

/// Font size, bold, colour.
fn name_style(level: AreaLevel) -> (f64, bool, &'static str) {
    match level {
        AreaLevel::District => (15.0, true, "#222"),
        AreaLevel::Street => (12.0, true, "#444"),
        _ => (11.0, false, "#555"),
    }
}

/// The level to name at this scale: the deepest of district, street and
/// community whose areas centred in the view are, at the median, big enough
/// for names; districts when none is. (Areas the view shows only the edge
/// of would make every level look too small.)
fn level_to_name(in_view: &[(&Shape<'_>, MultiPolygon<f64>)], projection: &Projection, frame: Rect<f64>) -> Option<AreaLevel> {
    let mut named = None;
    for level in [AreaLevel::District, AreaLevel::Street, AreaLevel::Community] {
        let mut sides: Vec<f64> = in_view
            .iter()
            .filter(|(shape, _)| shape.spec.level == level)
            .map(|(shape, _)| projection.pixels_of(shape.bounds))
            .filter(|bounds| holds(frame, Rect::new(bounds.center(), bounds.center())))
            .map(|bounds| bounds.width().min(bounds.height()))
            .collect();
        if sides.is_empty() {
            continue;
        }
        sides.sort_by(f64::total_cmp);
        let median = sides[sides.len() / 2];
        if median >= ROOM_FOR_NAMES || (named.is_none() && level == AreaLevel::District) {
            named = Some(level);
        }
    }
    named
}

/// The areas, the incidents (coloured by priority; hollow when never
/// staffed), where each responder was when offered and a line from there to
/// the incident they took; names of one level, a scale bar, a legend, and
/// when areas were in emergency, the view fitted to them and the whole city
/// in an inset.
pub fn map(report: &Report, map: &AreaImport) -> String {
    let responders: Vec<(&IncidentFigures, [f64; 2])> = report
        .incidents
        .iter()
        .flat_map(|figures| figures.responders.iter().filter_map(move |responder| Some((figures, responder.from?))))
        .collect();
    let responders_total: usize = report.incidents.iter().map(|figures| figures.responders.len()).sum();

    // Equirectangular about the middle latitude: fine at the size of a city.
    let latitudes = map
        .areas
        .iter()
        .flat_map(|area| area.polygons.iter().flatten().flatten().map(|point| point[1]))
        .chain(report.incidents.iter().map(|figures| figures.at[1]));
    let (south, north) = latitudes.fold((f64::MAX, f64::MIN), |(south, north), lat| (south.min(lat), north.max(lat)));
    let squash = if south <= north { ((south + north) / 2.0).to_radians().cos().max(0.1) } else { 1.0 };
    let on_plane = |[lon, lat]: [f64; 2]| Coord { x: lon * squash, y: lat };

    let shapes: Vec<Shape<'_>> = map.areas.iter().filter_map(|area| shape_of(area, squash)).collect();
    let in_emergency = |shape: &&Shape<'_>| report.emergency_areas.contains_key(shape.spec.id.as_str());
    let emergency_bounds = shapes.iter().filter(in_emergency).map(|shape| shape.bounds).reduce(union);
    let city_bounds = shapes.iter().map(|shape| shape.bounds).reduce(union);

    // The region to map: the areas in emergency and some room around them;
    // else, as before, every area, incident and responder.
    let region = match emergency_bounds {
        Some(bounds) => {
            let margin = EMERGENCY_MARGIN * bounds.width().max(bounds.height());
            let longer = bounds.width().max(bounds.height()) + 2.0 * margin;
            let grow_x = margin + (MIN_ASPECT * longer - bounds.width() - 2.0 * margin).max(0.0) / 2.0;
            let grow_y = margin + (MIN_ASPECT * longer - bounds.height() - 2.0 * margin).max(0.0) / 2.0;
            grown(bounds, grow_x, grow_y)
        }
        None => {
            let points = report.incidents.iter().map(|figures| figures.at).chain(responders.iter().map(|(_, from)| *from));
            let around_points = points.map(|point| Rect::new(on_plane(point), on_plane(point))).reduce(union);
            match (city_bounds, around_points) {
                (Some(areas), Some(points)) => union(areas, points),
                (Some(only), None) | (None, Some(only)) => only,
                (None, None) => Rect::new(Coord { x: 0.0, y: 0.0 }, Coord { x: 0.01, y: 0.01 }),
            }
        }
    };

    let mut entries: Vec<LegendEntry> = Vec::new();
    let priorities: Vec<u8> = (1..=4u8).filter(|p| report.incidents.iter().any(|f| f.priority.clamp(1, 4) == *p)).collect();
    for priority in &priorities {
        let colour = PRIORITY_COLOURS[(priority - 1) as usize];
        entries
            .push(LegendEntry { swatch: Swatch::Dot { colour, filled: true }, label: format!("P{priority} incident, staffed") });
    }
    entries.push(LegendEntry { swatch: Swatch::Dot { colour: "#777", filled: false }, label: "incident never staffed".into() });
    entries.push(LegendEntry { swatch: Swatch::Square { colour: "#333" }, label: "responder when offered (±100 m)".into() });
    entries.push(LegendEntry { swatch: Swatch::Line { colour: "#888", width: 0.8 }, label: "responder → incident".into() });
    entries
        .push(LegendEntry { swatch: Swatch::Area { colour: EMERGENCY_FILL, opacity: 0.5 }, label: "area in emergency".into() });
    for level in [AreaLevel::District, AreaLevel::Street, AreaLevel::Community, AreaLevel::Grid] {
        let (colour, width) = outline_style(level);
        entries.push(LegendEntry { swatch: Swatch::Line { colour, width }, label: format!("{} boundary", level.name()) });
    }
    let with_inset = emergency_bounds.is_some();
    if with_inset {
        entries.push(LegendEntry {
            swatch: Swatch::Line { colour: VIEW_FRAME_COLOUR, width: 1.2 },
            label: "the view, in the inset below".into(),
        });
    }
    let legend_title = "legend";
    let (legend_width, legend_height) = legend_size(legend_title, &entries, 11.0);
    let inset_width =
        if with_inset { legend_width.max(INSET_MIN_WIDTH).max(text_width(INSET_CAPTION, 11.0, false)) } else { 0.0 };
    let side_width = legend_width.max(inset_width);

    let placeholder = Projection::fit(region, VIEW_MAX, VIEW_MAX, 0.0, 0.0);
    let (view_width, view_height) = (placeholder.width() + 2.0 * PAD, placeholder.height() + 2.0 * PAD);
    let width = MARGIN + view_width + GAP + side_width + MARGIN;

    let names = |id: &str| map.areas.iter().find(|area| area.id.as_str() == id).map(|area| area.name.clone());
    let mut subtitle = vec![plural(report.totals.incidents, "incident", "incidents")];
    let reported = report.incidents.iter().map(|figures| figures.reported_at_s);
    if let (Some(first), Some(last)) = (reported.clone().reduce(f64::min), reported.reduce(f64::max)) {
        let started = report.drill.started_at_ms;
        subtitle[0] += &format!(" reported {} to {} on the drill clock", clock(started, first), clock(started, last));
    }
    let unknown = responders_total - responders.len();
    subtitle.push(format!(
        "{} drawn from where they were when offered{}",
        plural(responders_total, "responder", "responders"),
        if unknown > 0 { format!(" ({unknown} with no known start point)") } else { String::new() }
    ));
    if !report.emergency_areas.is_empty() {
        let areas: Vec<String> = report
            .emergency_areas
            .iter()
            .map(|(id, grade)| match names(id) {
                Some(name) if !name.is_empty() => format!("{id} {name} in {grade}"),
                _ => format!("{id} in {grade}"),
            })
            .collect();
        subtitle.push(areas.join(", "));
    }
    // Known before the layout: the view's region does not depend on it.
    let outside_view = report
        .incidents
        .iter()
        .filter(|figures| {
            let point = on_plane(figures.at);
            let shown = grown(region, PAD / placeholder.scale, PAD / placeholder.scale);
            !meet(shown, Rect::new(point, point))
        })
        .count();
    if with_inset {
        let mut fitted = "the map is fitted to the areas in emergency".to_string();
        if outside_view > 0 {
            fitted += &format!(" ({} outside it)", plural(outside_view, "incident", "incidents"));
        }
        subtitle.push(fitted);
    }
    let subtitle = wrap(&(subtitle.join("; ") + "."), 12.0, width - 2.0 * MARGIN);
    let header_bottom = 30.0 + 17.0 * subtitle.len() as f64;
    let map_top = header_bottom + 16.0;
    let projection = Projection::fit(region, VIEW_MAX, VIEW_MAX, MARGIN + PAD, map_top + PAD);
    let frame = Rect::new(Coord { x: MARGIN, y: map_top }, Coord { x: MARGIN + view_width, y: map_top + view_height });
    let cut = grown(frame, OVERHANG, OVERHANG);
    let x = |lon: f64| projection.x(lon * squash);
    let y = |lat: f64| projection.y(lat);

    let side_left = MARGIN + view_width + GAP;
    let inset_caption_y = map_top + legend_height + 24.0;
    let inset_top = inset_caption_y + 8.0;
    let inset = city_bounds.filter(|_| with_inset).map(|city| {
        let inner = inset_width - 2.0 * 6.0;
        let fitted = Projection::fit(city, inner, inner * 1.2, 0.0, 0.0);
        let left = side_left + (inset_width - fitted.width()) / 2.0;
        Projection { left, top: inset_top + 6.0, ..fitted }
    });
    let inset_bottom = inset.map_or(0.0, |inset| inset.top + inset.height() + 6.0);
    let scale_bar_y = map_top + view_height + 24.0;
    let height = (scale_bar_y + 24.0).max(map_top + legend_height + MARGIN).max(inset_bottom + MARGIN);

    let mut out = String::new();
    header(&mut out, width, height, "Areas, incidents and responders", &subtitle);
    let (frame_x, frame_y, frame_width, frame_height) = (px(frame.min().x), px(frame.min().y), px(view_width), px(view_height));
    let _ = writeln!(
        out,
        r##"<rect id="plot-area" x="{frame_x}" y="{frame_y}" width="{frame_width}" height="{frame_height}" fill="none"/>
<defs><clipPath id="view-clip"><rect x="{frame_x}" y="{frame_y}" width="{frame_width}" height="{frame_height}"/></clipPath></defs>
<g id="view" clip-path="url(#view-clip)">"##
    );

    let mut in_view: Vec<(&Shape<'_>, MultiPolygon<f64>)> =
        shapes.iter().filter_map(|shape| Some((shape, drawn(shape, &projection, SIMPLIFY_PX, Some(cut))?))).collect();
    // Areas that were in emergency during the drill, tinted under the outlines.
    for (shape, pixels) in in_view.iter().filter(|(shape, _)| in_emergency(shape)) {
        let id = shape.spec.id.as_str();
        let grade = report.emergency_areas.get(id).map_or("", String::as_str);
        let _ = writeln!(
            out,
            r##"<path id="emergency-{}" d="{}" fill="{EMERGENCY_FILL}" fill-opacity="0.5" fill-rule="evenodd"><title>{} in {}</title></path>"##,
            escape(id),
            path_data(pixels),
            escape(id),
            escape(grade)
        );
    }
    // Finer levels first, so that the wider boundaries are drawn over them.
    in_view.sort_by_key(|(shape, _)| std::cmp::Reverse(shape.spec.level));
    let mut open_level = None;
    for (shape, pixels) in &in_view {
        if open_level != Some(shape.spec.level) {
            if open_level.is_some() {
                out.push_str("</g>\n");
            }
            let (stroke, stroke_width) = outline_style(shape.spec.level);
            let _ = writeln!(
                out,
                r##"<g class="{}" fill="none" stroke="{stroke}" stroke-width="{stroke_width}" stroke-linejoin="round">"##,
                shape.spec.level.name()
            );
            open_level = Some(shape.spec.level);
        }
        let _ = writeln!(out, r##"<path d="{}"/>"##, path_data(pixels));
    }
    if open_level.is_some() {
        out.push_str("</g>\n");
    }

    let seen = |(x0, y0): (f64, f64), (x1, y1): (f64, f64)| {
        meet(cut, Rect::new(Coord { x: x0.min(x1), y: y0.min(y1) }, Coord { x: x0.max(x1), y: y0.max(y1) }))
    };
    out.push_str(r##"<g id="responders" stroke="#555" stroke-opacity="0.4" stroke-width="0.8">"##);
    out.push('\n');
    for (figures, [lon, lat]) in &responders {
        let (from, to) = ((x(*lon), y(*lat)), (x(figures.at[0]), y(figures.at[1])));
        if seen(from, to) {
            let _ = writeln!(out, r##"<line x1="{}" y1="{}" x2="{}" y2="{}"/>"##, px(from.0), px(from.1), px(to.0), px(to.1));
        }
    }
    out.push_str("</g>\n<g fill=\"#333\" fill-opacity=\"0.8\">\n");
    for (_, [lon, lat]) in &responders {
        let at = (x(*lon), y(*lat));
        if seen(at, at) {
            let _ = writeln!(out, r##"<rect x="{}" y="{}" width="3" height="3"/>"##, px(at.0 - 1.5), px(at.1 - 1.5));
        }
    }
    out.push_str("</g>\n<g id=\"incidents\">\n");
    let mut dots: Vec<LabelBox> = Vec::new();
    for figures in &report.incidents {
        let at = (x(figures.at[0]), y(figures.at[1]));
        if !seen(at, at) {
            continue;
        }
        let colour = PRIORITY_COLOURS[(figures.priority.clamp(1, 4) - 1) as usize];
        // Staffed: filled, outlined in white so that dots on top of each
        // other stay apart; never staffed: hollow.
        let (fill, stroke, stroke_width) =
            if figures.staffed_s.is_some() { (colour, "white", 0.6) } else { ("white", colour, 1.2) };
        let _ = writeln!(
            out,
            r##"<circle cx="{}" cy="{}" r="{DOT_RADIUS}" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"><title>{} {} P{}</title></circle>"##,
            px(at.0),
            px(at.1),
            escape(&figures.id),
            escape(&figures.category),
            figures.priority
        );
        let reach = DOT_RADIUS + 1.0;
        dots.push((at.0 - reach, at.1 - reach, at.0 + reach, at.1 + reach));
    }
    out.push_str("</g>\n</g>\n");
    let _ = writeln!(
        out,
        r##"<rect x="{frame_x}" y="{frame_y}" width="{frame_width}" height="{frame_height}" fill="none" stroke="#bbb"/>"##
    );

    // Names last, on a white halo, so no dot or line hides them; the biggest
    // areas first. Each goes where it covers the fewest incidents near its
    // area's centre, inside the frame; one that finds no room is left out.
    out.push_str(r##"<g id="labels" stroke="white" stroke-width="3" stroke-linejoin="round" paint-order="stroke">"##);
    out.push('\n');
    if let Some(level) = level_to_name(&in_view, &projection, frame) {
        let (font_size, bold, fill) = name_style(level);
        let mut to_name: Vec<(&Shape<'_>, Polygon<f64>)> = in_view
            .iter()
            .filter(|(shape, _)| shape.spec.level == level && !shape.spec.name.is_empty())
            .filter_map(|(shape, pixels)| {
                let largest = pixels.0.iter().max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))?;
                Some((*shape, largest.clone()))
            })
            .collect();
        to_name.sort_by(|(_, a), (_, b)| b.unsigned_area().total_cmp(&a.unsigned_area()));
        let room = grown(frame, -2.0, -2.0);
        let mut placed: Vec<LabelBox> = Vec::new();
        for (shape, polygon) in &to_name {
            let Some(centre) = polygon.centroid() else { continue };
            let half_width = text_width(&shape.spec.name, font_size, bold) / 2.0;
            let line = font_size * 1.3;
            let offsets = [(0.0, 0.0), (0.0, -1.0), (0.0, 1.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -2.0), (0.0, 2.0)];
            let candidates = offsets.map(|(columns, rows)| {
                let (middle_x, middle_y) = (centre.x() + columns * half_width, centre.y() + rows * line);
                (middle_x - half_width, middle_y - line / 2.0, middle_x + half_width, middle_y + line / 2.0)
            });
            let covered = |candidate: &LabelBox| dots.iter().filter(|dot| boxes_meet(*candidate, **dot)).count();
            // In the frame, and over the area's own part of the view: an area
            // the view shows a sliver of goes unnamed.
            let Some(own) = polygon.bounding_rect() else { continue };
            let inside = |candidate: &LabelBox| {
                candidate.0 >= room.min().x.max(own.min().x)
                    && candidate.1 >= room.min().y.max(own.min().y)
                    && candidate.2 <= room.max().x.min(own.max().x)
                    && candidate.3 <= room.max().y.min(own.max().y)
            };
            let Some(label_box) = candidates
                .iter()
                .filter(|candidate| inside(candidate) && !placed.iter().any(|other| boxes_meet(**candidate, *other)))
                .min_by_key(|candidate| covered(candidate))
                .copied()
            else {
                continue;
            };
            placed.push(label_box);
            let _ = writeln!(
                out,
                r##"<text x="{}" y="{}" text-anchor="middle" font-size="{font_size}"{} fill="{fill}">{}</text>"##,
                px((label_box.0 + label_box.2) / 2.0),
                px((label_box.1 + label_box.3) / 2.0 + font_size * 0.35),
                if bold { r#" font-weight="bold""# } else { "" },
                escape(&shape.spec.name)
            );
        }
    }
    out.push_str("</g>\n");

    let px_per_metre = projection.scale / METRES_PER_DEGREE;
    let metres = scale_length(px_per_metre, 120.0);
    let bar = metres * px_per_metre;
    let label = if metres >= 1000.0 { format!("{} km", metres / 1000.0) } else { format!("{metres} m") };
    let _ = writeln!(
        out,
        r##"<g id="scale-bar"><path d="M{MARGIN},{} V{} H{} V{}" stroke="#333" stroke-width="1.5" fill="none"/><text x="{MARGIN}" y="{}" text-anchor="middle">0</text><text x="{}" y="{}" text-anchor="middle">{label}</text><text x="{}" y="{}" fill="#555">north is up</text></g>"##,
        px(scale_bar_y - 5.0),
        px(scale_bar_y),
        px(MARGIN + bar),
        px(scale_bar_y - 5.0),
        px(scale_bar_y + 15.0),
        px(MARGIN + bar),
        px(scale_bar_y + 15.0),
        px(MARGIN + bar + 40.0),
        px(scale_bar_y + 4.0)
    );
    legend(&mut out, side_left, map_top, legend_title, &entries, 11.0);
    if let Some(inset) = inset {
        write_inset(&mut out, &shapes, &inset, &projection.plane_of(frame), report, (side_left, inset_top, inset_width));
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" font-size="11" fill="#555">{INSET_CAPTION}</text>"##,
            px(side_left),
            px(inset_caption_y)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The whole city, small: its districts (or its widest level under the
/// city), the areas in emergency and a red box where the main view is.
fn write_inset(
    out: &mut String,
    shapes: &[Shape<'_>],
    inset: &Projection,
    view: &Rect<f64>,
    report: &Report,
    (left, top, width): (f64, f64, f64),
) {
    let height = inset.height() + 12.0;
    let _ = writeln!(
        out,
        r##"<g id="inset"><rect x="{}" y="{}" width="{}" height="{}" fill="white" stroke="#bbb"/>"##,
        px(left),
        px(top),
        px(width),
        px(height)
    );
    for shape in shapes.iter().filter(|shape| report.emergency_areas.contains_key(shape.spec.id.as_str())) {
        if let Some(pixels) = drawn(shape, inset, INSET_SIMPLIFY_PX, None) {
            let _ = writeln!(out, r##"<path d="{}" fill="{EMERGENCY_FILL}" fill-rule="evenodd"/>"##, path_data(&pixels));
        }
    }
    let widest =
        shapes.iter().map(|shape| shape.spec.level).filter(|level| *level != AreaLevel::City).min().unwrap_or(AreaLevel::City);
    let (stroke, _) = outline_style(widest);
    let _ = writeln!(out, r##"<g fill="none" stroke="{stroke}" stroke-width="0.6" stroke-linejoin="round">"##);
    for shape in shapes.iter().filter(|shape| shape.spec.level == widest || shape.spec.level == AreaLevel::City) {
        if let Some(pixels) = drawn(shape, inset, INSET_SIMPLIFY_PX, None) {
            let _ = writeln!(out, r##"<path d="{}"/>"##, path_data(&pixels));
        }
    }
    out.push_str("</g>\n");
    // The view reaches past the city's bounds by its margin; the box stays in the inset.
    let view = inset.pixels_of(*view);
    let frame = Rect::new(
        Coord { x: view.min().x.max(left + 1.0), y: view.min().y.max(top + 1.0) },
        Coord { x: view.max().x.min(left + width - 1.0), y: view.max().y.min(top + height - 1.0) },
    );
    let _ = writeln!(
        out,
        r##"<rect id="inset-view" x="{}" y="{}" width="{}" height="{}" fill="none" stroke="{VIEW_FRAME_COLOUR}" stroke-width="1.2"/></g>"##,
        px(frame.min().x),
        px(frame.min().y),
        px(frame.width().max(1.0)),
        px(frame.height().max(1.0))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_bar_is_a_round_length() {
        // 0.1 px per metre: 120 px would be 1,200 m; the bar shows 1 km.
        assert_eq!(scale_length(0.1, 120.0), 1000.0);
        assert_eq!(scale_length(0.05, 120.0), 2000.0);
        assert_eq!(scale_length(1.0, 120.0), 100.0);
    }

    #[test]
    fn coordinates_are_written_to_a_tenth_of_a_pixel() {
        assert_eq!(px(12.34), "12.3");
        assert_eq!(px(12.96), "13");
        assert_eq!(px(-0.04), "0");
        assert_eq!(px(-3.25), "-3.3");
        assert_eq!(px(-0.5), "-0.5");
    }

    #[test]
    fn rings_are_written_as_steps_between_rounded_points() {
        let triangle = MultiPolygon::new(vec![Polygon::new(
            LineString::from(vec![(10.04, 20.0), (30.06, 20.0), (30.06, 5.55), (10.04, 20.0)]),
            vec![],
        )]);
        // From (10, 20): to (30.1, 20), to (30.1, 5.6) (5.55 rounds up), and closed.
        assert_eq!(path_data(&triangle), "M10,20l20.1,0 0,-14.4Z");
    }
}
