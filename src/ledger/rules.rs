//! The seizure rules of DOMAIN R1–R14 as pure functions over one asset's
//! ledger: no I/O, no clock of their own. Storage loads a [`Ledger`], applies
//! one operation at the time it is given, and writes back the seizures, the
//! changes (events) and the orders for the registry that the operation made.
//!
//! One allocation rule serves every asset: live seizures, in rank order, take
//! what they ask for from what is left. An indivisible asset has one unit and
//! every seizure asks for it, so the first live seizure is effective and the
//! rest wait (R1, R2); a deposit or holding has its balance, so freezes are
//! effective, partly effective or waiting by amount (R4).

use chrono::{DateTime, Months, Utc};

use crate::proto::AssetKind;

/// An instant on the ledger's clock.
pub type Time = DateTime<Utc>;

/// Where a seizure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
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

impl State {
    /// Still on the queue.
    pub fn is_live(self) -> bool {
        matches!(self, State::Waiting | State::Effective | State::PartlyEffective)
    }

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Effective => "effective",
            State::PartlyEffective => "partly_effective",
            State::Released => "released",
            State::Lapsed => "lapsed",
            State::Disposed => "disposed",
            State::Satisfied => "satisfied",
        }
    }

    /// The inverse of [`State::as_str`].
    pub fn parse(s: &str) -> Option<State> {
        [
            State::Waiting,
            State::Effective,
            State::PartlyEffective,
            State::Released,
            State::Lapsed,
            State::Disposed,
            State::Satisfied,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
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
    pub state: State,
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
}

impl Asset {
    /// Deposits and securities are frozen by amount (R4).
    pub fn divisible(&self) -> bool {
        is_divisible(self.kind)
    }
}

/// Whether seizures of this kind name an amount.
pub fn is_divisible(kind: AssetKind) -> bool {
    matches!(kind, AssetKind::Deposit | AssetKind::Securities)
}

/// Maximum terms in months by asset class (R5) and the promotion convention (R3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct Terms {
    /// Bank deposits (default 12: one year).
    pub deposit: u32,
    /// Registered movables such as aircraft (default 24).
    pub aircraft: u32,
    /// Real estate (default 36).
    pub real_estate: u32,
    /// Patents and trademarks (default 36; IP preservation has used 6-month rounds).
    pub ip: u32,
    /// Securities and fund units (default 36).
    pub securities: u32,
    /// Term of a seizure promoted from waiting: `fresh` or `order_end`.
    pub on_promotion: PromotionTerm,
}

impl Default for Terms {
    fn default() -> Self {
        Self { deposit: 12, aircraft: 24, real_estate: 36, ip: 36, securities: 36, on_promotion: PromotionTerm::Fresh }
    }
}

impl Terms {
    /// The term for an asset kind, in months.
    pub fn months(&self, kind: AssetKind) -> u32 {
        match kind {
            AssetKind::Deposit => self.deposit,
            AssetKind::Aircraft => self.aircraft,
            AssetKind::RealEstate => self.real_estate,
            AssetKind::Patent | AssetKind::Trademark => self.ip,
            AssetKind::Securities | AssetKind::Unspecified => self.securities,
        }
    }
}

/// When a promoted seizure's term starts (R3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionTerm {
    /// A fresh full term from the moment of promotion (the default).
    Fresh,
    /// The end date written in the court's order: placement plus one term.
    OrderEnd,
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
    },
    /// Transfer `amount` of frozen funds to the court.
    Deduct {
        /// The seizure.
        seizure_id: String,
        /// Amount in minor units.
        amount: i64,
    },
}

impl Order {
    /// The seizure the order is about.
    pub fn seizure_id(&self) -> &str {
        match self {
            Order::Seize { seizure_id, .. }
            | Order::Renew { seizure_id, .. }
            | Order::Release { seizure_id }
            | Order::Deduct { seizure_id, .. } => seizure_id,
        }
    }
}

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// No such seizure on this asset.
    #[error("no seizure {0} on this asset")]
    UnknownSeizure(String),
    /// The caller does not hold the seizure.
    #[error("{0}")]
    NotHolder(String),
    /// A rule forbids it now.
    #[error("{0}")]
    Refused(String),
    /// The request makes no sense for this asset.
    #[error("{0}")]
    Invalid(String),
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
}

/// `t` plus `months` calendar months (the end of month clamps, as registries do).
pub fn add_months(t: Time, months: u32) -> Time {
    t.checked_add_months(Months::new(months)).unwrap_or(t)
}

/// A date as courts write it.
pub fn day(t: Time) -> String {
    t.format("%Y-%m-%d").to_string()
}

impl Ledger {
    /// The live seizures in rank order, with their 1-based rank.
    pub fn queue(&self) -> impl Iterator<Item = (usize, &Seizure)> {
        self.seizures.iter().filter(|s| s.state.is_live()).enumerate().map(|(i, s)| (i + 1, s))
    }

