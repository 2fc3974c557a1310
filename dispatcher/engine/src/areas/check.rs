//! Checking an import against the map before anything changes: every
//! problem in one pass (structure, then geometry), the parents a file left
//! out inferred by containment, and the difference an import would make.

use std::collections::{BTreeMap, BTreeSet};

use geo::line_measures::Haversine;
use geo::{BooleanOps, BoundingRect, ChamberlainDuquetteArea, Intersects, Length, MultiPolygon, Point, Rect};

use super::geojson::{MapProperties, MapReading, read_geojson};
use super::problems::{MapProblem, ProblemKind};
use super::{AreaImport, AreaLevel, AreaMap, AreaSpec, shape_of};
use crate::ids::{AreaId, quote};

/// Below this many square metres, a child outside its parent, an overlap
/// of siblings or a part of an area is the data's precision, not a problem.
const NOISE_M2: f64 = 1.0;
/// Nor is a child outside its parent, or an overlap, narrower on average
/// than this along the area's outline (its size over the outline's length):
/// outlines drawn separately, or clipped in floating point, disagree by
/// centimetres along kilometres of border (coordinates to 6 decimals are
/// 0.1 m apart).
const PRECISION_M: f64 = 0.5;
/// A child with more than this share of itself outside its parent, or
/// two siblings overlapping by more than this share of the smaller, is an
/// error: the area is in the wrong place or named twice.
const WRONG_SHARE: f64 = 0.1;
/// A polygon part narrower than this on average (twice its area over its
/// perimeter) is a sliver.
const SLIVER_WIDTH_M: f64 = 1.0;

/// What an import would change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MapDiff {
    pub added: Vec<AreaId>,
    /// Each changed area with what changed ("name 东湖 → 东湖街道", "boundary").
    pub changed: Vec<(AreaId, Vec<String>)>,
    pub unchanged: usize,
    /// Known areas the file lacks, retired by a replacing import.
    pub retired: Vec<AreaId>,
    /// Known areas the file lacks, kept by a merging import.
    pub kept: usize,
    pub service_centres_added: Vec<AreaId>,
    pub service_centres_changed: Vec<AreaId>,
    pub service_centres_removed: Vec<AreaId>,
}

/// A shape with the numbers the checks use.
struct Measured {
    shape: MultiPolygon<f64>,
    rect: Option<Rect<f64>>,
    area_m2: f64,
    /// The length of the outline's exterior rings, in metres.
    outline_m: f64,
}

fn measured(spec: &AreaSpec) -> Measured {
    let shape = shape_of(&spec.polygons).shape;
    let rect = shape.bounding_rect();
    let area_m2 = shape.chamberlain_duquette_unsigned_area();
    let outline_m = shape.0.iter().map(|polygon| Haversine.length(polygon.exterior())).sum();
    Measured { shape, rect, area_m2, outline_m }
}

/// Whether `size_m2` of disagreement along an outline of `outline_m` is
/// only the data's precision.
fn is_noise(size_m2: f64, outline_m: f64) -> bool {
    size_m2 < NOISE_M2 || size_m2 < PRECISION_M * outline_m
}

fn rects_meet(a: Option<Rect<f64>>, b: Option<Rect<f64>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.intersects(&b),
        _ => false,
    }
}

fn m2(value: f64) -> String {
    if value >= 1e6 { format!("{:.2} km²", value / 1e6) } else { format!("{value:.0} m²") }
}

/// A map file read and checked against the map: what the import would be,
/// every problem, the parents inferred, and the difference it would make.
#[derive(Debug)]
pub struct MapCheck {
    pub reading: MapReading,
    pub parents_inferred: usize,
    pub diff: MapDiff,
}

impl MapCheck {
    pub fn errors(&self) -> impl Iterator<Item = &MapProblem> {
        self.reading.problems.iter().filter(|problem| problem.error)
    }
}

