//! Order states, the transition rules, and the order as clients see it.

use serde::Serialize;

/// The category of the one-unit products the animals domain creates for its
/// claims (through `tx::insert_product`). Merchants cannot create or edit
/// products of it, and the shop's catalog leaves them out (they are listed
/// under `/animals`).
pub const ANIMAL_CLAIM_CATEGORY: &str = "animal_claim";

crate::text_enum! {
    /// A merchant application: pending until an admin approves or rejects it.
    pub enum MerchantStatus {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
    }
}

crate::text_enum! {
    /// A payment: created until the provider's signed notice says how it went.
    pub enum PaymentStatus {
        Created = "created",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

crate::text_enum! {
    /// The events an order's life stores on the outbox (their routing keys).
    pub enum OrderEvent {
        Created = "order.created",
        Paid = "order.paid",
        Shipped = "order.shipped",
        Completed = "order.completed",
        Expired = "order.expired",
        Cancelled = "order.cancelled",
        Refunded = "order.refunded",
        RefundRequested = "order.refund_requested",
        RefundRejected = "order.refund_rejected",
        /// A gift's recipient gave (or changed) the delivery address.
        AddressGiven = "order.address_given",
        Updated = "order.updated",
    }
}

crate::text_enum! {
    pub enum Status {
        PendingPayment = "pending_payment",
        Paid = "paid",
        Shipped = "shipped",
        Completed = "completed",
        Cancelled = "cancelled",
        Refunded = "refunded",
    }
}

/// Who is asking, relative to the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub is_buyer: bool,
    pub is_owner: bool,
    pub is_admin: bool,
    /// The gift's recipient: sees the order and gives its delivery address.
    pub is_recipient: bool,
}

impl Caller {
    /// A timer or the payment provider: no person.
    pub const SYSTEM: Caller = Caller {
        is_buyer: false,
        is_owner: false,
        is_admin: false,
        is_recipient: false,
    };

    /// May know the order exists (else it is 404 to them).
    pub fn sees(&self) -> bool {
        self.is_buyer || self.is_owner || self.is_admin || self.is_recipient
    }
}

/// What of the order the rules depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub status: Status,
    pub refund_requested: bool,
    /// A gift whose recipient has not yet said where it goes: not shippable.
    pub awaiting_address: bool,
}

/// Everything that can happen to an order after it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Cancel,
    Expire,
    Pay,
    PaymentSucceeded,
    Ship {
        carrier: Option<String>,
        tracking_no: Option<String>,
    },
    Confirm,
    AutoComplete,
    RequestRefund {
        reason: String,
    },
    ApproveRefund,
    RejectRefund,
    /// The gift's recipient says where to deliver (until it ships).
    GiveAddress {
        address: String,
    },
}

/// What a permitted command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Moves to this status; `release_stock` gives the items back.
    Move {
        to: Status,
        release_stock: bool,
    },
    SetRefundRequested(bool),
    /// The delivery address changes; the status stays.
    SetAddress,
    /// Nothing to change (an idempotent repeat).
    Nothing,
    /// A payment succeeded for an order that can no longer take it.
    RecordForRefund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The caller may not even know this order exists: 404.
    NotVisible,
    /// The caller sees the order but may not do this: 403.
    Forbidden,
    /// Not in this state: 409 `invalid_state`.
    InvalidState,
    /// A refund is already requested: 409.
    RefundAlreadyRequested,
    /// A gift cannot ship before its recipient gave an address: 409.
    AwaitingAddress,
}

