//! Coordinate systems at the edges. Pingji keeps one system inside, WGS84
//! (GPS; what a phone browser's geolocation gives). Chinese web maps and
//! their phone SDKs use others: GCJ-02 (AMap, Tencent) and BD-09 (Baidu),
//! offset from WGS84 by some hundreds of metres, enough to put a person in
//! the wrong grid. A map file or a client says which system it uses, and
//! positions are converted to WGS84 on the way in.
//!
//! The conversions are the `coordtransform` crate's (GCJ-02's published
//! forward formula, a refined numerical inverse, and its mainland-China
//! region, outside which the systems coincide: the region mask is derived
//! from OpenStreetMap data, © OpenStreetMap contributors, ODbL 1.0).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoordinateSystem {
    #[default]
    Wgs84,
    Gcj02,
    Bd09,
}

impl CoordinateSystem {
    /// Reads a system's name as map files and flags write it: `wgs84`,
    /// `EPSG:4326`, GeoJSON's `urn:ogc:def:crs:OGC:1.3:CRS84`, `gcj02`,
    /// `GCJ-02`, `bd09`, `BD-09` (case and separators do not matter).
    pub fn parse(name: &str) -> Result<CoordinateSystem, String> {
        let compact: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        match compact.as_str() {
            "wgs84" | "epsg4326" | "crs84" | "urnogcdefcrsogc13crs84" | "urnogcdefcrsepsg4326" | "gps" => {
                Ok(CoordinateSystem::Wgs84)
            }
            "gcj02" | "gcj" | "mars" => Ok(CoordinateSystem::Gcj02),
            "bd09" | "bd09ll" | "baidu" => Ok(CoordinateSystem::Bd09),
            _ => Err(format!(
                "coordinate system \"{}\" is unknown; use wgs84 (GPS), gcj02 (AMap, Tencent) or bd09 (Baidu)",
                crate::ids::quote(name)
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CoordinateSystem::Wgs84 => "WGS84",
            CoordinateSystem::Gcj02 => "GCJ-02",
            CoordinateSystem::Bd09 => "BD-09",
        }
    }

    /// `(lon, lat)` in this system, in WGS84.
    pub fn to_wgs84(self, lon: f64, lat: f64) -> (f64, f64) {
        match self {
            CoordinateSystem::Wgs84 => (lon, lat),
            CoordinateSystem::Gcj02 => coordtransform::gcj02_to_wgs84(lon, lat),
            CoordinateSystem::Bd09 => coordtransform::bd09_to_wgs84(lon, lat),
        }
    }

    /// `(lon, lat)` in WGS84, in this system.
    pub fn from_wgs84(self, lon: f64, lat: f64) -> (f64, f64) {
        match self {
            CoordinateSystem::Wgs84 => (lon, lat),
            CoordinateSystem::Gcj02 => coordtransform::wgs84_to_gcj02(lon, lat),
            CoordinateSystem::Bd09 => coordtransform::wgs84_to_bd09(lon, lat),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::Position;

    fn metres_between((lon, lat): (f64, f64), (other_lon, other_lat): (f64, f64)) -> f64 {
        Position { lon, lat }.distance_m(Position { lon: other_lon, lat: other_lat })
    }

    /// The reference pair published with the GCJ-02 implementations (the
    /// JavaScript `coordtransform` README, which the Go and Rust ports
    /// reproduce): WGS84 (116.404, 39.915) is GCJ-02 (116.41024449916938,
    /// 39.91640428150164), and BD-09 adds its own offset on top.
    #[test]
    fn the_published_reference_point_converts_to_the_published_values() {
        let gcj = CoordinateSystem::Gcj02.from_wgs84(116.404, 39.915);
        assert!(metres_between(gcj, (116.41024449916938, 39.91640428150164)) < 0.001, "{gcj:?}");
        let bd = CoordinateSystem::Bd09.from_wgs84(116.404, 39.915);
        assert!(metres_between(bd, (116.404, 39.915)) > 1000.0, "BD-09 lies about a kilometre off in Beijing: {bd:?}");
    }

    /// Round trips through each system come back within a centimetre, over
    /// a grid of points across Hangzhou and the mainland; the offsets are
    /// hundreds of metres, so a missing conversion cannot pass.
    #[test]
    fn round_trips_are_sub_centimetre_and_the_offsets_are_hundreds_of_metres() {
        let mut worst: f64 = 0.0;
        for lon_step in 0..20 {
            for lat_step in 0..20 {
                let point = (119.9 + f64::from(lon_step) * 0.03, 30.1 + f64::from(lat_step) * 0.02);
                for system in [CoordinateSystem::Gcj02, CoordinateSystem::Bd09] {
                    let shifted = system.from_wgs84(point.0, point.1);
                    assert!(metres_between(shifted, point) > 300.0, "{system:?} at {point:?} moved only to {shifted:?}");
                    worst = worst.max(metres_between(system.to_wgs84(shifted.0, shifted.1), point));
                }
            }
        }
        for point in [(87.6, 43.8), (126.6, 45.7), (110.3, 20.0), (91.1, 29.6)] {
            let shifted = CoordinateSystem::Gcj02.from_wgs84(point.0, point.1);
            worst = worst.max(metres_between(CoordinateSystem::Gcj02.to_wgs84(shifted.0, shifted.1), point));
        }
        assert!(worst < 0.01, "the worst round trip is {worst} m");
    }

    #[test]
    fn outside_china_the_systems_coincide() {
        let paris = (2.35, 48.86);
        assert_eq!(CoordinateSystem::Gcj02.to_wgs84(paris.0, paris.1), paris);
    }

    #[test]
    fn names_are_read_as_map_files_and_flags_write_them() {
        assert_eq!(CoordinateSystem::parse("GCJ-02"), Ok(CoordinateSystem::Gcj02));
        assert_eq!(CoordinateSystem::parse("urn:ogc:def:crs:OGC:1.3:CRS84"), Ok(CoordinateSystem::Wgs84));
        assert_eq!(CoordinateSystem::parse("EPSG:4326"), Ok(CoordinateSystem::Wgs84));
        assert_eq!(CoordinateSystem::parse("bd09"), Ok(CoordinateSystem::Bd09));
        assert!(CoordinateSystem::parse("EPSG:3857").is_err_and(|error| error.contains("gcj02")));
    }
}