impl AreaMap {
    /// Reads a map file and checks it against this map as an import would
    /// (merged, or with `replace` as the whole map): parents inferred by
    /// containment, then every problem of structure and geometry at once.
    /// Only a file that is not a GeoJSON FeatureCollection is the error.
    pub fn check_file(&self, text: &str, properties: &MapProperties, replace: bool) -> Result<MapCheck, String> {
        let mut reading = read_geojson(text, properties)?;
        let parents_inferred = self.infer_parents(&mut reading.import, replace);
        let structure = self.check_structure(&reading.import, replace);
        let geometry = self.check_geometry(&reading.import, replace);
        reading.add(structure);
        reading.add(geometry);
        let diff = self.diff(&reading.import, replace);
        let kept_grids =
            !replace && self.specs.values().any(|spec| spec.level == AreaLevel::Grid && !diff.retired.contains(&spec.id));
        let imported_grids = reading.import.areas.iter().any(|spec| spec.level == AreaLevel::Grid);
        if !kept_grids && !imported_grids && !reading.import.areas.is_empty() {
            let levels: BTreeSet<&str> = reading.import.areas.iter().map(|spec| spec.level.name()).collect();
            let message = format!(
                "the map has no grids (only {}): people and incidents are placed by their widest areas, grid staffing \
                 is not checked and normal-mode dispatch starts above the grid. Import the grid file of the city's \
                 grid office, or for drills subdivide it: `drill map subdivide FILE --out OUT` (scenarios/maps/README.md)",
                levels.into_iter().collect::<Vec<_>>().join(", ")
            );
            reading.problems.push(MapProblem {
                kind: ProblemKind::NoGrids,
                error: false,
                feature: None,
                area: None,
                message,
                size_m2: None,
                size_m: None,
            });
        }
        Ok(MapCheck { reading, parents_inferred, diff })
    }

    /// Checks an import against this map (areas with existing ids are
    /// replaced) without changing anything: the first structural problem.
    pub fn validate_import(&self, import: &AreaImport) -> Result<(), String> {
        first_error(self.check_structure(import, false))
    }

    /// Checks an import that is to become the whole map.
    pub fn validate_replacement(&self, import: &AreaImport) -> Result<(), String> {
        first_error(self.check_structure(import, true))
    }

    /// The areas an import builds on: this map's (merging) or none (replacing).
    fn base(&self, replace: bool) -> BTreeMap<&AreaId, &AreaSpec> {
        if replace { BTreeMap::new() } else { self.specs.iter().collect() }
    }

    /// Every structural problem of an import merged onto this map, or
    /// (`replace`) taken as the whole map: duplicate ids, missing and
    /// unknown parents, cycles, levels out of order, areas without shape.
    pub fn check_structure(&self, import: &AreaImport, replace: bool) -> Vec<MapProblem> {
        let mut problems = Vec::new();
        let mut merged = self.base(replace);
        let mut seen = BTreeSet::new();
        for spec in &import.areas {
            if !seen.insert(&spec.id) {
                let message = "appears twice in the import (as an area id); give every feature a unique id";
                problems.push(MapProblem::error(ProblemKind::DuplicateId, &spec.id, message));
            }
            merged.insert(&spec.id, spec);
        }
        for spec in &import.areas {
            if spec.polygons.is_empty() {
                let message = "has no polygon; give it a Polygon or MultiPolygon geometry";
                problems.push(MapProblem::error(ProblemKind::BadGeometry, &spec.id, message));
            }
            let Some(parent_id) = &spec.parent else {
                if spec.level != AreaLevel::City {
                    let message = format!(
                        "is a {} without a parent, and no wider area of the map contains it; only a city may be \
                         top-level, so set its parent property or import the area that contains it",
                        spec.level.name()
                    );
                    problems.push(MapProblem::error(ProblemKind::NoParent, &spec.id, message));
                }
                continue;
            };
            // Walk up to catch cycles before judging levels.
            let mut path = vec![spec.id.clone()];
            let mut cursor = Some(parent_id);
            let mut cycle = false;
            while let Some(id) = cursor {
                if path.contains(id) {
                    path.push(id.clone());
                    cycle = true;
                    break;
                }
                path.push(id.clone());
                cursor = merged.get(id).and_then(|parent| parent.parent.as_ref());
            }
            if cycle {
                let chain: Vec<_> = path.iter().map(|id| id.as_str()).collect();
                let message = format!("the parent links form a cycle: {}; fix the parent properties", chain.join(" -> "));
                problems.push(MapProblem::error(ProblemKind::ParentCycle, &spec.id, message));
                continue;
            }
            let Some(parent) = merged.get(parent_id) else {
                let known = if replace { "in the file" } else { "in the import nor already known" };
                let message = format!("names parent {} which is neither {known}; import the parent too", quote(parent_id));
                problems.push(MapProblem::error(ProblemKind::UnknownParent, &spec.id, message));
                continue;
            };
            if parent.level >= spec.level {
                let message = format!(
                    "is a {} but its parent {} is a {}; a parent must be a wider level",
                    spec.level.name(),
                    parent.id,
                    parent.level.name()
                );
                problems.push(MapProblem::error(ProblemKind::LevelOrder, &spec.id, message));
            }
        }
        for centre in &import.service_centres {
            if !seen.insert(&centre.id) || merged.contains_key(&centre.id) {
                let message = "is used twice (as a service centre id); give every feature a unique id";
                problems.push(MapProblem::error(ProblemKind::DuplicateId, &centre.id, message));
            }
            if !merged.contains_key(&centre.area) {
                let message = format!(
                    "is a service centre for area {} which is unknown; set its parent to a street or community id",
                    quote(&centre.area)
                );
                problems.push(MapProblem::error(ProblemKind::UnknownParent, &centre.id, message));
            }
        }
        problems
    }

