//! Locations and area levels on the wire: what every other conversion
//! uses, kept apart so that none of them needs the parent module.

use pingji_engine::areas::AreaLevel;
use pingji_engine::spatial::Position;
use pingji_proto::v1 as pb;

pub fn location(position: Position) -> pb::Location {
    pb::Location::wgs84(position.lon, position.lat)
}

pub fn level_to_pb(level: AreaLevel) -> pb::AreaLevel {
    match level {
        AreaLevel::City => pb::AreaLevel::City,
        AreaLevel::District => pb::AreaLevel::District,
        AreaLevel::Street => pb::AreaLevel::Street,
        AreaLevel::Community => pb::AreaLevel::Community,
        AreaLevel::Grid => pb::AreaLevel::Grid,
        AreaLevel::Building => pb::AreaLevel::Building,
    }
}

pub fn level_from_pb(level: i32) -> Option<AreaLevel> {
    match pb::AreaLevel::try_from(level).ok()? {
        pb::AreaLevel::City => Some(AreaLevel::City),
        pb::AreaLevel::District => Some(AreaLevel::District),
        pb::AreaLevel::Street => Some(AreaLevel::Street),
        pb::AreaLevel::Community => Some(AreaLevel::Community),
        pb::AreaLevel::Grid => Some(AreaLevel::Grid),
        pb::AreaLevel::Building => Some(AreaLevel::Building),
        pb::AreaLevel::Unspecified => None,
    }
}
