//! What the supply and shelter benches share: a deterministic city.

use pingji_engine::spatial::Position;

/// A small deterministic generator (xorshift), so every run measures the same city.
pub struct Dice(pub u64);

impl Dice {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn fraction(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }

    pub fn point(&mut self) -> Position {
        // A city of about 40 km by 30 km.
        Position { lon: 120.0 + 0.4 * self.fraction(), lat: 30.1 + 0.3 * self.fraction() }
    }
}
