//! Window arithmetic of windowed tables, on event times in milliseconds: which stored
//! windows an event goes to, which window a read answers, when a window closes (no
//! more events: they are late) and when it expires (removed), and how a (key, window)
//! pair is laid out in the store. Pure functions: the handle (`windowed`) does the I/O.
//!
//! Every kind is stored as windows `[start, start + span)` keyed by (key, start):
//!
//! * tumbling: windows of `size` one after the other (`span = size`);
//! * hopping: windows of `size` starting every `step` (`span = size`; an event is in
//!   `size / step` of them, rounded up or down);
//! * sliding: buckets of `step` (`span = step`); the window read at time `t` is the
//!   `size` of time up to the end of `t`'s bucket, `[b + step - size, b + step)` with
//!   `b` the start of that bucket, merged from its buckets. With `step = 1ms` that is
//!   exactly `(t - size, t]`.
//!
//! A stored window starting at `s` last serves a read window ending at `s + size` (for
//! every kind), so it closes when `s + size + grace <= stream time` and expires when
//! `s + size + expires <= stream time`, the stream time being the highest event time the
//! partition has seen. Arithmetic saturates: no event time makes it overflow.

use std::time::Duration;

use serde::Serialize;

use crate::settings::{WindowKind, WindowSettings};

/// A windowed table's windows, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub size_ms: i64,
    /// Hopping: between window starts; sliding: the bucket length; tumbling: the size.
    pub step_ms: i64,
    pub grace_ms: i64,
    pub expires_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl WindowSpec {
    /// From checked settings (`WindowSettings::check`).
    pub fn from_settings(w: &WindowSettings) -> Self {
        let size_ms = ms(w.size).max(1);
        let step_ms = match w.kind {
            WindowKind::Tumbling => size_ms,
            _ => w.step.map_or(size_ms, ms).clamp(1, size_ms),
        };
        Self {
            kind: w.kind,
            size_ms,
            step_ms,
            grace_ms: ms(w.grace),
            expires_ms: ms(w.expires),
        }
    }

    /// The length of a stored window: a sliding table stores buckets of `step`.
    pub fn span(&self) -> i64 {
        match self.kind {
            WindowKind::Sliding => self.step_ms,
            _ => self.size_ms,
        }
    }

    /// The start of the latest stored window at or before `t` on the `step` grid.
    fn grid(&self, t: i64) -> i64 {
        t.saturating_sub(t.rem_euclid(self.step_ms))
    }

    /// The starts of the stored windows an event at `t` belongs to, oldest first.
    pub fn stored_starts(&self, t: i64) -> Vec<i64> {
        let newest = self.grid(t);
        match self.kind {
            WindowKind::Tumbling | WindowKind::Sliding => vec![newest],
            WindowKind::Hopping => {
                // Windows [s, s + size) with s on the grid and s > t - size.
                let mut starts = vec![newest];
                let mut s = newest;
                while let Some(prev) = s.checked_sub(self.step_ms) {
                    if prev <= t.saturating_sub(self.size_ms) {
                        break;
                    }
                    starts.push(prev);
                    s = prev;
                }
                starts.reverse();
                starts
            }
        }
    }

    /// The window a read at `t` answers, `[start, end)`: the newest window containing
    /// `t` (tumbling: the one; hopping: the one starting last; sliding: the `size` up to
    /// the end of `t`'s bucket).
    pub fn window_at(&self, t: i64) -> (i64, i64) {
        let s = self.grid(t);
        match self.kind {
            WindowKind::Sliding => {
                let end = s.saturating_add(self.step_ms);
                (end.saturating_sub(self.size_ms), end)
            }
            _ => (s, s.saturating_add(self.size_ms)),
        }
    }

    /// The starts of the stored windows a read of window `[start, end)` (from
    /// `window_at`) is made of: the window itself, or a sliding window's buckets.
    pub fn read_starts(&self, (start, end): (i64, i64)) -> (i64, i64) {
        match self.kind {
            WindowKind::Sliding => (start, end.saturating_sub(self.step_ms)),
            _ => (start, start),
        }
    }

    /// A stored window starting at `start` takes no more events.
    pub fn is_closed(&self, start: i64, stream_time: Option<i64>) -> bool {
        stream_time.is_some_and(|st| {
            start
                .saturating_add(self.size_ms)
                .saturating_add(self.grace_ms)
                <= st
        })
    }

    /// A stored window starting at `start` is gone (or due to go).
    pub fn is_expired(&self, start: i64, stream_time: Option<i64>) -> bool {
        stream_time.is_some_and(|st| self.end_expired(start.saturating_add(self.size_ms), st))
    }

    /// A read window ending at `end` is expired: nothing of it is kept.
    pub fn end_expired(&self, end: i64, stream_time: i64) -> bool {
        end.saturating_add(self.expires_ms) <= stream_time
    }

    /// The stored windows an event at `t` updates given the stream time (the event's
    /// own time included): those not closed. None: the event is late.
    pub fn open_starts(&self, t: i64, stream_time: Option<i64>) -> Vec<i64> {
        self.stored_starts(t)
            .into_iter()
            .filter(|s| !self.is_closed(*s, stream_time))
            .collect()
    }
}

