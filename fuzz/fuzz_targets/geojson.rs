//! A map as an operator would import it: parsing and validation must answer
//! with areas or a message, never panic; an accepted map imports into an
//! engine and places points without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pingji_engine::areas::{AreaMap, parse_geojson};
use pingji_engine::spatial::Position;

fuzz_target!(|text: &str| {
    let Ok(import) = parse_geojson(text) else { return };
    if AreaMap::default().validate_import(&import).is_err() {
        return;
    }
    let map = AreaMap::from(import);
    for (lon, lat) in [(120.1, 30.2), (0.0, 0.0), (-179.9, 89.9)] {
        let _ = map.place(Position { lon, lat });
    }
});
