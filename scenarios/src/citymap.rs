//! Maps made for drills: a city of districts with real-size borders, and the
//! subdivision of any district map into streets, communities and grids.
//!
//! Most cities can get their district boundaries (OpenStreetMap, a planning
//! office) but not their streets, communities and grids. [`subdivide`] cuts
//! each district into streets, each street into communities and each
//! community into grids: Voronoi cells of seeded, evenly spread points,
//! clipped to the parent, so children tile their parent and follow its real
//! border. [`city`] makes a district file of real size to subdivide when no
//! real one may be shipped: districts grown over a fine, jittered lattice,
//! whose shared borders are the same vertices on both sides.
//!
//! Both are deterministic: the same input and seed give the same map, byte
//! for byte once written with [`to_geojson`].

use std::collections::{BTreeMap, BinaryHeap};

use geo::{Area, BooleanOps, BoundingRect, ChamberlainDuquetteArea, Contains, LineString, MultiPolygon, Orient, Point, Polygon};
use pingji_engine::areas::{AreaImport, AreaLevel, AreaSpec, Rings};
use pingji_engine::ids::AreaId;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Children per parent, on average: the totals per level are the averages
/// times the parents, shared out by area (every parent gets at least one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counts {
    pub streets_per_district: f64,
    pub communities_per_street: f64,
    pub grids_per_community: f64,
}

impl Default for Counts {
    /// Hangzhou's proportions: 13 districts, 114 streets, 436 communities,
    /// 2,521 grids.
    fn default() -> Self {
        Counts { streets_per_district: 8.8, communities_per_street: 3.8, grids_per_community: 5.8 }
    }
}

impl Counts {
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("streets", self.streets_per_district),
            ("communities", self.communities_per_street),
            ("grids", self.grids_per_community),
        ] {
            if !(1.0..=200.0).contains(&value) {
                return Err(format!("{name} per parent must be between 1 and 200, not {value}"));
            }
        }
        Ok(())
    }
}

/// Where the generated city lies: Hangzhou's centre (lon, lat).
pub const CITY_CENTRE: (f64, f64) = (120.2, 30.25);
/// The generated city's radius in metres (its outline wanders around it).
const CITY_RADIUS_M: f64 = 21_000.0;
/// Lattice cell of the generated city: district borders follow its edges.
const CELL_M: f64 = 150.0;

/// Metres on a flat local frame around a point, for distances and shapes
/// at city scale.
#[derive(Clone, Copy, Debug)]
struct Frame {
    lon0: f64,
    lat0: f64,
    metres_per_lon: f64,
    metres_per_lat: f64,
}

impl Frame {
    fn at(lon0: f64, lat0: f64) -> Frame {
        Frame { lon0, lat0, metres_per_lon: 111_320.0 * lat0.to_radians().cos(), metres_per_lat: 110_574.0 }
    }

    fn to_metres(self, lon: f64, lat: f64) -> (f64, f64) {
        ((lon - self.lon0) * self.metres_per_lon, (lat - self.lat0) * self.metres_per_lat)
    }

    fn to_degrees(self, x: f64, y: f64) -> (f64, f64) {
        (self.lon0 + x / self.metres_per_lon, self.lat0 + y / self.metres_per_lat)
    }
}

/// Characters for made-up place names; two of them make a name.
const NAME_CHARACTERS: [&str; 48] = [
    "东", "西", "南", "北", "湖", "江", "山", "桥", "云", "梅", "柳", "桂", "松", "竹", "兰", "枫", "荷", "春", "秋", "明", "新",
    "华", "安", "宁", "和", "平", "兴", "昌", "德", "善", "文", "望", "月", "星", "石", "塘", "溪", "浦", "港", "湾", "河", "林",
    "园", "祥", "瑞", "丰", "翠", "嘉",
];

/// Two-character names, shuffled by the seed, each used once.
struct Names {
    pool: Vec<String>,
}

impl Names {
    fn new(rng: &mut StdRng) -> Names {
        let mut pool = Vec::new();
        for first in NAME_CHARACTERS {
            for second in NAME_CHARACTERS {
                if first != second {
                    pool.push(format!("{first}{second}"));
                }
            }
        }
        pool.shuffle(rng);
        Names { pool }
    }

    /// The next unused name; numbered once the pool runs out (over 2,000 names).
    fn next(&mut self, serial: usize) -> String {
        self.pool.pop().unwrap_or_else(|| format!("第{serial}"))
    }
}

