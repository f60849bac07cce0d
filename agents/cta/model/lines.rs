//! The simulated train lines: which stations each line has, in which order, and how its
//! ten trains move — the original's model, with stations identified by `station_id`
//! rather than by name (so no phantom "95th/Ran Ryan" and no lost Forest Park "Harlem").

use std::collections::BTreeSet;

use serde::Serialize;

use crate::agents::cta::data::CtaData;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Red,
    Green,
}

impl Color {
    /// Lines in the order the original builds and runs them.
    pub const ALL: [Color; 3] = [Color::Blue, Color::Red, Color::Green];

    pub fn name(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Red => "red",
            Color::Green => "green",
        }
    }

    fn prefix(self) -> char {
        match self {
            Color::Blue => 'B',
            Color::Red => 'R',
            Color::Green => 'G',
        }
    }
}

/// Platform side: `b` moves toward higher station indices, `a` toward lower ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    A,
    B,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::A => "a",
            Direction::B => "b",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Station {
    pub station_id: i32,
    pub name: String,
}

impl Station {
    /// The suffix of the station's arrival topic.
    pub fn topic_suffix(&self) -> String {
        normalize(&self.name)
    }
}

/// The original's topic-name normalisation: lower case, `/` → `_and_`, space and `-` →
/// `_`, apostrophes removed.
pub fn normalize(name: &str) -> String {
    name.to_lowercase()
        .replace('/', "_and_")
        .replace([' ', '-'], "_")
        .replace('\'', "")
}

/// One train arriving at a station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub station_id: i32,
    pub station_index: usize,
    pub train_id: String,
    pub direction: Direction,
    pub line: Color,
    pub prev_station_id: Option<i32>,
    pub prev_direction: Option<Direction>,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub color: Color,
    pub stations: Vec<Station>,
    /// Cyclic position of each train in [0, 2N): p < N is index p going `b`, otherwise
    /// index 2N − p going `a` (N = last index).
    positions: Vec<usize>,
}

pub const TRAINS_PER_LINE: usize = 10;

/// The simulated lines, in the order the original builds and runs them.
pub fn build_lines(data: &CtaData) -> Vec<Line> {
    Color::ALL.iter().map(|&c| Line::build(c, data)).collect()
}

impl Line {
    /// The stations of `color` in `order`, each `station_id` once (first stop wins).
    pub fn build(color: Color, data: &CtaData) -> Line {
        let mut rows: Vec<_> = data
            .stops
            .iter()
            .filter(|s| match color {
                Color::Blue => s.blue,
                Color::Red => s.red,
                Color::Green => s.green,
            })
            .collect();
        rows.sort_by_key(|s| s.order);
        let mut seen = BTreeSet::new();
        let stations: Vec<Station> = rows
            .into_iter()
            .filter(|s| seen.insert(s.station_id))
            .map(|s| Station {
                station_id: s.station_id,
                name: s.station_name.clone(),
            })
            .collect();
        let n = stations.len().saturating_sub(1).max(1);
        let spacing = 2 * n / TRAINS_PER_LINE;
        let positions = (0..TRAINS_PER_LINE).map(|k| k * spacing).collect();
        Line {
            color,
            stations,
            positions,
        }
    }

    /// Index of the terminal at the far end (N).
    pub fn last(&self) -> usize {
        self.stations.len() - 1
    }

    pub fn train_id(&self, k: usize) -> String {
        format!("{}L{k:03}", self.color.prefix())
    }

    fn slot(&self, p: usize) -> (usize, Direction) {
        let n = self.last();
        if p < n {
            (p, Direction::B)
        } else {
            (2 * n - p, Direction::A)
        }
    }

    fn arrival(&self, k: usize, prev: Option<(usize, Direction)>) -> Arrival {
        let (index, direction) = self.slot(self.positions[k]);
        Arrival {
            station_id: self.stations[index].station_id,
            station_index: index,
            train_id: self.train_id(k),
            direction,
            line: self.color,
            prev_station_id: prev.map(|(i, _)| self.stations[i].station_id),
            prev_direction: prev.map(|(_, d)| d),
        }
    }

    /// The arrivals of the trains at their starting places, in train order.
    pub fn initial_arrivals(&self) -> Vec<Arrival> {
        (0..TRAINS_PER_LINE)
            .map(|k| self.arrival(k, None))
            .collect()
    }