/// The state machine: `pending_payment -> paid -> shipped -> completed`,
/// `pending_payment -> cancelled`, `paid|shipped|completed -> refunded`.
/// A gift's recipient sees it and gives its address, nothing else.
pub fn decide(facts: Facts, caller: Caller, cmd: &Command) -> Result<Effect, Rejection> {
    use Status::*;
    let Facts {
        status,
        refund_requested,
        awaiting_address,
    } = facts;
    let system = matches!(
        cmd,
        Command::Expire | Command::AutoComplete | Command::PaymentSucceeded
    );
    if !(system || caller.sees()) {
        return Err(Rejection::NotVisible);
    }
    let allowed = match cmd {
        Command::Cancel | Command::Pay | Command::Confirm | Command::RequestRefund { .. } => {
            caller.is_buyer
        }
        Command::Ship { .. } => caller.is_owner,
        Command::ApproveRefund | Command::RejectRefund => caller.is_owner || caller.is_admin,
        Command::Expire | Command::AutoComplete | Command::PaymentSucceeded => true,
        Command::GiveAddress { .. } => caller.is_recipient,
    };
    if !allowed {
        return Err(Rejection::Forbidden);
    }
    match (cmd, status) {
        (Command::Cancel | Command::Expire, PendingPayment) => Ok(Effect::Move {
            to: Cancelled,
            release_stock: true,
        }),
        (Command::Expire, _) => Ok(Effect::Nothing),
        (Command::Pay, PendingPayment) => Ok(Effect::Nothing),
        (Command::PaymentSucceeded, PendingPayment) => Ok(Effect::Move {
            to: Paid,
            release_stock: false,
        }),
        (Command::PaymentSucceeded, Paid | Shipped | Completed | Refunded) => Ok(Effect::Nothing),
        (Command::PaymentSucceeded, Cancelled) => Ok(Effect::RecordForRefund),
        (Command::Ship { .. }, Paid) if awaiting_address => Err(Rejection::AwaitingAddress),
        (Command::Ship { .. }, Paid) => Ok(Effect::Move {
            to: Shipped,
            release_stock: false,
        }),
        (Command::Confirm | Command::AutoComplete, Shipped) => Ok(Effect::Move {
            to: Completed,
            release_stock: false,
        }),
        (Command::AutoComplete, _) => Ok(Effect::Nothing),
        (Command::RequestRefund { .. }, Paid | Shipped | Completed) if refund_requested => {
            Err(Rejection::RefundAlreadyRequested)
        }
        (Command::RequestRefund { .. }, Paid | Shipped | Completed) => {
            Ok(Effect::SetRefundRequested(true))
        }
        (Command::ApproveRefund, Paid | Shipped | Completed) if refund_requested => {
            Ok(Effect::Move {
                to: Refunded,
                release_stock: true,
            })
        }
        (Command::RejectRefund, Paid | Shipped | Completed) if refund_requested => {
            Ok(Effect::SetRefundRequested(false))
        }
        (Command::GiveAddress { .. }, PendingPayment | Paid) => Ok(Effect::SetAddress),
        _ => Err(Rejection::InvalidState),
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderItemView {
    pub product_id: i64,
    pub quantity: i64,
    pub price_cents: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrackingView {
    pub carrier: Option<String>,
    pub tracking_no: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub order_id: i64,
    pub buyer_id: i64,
    pub merchant_id: i64,
    #[schema(value_type = Status, inline)]
    pub status: &'static str,
    pub total_cents: i64,
    pub items: Vec<OrderItemView>,
    pub created_at: String,
    pub pay_deadline: String,
    pub refund_requested: bool,
    /// The buyer's reason, while a refund is asked (null otherwise).
    pub refund_reason: Option<String>,
    pub gift_to_user_id: Option<i64>,
    pub gift_message: Option<String>,
    pub shipping_address: Option<String>,
    pub tracking: Option<TrackingView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub payment_id: i64,
    pub order_id: i64,
    pub amount_cents: i64,
    pub provider: &'static str,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BUYER: Caller = Caller {
        is_buyer: true,
        ..Caller::SYSTEM
    };
    const OWNER: Caller = Caller {
        is_owner: true,
        ..Caller::SYSTEM
    };
    const ADMIN: Caller = Caller {
        is_admin: true,
        ..Caller::SYSTEM
    };
    const RECIPIENT: Caller = Caller {
        is_recipient: true,
        ..Caller::SYSTEM
    };
    const STRANGER: Caller = Caller::SYSTEM;
    const SYSTEM: Caller = Caller::SYSTEM;

    /// `decide` for an order that is not a gift awaiting its address.
    fn decide_plain(
        status: Status,
        refund_requested: bool,
        caller: Caller,
        cmd: &Command,
    ) -> Result<Effect, Rejection> {
        let facts = Facts {
            status,
            refund_requested,
            awaiting_address: false,
        };
        decide(facts, caller, cmd)
    }

    fn ship() -> Command {
        Command::Ship {
            carrier: None,
            tracking_no: None,
        }
    }

    /// Every (command, status) pair against the contract's table.
    #[test]
    fn transition_table() {
        use Status::*;
        let moves = |to, release_stock| Ok(Effect::Move { to, release_stock });
        type Case = (Command, Caller, Status, bool, Result<Effect, Rejection>);
        let cases: Vec<Case> = vec![
            (
                Command::Cancel,
                BUYER,
                PendingPayment,
                false,
                moves(Cancelled, true),
            ),
            (
                Command::Expire,
                SYSTEM,
                PendingPayment,
                false,
                moves(Cancelled, true),
            ),
            (
                Command::PaymentSucceeded,
                SYSTEM,
                PendingPayment,
                false,
                moves(Paid, false),
            ),
            (
                Command::PaymentSucceeded,
                SYSTEM,
                Paid,
                false,
                Ok(Effect::Nothing),
            ),
            (
                Command::PaymentSucceeded,
                SYSTEM,
                Cancelled,
                false,
                Ok(Effect::RecordForRefund),
            ),
            (ship(), OWNER, Paid, false, moves(Shipped, false)),
            (
                Command::Confirm,
                BUYER,
                Shipped,
                false,
                moves(Completed, false),
            ),
            (
                Command::AutoComplete,
                SYSTEM,
                Shipped,
                false,
                moves(Completed, false),
            ),
            (
                Command::AutoComplete,
                SYSTEM,
                Refunded,
                false,
                Ok(Effect::Nothing),
            ),
            (
                Command::RequestRefund { reason: "r".into() },
                BUYER,
                Paid,
                false,
                Ok(Effect::SetRefundRequested(true)),
            ),
            (
                Command::RequestRefund { reason: "r".into() },
                BUYER,
                Completed,
                false,
                Ok(Effect::SetRefundRequested(true)),
            ),
            (
                Command::RequestRefund { reason: "r".into() },
                BUYER,
                Shipped,
                true,
                Err(Rejection::RefundAlreadyRequested),
            ),
            (
                Command::ApproveRefund,
                OWNER,
                Shipped,
                true,
                moves(Refunded, true),
            ),
            (
                Command::ApproveRefund,
                ADMIN,
                Completed,
                true,
                moves(Refunded, true),
            ),
            (
                Command::RejectRefund,
                ADMIN,
                Paid,
                true,
                Ok(Effect::SetRefundRequested(false)),
            ),
        ];
        for (cmd, caller, status, requested, expected) in cases {
            assert_eq!(
                decide_plain(status, requested, caller, &cmd),
                expected,
                "{cmd:?} on {status:?}"
            );
        }
    }

    #[test]
    fn illegal_transitions_are_invalid_state() {
        use Status::*;
        for &status in Status::ALL {
            let legal_cancel = status == PendingPayment;
            assert_eq!(
                decide_plain(status, false, BUYER, &Command::Cancel).is_ok(),
                legal_cancel,
                "{status:?}"
            );
            assert_eq!(
                decide_plain(status, false, OWNER, &ship()).is_ok(),
                status == Paid
            );
            assert_eq!(
                decide_plain(status, false, BUYER, &Command::Confirm).is_ok(),
                status == Shipped
            );
            assert_eq!(
                decide_plain(status, false, BUYER, &Command::Pay).is_ok(),
                status == PendingPayment
            );
            // Approve without a request is never legal.
            assert_eq!(
                decide_plain(status, false, ADMIN, &Command::ApproveRefund),
                Err(Rejection::InvalidState)
            );
            assert_eq!(
                decide_plain(
                    status,
                    false,
                    BUYER,
                    &Command::RequestRefund { reason: "x".into() }
                )
                .is_ok(),
                matches!(status, Paid | Shipped | Completed)
            );
        }
    }

    #[test]
    fn authorization() {
        use Status::*;
        assert_eq!(
            decide_plain(Paid, false, STRANGER, &ship()),
            Err(Rejection::NotVisible)
        );
        assert_eq!(
            decide_plain(Paid, false, BUYER, &ship()),
            Err(Rejection::Forbidden)
        );
        assert_eq!(
            decide_plain(Paid, false, ADMIN, &ship()),
            Err(Rejection::Forbidden)
        );
        assert_eq!(
            decide_plain(PendingPayment, false, OWNER, &Command::Cancel),
            Err(Rejection::Forbidden)
        );
        assert_eq!(
            decide_plain(Shipped, false, OWNER, &Command::Confirm),
            Err(Rejection::Forbidden)
        );
        assert_eq!(
            decide_plain(Paid, true, BUYER, &Command::ApproveRefund),
            Err(Rejection::Forbidden)
        );
    }

    #[test]
    fn gifts() {
        use Status::*;
        let give = Command::GiveAddress {
            address: "1 Road".into(),
        };
        let gift = |status, awaiting_address| Facts {
            status,
            refund_requested: false,
            awaiting_address,
        };
        // The recipient gives the address until the gift ships, nobody else does.
        assert_eq!(
            decide(gift(PendingPayment, true), RECIPIENT, &give),
            Ok(Effect::SetAddress)
        );
        assert_eq!(
            decide(gift(Paid, false), RECIPIENT, &give),
            Ok(Effect::SetAddress)
        );
        for status in [Shipped, Completed, Cancelled, Refunded] {
            assert_eq!(
                decide(gift(status, false), RECIPIENT, &give),
                Err(Rejection::InvalidState)
            );
        }
        assert_eq!(
            decide(gift(Paid, true), BUYER, &give),
            Err(Rejection::Forbidden)
        );
        assert_eq!(
            decide(gift(Paid, true), STRANGER, &give),
            Err(Rejection::NotVisible)
        );
        // No shipping without an address; the recipient acts on nothing else.
        assert_eq!(
            decide(gift(Paid, true), OWNER, &ship()),
            Err(Rejection::AwaitingAddress)
        );
        assert_eq!(
            decide(gift(Paid, false), OWNER, &ship()),
            Ok(Effect::Move {
                to: Shipped,
                release_stock: false
            })
        );
        for cmd in [Command::Cancel, Command::Pay, Command::Confirm, ship()] {
            assert_eq!(
                decide(gift(Paid, false), RECIPIENT, &cmd),
                Err(Rejection::Forbidden),
                "{cmd:?}"
            );
        }
    }
}
