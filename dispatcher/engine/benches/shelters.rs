//! Shelters: what choosing a shelter costs (issue #22): 1,000 evacuations
//! over 500 open shelters, each group sent to the nearest shelter by
//! travel time that has the facilities it needs and room for all of it,
//! passing over nearer ones that are full (the overflow). Places are
//! reserved as groups are sent, so the city fills up as it would in a
//! typhoon.
//!
//! Run with `cargo bench -p pingji-engine --bench shelters` (release
//! build). Prints figures; asserts nothing about speed.

use std::collections::BTreeMap;
use std::time::Instant;

use pingji_engine::shelters::{Facility, Shelter, ShelterId, ShelterLevel, ShelterSpec, ShelterState};
use pingji_engine::spatial::Position;

mod city;
use city::Dice;

const SHELTERS: usize = 500;
const EVACUATIONS: usize = 1_000;
/// Cars in town, as the default policy has it.
const CAR_MPS: f64 = 8.0;

/// Schools and halls of 50 to 400 places; a third step-free, a fifth with a
/// medical post.
fn city(dice: &mut Dice) -> ShelterState {
    let mut shelters = BTreeMap::new();
    for index in 0..SHELTERS {
        let id = ShelterId::new(format!("shelter-{index:03}"));
        let mut facilities = Vec::new();
        if dice.next().is_multiple_of(3) {
            facilities.push(Facility::Accessible);
        }
        if dice.next().is_multiple_of(5) {
            facilities.push(Facility::Medical);
        }
        let spec = ShelterSpec {
            id: id.clone(),
            name: id.to_string(),
            at: dice.point(),
            area: None,
            capacity: 50 + (dice.next() % 351) as u32,
            facilities,
        };
        let shelter = Shelter {
            spec,
            open: true,
            occupied: 0,
            reserved: 0,
            level: ShelterLevel::Normal,
            opened_by: None,
            history: Vec::new(),
        };
        shelters.insert(id, shelter);
    }
    ShelterState { shelters, ..ShelterState::default() }
}

fn main() {
    let mut dice = Dice(2026);
    let mut state = city(&mut dice);
    let places: u64 = state.shelters.values().map(|shelter| u64::from(shelter.spec.capacity)).sum();
    // Groups of 5 to 120 residents; one in four needs step-free access,
    // one in ten a medical post too.
    let groups: Vec<(Position, u32, Vec<Facility>)> = (0..EVACUATIONS)
        .map(|_| {
            let at = dice.point();
            let residents = 5 + (dice.next() % 116) as u32;
            let needs = match dice.next() % 20 {
                0 | 1 => vec![Facility::Accessible, Facility::Medical],
                2..=4 => vec![Facility::Accessible],
                _ => vec![],
            };
            (at, residents, needs)
        })
        .collect();
    let started = Instant::now();
    let mut sent = 0usize;
    let mut overflowed = 0usize;
    let mut passed_over = 0usize;
    let mut no_room = 0usize;
    for (at, residents, needs) in &groups {
        let candidates = state.candidates(*residents, needs, |shelter| at.distance_m(shelter) / CAR_MPS);
        let Some(position) = candidates.iter().position(|choice| choice.fits) else {
            no_room += 1;
            continue;
        };
        sent += 1;
        overflowed += usize::from(position > 0);
        passed_over += position;
        let chosen = &candidates[position].shelter;
        if let Some(shelter) = state.shelters.get_mut(chosen) {
            shelter.reserved += residents;
        }
    }
    let elapsed = started.elapsed();
    let each_us = elapsed.as_secs_f64() * 1e6 / EVACUATIONS as f64;
    let reserved: u64 = state.shelters.values().map(|shelter| u64::from(shelter.reserved)).sum();
    println!("{EVACUATIONS} evacuations over {SHELTERS} open shelters ({places} places), one core:");
    println!("  all choices            {:8.1} ms", elapsed.as_secs_f64() * 1e3);
    println!("  one choice             {each_us:8.0} µs   ({:.0} choices/s)", 1e6 / each_us);
    println!(
        "  groups sent            {sent:8}   ({overflowed} past a nearer full shelter, {passed_over} shelters passed over in all; \
         {no_room} found no room; {reserved} places reserved)"
    );
}