fn multipolygon_of(rings: &Rings) -> MultiPolygon<f64> {
    let ring = |points: &Vec<[f64; 2]>| LineString::from(points.iter().map(|[x, y]| (*x, *y)).collect::<Vec<_>>());
    MultiPolygon::new(
        rings
            .iter()
            .filter(|polygon| !polygon.is_empty())
            .map(|polygon| Polygon::new(ring(&polygon[0]), polygon[1..].iter().map(ring).collect()))
            .collect(),
    )
}

/// Rings rounded to 6 decimals (about 0.1 m, as the map format says),
/// exteriors counter-clockwise, without repeated points or rings that
/// rounding flattened.
fn rings_of(shape: &MultiPolygon<f64>) -> Rings {
    let round = |value: f64| (value * 1e6).round() / 1e6;
    let ring = |line: &LineString<f64>| -> Option<Vec<[f64; 2]>> {
        let mut points: Vec<[f64; 2]> = Vec::new();
        for coord in line.coords() {
            let point = [round(coord.x), round(coord.y)];
            if points.last() != Some(&point) {
                points.push(point);
            }
        }
        if points.first() != points.last()
            && let Some(first) = points.first().copied()
        {
            points.push(first);
        }
        // A closed ring needs three distinct corners.
        (points.len() >= 4).then_some(points)
    };
    shape
        .orient(geo::orient::Direction::Default)
        .0
        .iter()
        .filter_map(|polygon| {
            let exterior = ring(polygon.exterior())?;
            let mut rings = vec![exterior];
            rings.extend(polygon.interiors().iter().filter_map(ring));
            Some(rings)
        })
        .collect()
}

/// Writes areas and service centres as the GeoJSON of `scenarios/maps/README.md`,
/// one feature per line, coordinates rounded to 6 decimals.
pub fn to_geojson(import: &AreaImport) -> String {
    let round = |value: f64| (value * 1e6).round() / 1e6;
    let mut features = Vec::new();
    for spec in &import.areas {
        let geometry = if spec.polygons.len() == 1 {
            json!({ "type": "Polygon", "coordinates": spec.polygons[0] })
        } else {
            json!({ "type": "MultiPolygon", "coordinates": spec.polygons })
        };
        let parent = spec.parent.as_ref().map(|parent| parent.as_str().to_string()).unwrap_or_default();
        features.push(json!({
            "type": "Feature",
            "properties": { "id": spec.id.as_str(), "name": spec.name, "level": spec.level.name(), "parent": parent },
            "geometry": geometry,
        }));
    }
    for centre in &import.service_centres {
        features.push(json!({
            "type": "Feature",
            "properties": { "id": centre.id.as_str(), "name": centre.name, "level": "service_centre", "parent": centre.area.as_str() },
            "geometry": { "type": "Point", "coordinates": [round(centre.at.lon), round(centre.at.lat)] },
        }));
    }
    let lines: Vec<String> = features.iter().map(|feature| feature.to_string()).collect();
    format!("{{\"type\": \"FeatureCollection\", \"features\": [\n{}\n]}}\n", lines.join(",\n"))
}

/// Splits `total` children over parents in proportion to their areas, at
/// least one each (largest remainders get the rest).
fn share_out(total: usize, areas: &[f64]) -> Vec<usize> {
    let sum: f64 = areas.iter().sum();
    let mut counts = vec![1; areas.len()];
    let rest = total.saturating_sub(areas.len());
    if rest == 0 || sum <= 0.0 {
        return counts;
    }
    let exact: Vec<f64> = areas.iter().map(|area| area / sum * rest as f64).collect();
    for (count, value) in counts.iter_mut().zip(&exact) {
        *count += value.floor() as usize;
    }
    let mut order: Vec<usize> = (0..areas.len()).collect();
    order.sort_by(|a, b| (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor())).then(a.cmp(b)));
    let given: usize = exact.iter().map(|value| value.floor() as usize).sum();
    for index in order.iter().take(rest.saturating_sub(given)) {
        counts[*index] += 1;
    }
    counts
}

