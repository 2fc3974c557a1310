//! Supplies: what proposing depots costs (issue #22): 1,000 requests of
//! three items each over 500 depots and 200 item types (consumables, and
//! pumps by unit), each request's items taken from the depots nearest by
//! travel time and split when one is short.
//!
//! Run with `cargo bench -p pingji-engine --bench supplies` (release
//! build). Prints figures; asserts nothing about speed.

use std::collections::BTreeMap;
use std::time::Instant;

use pingji_engine::spatial::Position;
use pingji_engine::supplies::{
    Depot, DepotId, DepotSpec, ItemId, ItemKind, Stock, SupplyLine, SupplyState, Unit, UnitId, UnitSpec, UnitStatus,
};

mod city;
use city::Dice;

const DEPOTS: usize = 500;
const ITEMS: usize = 200;
const REQUESTS: usize = 1_000;
/// Cars in town, as the default policy has it.
const CAR_MPS: f64 = 8.0;

fn main() {
    let mut dice = Dice(2026);
    let mut state = SupplyState::default();
    let items: Vec<ItemId> = (0..ITEMS).map(|index| ItemId::new(format!("item-{index:03}"))).collect();
    for item in &items[1..] {
        state.items.insert(item.clone(), ItemKind::Consumable);
    }
    // item-000 is a pump, by unit: two per depot in a fifth of the depots.
    state.items.insert(items[0].clone(), ItemKind::Equipment);
    for index in 0..DEPOTS {
        let id = DepotId::new(format!("depot-{index:03}"));
        let mut stock = BTreeMap::new();
        // Each depot holds a quarter of the item types, some of them thinly.
        for item in &items[1..] {
            if dice.next() % 4 == 0 {
                stock.insert(item.clone(), Stock { on_hand: dice.next() % 500, minimum: 50, ..Stock::default() });
            }
        }
        let spec = DepotSpec { id: id.clone(), name: id.to_string(), at: dice.point(), area: None, keeper: String::new() };
        state.depots.insert(id.clone(), Depot { spec, stock });
        if index % 5 == 0 {
            for number in 0..2 {
                let unit = UnitId::new(format!("P-{index:03}-{number}"));
                let spec = UnitSpec {
                    id: unit.clone(),
                    item: items[0].clone(),
                    kind: ItemKind::Equipment,
                    depot: id.clone(),
                    capacity: 0,
                    in_repair: false,
                };
                state.units.insert(unit, Unit { spec, status: UnitStatus::Available, held_by: None });
            }
        }
    }
    let requests: Vec<(Position, Vec<SupplyLine>)> = (0..REQUESTS)
        .map(|_| {
            let at = dice.point();
            let lines = (0..3)
                .map(|line| {
                    let item = if line == 0 { items[0].clone() } else { items[1 + (dice.next() as usize % (ITEMS - 1))].clone() };
                    SupplyLine { item, quantity: 1 + dice.next() % 800 }
                })
                .collect();
            (at, lines)
        })
        .collect();
    let started = Instant::now();
    let mut allocations = 0usize;
    let mut split = 0usize;
    let mut short = 0usize;
    for (at, lines) in &requests {
        let proposal = state.propose(lines, |depot| depot.distance_m(*at) / CAR_MPS);
        allocations += proposal.allocations.len();
        split += usize::from(proposal.allocations.len() > lines.len());
        short += usize::from(!proposal.short.is_empty());
    }
    let elapsed = started.elapsed();
    let each_us = elapsed.as_secs_f64() * 1e6 / REQUESTS as f64;
    println!("{REQUESTS} requests of 3 items over {DEPOTS} depots and {ITEMS} item types, one core:");
    println!("  all proposals          {:8.1} ms", elapsed.as_secs_f64() * 1e3);
    println!("  one proposal           {each_us:8.0} µs   ({:.0} proposals/s)", 1e6 / each_us);
    println!("  allocations            {allocations:8}   ({split} requests split across depots, {short} short of something)");
}