    /// The live seizure of `case_number`, if any.
    pub fn live_of_case(&self, case_number: &str) -> Option<(usize, &Seizure)> {
        self.queue().find(|(_, s)| s.case_number == case_number)
    }

    /// The first effective seizure, if any.
    pub fn first(&self) -> Option<&Seizure> {
        self.seizures.iter().find(|s| s.state.is_live() && s.effective > 0)
    }

    fn index(&self, id: &str) -> Result<usize, RuleError> {
        self.seizures.iter().position(|s| s.id == id).ok_or_else(|| RuleError::UnknownSeizure(id.to_string()))
    }

    fn amount(&self, v: i64) -> String {
        match self.asset.kind {
            AssetKind::Deposit => format!("{} {}.{:02}", self.asset.unit, v / 100, v % 100),
            AssetKind::Securities => format!("{v} units"),
            _ => String::new(),
        }
    }

    fn term_end(&self, start: Time, placed_at: Time, terms: &Terms, promoted: bool) -> Time {
        let months = terms.months(self.asset.kind);
        match (promoted, terms.on_promotion) {
            (true, PromotionTerm::OrderEnd) => add_months(placed_at, months),
            _ => add_months(start, months),
        }
    }

    /// Gives what the asset holds to the live seizures in rank order (R1, R3, R4)
    /// as of `at`; seizures that take effect for the first time start their term.
    fn reallocate(&mut self, at: Time, terms: &Terms, placed: Option<&str>) -> Vec<Change> {
        let mut left = self.asset.total;
        let mut changes = Vec::new();
        for i in 0..self.seizures.len() {
            let s = &self.seizures[i];
            if !s.state.is_live() {
                continue;
            }
            let got = s.requested.min(left).max(0);
            left -= got;
            let first_effect = got > 0 && s.start.is_none();
            let newly = got > s.effective;
            let end = first_effect.then(|| self.term_end(at, s.placed_at, terms, placed != Some(s.id.as_str())));
            let s = &mut self.seizures[i];
            s.effective = got;
            s.state = if got == 0 {
                State::Waiting
            } else if got < s.requested {
                State::PartlyEffective
            } else {
                State::Effective
            };
            if let Some(end) = end {
                s.start = Some(at);
                s.end = Some(end);
            }
            if newly && placed != Some(s.id.as_str()) {
                let message = format!("{} now effective until {}", s.case_number, s.end.map(day).unwrap_or_default());
                changes.push(Change { seizure_id: s.id.clone(), kind: ChangeKind::Promoted, at, message });
            }
        }
        changes
    }

    /// Applies every lapse due by `now`, in the order they fell due, each
    /// promoting the next in line at the moment of the lapse (R3, R6). Reads
    /// call this too, so a lapsed seizure never shows as effective.
    pub fn settle(&mut self, now: Time, terms: &Terms) -> Vec<Change> {
        let mut changes = Vec::new();
        loop {
            let due = self
                .seizures
                .iter()
                .enumerate()
                .filter(|(_, s)| s.state.is_live() && s.effective > 0)
                .filter_map(|(i, s)| s.end.filter(|end| *end <= now).map(|end| (end, s.seq, i)))
                .min();
            let Some((end, _, i)) = due else { break };
            let s = &mut self.seizures[i];
            s.state = State::Lapsed;
            s.effective = 0;
            s.ended_at = Some(end);
            let message = format!("{} lapsed on {}: not renewed before its end date (R6)", s.case_number, day(end));
            changes.push(Change { seizure_id: s.id.clone(), kind: ChangeKind::Lapsed, at: end, message });
            changes.extend(self.reallocate(end, terms, None));
        }
        changes
    }

    fn describe_place(&self, id: &str) -> String {
        let Some((rank, s)) = self.queue().find(|(_, s)| s.id == id) else { return String::new() };
        let ahead = self.queue().filter(|(r, _)| *r < rank).last().map(|(_, a)| a.case_number.clone());
        let until = s.end.map(day).unwrap_or_default();
        match (s.state, self.asset.divisible()) {
            (State::Effective, false) => format!("placed as first seizure, rank 1, effective until {until}"),
            (State::Effective, true) => {
                format!("frozen {} in full, rank {rank}, effective until {until}", self.amount(s.effective))
            }
            (State::PartlyEffective, _) => format!(
                "partly effective: {} of {} frozen now, the rest waits (rank {rank}, behind {}); effective until {until}",
                self.amount(s.effective),
                self.amount(s.requested),
                ahead.unwrap_or_default()
            ),
            _ => format!("placed as waiting seizure, rank {rank} behind {}", ahead.unwrap_or_default()),
        }
    }

