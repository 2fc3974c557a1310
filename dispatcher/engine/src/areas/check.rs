//! Checking an import against the map before anything changes.

use std::collections::{BTreeMap, BTreeSet};

use super::{AreaImport, AreaLevel, AreaMap, AreaSpec};
use crate::ids::{AreaId, quote};

impl AreaMap {
    /// Checks an import against this map (areas with existing ids are
    /// replaced) without changing anything.
    pub fn validate_import(&self, import: &AreaImport) -> Result<(), String> {
        let mut merged: BTreeMap<&AreaId, &AreaSpec> = self.specs.iter().collect();
        let mut seen = BTreeSet::new();
        for spec in &import.areas {
            if !seen.insert(&spec.id) {
                return Err(format!("area id {} appears twice in the import; give every feature a unique id", spec.id));
            }
            merged.insert(&spec.id, spec);
        }
        for spec in &import.areas {
            if spec.polygons.is_empty() {
                return Err(format!("area {} has no polygon; give it a Polygon or MultiPolygon geometry", spec.id));
            }
            let Some(parent_id) = &spec.parent else {
                if spec.level != AreaLevel::City {
                    return Err(format!(
                        "area {} ({}) has no parent; only a city may be top-level, so set its `parent` property",
                        spec.id,
                        spec.level.name()
                    ));
                }
                continue;
            };
            // Walk up to catch cycles before judging levels.
            let mut path = vec![spec.id.clone()];
            let mut cursor = Some(parent_id);
            while let Some(id) = cursor {
                if path.contains(id) {
                    path.push(id.clone());
                    let chain: Vec<_> = path.iter().map(|id| id.as_str()).collect();
                    return Err(format!("the parent links form a cycle: {}; fix the `parent` properties", chain.join(" -> ")));
                }
                path.push(id.clone());
                cursor = merged.get(id).and_then(|parent| parent.parent.as_ref());
            }
            let Some(parent) = merged.get(parent_id) else {
                return Err(format!(
                    "area {} names parent {} which is neither in the import nor already known; import the parent too",
                    spec.id,
                    quote(parent_id)
                ));
            };
            if parent.level >= spec.level {
                return Err(format!(
                    "area {} is a {} but its parent {} is a {}; a parent must be a wider level",
                    spec.id,
                    spec.level.name(),
                    parent.id,
                    parent.level.name()
                ));
            }
        }
        for centre in &import.service_centres {
            if !seen.insert(&centre.id) || merged.contains_key(&centre.id) {
                return Err(format!("id {} is used twice; give every feature a unique id", centre.id));
            }
            if !merged.contains_key(&centre.area) {
                return Err(format!(
                    "service centre {} names area {} which is unknown; set `parent` to a street or community id",
                    centre.id,
                    quote(&centre.area)
                ));
            }
        }
        Ok(())
    }
}
