//! The CTA data files in `data/`: stations with their lines and order, ridership per
//! station, and the hourly ridership curve. Loaded at start; a missing or malformed
//! file is an error naming the file and the line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read CTA data file {path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("CTA data file {path}, line {line}: {message}")]
    Malformed {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("CTA data file {path}: {message}")]
    Incomplete { path: PathBuf, message: String },
}

/// One stop (a platform in one direction) of `cta_stations.csv`.
#[derive(Debug, Clone, Deserialize)]
// The simulation reads the station columns; the stop columns are what the PostgreSQL
// `stations` table holds (stations pipeline).
#[allow(dead_code)]
pub struct StopRow {
    pub stop_id: i32,
    pub direction_id: String,
    pub stop_name: String,
    pub station_name: String,
    pub station_descriptive_name: String,
    pub station_id: i32,
    pub order: i32,
    #[serde(deserialize_with = "de_bool")]
    pub red: bool,
    #[serde(deserialize_with = "de_bool")]
    pub blue: bool,
    #[serde(deserialize_with = "de_bool")]
    pub green: bool,
}

/// Average daily entries of a station, by kind of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Ridership {
    pub station_id: i32,
    pub weekday: u32,
    pub saturday: u32,
    pub sunday_holiday: u32,
}

#[derive(Debug, Deserialize)]
struct RidershipRow {
    station_id: i32,
    #[allow(dead_code)]
    station_name: String,
    weekday: u32,
    saturday: u32,
    sunday_holiday: u32,
}

#[derive(Debug, Deserialize)]
struct CurveRow {
    hour: u32,
    ratio: f64,
}

#[derive(Debug, Clone)]
pub struct CtaData {
    pub stops: Vec<StopRow>,
    pub ridership: HashMap<i32, Ridership>,
    /// Share of a day's entries in each hour, 0–23.
    pub hourly: [f64; 24],
}

fn de_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    match s.trim().to_ascii_uppercase().as_str() {
        "TRUE" | "T" | "1" => Ok(true),
        "FALSE" | "F" | "0" => Ok(false),
        other => Err(serde::de::Error::custom(format!("expected TRUE or FALSE, not {other:?}"))),
    }
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for row in reader.deserialize() {
        let row: T = row.map_err(|e| DataError::Malformed {
            path: path.to_path_buf(),
            line: e.position().map(|p| p.line()).unwrap_or(0),
            message: e.to_string(),
        })?;
        out.push(row);
    }
    Ok(out)
}

impl CtaData {
    /// Loads `cta_stations.csv`, `ridership.csv` and `ridership_curve.csv` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let stops: Vec<StopRow> = read(&dir.join("cta_stations.csv"))?;
        if stops.is_empty() {
            return Err(DataError::Incomplete {
                path: dir.join("cta_stations.csv"),
                message: "no stations".into(),
            });
        }
        let ridership = read::<RidershipRow>(&dir.join("ridership.csv"))?
            .into_iter()
            .map(|r| {
                (
                    r.station_id,
                    Ridership {
                        station_id: r.station_id,
                        weekday: r.weekday,
                        saturday: r.saturday,
                        sunday_holiday: r.sunday_holiday,
                    },
                )
            })
            .collect();
        let curve_path = dir.join("ridership_curve.csv");
        let mut hourly = [f64::NAN; 24];
        for row in read::<CurveRow>(&curve_path)? {
            if row.hour >= 24 || !(0.0..=1.0).contains(&row.ratio) {
                return Err(DataError::Incomplete {
                    path: curve_path,
                    message: format!("hour {} with ratio {} is out of range", row.hour, row.ratio),
                });
            }
            hourly[row.hour as usize] = row.ratio;
        }
        if let Some(h) = hourly.iter().position(|r| r.is_nan()) {
            return Err(DataError::Incomplete {
                path: curve_path,
                message: format!("no ratio for hour {h}"),
            });
        }
        Ok(Self {
            stops,
            ridership,
            hourly,
        })
    }
}

#[cfg(test)]
pub(crate) fn project_data() -> CtaData {
    CtaData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data")).expect("data/ loads")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_data_loads() {
        let d = project_data();
        assert_eq!(d.stops.len(), 230);
        assert_eq!(d.ridership.len(), 144);
        assert_eq!(d.hourly[8], 0.125);
        // Half-way values were rounded to even, as the original's Python round did.
        assert_eq!(d.ridership[&40070].weekday, 8242);
        assert_eq!(d.ridership[&41660].weekday, 23156);
        assert_eq!(d.ridership[&40820].weekday, 7238);
    }

    #[test]
    fn a_malformed_file_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        for f in ["cta_stations.csv", "ridership.csv", "ridership_curve.csv"] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        std::fs::write(dir.path().join("ridership_curve.csv"), "hour,ratio\n0,0.01\n1,lots\n").unwrap();
        let e = CtaData::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("ridership_curve.csv") && e.contains("line 3"), "{e}");
        std::fs::remove_file(dir.path().join("ridership.csv")).unwrap();
        let e = CtaData::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("ridership.csv") && e.contains("cannot read"), "{e}");
    }
}
