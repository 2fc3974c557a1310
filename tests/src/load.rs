//! What the load generators (`loadgen`, `fieldload`, `mapbench`) share:
//! where their simulated people stand, the CPU a process used, and free
//! ports for the dispatcher they start.

use std::net::SocketAddr;

use crate::pb;

/// The sample city's box, where the simulated people walk.
pub const WEST: f64 = 120.0876;
pub const EAST: f64 = 120.2124;
pub const SOUTH: f64 = 30.2250;
pub const NORTH: f64 = 30.3150;

/// A deterministic point of the city for person `n` at step `step`: a home
/// point, and a walk of up to ~50 m around it.
pub fn point(n: usize, step: u64) -> pb::Location {
    let mix = |value: u64| {
        let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let lon = WEST + (EAST - WEST) * mix(n as u64 * 2) + (mix(n as u64 * 7919 + step) - 0.5) * 1e-3;
    let lat = SOUTH + (NORTH - SOUTH) * mix(n as u64 * 2 + 1) + (mix(n as u64 * 104_729 + step) - 0.5) * 1e-3;
    pb::Location::wgs84(lon.clamp(WEST, EAST), lat.clamp(SOUTH, NORTH))
}

/// utime + stime of a process (`self` or a pid), in seconds.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(after) = stat.rfind(')').map(|end| &stat[end + 2..]) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based over the whole line).
    let ticks = |index: usize| fields.get(index - 3).and_then(|field| field.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(14) + ticks(15)) / 100.0
}

/// A loopback address no one listens on now.
pub fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
