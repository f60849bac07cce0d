//! The weather station: a temperature random walk and a random status, once per
//! simulated hour. The original meant winter to be November to April and summer July to
//! September but wrote its month sets 0-based; here they are real months.

use rand::Rng;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeatherStatus {
    Sunny,
    PartlyCloudy,
    Cloudy,
    Windy,
    Precipitation,
}

impl WeatherStatus {
    pub const ALL: [WeatherStatus; 5] = [
        WeatherStatus::Sunny,
        WeatherStatus::PartlyCloudy,
        WeatherStatus::Cloudy,
        WeatherStatus::Windy,
        WeatherStatus::Precipitation,
    ];

    /// The status as the `weather.value` record writes it (its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            WeatherStatus::Sunny => "sunny",
            WeatherStatus::PartlyCloudy => "partly_cloudy",
            WeatherStatus::Cloudy => "cloudy",
            WeatherStatus::Windy => "windy",
            WeatherStatus::Precipitation => "precipitation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Season {
    Winter,
    Summer,
    Other,
}

/// The season of a month (1 = January).
pub fn season(month: u32) -> Season {
    match month {
        1..=4 | 11 | 12 => Season::Winter,
        7..=9 => Season::Summer,
        _ => Season::Other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weather {
    /// Degrees Fahrenheit.
    pub temperature: f64,
    pub status: WeatherStatus,
}

impl Weather {
    pub fn new(month: u32) -> Self {
        let temperature = match season(month) {
            Season::Winter => 40.0,
            Season::Summer => 85.0,
            Season::Other => 70.0,
        };
        Self {
            temperature,
            status: WeatherStatus::Sunny,
        }
    }

    /// One simulated hour: the temperature moves by a triangular draw on [−10, 10] leaning
    /// cold in winter and warm in summer; the status is drawn anew.
    pub fn advance(&mut self, month: u32, rng: &mut impl Rng) {
        let mode = match season(month) {
            Season::Winter => -1.0,
            Season::Summer => 1.0,
            Season::Other => 0.0,
        };
        self.temperature += triangular(-10.0, 10.0, mode, rng);
        self.status = WeatherStatus::ALL[rng.random_range(0..WeatherStatus::ALL.len())];
    }
}

/// A draw of the triangular distribution on [low, high] with the given mode.
pub fn triangular(low: f64, high: f64, mode: f64, rng: &mut impl Rng) -> f64 {
    let u: f64 = rng.random();
    let c = (mode - low) / (high - low);
    if u < c {
        low + (u * (high - low) * (mode - low)).sqrt()
    } else {
        high - ((1.0 - u) * (high - low) * (high - mode)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn statuses_are_written_by_their_serde_names() {
        for s in WeatherStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn seasons_are_real_months() {
        assert_eq!(
            season(12),
            Season::Winter,
            "December is winter (the original's bug)"
        );
        assert_eq!(season(1), Season::Winter);
        assert_eq!(season(4), Season::Winter);
        assert_eq!(season(5), Season::Other);
        assert_eq!(season(7), Season::Summer);
        assert_eq!(season(9), Season::Summer);
        assert_eq!(season(10), Season::Other);
        assert_eq!(Weather::new(12).temperature, 40.0);
        assert_eq!(Weather::new(8).temperature, 85.0);
        assert_eq!(Weather::new(5).temperature, 70.0);
    }

    #[test]
    fn the_walk_leans_with_the_season_and_moves_at_most_ten_degrees() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for (month, mean) in [(1, -1.0 / 3.0), (8, 1.0 / 3.0), (5, 0.0)] {
            let mut w = Weather::new(month);
            let mut statuses = std::collections::BTreeSet::new();
            let n = 100_000;
            let start = w.temperature;
            for _ in 0..n {
                let before = w.temperature;
                w.advance(month, &mut rng);
                assert!((w.temperature - before).abs() <= 10.0);
                statuses.insert(w.status as u8);
            }
            let drift = (w.temperature - start) / n as f64;
            assert!(
                (drift - mean).abs() < 0.05,
                "month {month}: mean step {drift}"
            );
            assert_eq!(statuses.len(), 5);
        }
    }
}
