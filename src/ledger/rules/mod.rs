//! The rule book (docs/RULES.md) as pure functions: no I/O, no clock of
//! their own. [`queue`] holds the rules over one asset's queue (R1–R9, R14's
//! conditions); [`case`] the rules over a case and its court (R4's claim cap,
//! R10–R15), given the facts the store loaded. Storage loads a [`Ledger`], applies
//! one operation at the time it is given, and writes back the seizures, the
//! changes (events) and the orders for the registry that the operation made.
//!
//! One allocation rule serves every asset: live seizures, in rank order, take
//! what they ask for from what is left. An indivisible asset has one unit and
//! every seizure asks for it, so the first live seizure is effective and the
//! rest wait (R1, R2); a deposit or holding has its balance, so freezes are
//! effective, partly effective or waiting by amount (R4).

use chrono::Months;

mod case;
mod debtor;
#[cfg(test)]
mod debtor_tests;
mod distribution;
mod invalid;
mod objection;
mod queue;
mod refusal;
mod research;
#[cfg(test)]
mod tests;

pub use case::*;
pub use debtor::*;
pub use distribution::*;
pub use invalid::Invalid;
pub use objection::*;
pub use refusal::{Denial, Quantity, Refusal, RuleError};
pub use research::*;

use crate::core::proto::AssetKind;
pub use crate::ops::config::{Lifting, PromotionTerm, Terms};

/// An instant on the ledger's clock.
pub use crate::core::clock::Time;
use crate::core::clock::{BEIJING, beijing_date, beijing_midnight};

/// Where a seizure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeizureState {
    /// Queued behind others; no effect and no term (R2).
    Waiting,
    /// In effect for everything it asks for.
    Effective,
    /// A freeze in effect for part of its amount; the rest waits (R4).
    PartlyEffective,
    /// Released by its court (R7).
    Released,
    /// Its term ended without renewal (R6), or the asset was sold while it waited (R8).
    Lapsed,
    /// Ended by the sale of the asset it held (R8).
    Disposed,
    /// Its amount was wholly deducted or paid out of a sale.
    Satisfied,
}

impl SeizureState {
    /// Still on the queue.
    pub fn is_live(self) -> bool {
        matches!(self, SeizureState::Waiting | SeizureState::Effective | SeizureState::PartlyEffective)
    }

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SeizureState::Waiting => "waiting",
            SeizureState::Effective => "effective",
            SeizureState::PartlyEffective => "partly_effective",
            SeizureState::Released => "released",
            SeizureState::Lapsed => "lapsed",
            SeizureState::Disposed => "disposed",
            SeizureState::Satisfied => "satisfied",
        }
    }

    /// Every state.
    pub const ALL: [SeizureState; 7] = [
        SeizureState::Waiting,
        SeizureState::Effective,
        SeizureState::PartlyEffective,
        SeizureState::Released,
        SeizureState::Lapsed,
        SeizureState::Disposed,
        SeizureState::Satisfied,
    ];

    /// The inverse of [`SeizureState::as_str`].
    pub fn parse(s: &str) -> Option<SeizureState> {
        SeizureState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One court's seizure (or freeze) on the asset.
#[derive(Debug, Clone, PartialEq)]
pub struct Seizure {
    /// Stable id.
    pub id: String,
    /// The ledger-wide order of placement; never changes (R1).
    pub seq: i64,
    /// The holding court's code.
    pub court: String,
    /// The holding case.
    pub case_number: String,
    /// Amount or quantity still claimed (1 for an indivisible asset).
    pub requested: i64,
    /// Amount or quantity in effect now.
    pub effective: i64,
    /// Where it stands.
    pub state: SeizureState,
    /// When it was placed.
    pub placed_at: Time,
    /// Start of its term: when it first took effect.
    pub start: Option<Time>,
    /// End of its term; it lapses then unless renewed.
    pub end: Option<Time>,
    /// When it left the queue.
    pub ended_at: Option<Time>,
    /// The registry's reference, once the registry has acknowledged the order.
    pub registry_ref: Option<String>,
    /// Renewals so far.
    pub renewals: i64,
    /// The claim a deposit freeze stated, in the account's minor units (R4).
    pub claim: Option<i64>,
}

/// The asset a ledger is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// Its kind.
    pub kind: AssetKind,
    /// Its identity within the kind.
    pub asset_id: String,
    /// The registry that receives its orders.
    pub registry: String,
    /// The debtor (normalised identifier).
    pub debtor: String,
    /// Currency of a deposit, `units` of securities; empty for an indivisible asset.
    pub unit: String,
    /// Balance or quantity; 1 for an indivisible asset.
    pub total: i64,
    /// The disposing court has published an auction notice or started a sale (R14).
    pub sale_started: bool,
    /// Sold as a whole (R8).
    pub disposed: bool,
    /// When `total` was last set: by the registry's report it came from, or by
    /// the ledger's own deduction or sale, which an older report never undoes.
    pub total_at: Time,
}