    /// Fills in the parent of every area that has none (other than a city)
    /// with the deepest wider area containing a point inside it, from the
    /// import or (merging) this map. Returns how many were inferred.
    pub fn infer_parents(&self, import: &mut AreaImport, replace: bool) -> usize {
        let imported: BTreeSet<AreaId> = import.areas.iter().map(|spec| spec.id.clone()).collect();
        let mut inferred = 0;
        // Level by level from the widest, so a district's street can be
        // placed even when both came without parents.
        let shapes: Vec<(AreaLevel, AreaId, Measured)> =
            import.areas.iter().map(|spec| (spec.level, spec.id.clone(), measured(spec))).collect();
        for level in AreaLevel::ALL.into_iter().skip(1) {
            let wider = shapes.iter().filter(|(wider_level, ..)| *wider_level < level);
            for index in 0..import.areas.len() {
                let spec = &import.areas[index];
                if spec.level != level || spec.parent.is_some() {
                    continue;
                }
                let Some(inside) = shape_of(&spec.polygons).inside else {
                    continue;
                };
                let point = Point::new(inside.lon, inside.lat);
                let from_import = wider
                    .clone()
                    .filter(|(_, _, shape)| {
                        shape.rect.is_some_and(|rect| rect.intersects(&point)) && shape.shape.intersects(&point)
                    })
                    .map(|(level, id, _)| (*level, id.clone()));
                let from_map = self
                    .place(inside)
                    .areas()
                    .filter(|(wider_level, id)| !replace && *wider_level < level && !imported.contains(*id))
                    .map(|(level, id)| (level, id.clone()))
                    .collect::<Vec<_>>();
                let parent = from_import
                    .chain(from_map)
                    .max_by(|(level_a, id_a), (level_b, id_b)| level_a.cmp(level_b).then_with(|| id_b.cmp(id_a)))
                    .map(|(_, id)| id);
                if let Some(parent) = parent {
                    import.areas[index].parent = Some(parent);
                    inferred += 1;
                }
            }
        }
        inferred
    }