/// Keeps the part of a convex polygon on the side of the line where
/// `|p - keep|² <= |p - other|²` (Sutherland–Hodgman with one edge).
fn clip_to_nearer(polygon: &[(f64, f64)], keep: (f64, f64), other: (f64, f64)) -> Vec<(f64, f64)> {
    // The half-plane as a·p <= b.
    let a = (other.0 - keep.0, other.1 - keep.1);
    let b = (other.0 * other.0 + other.1 * other.1 - keep.0 * keep.0 - keep.1 * keep.1) / 2.0;
    let side = |p: (f64, f64)| a.0 * p.0 + a.1 * p.1 - b;
    let mut out = Vec::new();
    for index in 0..polygon.len() {
        let current = polygon[index];
        let next = polygon[(index + 1) % polygon.len()];
        let (current_side, next_side) = (side(current), side(next));
        if current_side <= 0.0 {
            out.push(current);
        }
        if (current_side <= 0.0) != (next_side <= 0.0) {
            let t = current_side / (current_side - next_side);
            out.push((current.0 + t * (next.0 - current.0), current.1 + t * (next.1 - current.1)));
        }
    }
    out
}

/// Splits a parent into about `count` children: Voronoi cells of evenly
/// spread random points inside it (each the best of several candidates),
/// clipped to the parent.
fn split(parent: &MultiPolygon<f64>, count: usize, frame: Frame, rng: &mut StdRng) -> Vec<MultiPolygon<f64>> {
    if count <= 1 {
        return vec![parent.clone()];
    }
    let Some(bounds) = parent.bounding_rect() else {
        return Vec::new();
    };
    let (west, south) = frame.to_metres(bounds.min().x, bounds.min().y);
    let (east, north) = frame.to_metres(bounds.max().x, bounds.max().y);
    let inside = |x: f64, y: f64| {
        let (lon, lat) = frame.to_degrees(x, y);
        parent.contains(&Point::new(lon, lat))
    };
    let mut seeds: Vec<(f64, f64)> = Vec::new();
    let mut attempts = 0;
    while seeds.len() < count && attempts < count * 400 {
        let mut best: Option<((f64, f64), f64)> = None;
        let mut candidates = 0;
        while candidates < 12 && attempts < count * 400 {
            attempts += 1;
            let candidate = (west + (east - west) * rng.random::<f64>(), south + (north - south) * rng.random::<f64>());
            if !inside(candidate.0, candidate.1) {
                continue;
            }
            candidates += 1;
            let nearest = seeds
                .iter()
                .map(|seed| (seed.0 - candidate.0).powi(2) + (seed.1 - candidate.1).powi(2))
                .fold(f64::INFINITY, f64::min);
            if best.is_none_or(|(_, distance)| nearest > distance) {
                best = Some((candidate, nearest));
            }
        }
        match best {
            Some((seed, distance)) if distance > 1.0 => seeds.push(seed),
            _ => {}
        }
    }
    if seeds.len() <= 1 {
        return vec![parent.clone()];
    }
    let margin = 100.0 + (east - west).max(north - south);
    let frame_box = vec![
        (west - margin, south - margin),
        (east + margin, south - margin),
        (east + margin, north + margin),
        (west - margin, north + margin),
    ];
    let mut children = Vec::new();
    for (index, seed) in seeds.iter().enumerate() {
        let mut cell = frame_box.clone();
        for (other_index, other) in seeds.iter().enumerate() {
            if other_index != index && !cell.is_empty() {
                cell = clip_to_nearer(&cell, *seed, *other);
            }
        }
        if cell.len() < 3 {
            continue;
        }
        let mut ring: Vec<(f64, f64)> = cell.iter().map(|(x, y)| frame.to_degrees(*x, *y)).collect();
        ring.push(ring[0]);
        let cell = MultiPolygon::new(vec![Polygon::new(LineString::from(ring), Vec::new())]);
        // Clipping can leave crumbs of a cell apart from the rest (where the
        // parent's outline is ragged): parts too small or thin to hold anyone
        // are dropped, as a map office would, rather than kept as slivers.
        let child: MultiPolygon<f64> = parent.intersection(&cell).into_iter().filter(|part| !is_crumb(part)).collect();
        if child.unsigned_area() > 0.0 {
            children.push(child);
        }
    }
    children
}

/// A part under 100 m², or under 2 m wide on average (twice its area over
/// its outline): what the import would call a sliver.
fn is_crumb(part: &Polygon<f64>) -> bool {
    let area = part.chamberlain_duquette_unsigned_area();
    let outline = geo::Length::length(&geo::line_measures::Haversine, part.exterior());
    area < 100.0 || (outline > 0.0 && 2.0 * area / outline < 2.0)
}