/// The reserved store key of a partition's stream time. Its first four bytes claim a
/// key of 4 GiB, so it is never a window key (`split_window_key` refuses it).
pub const STREAM_TIME_KEY: &[u8] = b"\xff\xff\xff\xff~stream-time";

/// Maps an i64 to 8 bytes whose byte order is the numbers' order.
fn ordered(start: i64) -> [u8; 8] {
    ((start as u64) ^ (1 << 63)).to_be_bytes()
}

/// The bytes every window of `key` starts with: the key's length, then the key, so no
/// key's windows fall among another's.
pub fn key_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 12);
    // Keys of 4 GiB and more cannot be stored (Kafka refuses such records anyway); the
    // length saturates so that such a key is at least never mistaken for another.
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The store key of `key`'s window starting at `start`: a prefix scan gives a key's
/// windows in time order.
pub fn window_key(key: &[u8], start: i64) -> Vec<u8> {
    let mut out = key_prefix(key);
    out.extend_from_slice(&ordered(start));
    out
}

/// A store key past every window of `key` (for paging after a key).
pub fn after_key(key: &[u8]) -> Vec<u8> {
    let mut out = key_prefix(key);
    out.extend_from_slice(&[0xff; 9]);
    out
}

/// The key and window start of a window key; `None` for anything else.
pub fn split_window_key(bytes: &[u8]) -> Option<(&[u8], i64)> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    if bytes.len() != 4usize.checked_add(len)?.checked_add(8)? {
        return None;
    }
    let key = &bytes[4..4 + len];
    let raw = u64::from_be_bytes(bytes[4 + len..].try_into().ok()?);
    Some((key, (raw ^ (1 << 63)) as i64))
}

pub fn encode_time(t: i64) -> Vec<u8> {
    t.to_be_bytes().to_vec()
}