    /// Every geometric problem of an import: children outside their parent,
    /// siblings that overlap, slivers, each with its size. Only areas whose
    /// parent is known are judged against it.
    pub fn check_geometry(&self, import: &AreaImport, replace: bool) -> Vec<MapProblem> {
        let mut problems = Vec::new();
        // An id given twice has no one shape: the structure check says so.
        let mut seen = BTreeSet::new();
        let twice: BTreeSet<&AreaId> = import.areas.iter().filter(|spec| !seen.insert(&spec.id)).map(|spec| &spec.id).collect();
        let import = AreaImport {
            areas: import.areas.iter().filter(|spec| !twice.contains(&spec.id)).cloned().collect(),
            service_centres: Vec::new(),
        };
        let import = &import;
        let imported: BTreeSet<&AreaId> = import.areas.iter().map(|spec| &spec.id).collect();
        // Every area as it will be: the map's (merging), the import's over them.
        let mut specs: BTreeMap<&AreaId, &AreaSpec> = self.base(replace);
        specs.extend(import.areas.iter().map(|spec| (&spec.id, spec)));
        // Siblings: areas of one level under one parent. Only families with
        // an imported area are judged.
        let mut families: BTreeMap<(Option<&AreaId>, AreaLevel), Vec<&AreaSpec>> = BTreeMap::new();
        for spec in specs.values() {
            families.entry((spec.parent.as_ref(), spec.level)).or_default().push(spec);
        }
        families.retain(|_, siblings| siblings.iter().any(|spec| imported.contains(&spec.id)));
        // Measured once: the imported areas, their parents and their siblings.
        let mut shapes: BTreeMap<&AreaId, Measured> = BTreeMap::new();
        let parents = import.areas.iter().filter_map(|spec| spec.parent.as_ref().and_then(|parent| specs.get(parent)));
        for spec in import.areas.iter().chain(parents.copied()).chain(families.values().flatten().copied()) {
            shapes.entry(&spec.id).or_insert_with(|| measured(spec));
        }

        for spec in &import.areas {
            let Some(child) = shapes.get(&spec.id) else { continue };
            for (part, polygon) in child.shape.0.iter().enumerate() {
                let area = polygon.chamberlain_duquette_unsigned_area();
                let perimeter = Haversine.length(polygon.exterior());
                let width = if perimeter > 0.0 { 2.0 * area / perimeter } else { 0.0 };
                if area < NOISE_M2 || width < SLIVER_WIDTH_M {
                    let message = format!(
                        "part {} of its outline is a sliver: {} and about {width:.2} m wide; drop it or fix the outline",
                        part + 1,
                        m2(area)
                    );
                    let problem = MapProblem::warning(ProblemKind::Sliver, &spec.id, message).sized(area);
                    problems.push(MapProblem { size_m: Some(width), ..problem });
                }
            }
            let Some(parent_id) = &spec.parent else { continue };
            let Some(parent) = shapes.get(parent_id) else { continue };
            if child.area_m2 <= 0.0 {
                continue;
            }
            let outside = child.shape.difference(&parent.shape).chamberlain_duquette_unsigned_area();
            if is_noise(outside, child.outline_m) {
                continue;
            }
            let share = outside / child.area_m2;
            let mut message = format!(
                "lies {:.0} % outside its parent {} ({} of {})",
                share * 100.0,
                parent_id,
                m2(outside),
                m2(child.area_m2)
            );
            let error = share > WRONG_SHARE;
            if error {
                // Which area of the parent's level holds it instead?
                let parent_level = specs.get(parent_id).map_or(AreaLevel::City, |parent| parent.level);
                let holder = shape_of(&spec.polygons).inside.and_then(|at| {
                    let point = Point::new(at.lon, at.lat);
                    specs
                        .values()
                        .filter(|other| other.level == parent_level && &other.id != parent_id)
                        .find(|other| shape_of(&other.polygons).shape.intersects(&point))
                        .map(|other| other.id.clone())
                });
                match holder {
                    Some(holder) => message.push_str(&format!("; it lies in {holder}: is {holder} its parent?")),
                    None => message.push_str("; fix its outline or its parent"),
                }
            } else {
                message.push_str("; the outlines disagree at the border, which is tolerated");
            }
            problems.push(MapProblem::new(ProblemKind::OutsideParent, error, &spec.id, message).sized(outside));
        }

        for siblings in families.values() {
            let measured: Vec<(&AreaSpec, &Measured)> =
                siblings.iter().filter_map(|spec| Some((*spec, shapes.get(&spec.id)?))).collect();
            for (i, (a, shape_a)) in measured.iter().enumerate() {
                for (b, shape_b) in &measured[i + 1..] {
                    if !imported.contains(&a.id) && !imported.contains(&b.id) {
                        continue;
                    }
                    if !rects_meet(shape_a.rect, shape_b.rect) {
                        continue;
                    }
                    let overlap = shape_a.shape.intersection(&shape_b.shape).chamberlain_duquette_unsigned_area();
                    if is_noise(overlap, shape_a.outline_m.min(shape_b.outline_m)) {
                        continue;
                    }
                    let smaller = shape_a.area_m2.min(shape_b.area_m2);
                    let error = smaller > 0.0 && overlap / smaller > WRONG_SHARE;
                    let (first, second) = if imported.contains(&a.id) { (a, b) } else { (b, a) };
                    let mut message = format!(
                        "overlaps its sibling {} by {} ({:.0} % of the smaller)",
                        second.id,
                        m2(overlap),
                        100.0 * overlap / smaller.max(1.0)
                    );
                    if error {
                        message.push_str("; a point there would belong to both: fix the outlines, or remove the copy");
                    } else {
                        message.push_str("; a point there goes to the smaller id");
                    }
                    problems.push(MapProblem::new(ProblemKind::SiblingOverlap, error, &first.id, message).sized(overlap));
                }
            }
        }
        problems
    }