    /// Places a new seizure (R1, R4). `amount` is ignored for an indivisible asset.
    #[allow(clippy::too_many_arguments)]
    pub fn place(
        &mut self,
        id: String,
        seq: i64,
        court: &str,
        case_number: &str,
        amount: i64,
        now: Time,
        terms: &Terms,
    ) -> Result<Outcome, RuleError> {
        let mut changes = self.settle(now, terms);
        if self.asset.disposed {
            return Err(RuleError::Refused(
                "the asset has been sold (R8); there is nothing left to seize — search the debtor again".into(),
            ));
        }
        if let Some((rank, _)) = self.live_of_case(case_number) {
            return Err(RuleError::Refused(format!(
                "case {case_number} already holds the seizure at rank {rank} on this asset; renew or release it instead"
            )));
        }
        let requested = if self.asset.divisible() {
            if amount <= 0 {
                return Err(RuleError::Invalid(
                    "a freeze of a deposit or securities names a positive amount (R4)".into(),
                ));
            }
            amount
        } else {
            1
        };
        if seq <= self.seizures.last().map_or(0, |s| s.seq) {
            return Err(RuleError::Invalid("placement order went backwards; retry".into()));
        }
        self.seizures.push(Seizure {
            id: id.clone(),
            seq,
            court: court.into(),
            case_number: case_number.into(),
            requested,
            effective: 0,
            state: State::Waiting,
            placed_at: now,
            start: None,
            end: None,
            ended_at: None,
            registry_ref: None,
            renewals: 0,
        });
        let promoted = self.reallocate(now, terms, Some(&id));
        let message = self.describe_place(&id);
        changes.push(Change { seizure_id: id.clone(), kind: ChangeKind::Placed, at: now, message: message.clone() });
        changes.extend(promoted);
        let end = self.seizures.last().and_then(|s| s.end);
        Ok(Outcome { changes, orders: vec![Order::Seize { seizure_id: id, amount: requested, end }], message })
    }

    /// Checks that `case_number` holds live seizure `id` (R7), after settling.
    fn held(
        &mut self,
        id: &str,
        case_number: &str,
        now: Time,
        terms: &Terms,
    ) -> Result<(usize, Vec<Change>), RuleError> {
        let changes = self.settle(now, terms);
        let i = self.index(id)?;
        let s = &self.seizures[i];
        if s.case_number != case_number {
            return Err(RuleError::NotHolder(format!(
                "seizure {id} is held by {} of court {}; only the holding court may act on it (R7)",
                s.case_number, s.court
            )));
        }
        if !s.state.is_live() {
            let when = s.ended_at.map(day).unwrap_or_default();
            let hint = if s.state == State::Lapsed { "; place a new seizure (R6)" } else { "" };
            return Err(RuleError::Refused(format!("seizure {id} is {} since {when}{hint}", s.state.as_str())));
        }
        Ok((i, changes))
    }

