//! The map's geometry: the extent of the areas, and fitting it into a
//! terminal rectangle without distorting it.

use pingji_proto::v1 as pb;

/// Terminal cells are about twice as tall as wide.
const CELL_HEIGHT_PER_WIDTH: f64 = 2.0;
/// Room left around the areas, as a share of their extent.
const MARGIN: f64 = 0.02;

/// A lon/lat rectangle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub min_lon: f64,
    pub max_lon: f64,
    pub min_lat: f64,
    pub max_lat: f64,
}

impl Bounds {
    /// The smallest rectangle holding every point, or `None` for no point.
    pub fn around(points: impl IntoIterator<Item = (f64, f64)>) -> Option<Bounds> {
        let mut bounds: Option<Bounds> = None;
        for (lon, lat) in points {
            if !lon.is_finite() || !lat.is_finite() {
                continue;
            }
            bounds = Some(match bounds {
                None => Bounds { min_lon: lon, max_lon: lon, min_lat: lat, max_lat: lat },
                Some(b) => Bounds {
                    min_lon: b.min_lon.min(lon),
                    max_lon: b.max_lon.max(lon),
                    min_lat: b.min_lat.min(lat),
                    max_lat: b.max_lat.max(lat),
                },
            });
        }
        bounds
    }

    /// The canvas bounds (`[x_min, x_max]`, `[y_min, y_max]`) that show this
    /// rectangle whole in `width` x `height` cells with true proportions:
    /// a degree of longitude is shorter than one of latitude by cos(lat),
    /// and a cell is taller than wide, so one axis is widened to match.
    pub fn fit(&self, width: u16, height: u16) -> ([f64; 2], [f64; 2]) {
        let lon_span = (self.max_lon - self.min_lon).max(1e-6) * (1.0 + 2.0 * MARGIN);
        let lat_span = (self.max_lat - self.min_lat).max(1e-6) * (1.0 + 2.0 * MARGIN);
        let centre_lon = (self.min_lon + self.max_lon) / 2.0;
        let centre_lat = (self.min_lat + self.max_lat) / 2.0;
        let shrink = centre_lat.to_radians().cos().abs().max(0.01);
        // Ground extent per cell along each axis, in "latitude degrees".
        let cells_wide = f64::from(width.max(1));
        let cells_high = f64::from(height.max(1)) * CELL_HEIGHT_PER_WIDTH;
        let per_cell = (lon_span * shrink / cells_wide).max(lat_span / cells_high);
        let half_lon = per_cell * cells_wide / shrink / 2.0;
        let half_lat = per_cell * cells_high / 2.0;
        ([centre_lon - half_lon, centre_lon + half_lon], [centre_lat - half_lat, centre_lat + half_lat])
    }
}

/// An area's outline as the canvas draws it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outline {
    pub id: String,
    pub name: String,
    pub level: i32,
    pub parent_id: String,
    pub mode: i32,
    pub effective_mode: i32,
    /// Each ring as (lon, lat) points; exteriors and holes alike.
    pub rings: Vec<Vec<(f64, f64)>>,
}

impl Outline {
    pub fn from_area(area: &pb::Area) -> Outline {
        Outline {
            id: area.id.clone(),
            name: area.name.clone(),
            level: area.level,
            parent_id: area.parent_id.clone(),
            mode: area.mode,
            effective_mode: area.effective_mode,
            rings: area
                .polygons
                .iter()
                .flat_map(|polygon| polygon.rings.iter())
                .map(|ring| ring.points.iter().map(|point| (point.lon, point.lat)).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_every_point() {
        let bounds = Bounds::around([(120.0, 30.0), (120.2, 30.3), (f64::NAN, 1.0)]).expect("points");
        assert_eq!(bounds, Bounds { min_lon: 120.0, max_lon: 120.2, min_lat: 30.0, max_lat: 30.3 });
        assert_eq!(Bounds::around([]), None);
    }

    #[test]
    fn fitting_keeps_the_whole_area_and_its_proportions() {
        let bounds = Bounds { min_lon: 120.09, max_lon: 120.21, min_lat: 30.22, max_lat: 30.32 };
        for (width, height) in [(40, 20), (80, 10), (20, 40)] {
            let ([x0, x1], [y0, y1]) = bounds.fit(width, height);
            assert!(x0 <= bounds.min_lon && x1 >= bounds.max_lon, "{width}x{height}: lon {x0}..{x1}");
            assert!(y0 <= bounds.min_lat && y1 >= bounds.max_lat, "{width}x{height}: lat {y0}..{y1}");
            // Same ground distance per cell on both axes (cells 2:1).
            let shrink = 30.27_f64.to_radians().cos();
            let per_cell_x = (x1 - x0) * shrink / f64::from(width);
            let per_cell_y = (y1 - y0) / (f64::from(height) * 2.0);
            assert!((per_cell_x / per_cell_y - 1.0).abs() < 1e-9, "{width}x{height}: {per_cell_x} vs {per_cell_y}");
        }
    }
}
