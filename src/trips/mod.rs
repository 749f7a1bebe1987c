//! Companion trips (结伴): organizers publish a trip with a destination, dates
//! and a capacity; others ask to join; the organizer accepts into the trip's
//! group conversation. Every write to one trip passes through that trip's
//! actor, so accepts are serialized and the capacity holds however many race.

pub mod actor;
pub mod handle;
pub mod hooks;
pub mod http;
pub mod model;
pub mod store;

pub use handle::Trips;

/// Fewest and most members of a trip (the organizer counts).
pub const MIN_CAPACITY: i64 = 2;
pub const MAX_CAPACITY: i64 = 50;

/// Lower-case character bigrams of a text: the substring index of destinations.
pub fn bigrams(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.to_lowercase().chars().collect();
    let mut grams: Vec<String> = chars.windows(2).map(|w| w.iter().collect()).collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bigrams_are_lowercase_distinct_pairs() {
        assert_eq!(bigrams("Dali"), vec!["al", "da", "li"]);
        assert_eq!(bigrams("云南大理"), vec!["云南", "南大", "大理"]);
        assert!(bigrams("x").is_empty());
        assert_eq!(bigrams("aaa"), vec!["aa"]);
    }
}
