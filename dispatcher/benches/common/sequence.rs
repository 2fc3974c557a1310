//! A deterministic pseudo-random sequence (xorshift), so that runs of a
//! benchmark compare. Shared by the benches with `#[path]`; each bench
//! extends it with what it draws (points, counts).

pub struct Sequence(pub u64);

impl Sequence {
    /// The next number in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