    fn promoted_note(changes: &[Change]) -> String {
        changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Promoted)
            .map(|c| format!("; {}", c.message))
            .collect::<String>()
    }

    /// Releases a seizure; the next in line takes effect at once (R3, R7).
    pub fn release(&mut self, id: &str, case_number: &str, now: Time, terms: &Terms) -> Result<Outcome, RuleError> {
        let (i, mut changes) = self.held(id, case_number, now, terms)?;
        let s = &mut self.seizures[i];
        s.state = State::Released;
        s.effective = 0;
        s.ended_at = Some(now);
        let released =
            Change { seizure_id: id.into(), kind: ChangeKind::Released, at: now, message: "released".into() };
        let promoted = self.reallocate(now, terms, None);
        let message = format!("released{}", Self::promoted_note(&promoted));
        changes.push(Change { message: message.clone(), ..released });
        changes.extend(promoted);
        Ok(Outcome { changes, orders: vec![Order::Release { seizure_id: id.into() }], message })
    }

    /// Extends an effective seizure by up to one term, before its end (R6).
    pub fn renew(
        &mut self,
        id: &str,
        case_number: &str,
        months: Option<u32>,
        now: Time,
        terms: &Terms,
    ) -> Result<Outcome, RuleError> {
        let (i, mut changes) = self.held(id, case_number, now, terms)?;
        let term = terms.months(self.asset.kind);
        let months = months.unwrap_or(term);
        if months == 0 || months > term {
            return Err(RuleError::Invalid(format!(
                "a renewal extends by 1 to {term} months for this asset class (R5, R6); asked for {months}"
            )));
        }
        let s = &mut self.seizures[i];
        let Some(end) = s.end else {
            return Err(RuleError::Refused(format!(
                "seizure {id} is waiting and has no term to renew (R2); it gets one when it takes effect"
            )));
        };
        let new_end = add_months(end, months);
        s.end = Some(new_end);
        s.renewals += 1;
        let message = format!("renewed until {} (renewal {})", day(new_end), s.renewals);
        changes.push(Change { seizure_id: id.into(), kind: ChangeKind::Renewed, at: now, message: message.clone() });
        Ok(Outcome { changes, orders: vec![Order::Renew { seizure_id: id.into(), end: new_end }], message })
    }

    /// Takes `amount` out of the asset toward seizure `i` (a deduction or a
    /// partial sale); the seizure is satisfied when nothing is left to claim.
    /// Returns what it still claims.
    fn pay_out(&mut self, i: usize, amount: i64, now: Time) -> i64 {
        self.asset.total -= amount;
        let s = &mut self.seizures[i];
        s.requested -= amount;
        if s.requested == 0 {
            s.state = State::Satisfied;
            s.effective = 0;
            s.ended_at = Some(now);
        }
        s.requested
    }

    /// Deducts frozen funds toward the holding court's own case (R9).
    pub fn deduct(
        &mut self,
        id: &str,
        case_number: &str,
        amount: i64,
        now: Time,
        terms: &Terms,
    ) -> Result<Outcome, RuleError> {
        if self.asset.kind != AssetKind::Deposit {
            return Err(RuleError::Invalid("only deposits are deducted (R9); dispose of other assets by sale".into()));
        }
        if amount <= 0 {
            return Err(RuleError::Invalid("a deduction names a positive amount".into()));
        }
        let (i, mut changes) = self.held(id, case_number, now, terms)?;
        let effective = self.seizures[i].effective;
        if amount > effective {
            return Err(RuleError::Refused(format!(
                "deduction of {} exceeds this freeze's effective amount of {} (R9); deduct at most that",
                self.amount(amount),
                self.amount(effective)
            )));
        }
        let left = self.pay_out(i, amount, now);
        let message = format!("deducted {}; {} still frozen for this case", self.amount(amount), self.amount(left));
        changes.push(Change { seizure_id: id.into(), kind: ChangeKind::Deducted, at: now, message: message.clone() });
        changes.extend(self.reallocate(now, terms, None));
        Ok(Outcome { changes, orders: vec![Order::Deduct { seizure_id: id.into(), amount }], message })
    }

    /// Records a disposal step by the court holding the effective seizure (R8).
    pub fn dispose(
        &mut self,
        id: &str,
        case_number: &str,
        disposal: Disposal,
        now: Time,
        terms: &Terms,
    ) -> Result<Outcome, RuleError> {
        let (i, mut changes) = self.held(id, case_number, now, terms)?;
        if self.seizures[i].effective == 0 {
            return Err(RuleError::Refused(format!(
                "seizure {id} is waiting; only the court holding the effective seizure disposes of the asset (R8, R14)"
            )));
        }
        let message = match disposal {
            Disposal::AuctionNotice => {
                self.asset.sale_started = true;
                "auction notice recorded; disposal can no longer pass to a priority creditor (R14)".to_string()
            }
            Disposal::Sold => {
                self.asset.disposed = true;
                self.asset.total = 0;
                let mut lapsed = 0;
                for s in self.seizures.iter_mut().filter(|s| s.state.is_live()) {
                    let (state, kind, note) = if s.effective > 0 {
                        (State::Disposed, ChangeKind::Disposed, "asset sold (R8)")
                    } else {
                        lapsed += 1;
                        (State::Lapsed, ChangeKind::Lapsed, "asset sold while waiting; seizure lapses (R8)")
                    };
                    s.state = state;
                    s.effective = 0;
                    s.ended_at = Some(now);
                    changes.push(Change { seizure_id: s.id.clone(), kind, at: now, message: note.into() });
                }
                format!("asset sold; the effective seizure ends and {lapsed} waiting seizure(s) lapse (R8)")
            }
            Disposal::PartlySold(amount) => {
                if !self.asset.divisible() {
                    return Err(RuleError::Invalid("an indivisible asset is sold whole (R8)".into()));
                }
                let effective = self.seizures[i].effective;
                if amount <= 0 || amount > effective {
                    return Err(RuleError::Invalid(format!(
                        "a partial sale disposes of 1 to {} under this seizure",
                        self.amount(effective)
                    )));
                }
                self.pay_out(i, amount, now);
                let promoted = self.reallocate(now, terms, None);
                let note = format!(
                    "sold {}; the remainder stays seized{}",
                    self.amount(amount),
                    Self::promoted_note(&promoted)
                );
                changes.push(Change {
                    seizure_id: id.into(),
                    kind: ChangeKind::Disposed,
                    at: now,
                    message: note.clone(),
                });
                changes.extend(promoted);
                return Ok(Outcome { changes, orders: vec![], message: note });
            }
        };
        if disposal == Disposal::AuctionNotice {
            changes.push(Change {
                seizure_id: id.into(),
                kind: ChangeKind::Disposed,
                at: now,
                message: message.clone(),
            });
        }
        Ok(Outcome { changes, orders: vec![], message })
    }

    /// Moves `from_case`'s live seizures to another court and case, keeping
    /// rank, registry reference and dates (R10, R14).
    pub fn change_holder(
        &mut self,
        from_case: &str,
        to_court: &str,
        to_case: &str,
        now: Time,
        why: &str,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for s in self.seizures.iter_mut().filter(|s| s.state.is_live() && s.case_number == from_case) {
            let message = format!("now held by {to_case} of court {to_court} ({why}), rank and dates unchanged");
            s.court = to_court.into();
            s.case_number = to_case.into();
            changes.push(Change { seizure_id: s.id.clone(), kind: ChangeKind::HolderChanged, at: now, message });
        }
        changes
    }

    /// The live seizures of `case_number` whose term ends within `days` of `now` (R11).
    pub fn ending_within(&self, case_number: &str, now: Time, days: i64) -> Vec<&Seizure> {
        let horizon = now + chrono::Duration::days(days);
        self.queue()
            .map(|(_, s)| s)
            .filter(|s| s.case_number == case_number && s.end.is_some_and(|e| e < horizon))
            .collect()
    }

    /// Whether `requesting_case` may have disposal transferred to it (R14);
    /// returns the case holding the effective seizure.
    pub fn check_disposal_transfer(&self, requesting_case: &str, now: Time) -> Result<String, RuleError> {
        if self.live_of_case(requesting_case).is_none() {
            return Err(RuleError::Refused(format!(
                "{requesting_case} holds no seizure on this asset; seize it first, then ask for disposal (R14)"
            )));
        }
        let first =
            self.first().ok_or_else(|| RuleError::Refused("no effective seizure on this asset (R14)".into()))?;
        if first.case_number == requesting_case {
            return Err(RuleError::Refused(format!("{requesting_case} already holds the first seizure (R14)")));
        }
        let since = first.start.unwrap_or(first.placed_at);
        if now - since <= chrono::Duration::days(60) {
            return Err(RuleError::Refused(format!(
                "the first seizure took effect on {}; disposal may move to a priority creditor only after 60 days, from {} (R14)",
                day(since),
                day(since + chrono::Duration::days(60))
            )));
        }
        if self.asset.sale_started {
            return Err(RuleError::Refused(
                "the first-seizing court has already published an auction notice or started a sale (R14)".into(),
            ));
        }
        Ok(first.case_number.clone())
    }

    /// Sets the balance or quantity as the registry reports it; inflows go to
    /// unmet freezes in rank order (R4).
    pub fn set_total(&mut self, total: i64, now: Time, terms: &Terms) -> Vec<Change> {
        let mut changes = self.settle(now, terms);
        if self.asset.divisible() && !self.asset.disposed && total != self.asset.total {
            self.asset.total = total.max(0);
            changes.extend(self.reallocate(now, terms, None));
        }
        changes
    }

    /// Every invariant the ledger must keep; empty when all hold.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let key = format!("{}:{}", self.asset.kind.short_name(), self.asset.asset_id);
        let live: Vec<&Seizure> = self.seizures.iter().filter(|s| s.state.is_live()).collect();
        let effective: i64 = live.iter().map(|s| s.effective).sum();
        if effective > self.asset.total {
            out.push(format!("{key}: effective total {effective} exceeds the asset's {}", self.asset.total));
        }
        if !self.asset.divisible() && self.asset.total > 1 {
            out.push(format!("{key}: an indivisible asset with a quantity of {}", self.asset.total));
        }
        if !self.asset.divisible() && live.iter().filter(|s| s.effective > 0).count() > 1 {
            out.push(format!("{key}: more than one effective seizure on an indivisible asset"));
        }
        if self.seizures.windows(2).any(|w| w[0].seq >= w[1].seq) {
            out.push(format!("{key}: seizures out of placement order"));
        }
        for s in &live {
            let expected = match s.effective {
                0 => State::Waiting,
                e if e < s.requested => State::PartlyEffective,
                _ => State::Effective,
            };
            if s.effective < 0 || s.effective > s.requested || s.state != expected {
                out.push(format!(
                    "{key}: seizure {} is {} with {} of {}",
                    s.id,
                    s.state.as_str(),
                    s.effective,
                    s.requested
                ));
            }
            if s.effective > 0 && s.end.is_none() {
                out.push(format!("{key}: seizure {} is in effect without a term", s.id));
            }
        }
        // Rank priority: nobody behind gets anything while someone ahead lacks part of their claim.
        if let Some(short) = live.iter().position(|s| s.effective < s.requested) {
            if live[short + 1..].iter().any(|s| s.effective > 0) {
                out.push(format!("{key}: a later seizure is served before an earlier one"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const TERMS: Terms = Terms {
        deposit: 12,
        aircraft: 24,
        real_estate: 36,
        ip: 36,
        securities: 36,
        on_promotion: PromotionTerm::Fresh,
    };

    fn t0() -> Time {
        Utc.with_ymd_and_hms(2025, 1, 10, 2, 0, 0).unwrap()
    }

    fn ledger(kind: AssetKind, total: i64) -> Ledger {
        Ledger {
            asset: Asset {
                kind,
                asset_id: "A".into(),
                registry: "r".into(),
                debtor: "d".into(),
                unit: if kind == AssetKind::Deposit { "CNY".into() } else { String::new() },
                total,
                sale_started: false,
                disposed: false,
            },
            seizures: vec![],
        }
    }

    fn case(n: i64) -> String {
        format!("（2024）京0105执{n}号")
    }

    fn place(l: &mut Ledger, n: i64, amount: i64, now: Time) -> Outcome {
        l.place(format!("s{n}"), n, "京0105", &case(n), amount, now, &TERMS).unwrap()
    }

    #[test]
    fn r1_r2_first_is_effective_the_rest_wait_in_order() {
        let mut l = ledger(AssetKind::RealEstate, 1);
        assert!(
            place(&mut l, 1, 0, t0())
                .message
                .starts_with("placed as first seizure, rank 1, effective until 2028-01-10")
        );
        let o = place(&mut l, 2, 0, t0());
        assert_eq!(o.message, format!("placed as waiting seizure, rank 2 behind {}", case(1)));
        let o = place(&mut l, 3, 0, t0());
        assert_eq!(o.message, format!("placed as waiting seizure, rank 3 behind {}", case(2)));
        assert_eq!(l.seizures[2].end, None, "R2: a waiting seizure has no term");
        assert!(l.violations().is_empty());
    }

    #[test]
    fn r3_release_promotes_the_next_at_once_with_a_fresh_term() {
        let mut l = ledger(AssetKind::RealEstate, 1);
        place(&mut l, 1, 0, t0());
        place(&mut l, 2, 0, t0());
        let later = t0() + chrono::Duration::days(100);
        let o = l.release("s1", &case(1), later, &TERMS).unwrap();
        assert!(o.message.contains(&format!("{} now effective until 2028-04-20", case(2))), "{}", o.message);
        assert_eq!(l.seizures[1].state, State::Effective);
        assert_eq!(l.seizures[1].start, Some(later));
    }

    #[test]
    fn r3_order_end_convention_keeps_the_written_end_date() {
        let terms = Terms { on_promotion: PromotionTerm::OrderEnd, ..TERMS };
        let mut l = ledger(AssetKind::RealEstate, 1);
        l.place("s1".into(), 1, "c", &case(1), 0, t0(), &terms).unwrap();
        l.place("s2".into(), 2, "c", &case(2), 0, t0(), &terms).unwrap();
        l.release("s1", &case(1), t0() + chrono::Duration::days(100), &terms).unwrap();
        assert_eq!(l.seizures[1].end, Some(add_months(t0(), 36)));
    }

    #[test]
    fn r4_freezes_take_what_is_left_and_inflows_go_in_rank_order() {
        let mut l = ledger(AssetKind::Deposit, 1000);
        place(&mut l, 1, 600, t0());
        let o = place(&mut l, 2, 800, t0());
        assert!(o.message.starts_with("partly effective: CNY 4.00 of CNY 8.00 frozen now"), "{}", o.message);
        place(&mut l, 3, 100, t0());
        assert_eq!((l.seizures[1].effective, l.seizures[2].effective), (400, 0));
        l.set_total(1300, t0(), &TERMS);
        assert_eq!((l.seizures[1].effective, l.seizures[2].effective), (700, 0));
        l.release("s1", &case(1), t0(), &TERMS).unwrap();
        assert_eq!((l.seizures[1].effective, l.seizures[2].effective), (800, 100));
        assert_eq!(l.seizures[2].state, State::Effective);
        assert!(l.violations().is_empty());
    }

    #[test]
    fn r5_terms_follow_the_asset_class() {
        for (kind, end) in
            [(AssetKind::Deposit, "2026-01-10"), (AssetKind::Aircraft, "2027-01-10"), (AssetKind::Patent, "2028-01-10")]
        {
            let mut l = ledger(kind, 1);
            place(&mut l, 1, 1, t0());
            assert_eq!(l.seizures[0].end.map(day).unwrap(), end, "{kind:?}");
        }
    }

    #[test]
    fn r6_lapse_promotes_at_the_end_date_even_when_noticed_years_later() {
        let mut l = ledger(AssetKind::Deposit, 100);
        place(&mut l, 1, 100, t0());
        place(&mut l, 2, 100, t0());
        let changes = l.settle(t0() + chrono::Duration::days(365 * 5), &TERMS);
        // s1 lapses after a year, s2 takes effect then and lapses a year later.
        let kinds: Vec<_> = changes.iter().map(|c| (c.seizure_id.as_str(), c.kind)).collect();
        assert_eq!(kinds, [("s1", ChangeKind::Lapsed), ("s2", ChangeKind::Promoted), ("s2", ChangeKind::Lapsed)]);
        assert_eq!(changes[1].at, add_months(t0(), 12));
        assert!(l.queue().next().is_none());
    }

    #[test]
    fn r6_renewal_before_the_end_and_refusal_after() {
        let mut l = ledger(AssetKind::RealEstate, 1);
        place(&mut l, 1, 0, t0());
        place(&mut l, 2, 0, t0());
        let o = l.renew("s1", &case(1), None, t0() + chrono::Duration::days(30), &TERMS).unwrap();
        assert_eq!(o.message, "renewed until 2031-01-10 (renewal 1)");
        assert!(matches!(l.renew("s2", &case(2), None, t0(), &TERMS), Err(RuleError::Refused(m)) if m.contains("R2")));
        assert!(matches!(l.renew("s1", &case(1), Some(37), t0(), &TERMS), Err(RuleError::Invalid(_))));
        let late = add_months(t0(), 73);
        let err = l.renew("s1", &case(1), None, late, &TERMS).unwrap_err();
        assert!(
            matches!(&err, RuleError::Refused(m) if m.contains("lapsed since 2031-01-10") && m.contains("R6")),
            "{err}"
        );
    }

    #[test]
    fn r7_only_the_holder_releases_and_a_waiting_release_leaves_others_alone() {
        let mut l = ledger(AssetKind::Aircraft, 1);
        place(&mut l, 1, 0, t0());
        place(&mut l, 2, 0, t0());
        place(&mut l, 3, 0, t0());
        assert!(matches!(l.release("s1", &case(2), t0(), &TERMS), Err(RuleError::NotHolder(m)) if m.contains("R7")));
        let o = l.release("s2", &case(2), t0(), &TERMS).unwrap();
        assert_eq!(o.message, "released");
        assert_eq!((l.seizures[0].state, l.seizures[2].state), (State::Effective, State::Waiting));
        assert!(matches!(l.release("nope", &case(2), t0(), &TERMS), Err(RuleError::UnknownSeizure(_))));
    }

    #[test]
    fn r8_a_sale_ends_the_first_and_lapses_the_waiting() {
        let mut l = ledger(AssetKind::RealEstate, 1);
        place(&mut l, 1, 0, t0());
        place(&mut l, 2, 0, t0());
        let o = l.dispose("s1", &case(1), Disposal::Sold, t0(), &TERMS).unwrap();
        assert!(o.message.contains("1 waiting seizure(s) lapse"));
        assert_eq!((l.seizures[0].state, l.seizures[1].state), (State::Disposed, State::Lapsed));
        assert!(
            matches!(l.place("s3".into(), 3, "c", &case(3), 0, t0(), &TERMS), Err(RuleError::Refused(m)) if m.contains("R8"))
        );
        let mut d = ledger(AssetKind::Securities, 1000);
        place(&mut d, 1, 600, t0());
        place(&mut d, 2, 600, t0());
        d.dispose("s1", &case(1), Disposal::PartlySold(600), t0(), &TERMS).unwrap();
        assert_eq!((d.seizures[0].state, d.seizures[1].effective, d.asset.total), (State::Satisfied, 400, 400));
        assert!(d.dispose("s2", &case(2), Disposal::Sold, t0(), &TERMS).is_ok());
    }

    #[test]
    fn r9_deduction_only_against_the_own_effective_amount() {
        let mut l = ledger(AssetKind::Deposit, 500);
        place(&mut l, 1, 300, t0());
        place(&mut l, 2, 300, t0());
        let err = l.deduct("s2", &case(2), 250, t0(), &TERMS).unwrap_err();
        assert!(matches!(&err, RuleError::Refused(m) if m.contains("R9") && m.contains("CNY 2.00")), "{err}");
        assert!(matches!(l.deduct("s1", &case(2), 10, t0(), &TERMS), Err(RuleError::NotHolder(_))));
        l.deduct("s1", &case(1), 300, t0(), &TERMS).unwrap();
        assert_eq!((l.seizures[0].state, l.asset.total, l.seizures[1].effective), (State::Satisfied, 200, 200));
        let mut re = ledger(AssetKind::RealEstate, 1);
        place(&mut re, 1, 0, t0());
        assert!(matches!(re.deduct("s1", &case(1), 1, t0(), &TERMS), Err(RuleError::Invalid(_))));
    }

    #[test]
    fn r10_holder_change_keeps_rank_reference_and_dates() {
        let mut l = ledger(AssetKind::RealEstate, 1);
        place(&mut l, 1, 0, t0());
        place(&mut l, 2, 0, t0());
        l.seizures[1].registry_ref = Some("REF-2".into());
        let before = l.seizures[1].clone();
        l.change_holder(&case(2), "粤0304", "（2025）粤0304执9号", t0(), "designation");
        let after = &l.seizures[1];
        assert_eq!((after.seq, &after.registry_ref, after.end), (before.seq, &before.registry_ref, before.end));
        assert_eq!(after.case_number, "（2025）粤0304执9号");
        assert_eq!(l.live_of_case("（2025）粤0304执9号").unwrap().0, 2);
    }

    #[test]
    fn r11_lists_measures_ending_within_thirty_days() {
        let mut l = ledger(AssetKind::Deposit, 100);
        place(&mut l, 1, 100, t0());
        let near = add_months(t0(), 12) - chrono::Duration::days(29);
        assert_eq!(l.ending_within(&case(1), near, 30).len(), 1);
        assert!(l.ending_within(&case(1), near - chrono::Duration::days(2), 30).is_empty());
    }

    #[test]
    fn r14_disposal_moves_only_after_sixty_days_and_before_a_sale() {
        let mut l = ledger(AssetKind::RealEstate, 1);
        place(&mut l, 1, 0, t0());
        place(&mut l, 2, 0, t0());
        let err = l.check_disposal_transfer(&case(2), t0() + chrono::Duration::days(60)).unwrap_err();
        assert!(matches!(&err, RuleError::Refused(m) if m.contains("60 days") && m.contains("2025-03-11")), "{err}");
        assert_eq!(l.check_disposal_transfer(&case(2), t0() + chrono::Duration::days(61)).unwrap(), case(1));
        assert!(l.check_disposal_transfer(&case(3), t0() + chrono::Duration::days(61)).is_err());
        l.dispose("s1", &case(1), Disposal::AuctionNotice, t0(), &TERMS).unwrap();
        assert!(
            matches!(l.check_disposal_transfer(&case(2), t0() + chrono::Duration::days(90)), Err(RuleError::Refused(m)) if m.contains("auction"))
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Place(i64),
        Release(usize),
        Renew(usize),
        Deduct(usize, i64),
        Jump(i64),
        Inflow(i64),
        PartSale(usize, i64),
        Sell(usize),
        Transfer(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1i64..500).prop_map(Op::Place),
            2 => (0usize..8).prop_map(Op::Release),
            1 => (0usize..8).prop_map(Op::Renew),
            1 => ((0usize..8), 1i64..300).prop_map(|(i, a)| Op::Deduct(i, a)),
            2 => (1i64..800).prop_map(Op::Jump),
            1 => (0i64..400).prop_map(Op::Inflow),
            1 => ((0usize..8), 1i64..200).prop_map(|(i, a)| Op::PartSale(i, a)),
            1 => (0usize..8).prop_map(Op::Sell),
            1 => (0usize..8).prop_map(Op::Transfer),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_after_every_step(kind in prop::sample::select(vec![AssetKind::Deposit, AssetKind::RealEstate, AssetKind::Securities]),
                                            ops in prop::collection::vec(op(), 1..40)) {
            let mut l = ledger(kind, if is_divisible(kind) { 700 } else { 1 });
            let mut now = t0();
            let mut acknowledged: Vec<String> = Vec::new();
            let mut seq = 0;
            for op in ops {
                let order_before: Vec<String> = l.queue().map(|(_, s)| s.id.clone()).collect();
                let pick = |i: usize, l: &Ledger| l.seizures.get(i % l.seizures.len().max(1)).map(|s| (s.id.clone(), s.case_number.clone()));
                let result = match op {
                    Op::Place(a) => { seq += 1; l.place(format!("s{seq}"), seq, "c", &case(seq), a, now, &TERMS).inspect(|_| acknowledged.push(format!("s{seq}"))) }
                    Op::Release(i) => match pick(i, &l) { Some((id, c)) => l.release(&id, &c, now, &TERMS), None => continue },
                    Op::Renew(i) => match pick(i, &l) { Some((id, c)) => l.renew(&id, &c, None, now, &TERMS), None => continue },
                    Op::Deduct(i, a) => match pick(i, &l) { Some((id, c)) => l.deduct(&id, &c, a, now, &TERMS), None => continue },
                    Op::PartSale(i, a) => match pick(i, &l) { Some((id, c)) => l.dispose(&id, &c, Disposal::PartlySold(a), now, &TERMS), None => continue },
                    Op::Sell(i) => match pick(i, &l) { Some((id, c)) => l.dispose(&id, &c, Disposal::Sold, now, &TERMS), None => continue },
                    Op::Transfer(i) => match pick(i, &l) { Some((_, c)) => Ok(Outcome { changes: l.change_holder(&c, "粤01", &format!("{c}-t"), now, "test"), ..Outcome::default() }), None => continue },
                    Op::Jump(days) => { now += chrono::Duration::days(days); Ok(Outcome { changes: l.settle(now, &TERMS), ..Outcome::default() }) }
                    Op::Inflow(a) => Ok(Outcome { changes: l.set_total(l.asset.total + a, now, &TERMS), ..Outcome::default() }),
                };
                let _ = result;
                l.settle(now, &TERMS);
                prop_assert!(l.violations().is_empty(), "{:?}", l.violations());
                // Ranks never reorder: the survivors keep their relative order.
                let order_after: Vec<String> = l.queue().map(|(_, s)| s.id.clone()).collect();
                let survivors: Vec<&String> = order_before.iter().filter(|id| order_after.contains(id)).collect();
                let kept: Vec<&String> = order_after.iter().filter(|id| order_before.contains(id)).collect();
                prop_assert_eq!(survivors, kept);
                // Nothing acknowledged disappears.
                for id in &acknowledged {
                    prop_assert!(l.seizures.iter().any(|s| &s.id == id));
                }
            }
        }
    }
}