impl Asset {
    /// Deposits and securities are frozen by amount (R4).
    pub fn divisible(&self) -> bool {
        is_divisible(self.kind)
    }
}

/// The largest amount or quantity a request may name: 10^15 minor units
/// (ten trillion yuan), so that every sum the ledger makes stays in range.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// Whether seizures of this kind name an amount.
pub fn is_divisible(kind: AssetKind) -> bool {
    matches!(kind, AssetKind::Deposit | AssetKind::Securities)
}

/// What happened to a seizure, for the event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Placed on the queue.
    Placed,
    /// Took effect (wholly or partly) because what was ahead left or funds came in (R3, R4).
    Promoted,
    /// Released (R7).
    Released,
    /// Term ended (R6) or asset sold while waiting (R8).
    Lapsed,
    /// Term renewed (R6).
    Renewed,
    /// Funds deducted (R9).
    Deducted,
    /// The asset was sold (R8), or an auction notice published.
    Disposed,
    /// Now held by another court (R10, R14).
    HolderChanged,
    /// The registry acknowledged an order about it.
    OrderDelivered,
}

impl ChangeKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Placed => "placed",
            ChangeKind::Promoted => "promoted",
            ChangeKind::Released => "released",
            ChangeKind::Lapsed => "lapsed",
            ChangeKind::Renewed => "renewed",
            ChangeKind::Deducted => "deducted",
            ChangeKind::Disposed => "disposed",
            ChangeKind::HolderChanged => "holder_changed",
            ChangeKind::OrderDelivered => "order_delivered",
        }
    }
}

/// One change to one seizure.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The seizure.
    pub seizure_id: String,
    /// What happened.
    pub kind: ChangeKind,
    /// When it happened (a lapse happens at the end of the term, not when noticed).
    pub at: Time,
    /// In court language.
    pub message: String,
}

/// An order the registry must receive (through the outbox).
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// Seize or freeze `amount` until `end` (no end while waiting).
    Seize {
        /// The seizure.
        seizure_id: String,
        /// Amount or quantity (1 for indivisible).
        amount: i64,
        /// The term's end, for an effective seizure.
        end: Option<Time>,
    },
    /// Extend the term to `end`.
    Renew {
        /// The seizure.
        seizure_id: String,
        /// The new end.
        end: Time,
    },
    /// Lift the seizure.
    Release {
        /// The seizure.
        seizure_id: String,
        /// Why, for the registry to read (R7 by its court, R25 by an acceptance).
        reason: String,
    },
    /// Transfer `amount` of frozen funds to the court.
    Deduct {
        /// The seizure.
        seizure_id: String,
        /// Amount in minor units.
        amount: i64,
    },
}

/// The kind of an order, from the rule that makes it to the registry call
/// that carries it (stored in the outbox by [`OrderKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// [`Order::Seize`].
    Seize,
    /// [`Order::Renew`].
    Renew,
    /// [`Order::Release`].
    Release,
    /// [`Order::Deduct`].
    Deduct,
}