    /// What an import would change: areas added, changed (and how), and
    /// the known areas it lacks, retired when `replace`, else kept.
    pub fn diff(&self, import: &AreaImport, replace: bool) -> MapDiff {
        let mut diff = MapDiff::default();
        let imported: BTreeSet<&AreaId> = import.areas.iter().map(|spec| &spec.id).collect();
        for spec in &import.areas {
            let Some(known) = self.specs.get(&spec.id) else {
                diff.added.push(spec.id.clone());
                continue;
            };
            let mut what = Vec::new();
            if known.name != spec.name {
                what.push(format!("name {} → {}", known.name, spec.name));
            }
            if known.level != spec.level {
                what.push(format!("level {} → {}", known.level.name(), spec.level.name()));
            }
            if known.parent != spec.parent {
                let name = |parent: &Option<AreaId>| parent.as_ref().map_or("none".to_string(), |id| id.to_string());
                what.push(format!("parent {} → {}", name(&known.parent), name(&spec.parent)));
            }
            if known.polygons != spec.polygons {
                let before = shape_of(&known.polygons).shape.chamberlain_duquette_unsigned_area();
                let after = shape_of(&spec.polygons).shape.chamberlain_duquette_unsigned_area();
                what.push(format!("boundary ({} → {})", m2(before), m2(after)));
            }
            if what.is_empty() {
                diff.unchanged += 1;
            } else {
                diff.changed.push((spec.id.clone(), what));
            }
        }
        let missing: Vec<AreaId> = self.specs.keys().filter(|id| !imported.contains(id)).cloned().collect();
        if replace {
            diff.retired = missing;
        } else {
            diff.kept = missing.len();
        }
        let centres: BTreeSet<&AreaId> = import.service_centres.iter().map(|centre| &centre.id).collect();
        for centre in &import.service_centres {
            match self.centres.get(&centre.id) {
                None => diff.service_centres_added.push(centre.id.clone()),
                Some(known) if known != centre => diff.service_centres_changed.push(centre.id.clone()),
                Some(_) => {}
            }
        }
        for (id, centre) in &self.centres {
            let area_retired = diff.retired.contains(&centre.area);
            if (replace && !centres.contains(id)) || area_retired {
                diff.service_centres_removed.push(id.clone());
            }
        }
        diff
    }
}

fn first_error(problems: Vec<MapProblem>) -> Result<(), String> {
    match problems.into_iter().find(|problem| problem.error) {
        Some(problem) => Err(problem.to_string()),
        None => Ok(()),
    }
}
