//! The rules over one asset's queue: placement and rank (R1, R2), promotion
//! (R3), divisible assets (R4), terms, renewal and lapse (R5, R6), release
//! (R7), disposal (R8), deduction (R9), holder changes (R10, R14) and the
//! conditions of a disposal transfer (R14).

use super::*;
use crate::core::{clock::beijing_days, proto::AssetKind};

/// A release order's reason when the holding court releases (R7).
const RELEASED: &str = "released by the holding court (R7)";

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

    fn amount(&self, value: i64) -> Quantity {
        Quantity { value, kind: self.asset.kind, unit: self.asset.unit.clone() }
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
            let mut got = s.requested.min(left).max(0);
            if self.owner_bankrupt {
                // Nothing takes effect on a bankrupt debtor's asset: what holds shrinks, none grows (R25).
                got = got.min(s.effective);
            }
            left -= got;
            let first_effect = got > 0 && s.start.is_none();
            let newly = got > s.effective;
            let end = first_effect.then(|| self.term_end(at, s.placed_at, terms, placed != Some(s.id.as_str())));
            let s = &mut self.seizures[i];
            s.effective = got;
            if got == 0 {
                // Emptied (its effective part deducted or gone): it waits again, and a waiting
                // seizure has no term (R2); it starts a fresh one when it next takes effect.
                s.start = None;
                s.end = None;
            }
            s.state = if got == 0 {
                SeizureState::Waiting
            } else if got < s.requested {
                SeizureState::PartlyEffective
            } else {
                SeizureState::Effective
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
            s.state = SeizureState::Lapsed;
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
            (SeizureState::Effective, false) => format!("placed as first seizure, rank 1, effective until {until}"),
            (SeizureState::Effective, true) => {
                format!("frozen {} in full, rank {rank}, effective until {until}", self.amount(s.effective))
            }
            (SeizureState::PartlyEffective, _) => format!(
                "partly effective: {} of {} frozen now, rank {rank}; the rest {}; effective until {until}",
                self.amount(s.effective),
                self.amount(s.requested),
                Self::waits_for(ahead.as_deref())
            ),
            _ => format!("placed as waiting seizure, rank {rank}; it {}", Self::waits_for(ahead.as_deref())),
        }
    }

    /// What a seizure that is not wholly effective waits for.
    fn waits_for(ahead: Option<&str>) -> String {
        match ahead {
            Some(case) => format!("waits behind {case} and takes effect as those ahead end (R3)"),
            None => "waits for funds to arrive in the account (R4)".into(),
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
            return Err(Refusal::Sold.into());
        }
        if let Some((rank, _)) = self.live_of_case(case_number) {
            return Err(Refusal::AlreadyHeld { case: case_number.into(), rank }.into());
        }
        let requested = if self.asset.divisible() {
            if amount <= 0 {
                return Err(Invalid::NoFreezeAmount.into());
            }
            amount
        } else {
            1
        };
        if seq <= self.seizures.last().map_or(0, |s| s.seq) {
            return Err(Invalid::OrderBackwards.into());
        }
        self.seizures.push(Seizure {
            id: id.clone(),
            seq,
            court: court.into(),
            case_number: case_number.into(),
            requested,
            effective: 0,
            state: SeizureState::Waiting,
            placed_at: now,
            start: None,
            end: None,
            ended_at: None,
            registry_ref: None,
            renewals: 0,
            claim: None,
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
            return Err(
                Denial::NotHolder { seizure: id.into(), case: s.case_number.clone(), court: s.court.clone() }.into()
            );
        }
        if !s.state.is_live() {
            return Err(Refusal::Ended { seizure: id.into(), state: s.state, ended: s.ended_at }.into());
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
        s.state = SeizureState::Released;
        s.effective = 0;
        s.ended_at = Some(now);
        let released =
            Change { seizure_id: id.into(), kind: ChangeKind::Released, at: now, message: "released".into() };
        let promoted = self.reallocate(now, terms, None);
        let message = format!("released{}", Self::promoted_note(&promoted));
        changes.push(Change { message: message.clone(), ..released });
        changes.extend(promoted);
        Ok(Outcome {
            changes,
            orders: vec![Order::Release { seizure_id: id.into(), reason: RELEASED.into() }],
            message,
        })
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
            return Err(Invalid::RenewalMonths { term, months }.into());
        }
        let s = &mut self.seizures[i];
        let Some(end) = s.end else {
            return Err(Refusal::NoTerm { seizure: id.into() }.into());
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
        self.asset.total_at = self.asset.total_at.max(now);
        let s = &mut self.seizures[i];
        s.requested -= amount;
        if s.requested == 0 {
            s.state = SeizureState::Satisfied;
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
            return Err(Invalid::NotDeposit.into());
        }
        if amount <= 0 {
            return Err(Invalid::NoDeductionAmount.into());
        }
        let (i, mut changes) = self.held(id, case_number, now, terms)?;
        let effective = self.seizures[i].effective;
        if amount > effective {
            return Err(Refusal::OverDeduction { asked: self.amount(amount), effective: self.amount(effective) }.into());
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
            return Err(Refusal::WaitingDisposes { seizure: id.into() }.into());
        }
        let message = match disposal {
            Disposal::AuctionNotice => {
                self.asset.sale_started = true;
                "auction notice recorded; disposal can no longer pass to a priority creditor (R14)".to_string()
            }
            Disposal::Sold => {
                self.asset.disposed = true;
                self.asset.total = 0;
                self.asset.total_at = self.asset.total_at.max(now);
                let mut lapsed = 0;
                for s in self.seizures.iter_mut().filter(|s| s.state.is_live()) {
                    let (state, kind, note) = if s.effective > 0 {
                        (SeizureState::Disposed, ChangeKind::Disposed, "asset sold (R8)")
                    } else {
                        lapsed += 1;
                        (SeizureState::Lapsed, ChangeKind::Lapsed, "asset sold while waiting; seizure lapses (R8)")
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
                    return Err(Invalid::SoldWhole.into());
                }
                let effective = self.seizures[i].effective;
                if amount <= 0 {
                    return Err(Invalid::NoSaleAmount.into());
                }
                if amount > effective {
                    return Err(Refusal::OverSale { effective: self.amount(effective) }.into());
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
    /// rank, registry reference and dates (R10).
    pub fn change_holder(
        &mut self,
        from_case: &str,
        to_court: &str,
        to_case: &str,
        now: Time,
        why: &str,
    ) -> Vec<Change> {
        let moving: Vec<usize> = (0..self.seizures.len())
            .filter(|&i| self.seizures[i].state.is_live() && self.seizures[i].case_number == from_case)
            .collect();
        moving.into_iter().map(|i| self.move_seizure(i, to_court, to_case, now, why)).collect()
    }

    /// R14: `case`, holding the first seizure, approves a disposal transfer:
    /// that one seizure moves to the requesting case, keeping its rank; any
    /// other seizure `case` holds on the asset stays its own.
    pub fn approve_disposal(
        &mut self,
        case: &str,
        to_court: &str,
        to_case: &str,
        now: Time,
    ) -> Result<Change, RuleError> {
        let key = format!("{}:{}", self.asset.kind.short_name(), self.asset.asset_id);
        let first = self
            .seizures
            .iter()
            .position(|s| s.state.is_live() && s.effective > 0)
            .filter(|&i| self.seizures[i].case_number == case)
            .ok_or_else(|| Refusal::NoLongerFirst { case: case.into(), asset: key })?;
        Ok(self.move_seizure(first, to_court, to_case, now, "disposal transfer to a priority creditor (R14)"))
    }

    fn move_seizure(&mut self, i: usize, to_court: &str, to_case: &str, now: Time, why: &str) -> Change {
        let s = &mut self.seizures[i];
        s.court = to_court.into();
        s.case_number = to_case.into();
        let message = format!("now held by {to_case} of court {to_court} ({why}), rank and dates unchanged");
        Change { seizure_id: s.id.clone(), kind: ChangeKind::HolderChanged, at: now, message }
    }

    /// The live seizures of `case_number` whose term ends within `days` of `now` (R11).
    pub fn ending_within(&self, case_number: &str, now: Time, days: i64) -> Vec<&Seizure> {
        self.queue()
            .map(|(_, s)| s)
            .filter(|s| s.case_number == case_number && s.end.is_some_and(|e| beijing_days(now, e) < days))
            .collect()
    }

    /// Whether `requesting_case` may have disposal transferred to it (R14);
    /// returns the case holding the effective seizure.
    pub fn check_disposal_transfer(&self, requesting_case: &str, now: Time) -> Result<String, RuleError> {
        if self.asset.kind == AssetKind::Deposit {
            return Err(Invalid::DepositNotSold.into());
        }
        if self.live_of_case(requesting_case).is_none() {
            return Err(Refusal::NotSeized { case: requesting_case.into() }.into());
        }
        let first = self.first().ok_or(Refusal::NoFirst)?;
        if first.case_number == requesting_case {
            return Err(Refusal::HoldsFirst { case: requesting_case.into() }.into());
        }
        let since = first.start.unwrap_or(first.placed_at);
        let from = days_end(since, DISPOSAL_WAIT_DAYS);
        if now < from {
            return Err(Refusal::TooSoon { since, days: DISPOSAL_WAIT_DAYS, from }.into());
        }
        if self.asset.sale_started {
            return Err(Refusal::SaleStarted.into());
        }
        Ok(first.case_number.clone())
    }

    /// Takes the balance or quantity a registry reported at `reported_at`,
    /// unless the ledger set it itself since (a deduction or a sale, R9, R8):
    /// an older report never re-inflates it. Inflows go to unmet freezes in
    /// rank order (R4).
    pub fn set_total(&mut self, total: i64, reported_at: Time, now: Time, terms: &Terms) -> Vec<Change> {
        let mut changes = self.settle(now, terms);
        if self.asset.divisible() && !self.asset.disposed && reported_at > self.asset.total_at {
            self.asset.total_at = reported_at;
            let total = total.clamp(0, MAX_AMOUNT);
            if total != self.asset.total {
                self.asset.total = total;
                changes.extend(self.reallocate(now, terms, None));
            }
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
                0 => SeizureState::Waiting,
                e if e < s.requested => SeizureState::PartlyEffective,
                _ => SeizureState::Effective,
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