/// Cuts every district of a district-only map into streets, communities and
/// grids. The districts keep their ids and shapes; a map without a city
/// gets one (`city`, the union of the districts). `progress` is told the
/// districts done and their number.
pub fn subdivide(
    import: &AreaImport,
    counts: &Counts,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<AreaImport, String> {
    counts.check()?;
    if let Some(deeper) = import.areas.iter().find(|spec| spec.level > AreaLevel::District) {
        return Err(format!(
            "the map already has areas below district level ({} is a {}); subdivide takes a map of districts",
            deeper.id,
            deeper.level.name()
        ));
    }
    let mut districts: Vec<&AreaSpec> = import.areas.iter().filter(|spec| spec.level == AreaLevel::District).collect();
    districts.sort_by(|a, b| a.id.cmp(&b.id));
    if districts.is_empty() {
        return Err("the map has no districts (features with \"level\": \"district\") to subdivide".to_string());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut names = Names::new(&mut rng);
    let mut out = AreaImport { areas: Vec::new(), service_centres: import.service_centres.clone() };
    let has_city = import.areas.iter().any(|spec| spec.level == AreaLevel::City);
    let shapes: Vec<MultiPolygon<f64>> = districts.iter().map(|spec| multipolygon_of(&spec.polygons)).collect();
    if !has_city {
        out.areas.push(AreaSpec {
            id: AreaId::new("city"),
            name: "市".to_string(),
            level: AreaLevel::City,
            parent: None,
            polygons: rings_of(&geo::unary_union(&shapes)),
        });
    }
    for spec in &import.areas {
        let mut spec = spec.clone();
        if !has_city && spec.level == AreaLevel::District {
            spec.parent = Some(AreaId::new("city"));
        }
        out.areas.push(spec);
    }
    let first = &districts[0].polygons;
    let (lon0, lat0) =
        first.first().and_then(|polygon| polygon.first()).and_then(|ring| ring.first()).map_or((0.0, 0.0), |p| (p[0], p[1]));
    let frame = Frame::at(lon0, lat0);

    let district_areas: Vec<f64> = shapes.iter().map(|shape| shape.unsigned_area()).collect();
    let street_counts = share_out((counts.streets_per_district * districts.len() as f64).round() as usize, &district_areas);
    // Street shapes per district first, so communities can be shared out
    // over the whole city by area, then grids likewise.
    let mut streets: Vec<(AreaId, MultiPolygon<f64>)> = Vec::new();
    for (index, district) in districts.iter().enumerate() {
        for (number, shape) in split(&shapes[index], street_counts[index], frame, &mut rng).into_iter().enumerate() {
            let id = AreaId::new(format!("{}-s{}", district.id, number + 1));
            let name = format!("{}街道", names.next(out.areas.len()));
            out.areas.push(AreaSpec {
                id: id.clone(),
                name,
                level: AreaLevel::Street,
                parent: Some(district.id.clone()),
                polygons: rings_of(&shape),
            });
            streets.push((id, shape));
        }
        progress(index + 1, districts.len() * 3);
    }
    let street_areas: Vec<f64> = streets.iter().map(|(_, shape)| shape.unsigned_area()).collect();
    let community_counts = share_out((counts.communities_per_street * streets.len() as f64).round() as usize, &street_areas);
    let mut communities: Vec<(AreaId, String, MultiPolygon<f64>)> = Vec::new();
    for (index, (street, shape)) in streets.iter().enumerate() {
        for (number, child) in split(shape, community_counts[index], frame, &mut rng).into_iter().enumerate() {
            let id = AreaId::new(format!("{street}-c{}", number + 1));
            let name = format!("{}社区", names.next(out.areas.len()));
            out.areas.push(AreaSpec {
                id: id.clone(),
                name: name.clone(),
                level: AreaLevel::Community,
                parent: Some(street.clone()),
                polygons: rings_of(&child),
            });
            communities.push((id, name, child));
        }
        progress(districts.len() + (index + 1) * districts.len() / streets.len().max(1), districts.len() * 3);
    }
    let community_areas: Vec<f64> = communities.iter().map(|(_, _, shape)| shape.unsigned_area()).collect();
    let grid_counts = share_out((counts.grids_per_community * communities.len() as f64).round() as usize, &community_areas);
    for (index, (community, community_name, shape)) in communities.iter().enumerate() {
        for (number, child) in split(shape, grid_counts[index], frame, &mut rng).into_iter().enumerate() {
            out.areas.push(AreaSpec {
                id: AreaId::new(format!("{community}-g{}", number + 1)),
                name: format!("{community_name}第{}网格", number + 1),
                level: AreaLevel::Grid,
                parent: Some(community.clone()),
                polygons: rings_of(&child),
            });
        }
        progress(2 * districts.len() + (index + 1) * districts.len() / communities.len().max(1), districts.len() * 3);
    }
    out.areas.retain(|spec| !spec.polygons.is_empty());
    Ok(out)
}

/// A reproducible random number in 0..1 for a lattice point.
fn lattice_random(seed: u64, i: i64, j: i64, salt: u64) -> f64 {
    // splitmix64 of the inputs
    let mut z = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (j as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Smooth noise in -1..1 over the lattice, varying over about `scale` cells.
fn smooth_noise(seed: u64, i: i64, j: i64, scale: f64, salt: u64) -> f64 {
    let (x, y) = (i as f64 / scale, j as f64 / scale);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let corner = |dx: i64, dy: i64| lattice_random(seed, x0 as i64 + dx, y0 as i64 + dy, salt) * 2.0 - 1.0;
    let ease = |t: f64| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (ease(fx), ease(fy));
    let bottom = corner(0, 0) + (corner(1, 0) - corner(0, 0)) * sx;
    let top = corner(0, 1) + (corner(1, 1) - corner(0, 1)) * sx;
    bottom + (top - bottom) * sy
}

/// Owners of lattice cells: `None` outside the city, `Some(district index)`.
struct Lattice {
    size: i64,
    owner: Vec<Option<usize>>,
}

impl Lattice {
    fn get(&self, i: i64, j: i64) -> Option<usize> {
        if i < 0 || j < 0 || i >= self.size || j >= self.size {
            return None;
        }
        self.owner[(j * self.size + i) as usize]
    }

    fn set(&mut self, i: i64, j: i64, value: Option<usize>) {
        if i >= 0 && j >= 0 && i < self.size && j < self.size {
            self.owner[(j * self.size + i) as usize] = value;
        }
    }

    /// Removes places where two cells of one region touch only at a corner,
    /// so every region's outline is a set of simple rings. Returns whether
    /// anything changed.
    fn remove_pinches(&mut self) -> bool {
        let mut changed = false;
        for j in -1..self.size {
            for i in -1..self.size {
                let (a, b, c, d) = (self.get(i, j), self.get(i + 1, j), self.get(i, j + 1), self.get(i + 1, j + 1));
                // Districts, then the city (inside or not).
                let district_pinch = |x: Option<usize>, y: Option<usize>, p: Option<usize>, q: Option<usize>| {
                    x.is_some() && x == y && p != x && q != x
                };
                let city_pinch = |x: Option<usize>, y: Option<usize>, p: Option<usize>, q: Option<usize>| {
                    x.is_some() && y.is_some() && p.is_none() && q.is_none()
                };
                if district_pinch(a, d, b, c) || city_pinch(a, d, b, c) {
                    self.set(i + 1, j, a);
                    changed = true;
                } else if district_pinch(b, c, a, d) || city_pinch(b, c, a, d) {
                    self.set(i, j, b);
                    changed = true;
                }
            }
        }
        changed
    }

    /// The outline of the cells for which `inside` holds, as rings of
    /// lattice points: exteriors counter-clockwise, holes clockwise.
    fn trace(&self, inside: impl Fn(Option<usize>) -> bool) -> Vec<Vec<(i64, i64)>> {
        let mut next: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
        for j in 0..self.size {
            for i in 0..self.size {
                if !inside(self.get(i, j)) {
                    continue;
                }
                // Edges with the region on their left.
                if !inside(self.get(i, j - 1)) {
                    next.insert((i, j), (i + 1, j));
                }
                if !inside(self.get(i + 1, j)) {
                    next.insert((i + 1, j), (i + 1, j + 1));
                }
                if !inside(self.get(i, j + 1)) {
                    next.insert((i + 1, j + 1), (i, j + 1));
                }
                if !inside(self.get(i - 1, j)) {
                    next.insert((i, j + 1), (i, j));
                }
            }
        }
        let mut rings = Vec::new();
        while let Some((&start, _)) = next.first_key_value() {
            let mut ring = vec![start];
            let mut at = start;
            while let Some(to) = next.remove(&at) {
                if to == start {
                    break;
                }
                ring.push(to);
                at = to;
            }
            ring.push(start);
            rings.push(ring);
        }
        rings
    }
}

/// Twice the signed area of a lattice ring: positive when counter-clockwise.
fn signed_area2(ring: &[(i64, i64)]) -> i64 {
    ring.windows(2).map(|pair| pair[0].0 * pair[1].1 - pair[1].0 * pair[0].1).sum()
}

/// A city of `districts` districts around Hangzhou's centre, about 42 km
/// across: a wandering outline filled with a 250 m lattice, districts grown
/// from spread seeds at rates set by smooth noise (smaller in the centre,
/// larger outside), their borders the lattice edges between them with every
/// lattice point jittered. Neighbours therefore share identical vertices.
/// Ids `city`, `d1`… (`d1` nearest the centre), made-up Chinese names.
pub fn city(seed: u64, districts: usize) -> Result<AreaImport, String> {
    if !(1..=60).contains(&districts) {
        return Err(format!("a city of 1 to 60 districts, not {districts}"));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let size = (2.9 * CITY_RADIUS_M / CELL_M).ceil() as i64;
    let half = size as f64 / 2.0;
    let phases: Vec<f64> = (0..4).map(|_| rng.random::<f64>() * std::f64::consts::TAU).collect();
    let radius_at = |angle: f64| {
        CITY_RADIUS_M
            * (1.0
                + 0.14 * (2.0 * angle + phases[0]).sin()
                + 0.08 * (3.0 * angle + phases[1]).sin()
                + 0.05 * (5.0 * angle + phases[2]).sin()
                + 0.03 * (9.0 * angle + phases[3]).sin())
    };
    let mut lattice = Lattice { size, owner: vec![None; (size * size) as usize] };
    let centre_of = |i: i64, j: i64| ((i as f64 + 0.5 - half) * CELL_M, (j as f64 + 0.5 - half) * CELL_M);
    // In the city: inside the outline (0 marks "inside, not yet a district").
    for j in 0..size {
        for i in 0..size {
            let (x, y) = centre_of(i, j);
            if x.hypot(y) < radius_at(y.atan2(x)) {
                lattice.set(i, j, Some(0));
            }
        }
    }
    // Seeds: spread over the city, each the best of many candidates.
    let cells: Vec<(i64, i64)> =
        (0..size).flat_map(|j| (0..size).map(move |i| (i, j))).filter(|(i, j)| lattice.get(*i, *j).is_some()).collect();
    if cells.len() < districts {
        return Err("the city is too small for its districts".to_string());
    }
    let mut seeds: Vec<(i64, i64)> = vec![(size / 2, size / 2)];
    while seeds.len() < districts {
        let mut best = (cells[0], -1.0);
        for _ in 0..40 {
            let candidate = cells[rng.random_range(0..cells.len())];
            let nearest = seeds
                .iter()
                .map(|seed| (((seed.0 - candidate.0).pow(2) + (seed.1 - candidate.1).pow(2)) as f64).sqrt())
                .fold(f64::INFINITY, f64::min);
            if nearest > best.1 {
                best = (candidate, nearest);
            }
        }
        seeds.push(best.0);
    }
    // Number districts from the centre outwards.
    seeds.sort_by_key(|(i, j)| ((i - size / 2).pow(2) + (j - size / 2).pow(2), *i, *j));
    // Growth: a shared priority queue of (cost, district, cell); a cell
    // belongs to the first district to reach it, so each district is one
    // connected piece. Outer districts grow faster, so they end up larger.
    let mut claimed: Vec<Option<usize>> = vec![None; (size * size) as usize];
    let mut queue = BinaryHeap::new();
    let rate: Vec<f64> = seeds
        .iter()
        .map(|(i, j)| {
            let (x, y) = centre_of(*i, *j);
            0.6 + 0.9 * (x.hypot(y) / CITY_RADIUS_M).min(1.2) + 0.2 * rng.random::<f64>()
        })
        .collect();
    for (district, (i, j)) in seeds.iter().enumerate() {
        queue.push(std::cmp::Reverse((0u64, district, *i, *j)));
    }
    while let Some(std::cmp::Reverse((cost, district, i, j))) = queue.pop() {
        let index = (j * size + i) as usize;
        if claimed[index].is_some() {
            continue;
        }
        claimed[index] = Some(district);
        for (di, dj) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
            let (ni, nj) = (i + di, j + dj);
            if lattice.get(ni, nj).is_none() || claimed[(nj * size + ni) as usize].is_some() {
                continue;
            }
            let step = 1.0
                + 0.6 * smooth_noise(seed, ni, nj, 20.0, 1)
                + 0.3 * smooth_noise(seed, ni, nj, 4.0, 2)
                + 2.0 * lattice_random(seed, ni, nj, 3).powi(3);
            let step = step.max(0.05) / rate[district];
            queue.push(std::cmp::Reverse((cost + (step * 1000.0) as u64, district, ni, nj)));
        }
    }
    for j in 0..size {
        for i in 0..size {
            if lattice.get(i, j).is_some() {
                lattice.set(i, j, claimed[(j * size + i) as usize]);
            }
        }
    }
    for _ in 0..100 {
        if !lattice.remove_pinches() {
            break;
        }
    }

    let frame = Frame::at(CITY_CENTRE.0, CITY_CENTRE.1);
    // Each lattice point moves by up to 0.3 of a cell, the same for every
    // ring that passes through it.
    let point = |(i, j): (i64, i64)| -> [f64; 2] {
        let x = (i as f64 - half + 0.6 * (lattice_random(seed, i, j, 11) - 0.5)) * CELL_M;
        let y = (j as f64 - half + 0.6 * (lattice_random(seed, i, j, 12) - 0.5)) * CELL_M;
        let (lon, lat) = frame.to_degrees(x, y);
        [(lon * 1e6).round() / 1e6, (lat * 1e6).round() / 1e6]
    };
    let to_rings = |rings: Vec<Vec<(i64, i64)>>| -> Rings {
        let (exteriors, holes): (Vec<_>, Vec<_>) = rings.into_iter().partition(|ring| signed_area2(ring) > 0);
        let mut polygons: Rings = exteriors.iter().map(|ring| vec![ring.iter().map(|corner| point(*corner)).collect()]).collect();
        for hole in holes {
            // Without pinches a hole touches no other ring: its first
            // corner lies strictly inside the exterior that holds it.
            let probe = Point::new(hole[0].0 as f64, hole[0].1 as f64);
            let owner = exteriors.iter().position(|exterior| {
                let line: Vec<(f64, f64)> = exterior.iter().map(|(i, j)| (*i as f64, *j as f64)).collect();
                Polygon::new(LineString::from(line), Vec::new()).contains(&probe)
            });
            if let Some(owner) = owner {
                polygons[owner].push(hole.iter().map(|corner| point(*corner)).collect());
            }
        }
        polygons
    };
    let mut names = Names::new(&mut rng);
    let mut import = AreaImport::default();
    import.areas.push(AreaSpec {
        id: AreaId::new("city"),
        name: format!("{}市", names.next(0)),
        level: AreaLevel::City,
        parent: None,
        polygons: to_rings(lattice.trace(|owner| owner.is_some())),
    });
    for district in 0..districts {
        let polygons = to_rings(lattice.trace(|owner| owner == Some(district)));
        if polygons.is_empty() {
            continue;
        }
        import.areas.push(AreaSpec {
            id: AreaId::new(format!("d{}", district + 1)),
            name: format!("{}区", names.next(district + 1)),
            level: AreaLevel::District,
            parent: Some(AreaId::new("city")),
            polygons,
        });
    }
    Ok(import)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(spec: &AreaSpec) -> MultiPolygon<f64> {
        multipolygon_of(&spec.polygons)
    }

    #[test]
    fn shares_follow_area_and_give_everyone_one() {
        assert_eq!(share_out(10, &[1.0, 1.0]), vec![5, 5]);
        assert_eq!(share_out(10, &[3.0, 1.0]).iter().sum::<usize>(), 10);
        assert_eq!(share_out(2, &[100.0, 0.001, 0.001]), vec![1, 1, 1]);
        assert_eq!(share_out(12, &[8.0, 1.0, 1.0]), vec![8, 2, 2]);
    }

    #[test]
    fn a_generated_city_has_real_size_districts_with_shared_borders() {
        let city = city(27, 13).expect("city");
        let districts: Vec<&AreaSpec> = city.areas.iter().filter(|spec| spec.level == AreaLevel::District).collect();
        assert_eq!(districts.len(), 13);
        for district in &districts {
            let vertices: usize = district.polygons.iter().flatten().map(|ring| ring.len()).sum();
            assert!(vertices >= 250, "{} has {vertices} vertices", district.id);
        }
        // The districts tile the city: their areas add up to its area.
        let total: f64 = districts.iter().map(|spec| shape(spec).unsigned_area()).sum();
        let whole = shape(&city.areas[0]).unsigned_area();
        assert!((total - whole).abs() < whole * 1e-9, "districts {total} city {whole}");
        // d1 and some neighbour share vertices exactly.
        let first: std::collections::BTreeSet<(i64, i64)> =
            districts[0].polygons[0][0].iter().map(|[x, y]| ((x * 1e6).round() as i64, (y * 1e6).round() as i64)).collect();
        let shared = districts[1..]
            .iter()
            .flat_map(|spec| spec.polygons.iter().flatten().flatten())
            .filter(|[x, y]| first.contains(&((x * 1e6).round() as i64, (y * 1e6).round() as i64)))
            .count();
        assert!(shared > 20, "d1 shares {shared} vertices with its neighbours");
        assert_eq!(to_geojson(&city), to_geojson(&super::city(27, 13).expect("city")), "same seed, same file");
    }

    #[test]
    fn subdividing_tiles_each_parent_and_keeps_ids_and_parents() {
        let square = |x0: f64| vec![vec![vec![[x0, 30.0], [x0 + 0.02, 30.0], [x0 + 0.02, 30.02], [x0, 30.02], [x0, 30.0]]]];
        // A district-only file without a city, one district with a hole.
        let mut with_hole = square(120.02);
        with_hole[0].push(vec![[120.03, 30.005], [120.03, 30.01], [120.035, 30.01], [120.035, 30.005], [120.03, 30.005]]);
        let import = AreaImport {
            areas: vec![
                AreaSpec {
                    id: AreaId::new("330102"),
                    name: "甲区".into(),
                    level: AreaLevel::District,
                    parent: None,
                    polygons: square(120.0),
                },
                AreaSpec {
                    id: AreaId::new("330105"),
                    name: "乙区".into(),
                    level: AreaLevel::District,
                    parent: None,
                    polygons: with_hole,
                },
            ],
            service_centres: Vec::new(),
        };
        let counts = Counts { streets_per_district: 3.0, communities_per_street: 2.0, grids_per_community: 4.0 };
        let map = subdivide(&import, &counts, 1, |_, _| {}).expect("subdivided");
        let count = |level: AreaLevel| map.areas.iter().filter(|spec| spec.level == level).count();
        assert_eq!(count(AreaLevel::City), 1);
        assert_eq!(count(AreaLevel::Street), 6);
        assert_eq!(count(AreaLevel::Community), 12);
        assert_eq!(count(AreaLevel::Grid), 48);
        pingji_engine::areas::AreaMap::default().validate_import(&map).expect("a valid map");
        let by_id: BTreeMap<&AreaId, &AreaSpec> = map.areas.iter().map(|spec| (&spec.id, spec)).collect();
        for spec in map.areas.iter().filter(|spec| spec.level != AreaLevel::City) {
            let parent = spec.parent.as_ref().and_then(|parent| by_id.get(parent)).expect("parent");
            assert!(spec.id.as_str().starts_with(parent.id.as_str()) || parent.level == AreaLevel::City);
            let children: Vec<&AreaSpec> = map.areas.iter().filter(|child| child.parent.as_ref() == Some(&spec.id)).collect();
            if children.is_empty() {
                continue;
            }
            let sum: f64 = children.iter().map(|child| shape(child).unsigned_area()).sum();
            let whole = shape(spec).unsigned_area();
            assert!((sum - whole).abs() < whole * 1e-4, "{}: children {sum} parent {whole}", spec.id);
        }
        // The hole stays a hole in the grids too.
        let places = pingji_engine::areas::AreaMap::from(map.clone());
        let in_hole = places.place(pingji_engine::spatial::Position { lon: 120.0325, lat: 30.0075 });
        assert!(in_hole.deepest().is_none(), "{in_hole:?}");
        let in_district = places.place(pingji_engine::spatial::Position { lon: 120.025, lat: 30.015 });
        assert_eq!(in_district.deepest(), Some(AreaLevel::Grid));
        let again = subdivide(&import, &counts, 1, |_, _| {}).expect("subdivided");
        assert_eq!(to_geojson(&map), to_geojson(&again));
    }

    #[test]
    fn a_map_that_already_has_streets_is_refused() {
        let import = AreaImport {
            areas: vec![AreaSpec {
                id: AreaId::new("s1"),
                name: String::new(),
                level: AreaLevel::Street,
                parent: None,
                polygons: Vec::new(),
            }],
            service_centres: Vec::new(),
        };
        let error = subdivide(&import, &Counts::default(), 1, |_, _| {}).expect_err("refused");
        assert!(error.contains("below district level"), "{error}");
    }
}