pub fn decode_time(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: WindowKind, size: i64, step: i64, grace: i64, expires: i64) -> WindowSpec {
        WindowSpec {
            kind,
            size_ms: size,
            step_ms: step,
            grace_ms: grace,
            expires_ms: expires,
        }
    }

    #[test]
    fn tumbling_windows_follow_each_other() {
        let w = spec(WindowKind::Tumbling, 10, 10, 0, 100);
        assert_eq!(w.stored_starts(0), vec![0]);
        assert_eq!(w.stored_starts(9), vec![0]);
        assert_eq!(w.stored_starts(10), vec![10]);
        assert_eq!(w.stored_starts(-1), vec![-10], "negative times floor down");
        assert_eq!(w.window_at(15), (10, 20));
        assert_eq!(w.read_starts(w.window_at(15)), (10, 10));
    }

    #[test]
    fn hopping_windows_overlap_and_a_read_answers_the_newest() {
        let w = spec(WindowKind::Hopping, 10, 5, 0, 100);
        assert_eq!(w.stored_starts(12), vec![5, 10]);
        assert_eq!(w.stored_starts(10), vec![5, 10]);
        assert_eq!(w.stored_starts(9), vec![0, 5]);
        assert_eq!(w.window_at(12), (10, 20));
        // A step that does not divide the size: [0,10) [3,13) [6,16) [9,19) hold 9.
        let odd = spec(WindowKind::Hopping, 10, 3, 0, 100);
        assert_eq!(odd.stored_starts(9), vec![0, 3, 6, 9]);
        assert_eq!(odd.stored_starts(10), vec![3, 6, 9]);
        assert_eq!(odd.stored_starts(-2), vec![-9, -6, -3]);
    }

    #[test]
    fn sliding_windows_are_merged_from_buckets() {
        let w = spec(WindowKind::Sliding, 10, 2, 0, 100);
        assert_eq!(w.span(), 2);
        assert_eq!(w.stored_starts(7), vec![6]);
        // The 10 ms up to the end of 7's bucket [6, 8).
        assert_eq!(w.window_at(7), (-2, 8));
        assert_eq!(w.read_starts(w.window_at(7)), (-2, 6));
        let exact = spec(WindowKind::Sliding, 10, 1, 0, 100);
        assert_eq!(exact.window_at(7), (-2, 8), "(t - size, t]");
    }

    #[test]
    fn a_window_closes_after_its_end_plus_grace_and_late_events_update_nothing() {
        let w = spec(WindowKind::Tumbling, 10, 10, 5, 100);
        assert!(!w.is_closed(0, None));
        assert!(!w.is_closed(0, Some(14)));
        assert!(w.is_closed(0, Some(15)));
        assert_eq!(w.open_starts(3, Some(14)), vec![0], "within the grace");
        assert!(w.open_starts(3, Some(15)).is_empty(), "late");
        // Hopping: the older of an event's windows may close before the newer.
        let h = spec(WindowKind::Hopping, 10, 5, 0, 100);
        assert_eq!(h.open_starts(12, Some(15)), vec![10], "[5,15) closed at 15");
        assert!(h.open_starts(12, Some(20)).is_empty());
        // Sliding: a bucket takes events while the last window holding it is open.
        let s = spec(WindowKind::Sliding, 10, 2, 0, 100);
        assert_eq!(s.open_starts(7, Some(15)), vec![6]);
        assert!(s.open_starts(7, Some(16)).is_empty());
    }

    #[test]
    fn a_window_expires_after_its_end_plus_expires() {
        let w = spec(WindowKind::Tumbling, 10, 10, 5, 30);
        assert!(!w.is_expired(0, Some(39)));
        assert!(w.is_expired(0, Some(40)));
        assert!(!w.is_expired(0, None));
        assert!(w.end_expired(10, 40));
        let s = spec(WindowKind::Sliding, 10, 2, 0, 30);
        assert!(
            !s.is_expired(6, Some(45)),
            "still in the window ending at 16"
        );
        assert!(s.is_expired(6, Some(46)));
    }

    #[test]
    fn extreme_times_saturate_rather_than_overflow() {
        let w = spec(WindowKind::Hopping, 10, 3, i64::MAX, i64::MAX);
        assert!(!w.stored_starts(i64::MIN).is_empty());
        assert!(!w.stored_starts(i64::MAX).is_empty());
        assert!(!w.is_closed(0, Some(i64::MAX - 1)), "a grace of forever");
        assert!(w.is_closed(i64::MAX, Some(i64::MAX)), "the end of time");
        let s = spec(WindowKind::Sliding, 10, 1, 0, 0);
        assert_eq!(s.window_at(i64::MAX).1, i64::MAX);
    }

    #[test]
    fn window_keys_keep_a_keys_windows_together_in_time_order() {
        let mut keys = [
            window_key(b"12", 0),
            window_key(b"1", 5),
            window_key(b"1", -5),
            window_key(b"1", i64::MAX),
            window_key(b"1", i64::MIN),
            window_key(b"2", 0),
        ];
        keys.sort();
        let split: Vec<_> = keys.iter().map(|k| split_window_key(k).unwrap()).collect();
        assert_eq!(
            split,
            vec![
                (&b"1"[..], i64::MIN),
                (&b"1"[..], -5),
                (&b"1"[..], 5),
                (&b"1"[..], i64::MAX),
                (&b"2"[..], 0),
                (&b"12"[..], 0),
            ]
        );
        assert!(keys
            .iter()
            .all(|k| k.as_slice() < after_key(b"2").as_slice()
                || split_window_key(k).unwrap().0 == b"12"));
        assert_eq!(split_window_key(STREAM_TIME_KEY), None);
        assert_eq!(split_window_key(b"plain"), None);
        assert_eq!(split_window_key(b""), None);
        assert_eq!(decode_time(&encode_time(-42)), Some(-42));
    }
}
