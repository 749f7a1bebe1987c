//! The rebate domain's states, stored as text.

crate::text_enum! {
    /// A rebate record: pending until its hold after completion ends, then
    /// available; a refund cancels a pending one and reverses an available
    /// one. Statuses only move forward.
    pub enum RebateStatus {
        Pending = "pending",
        Available = "available",
        Cancelled = "cancelled",
        Reversed = "reversed",
    }
}

crate::text_enum! {
    /// A withdrawal: pending until an admin pays it out or rejects it.
    pub enum WithdrawalStatus {
        Pending = "pending",
        Paid = "paid",
        Rejected = "rejected",
    }
}