impl OrderKind {
    const ALL: [OrderKind; 4] = [OrderKind::Seize, OrderKind::Renew, OrderKind::Release, OrderKind::Deduct];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Seize => "seize",
            OrderKind::Renew => "renew",
            OrderKind::Release => "release",
            OrderKind::Deduct => "deduct",
        }
    }

    /// The inverse of [`OrderKind::as_str`].
    pub fn parse(s: &str) -> Option<OrderKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl Order {
    /// Its kind.
    pub fn kind(&self) -> OrderKind {
        match self {
            Order::Seize { .. } => OrderKind::Seize,
            Order::Renew { .. } => OrderKind::Renew,
            Order::Release { .. } => OrderKind::Release,
            Order::Deduct { .. } => OrderKind::Deduct,
        }
    }

    /// Amount or quantity it moves (seize, deduct); 0 otherwise.
    pub fn amount(&self) -> i64 {
        match self {
            Order::Seize { amount, .. } | Order::Deduct { amount, .. } => *amount,
            Order::Renew { .. } | Order::Release { .. } => 0,
        }
    }

    /// The term end it sets (seize, renew).
    pub fn end(&self) -> Option<Time> {
        match self {
            Order::Seize { end, .. } => *end,
            Order::Renew { end, .. } => Some(*end),
            Order::Release { .. } | Order::Deduct { .. } => None,
        }
    }

    /// Why a release is ordered; empty for the other orders.
    pub fn reason(&self) -> &str {
        match self {
            Order::Release { reason, .. } => reason,
            Order::Seize { .. } | Order::Renew { .. } | Order::Deduct { .. } => "",
        }
    }

    /// The seizure the order is about.
    pub fn seizure_id(&self) -> &str {
        match self {
            Order::Seize { seizure_id, .. }
            | Order::Renew { seizure_id, .. }
            | Order::Release { seizure_id, .. }
            | Order::Deduct { seizure_id, .. } => seizure_id,
        }
    }
}

/// A registry's reference names one seizure (R3's orders quote it): an acknowledgement quoting a
/// reference the registry already gave another live seizure on the same asset is a lying registry's,
/// and the order stays unacknowledged.
pub fn reference_is_its_own(l: &Ledger, seizure_id: &str, reference: &str) -> Result<(), RuleError> {
    let taken = l.seizures.iter().find(|s| {
        s.id != seizure_id && s.state.is_live() && !reference.is_empty() && s.registry_ref.as_deref() == Some(reference)
    });
    match taken {
        None => Ok(()),
        Some(other) => Err(Invalid::ReferenceTaken {
            reference: reference.into(),
            seizure: other.id.clone(),
            case: other.case_number.clone(),
        }
        .into()),
    }
}

/// What an operation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Changes, in order.
    pub changes: Vec<Change>,
    /// Orders for the registry.
    pub orders: Vec<Order>,
    /// The reply in court language.
    pub message: String,
}

/// What a disposing court reports (R8, R14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposal {
    /// An auction notice was published: disposal can no longer move to a priority creditor (R14).
    AuctionNotice,
    /// The asset was sold as a whole (R8).
    Sold,
    /// Part of a divisible asset was sold: the amount is paid toward the disposing seizure.
    PartlySold(i64),
}

/// One asset and every seizure ever placed on it, in rank order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    /// The asset.
    pub asset: Asset,
    /// Every seizure, live or ended, ordered by `seq`.
    pub seizures: Vec<Seizure>,
    /// The owner's bankruptcy was accepted: the seizures are to be lifted and none is promoted (R25).
    pub owner_bankrupt: bool,
}

/// `t` plus `months` calendar months on Beijing's calendar, at the same time
/// of day (the end of month clamps, as registries do).
pub fn add_months(t: Time, months: u32) -> Time {
    let local = t.with_timezone(&BEIJING);
    local.checked_add_months(Months::new(months)).map_or(t, |end| end.with_timezone(&chrono::Utc))
}

/// A date as courts write it: the calendar date in Beijing.
pub fn day(t: Time) -> String {
    beijing_date(t).format("%Y-%m-%d").to_string()
}

/// The instant a period of `days` calendar days counted from `from`'s date
/// in Beijing ends: midnight after its last day (a 7-day count from a
/// decision on the 1st runs to the end of the 8th).
pub fn days_end(from: Time, days: u64) -> Time {
    beijing_midnight(beijing_date(from) + chrono::Days::new(days + 1))
}

/// R3: every seizure that took effect in a step after waiting (promoted) is
/// ordered at its registry, once, as it stands at the step's end: the amount
/// now in effect and the term's end. The outbox quotes the reference the
/// registry gave it while it waited; the registry starts the term by its own
/// calendar, and its acknowledged dates replace the ledger's (R6).
pub fn promotion_orders(ledger: &Ledger, changes: &[Change]) -> Vec<Order> {
    let promoted = |id: &str| changes.iter().any(|c| c.kind == ChangeKind::Promoted && c.seizure_id == id);
    ledger
        .seizures
        .iter()
        .filter(|s| s.state.is_live() && s.effective > 0 && promoted(&s.id))
        .map(|s| Order::Seize { seizure_id: s.id.clone(), amount: s.effective, end: s.end })
        .collect()
}
