//! The trip domain's states, stored as text.

crate::text_enum! {
    /// A trip: open while it has room, full at capacity (open again when
    /// someone leaves), closed by its organizer for good.
    pub enum TripStatus {
        Open = "open",
        Full = "full",
        Closed = "closed",
    }
}

impl TripStatus {
    /// The status a trip of `member_count` out of `capacity` has; a closed
    /// trip stays closed.
    pub fn with_count(self, member_count: i64, capacity: i64) -> TripStatus {
        match self {
            TripStatus::Closed => TripStatus::Closed,
            _ if member_count >= capacity => TripStatus::Full,
            _ => TripStatus::Open,
        }
    }
}

crate::text_enum! {
    /// A request to join: pending until the organizer decides (or closes the trip).
    pub enum RequestStatus {
        Pending = "pending",
        Accepted = "accepted",
        Rejected = "rejected",
    }
}