    /// Moves every train one station on; the arrivals come in the original's order:
    /// `b` trains by ascending station, then `a` trains by descending station (before
    /// the move).
    pub fn step(&mut self) -> Vec<Arrival> {
        let mut order: Vec<(usize, Direction, usize)> = (0..TRAINS_PER_LINE)
            .map(|k| {
                let (i, d) = self.slot(self.positions[k]);
                (i, d, k)
            })
            .collect();
        order.sort_by_key(|&(i, d, _)| match d {
            Direction::B => (0, i as i64),
            Direction::A => (1, -(i as i64)),
        });
        let cycle = 2 * self.last();
        order
            .into_iter()
            .map(|(i, d, k)| {
                self.positions[k] = (self.positions[k] + 1) % cycle;
                self.arrival(k, Some((i, d)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::cta::data::project_data;

    fn lines() -> Vec<Line> {
        build_lines(&project_data())
    }

    fn at(l: &Line, a: &Arrival) -> String {
        format!(
            "{} {}@{}{} prev {:?}/{:?}",
            a.train_id,
            l.stations[a.station_index].name,
            a.station_index,
            a.direction.as_str(),
            a.prev_station_id,
            a.prev_direction.map(|d| d.as_str())
        )
    }

    #[test]
    fn lines_hold_each_station_id_once() {
        let ls = lines();
        let counts: Vec<usize> = ls.iter().map(|l| l.stations.len()).collect();
        // The original had 32 blue (Forest Park's Harlem lost to a name clash) and 34
        // red (a typo'd duplicate of 95th/Dan Ryan); by station_id: 33, 33, 28 = 94.
        assert_eq!(counts, vec![33, 33, 28]);
        let blue = &ls[0];
        assert_eq!(blue.stations[0].station_id, 40890); // O'Hare
        assert_eq!(blue.stations[3].station_id, 40750); // Harlem (O'Hare branch)
        assert_eq!(blue.stations[31].station_id, 40980); // Harlem (Forest Park branch)
        assert_eq!(blue.stations[32].station_id, 40390); // Forest Park
        let red = &ls[1];
        assert_eq!(red.stations[32].name, "95th/Dan Ryan");
        assert!(red.stations.iter().all(|s| s.name != "95th/Ran Ryan"));
        assert_eq!(ls[2].stations[27].station_id, 40290); // Ashland/63rd
    }

    #[test]
    fn normalized_names_match_the_original_topics() {
        assert_eq!(
            normalize("Western/O'Hare Branch"),
            "western_and_ohare_branch"
        );
        assert_eq!(normalize("35th-Bronzeville-IIT"), "35th_bronzeville_iit");
        assert_eq!(normalize("O'Hare"), "ohare");
        assert_eq!(normalize("Clark/Lake"), "clark_and_lake");
    }

    #[test]
    fn start_positions_of_all_lines() {
        let ls = lines();
        let places = |l: &Line| -> Vec<String> {
            l.initial_arrivals()
                .iter()
                .map(|a| format!("{}{}", a.station_index, a.direction.as_str()))
                .collect()
        };
        // Blue and red: N = 32, spacing 6; green: N = 27, spacing 5 (as the original).
        let spaced6 = [
            "0b", "6b", "12b", "18b", "24b", "30b", "28a", "22a", "16a", "10a",
        ];
        assert_eq!(places(&ls[0]), spaced6);
        assert_eq!(places(&ls[1]), spaced6);
        assert_eq!(
            places(&ls[2]),
            ["0b", "5b", "10b", "15b", "20b", "25b", "24a", "19a", "14a", "9a"]
        );
        let first = &ls[0].initial_arrivals()[0];
        assert_eq!(
            (first.train_id.as_str(), first.station_id),
            ("BL000", 40890)
        );
        assert_eq!(first.prev_station_id, None);
        assert_eq!(ls[1].initial_arrivals()[9].train_id, "RL009");
    }

    #[test]
    fn blue_steps_one_and_two() {
        let mut blue = lines().remove(0);
        let step1: Vec<String> = blue.step().iter().map(|a| at(&blue, a)).collect();
        assert_eq!(
            step1,
            vec![
                "BL000 Rosemont@1b prev Some(40890)/Some(\"b\")",
                "BL001 Addison@7b prev Some(40550)/Some(\"b\")",
                "BL002 Division@13b prev Some(40590)/Some(\"b\")",
                "BL003 Jackson@19b prev Some(40790)/Some(\"b\")",
                "BL004 Western/Forest Pk Branch@25b prev Some(40810)/Some(\"b\")",
                // Oak Park → Harlem (Forest Park branch): the station the original lost.
                "BL005 Harlem@31b prev Some(40180)/Some(\"b\")",
                "BL006 Pulaski@27a prev Some(40970)/Some(\"a\")",
                "BL007 Clinton@21a prev Some(40350)/Some(\"a\")",
                "BL008 Grand@15a prev Some(40380)/Some(\"a\")",
                "BL009 Logan Square@9a prev Some(40570)/Some(\"a\")",
            ]
        );
        let step2: Vec<String> = blue.step().iter().map(|a| at(&blue, a)).collect();
        assert_eq!(step2[0], "BL000 Cumberland@2b prev Some(40820)/Some(\"b\")");
        // The terminal: arriving at Forest Park turns the train round to direction a.
        assert_eq!(
            step2[5],
            "BL005 Forest Park@32a prev Some(40980)/Some(\"b\")"
        );
        assert_eq!(step2[9], "BL009 Belmont@8a prev Some(41020)/Some(\"a\")");
    }

    #[test]
    fn every_train_moves_one_station_per_step_without_collisions() {
        for mut l in lines() {
            for _ in 0..500 {
                let arrivals = l.step();
                assert_eq!(arrivals.len(), TRAINS_PER_LINE);
                let mut slots = BTreeSet::new();
                for a in &arrivals {
                    let prev = l
                        .stations
                        .iter()
                        .position(|s| Some(s.station_id) == a.prev_station_id)
                        .unwrap();
                    assert_eq!(prev.abs_diff(a.station_index), 1, "{a:?}");
                    assert!(
                        slots.insert((a.station_index, a.direction.as_str())),
                        "two trains in one slot"
                    );
                }
            }
        }
    }
}
