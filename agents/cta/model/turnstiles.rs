//! Turnstile entries: how many riders pass a station's turnstile in one simulation step.
//! The original's formula with its bugs fixed: the ridership of the day of the week, and
//! a day's rides × the hour's share ÷ steps per hour (the original divided by the seconds
//! in a step), plus its noise of −5..4 riders, never below zero.

use days::DayKind;
use rand::Rng;

use crate::agents::cta::data::Ridership;

/// Days of the week without a calendar dependency (0 = Monday).
pub mod days {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum DayKind {
        Weekday,
        Saturday,
        Sunday,
    }

    /// The kind of day of a date given in days since 1970-01-01 (a Thursday).
    pub fn weekday_of(days_since_epoch: i64) -> DayKind {
        match (days_since_epoch + 3).rem_euclid(7) {
            5 => DayKind::Saturday,
            6 => DayKind::Sunday,
            _ => DayKind::Weekday,
        }
    }
}

/// A day's entries at a station for that kind of day.
pub fn daily_rides(r: &Ridership, day: DayKind) -> u32 {
    match day {
        DayKind::Weekday => r.weekday,
        DayKind::Saturday => r.saturday,
        DayKind::Sunday => r.sunday_holiday,
    }
}

/// Entries in one step before noise: rides × hourly share ÷ steps per hour, rounded down.
pub fn expected_entries(daily: u32, hourly_ratio: f64, steps_per_hour: u32) -> u32 {
    (f64::from(daily) * hourly_ratio / f64::from(steps_per_hour.max(1))).floor() as u32
}

/// Entries in one step, with the original's noise.
pub fn entries(daily: u32, hourly_ratio: f64, steps_per_hour: u32, rng: &mut impl Rng) -> u32 {
    let noise: i64 = rng.random_range(-5..5);
    (i64::from(expected_entries(daily, hourly_ratio, steps_per_hour)) + noise).max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::days::weekday_of;
    use super::*;
    use crate::agents::cta::data::project_data;
    use rand::SeedableRng;

    #[test]
    fn the_day_of_the_week_picks_the_ridership() {
        assert_eq!(weekday_of(0), DayKind::Weekday); // 1970-01-01, a Thursday
        assert_eq!(weekday_of(2), DayKind::Saturday);
        assert_eq!(weekday_of(3), DayKind::Sunday);
        assert_eq!(weekday_of(20_785), DayKind::Saturday); // 2026-11-28
        let r = Ridership {
            station_id: 1,
            weekday: 10,
            saturday: 20,
            sunday_holiday: 30,
        };
        assert_eq!(daily_rides(&r, DayKind::Saturday), 20);
        assert_eq!(daily_rides(&r, DayKind::Sunday), 30);
    }

    #[test]
    fn entries_per_hour_match_figures_computed_by_hand() {
        let d = project_data();
        // 12 steps of 5 minutes per hour; figures by hand from data/ridership.csv and
        // data/ridership_curve.csv:
        // Lake/State 41660, weekday 23156, 08:00 share 0.125: 23156 × 0.125 / 12 = 241.2
        // → 241 per step, 2892 per hour (the day's 2894.5 for that hour, less rounding).
        let lake = d.ridership[&41660];
        assert_eq!(expected_entries(lake.weekday, d.hourly[8], 12), 241);
        assert_eq!(12 * expected_entries(lake.weekday, d.hourly[8], 12), 2892);
        // Clark/Lake 40380, Saturday 6902, 17:00 share 0.075: 6902 × 0.075 / 12 = 43.1 → 43.
        let clark = d.ridership[&40380];
        assert_eq!(expected_entries(clark.saturday, d.hourly[17], 12), 43);
        // Jackson 40070, weekday 8242 (8242.5 rounded to even), 03:00 share 0.01:
        // 8242 × 0.01 / 12 = 6.87 → 6.
        assert_eq!(
            expected_entries(d.ridership[&40070].weekday, d.hourly[3], 12),
            6
        );
        // Randolph/Wabash 40200 has no riders at all.
        assert_eq!(
            expected_entries(d.ridership[&40200].weekday, d.hourly[8], 12),
            0
        );
    }

    #[test]
    fn noise_stays_within_minus_five_to_four_and_never_below_zero() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let e = entries(2400, 0.05, 12, &mut rng); // base 10
            assert!((5..=14).contains(&e), "{e}");
            seen.insert(e);
            assert!(entries(0, 0.05, 12, &mut rng) <= 4);
        }
        assert_eq!(seen.len(), 10, "every noise value occurs");
    }
}
