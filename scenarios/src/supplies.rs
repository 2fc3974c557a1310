//! Supplies in drills: the depots a drill file declares (`[[depot]]`), the
//! requests its timeline scripts (`supplies = { category, items }`), and the
//! report's figures of supplies delivered and short, from the events.

use std::collections::BTreeMap;

use pingji_engine::areas::AreaMap;
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::AreaId;
use pingji_engine::spatial::Position;
use pingji_engine::supplies::{
    DepotId, DepotSpec, ItemId, ItemKind, StockLine, SupplyEvent, SupplyImport, SupplyRequestId, UnitId, UnitSpec,
};
use serde::{Deserialize, Serialize};

/// A depot of the drill: at a point, or inside an area; its consumables
/// (`stock = { sandbag = 500 }`), their minimums, and its equipment by
/// unit (`equipment = { pump = ["P-01", "P-02"] }`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepotEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub at: Option<[f64; 2]>,
    pub area: Option<String>,
    #[serde(default)]
    pub keeper: String,
    #[serde(default)]
    pub stock: BTreeMap<String, u64>,
    #[serde(default)]
    pub minimum: BTreeMap<String, u64>,
    #[serde(default)]
    pub equipment: BTreeMap<String, Vec<String>>,
}

/// A timeline entry's requests: every open incident of `category` asks for
/// `items`; the proposal is confirmed and dispatched at once, and
/// delivered `deliver_after_s` later.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplyEntry {
    pub category: String,
    pub items: BTreeMap<String, u64>,
    #[serde(default = "fifteen_minutes")]
    pub deliver_after_s: u64,
}

fn fifteen_minutes() -> u64 {
    900
}

/// The import of a drill's depots; a depot in an area stands at the area's inside point.
pub fn import(depots: &[DepotEntry], areas: &AreaMap) -> Result<SupplyImport, String> {
    let mut import = SupplyImport::default();
    for depot in depots {
        let at = match (depot.at, &depot.area) {
            (Some([lon, lat]), _) => Position { lon, lat },
            (None, Some(area)) => areas
                .inside_point(&AreaId::new(area))
                .ok_or_else(|| format!("depot {}: area {area} is not on the drill's map", depot.id))?,
            (None, None) => return Err(format!("depot {}: give at = [lon, lat] or area", depot.id)),
        };
        let id = DepotId::new(&depot.id);
        import.depots.push(DepotSpec {
            id: id.clone(),
            name: if depot.name.is_empty() { depot.id.clone() } else { depot.name.clone() },
            at,
            area: depot.area.as_ref().map(AreaId::new),
            keeper: depot.keeper.clone(),
        });
        for (item, quantity) in &depot.stock {
            let minimum = depot.minimum.get(item).copied().unwrap_or(0);
            import.stock.push(StockLine { depot: id.clone(), item: ItemId::new(item), quantity: *quantity, minimum });
        }
        for (item, units) in &depot.equipment {
            for unit in units {
                import.units.push(UnitSpec {
                    id: UnitId::new(unit),
                    item: ItemId::new(item),
                    kind: ItemKind::Equipment,
                    depot: id.clone(),
                    capacity: 0,
                    in_repair: false,
                });
            }
        }
    }
    Ok(import)
}

/// One item's figures over the drill.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SupplyFigures {
    pub item: String,
    /// Asked for by incidents.
    pub asked: u64,
    /// Reserved for them at depots.
    pub reserved: u64,
    /// Delivered to the incidents.
    pub delivered: u64,
    /// Asked for and in no depot (nothing reserved for it).
    pub short: u64,
    /// Moved between depots (by plans pre-positioning, or by hand).
    pub moved: u64,
}

/// Supplies delivered and short, per item, from the events.
pub fn figures(events: &[Event]) -> Vec<SupplyFigures> {
    fn of<'a>(items: &'a mut BTreeMap<String, SupplyFigures>, item: &ItemId) -> &'a mut SupplyFigures {
        items.entry(item.to_string()).or_insert_with(|| SupplyFigures { item: item.to_string(), ..SupplyFigures::default() })
    }
    let mut items: BTreeMap<String, SupplyFigures> = BTreeMap::new();
    let mut reserved: BTreeMap<&SupplyRequestId, Vec<(&ItemId, u64)>> = BTreeMap::new();
    for event in events {
        let EventKind::Supplies(supply) = &event.kind else { continue };
        match supply {
            SupplyEvent::SuppliesRequested { lines, .. } => {
                for line in lines {
                    let figures = of(&mut items, &line.item);
                    figures.asked += line.quantity;
                    figures.short += line.quantity;
                }
            }
            SupplyEvent::SuppliesReserved { request, allocations, .. } => {
                for allocation in allocations {
                    let figures = of(&mut items, &allocation.item);
                    figures.reserved += allocation.quantity;
                    figures.short = figures.short.saturating_sub(allocation.quantity);
                    reserved.entry(request).or_default().push((&allocation.item, allocation.quantity));
                }
            }
            SupplyEvent::SuppliesDelivered { request, .. } => {
                for (item, quantity) in reserved.get(request).into_iter().flatten() {
                    of(&mut items, item).delivered += quantity;
                }
            }
            SupplyEvent::StockMoved { moved } => of(&mut items, &moved.item).moved += moved.quantity,
            _ => {}
        }
    }
    items.into_values().collect()
}

/// The report's section, or nothing when the drill had no supplies.
pub fn markdown(figures: &[SupplyFigures]) -> String {
    if figures.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "## Supplies\n\nAsked for by incidents, reserved at depots, delivered, and short (in no depot when asked); \
         moved: pre-positioned between depots.\n\n| item | asked | reserved | delivered | short | moved |\n|---|---|---|---|---|---|\n",
    );
    for item in figures {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            item.item, item.asked, item.reserved, item.delivered, item.short, item.moved
        ));
    }
    out.push('\n');
    out
}
