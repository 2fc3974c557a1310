//! How people move: their travel mode and the speed of each, from which
//! estimated arrival times are made.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TravelMode {
    #[default]
    Walk,
    Bike,
    Car,
}

impl TravelMode {
    pub fn speed_mps(self, speeds: &Speeds) -> f64 {
        match self {
            TravelMode::Walk => speeds.walk_mps,
            TravelMode::Bike => speeds.bike_mps,
            TravelMode::Car => speeds.car_mps,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Speeds {
    pub walk_mps: f64,
    pub bike_mps: f64,
    pub car_mps: f64,
}
