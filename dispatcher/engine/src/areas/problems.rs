//! A problem of a map file: what, where (feature and area), how big, and
//! whether it refuses the import.

use crate::ids::AreaId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A feature that could not be read at all (no properties).
    Unreadable,
    MissingId,
    DuplicateId,
    UnknownLevel,
    BadGeometry,
    /// Not a city, no parent given, and none found by containment.
    NoParent,
    UnknownParent,
    ParentCycle,
    /// The parent is not a wider level.
    LevelOrder,
    OutsideParent,
    SiblingOverlap,
    Sliver,
    Unnamed,
    /// The map after the import has no grids: what most cities' boundary
    /// files are, and what grid-level work cannot run on.
    NoGrids,
}

/// One problem of a map file: errors refuse the import, warnings do not.
#[derive(Clone, Debug, PartialEq)]
pub struct MapProblem {
    pub kind: ProblemKind,
    pub error: bool,
    /// The feature's index in the file, where known.
    pub feature: Option<usize>,
    pub area: Option<AreaId>,
    pub message: String,
    /// The size of the problem: the area outside, overlapping or of the sliver.
    pub size_m2: Option<f64>,
    /// A width or a distance, where one says more than an area.
    pub size_m: Option<f64>,
}

impl MapProblem {
    /// A problem of one area, an error or a warning.
    pub fn new(kind: ProblemKind, error: bool, area: &AreaId, message: impl Into<String>) -> MapProblem {
        MapProblem { kind, error, feature: None, area: Some(area.clone()), message: message.into(), size_m2: None, size_m: None }
    }

    pub fn error(kind: ProblemKind, area: &AreaId, message: impl Into<String>) -> MapProblem {
        MapProblem::new(kind, true, area, message)
    }

    pub fn warning(kind: ProblemKind, area: &AreaId, message: impl Into<String>) -> MapProblem {
        MapProblem::new(kind, false, area, message)
    }

    pub fn at_feature(self, feature: usize) -> MapProblem {
        MapProblem { feature: Some(feature), ..self }
    }

    pub(super) fn sized(self, size_m2: f64) -> MapProblem {
        MapProblem { size_m2: Some(size_m2), ..self }
    }
}

impl std::fmt::Display for MapProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.feature, &self.area) {
            (Some(index), Some(area)) => write!(f, "feature #{index} (id {area}): {}", self.message),
            (Some(index), None) => write!(f, "feature #{index}: {}", self.message),
            (None, Some(area)) => write!(f, "area {area}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}
