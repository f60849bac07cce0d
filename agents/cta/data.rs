//! The CTA data files in `data/`: stations with their lines and order, ridership per
//! station, and the hourly ridership curve. Loaded at start; a missing or malformed
//! file is an error naming the file and the line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::records::Station;

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
    /// The rows of `cta_stations.csv`, one per stop (the PostgreSQL `stations` table's).
    pub stops: Vec<Station>,
    pub ridership: HashMap<i32, Ridership>,
    /// Share of a day's entries in each hour, 0–23.
    pub hourly: [f64; 24],
}

/// The CSV's text for a boolean column (`TRUE`, `FALSE`, as PostgreSQL's COPY reads it),
/// as serde reads a bool.
fn flag(text: &str) -> Result<&'static str, String> {
    match text.trim().to_ascii_uppercase().as_str() {
        "TRUE" | "T" | "1" => Ok("true"),
        "FALSE" | "F" | "0" => Ok("false"),
        other => Err(format!("expected TRUE or FALSE, not {other:?}")),
    }
}

/// The rows of a CSV file with their line numbers; the columns named in `flags` hold
/// booleans as text (see `flag`).
fn read<T: DeserializeOwned>(path: &Path, flags: &[&str]) -> Result<Vec<(u64, T)>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let malformed = |line: u64, message: String| DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let line_of = |e: &csv::Error| e.position().map(|p| p.line()).unwrap_or(0);
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| malformed(line_of(&e), e.to_string()))?
        .clone();
    let is_flag: Vec<bool> = headers.iter().map(|h| flags.contains(&h)).collect();
    let mut out = Vec::new();
    for record in reader.records() {
        let mut record = record.map_err(|e| malformed(line_of(&e), e.to_string()))?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if is_flag.contains(&true) {
            let position = record.position().cloned();
            record = record
                .iter()
                .zip(&is_flag)
                .map(|(field, &is_flag)| if is_flag { flag(field) } else { Ok(field) })
                .collect::<Result<csv::StringRecord, String>>()
                .map_err(|m| malformed(line, m))?;
            record.set_position(position);
        }
        let row: T = record
            .deserialize(Some(&headers))
            .map_err(|e| malformed(line, e.to_string()))?;
        out.push((line, row));
    }
    Ok(out)
}

impl CtaData {
    /// Loads `cta_stations.csv`, `ridership.csv` and `ridership_curve.csv` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let stations_path = dir.join("cta_stations.csv");
        let mut stops = Vec::new();
        for (line, stop) in read::<Station>(&stations_path, &["red", "blue", "green"])? {
            // The table's column may be empty; the simulation orders its lines by it.
            if stop.order.is_none() {
                return Err(DataError::Malformed {
                    path: stations_path,
                    line,
                    message: "no order".into(),
                });
            }
            stops.push(stop);
        }
        if stops.is_empty() {
            return Err(DataError::Incomplete {
                path: stations_path,
                message: "no stations".into(),
            });
        }
        let ridership = read::<RidershipRow>(&dir.join("ridership.csv"), &[])?
            .into_iter()
            .map(|(_, r)| {
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
        for (_, row) in read::<CurveRow>(&curve_path, &[])? {
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
        std::fs::write(
            dir.path().join("ridership_curve.csv"),
            "hour,ratio\n0,0.01\n1,lots\n",
        )
        .unwrap();
        let e = CtaData::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("ridership_curve.csv") && e.contains("line 3"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("ridership.csv")).unwrap();
        let e = CtaData::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("ridership.csv") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn station_flags_and_order_are_checked_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        for f in ["ridership.csv", "ridership_curve.csv"] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        let header = "stop_id,direction_id,stop_name,station_name,station_descriptive_name,station_id,order,red,blue,green\n";
        let austin = "30001,E,Austin (O'Hare-bound),Austin,Austin (Blue Line),40010,29";
        let write = |rows: &str| {
            std::fs::write(
                dir.path().join("cta_stations.csv"),
                format!("{header}{rows}"),
            )
            .unwrap()
        };
        write(&format!("{austin},false,T,0\n"));
        let d = CtaData::load(dir.path()).unwrap();
        let s = &d.stops[0];
        assert_eq!(
            (s.station_id, s.order, s.red, s.blue, s.green),
            (40010, Some(29), false, true, false)
        );
        write(&format!(
            "{austin},FALSE,TRUE,FALSE\n{austin},FALSE,maybe,FALSE\n"
        ));
        let e = CtaData::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("cta_stations.csv, line 3")
                && e.contains("expected TRUE or FALSE, not \"MAYBE\""),
            "{e}"
        );
        write("30001,E,Austin (O'Hare-bound),Austin,Austin (Blue Line),40010,,FALSE,TRUE,FALSE\n");
        let e = CtaData::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("cta_stations.csv, line 2: no order"), "{e}");
    }
}
