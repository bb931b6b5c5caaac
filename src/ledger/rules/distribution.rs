//! Who is paid from a sale's proceeds or a deduction (R28), in exact integer
//! minor units: the execution costs first, then the claims secured on the
//! asset in their registration order, then the ordinary claims — by seizure
//! rank against an enterprise legal person, pro rata among the participants
//! against anyone else (with the first seizer's configurable bonus). The
//! same facts always give the same plan, whatever order they came in.

use super::{DebtorKind, Invalid, Payout, Refusal, RuleError, Time};

/// A claim secured on the asset (a mortgage, a pledge), as its registry reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secured {
    /// Who holds it.
    pub holder: String,
    /// When it was registered: the earlier is paid first.
    pub registered_at: Time,
    /// Its amount, in minor units.
    pub amount: i64,
}

/// A case with an ordinary claim on the proceeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creditor {
    /// The enforcement case.
    pub case: String,
    /// Its seizure's rank on the asset (1: the first seizure); `None` for a participant (参与分配)
    /// holding no seizure on it, who comes after every seizer.
    pub rank: Option<u32>,
    /// What is still unpaid of its claim, in minor units.
    pub claim: i64,
}

/// How ordinary claims share what is left (R28, by the debtor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// An enterprise legal person with no bankruptcy opened: in seizure order, each in full.
    ByRank,
    /// A natural person or another organisation: pro rata to the claims, the first seizer's share
    /// raised by `bonus_percent` (never above its claim).
    ProRata {
        /// The first seizer's bonus, in percent of its pro-rata share.
        bonus_percent: u32,
    },
}

/// A distribution as drafted: every payment, and what goes back to the debtor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// The execution costs paid.
    pub costs: i64,
    /// Each secured claim's payment, in registration order.
    pub secured: Vec<(String, i64)>,
    /// Each ordinary creditor's payment, in rank order (participants last, by case).
    pub ordinary: Vec<(String, i64)>,
    /// What is left once every claim is paid: the debtor's.
    pub surplus: i64,
}

impl Distribution {
    /// Everything paid out to costs and creditors.
    pub fn paid(&self) -> i64 {
        self.costs + self.secured.iter().chain(&self.ordinary).map(|(_, a)| a).sum::<i64>()
    }
}

/// R28: drafts the distribution of `proceeds` (a sale's, or deducted funds) after `costs`.
pub fn draft(
    (proceeds, costs): (i64, i64),
    secured: &[Secured],
    creditors: &[Creditor],
    sharing: Sharing,
) -> Result<Distribution, RuleError> {
    let negative = |what: &'static str, amount: i64| match amount < 0 {
        true => Err(Invalid::NegativeAmount { what, amount }),
        false => Ok(()),
    };
    negative("proceeds", proceeds)?;
    negative("execution costs", costs)?;
    secured.iter().try_for_each(|s| negative("secured claim", s.amount))?;
    creditors.iter().try_for_each(|c| negative("claim", c.claim))?;

    let mut left = proceeds;
    let costs = take(&mut left, costs);
    let mut secured = secured.to_vec();
    by_registration(&mut secured);
    let secured: Vec<(String, i64)> = secured.into_iter().map(|s| (s.holder, take(&mut left, s.amount))).collect();
    let mut creditors = creditors.to_vec();
    creditors.sort_by(|a, b| order(a).cmp(&order(b)));
    let total: i64 = creditors.iter().map(|c| c.claim).sum();
    let wants = match sharing {
        Sharing::ProRata { bonus_percent } if left < total => pro_rata(left, &creditors, bonus_percent),
        // In rank order, each in full while anything is left (and everyone in full when it suffices).
        _ => creditors.iter().map(|c| c.claim).collect(),
    };
    let ordinary = creditors.iter().zip(wants).map(|(c, want)| (c.case.clone(), take(&mut left, want))).collect();
    Ok(Distribution { costs, secured, ordinary, surplus: left })
}

/// R28: how ordinary claims share, by the debtor: in rank order against an enterprise legal
/// person; pro rata with the first seizer's `bonus_percent` against anyone else.
pub fn sharing(kind: DebtorKind, bonus_percent: u32) -> Sharing {
    match kind {
        DebtorKind::EnterpriseLegalPerson => Sharing::ByRank,
        DebtorKind::NaturalPerson | DebtorKind::OtherOrganisation => Sharing::ProRata { bonus_percent },
    }
}

/// R28: may a case apply to share in proceeds (参与分配)? Only against a natural person or another
/// organisation (an enterprise's creditors are paid by seizure rank), and only before the
/// proceeds are paid out (`paid_by`: the plan that paid them, and when).
pub fn participation(kind: DebtorKind, paid_by: Option<(&str, Time)>) -> Result<(), RuleError> {
    if kind == DebtorKind::EnterpriseLegalPerson {
        return Err(Refusal::ParticipationByRank.into());
    }
    match paid_by {
        Some((distribution, at)) => {
            Err(Refusal::PaidOut { distribution: distribution.into(), day: super::day(at) }.into())
        }
        None => Ok(()),
    }
}

/// What a line of a plan pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// The execution costs.
    Costs,
    /// A claim secured on the asset.
    Secured,
    /// A case's ordinary claim.
    Ordinary,
    /// What is left: the debtor's.
    Surplus,
}

/// One line of a drafted plan, as an objection and a payout read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The proceeds it pays from.
    pub proceeds: String,
    /// What it pays.
    pub kind: LineKind,
    /// What was owed when drafted.
    pub claim: i64,
    /// What the plan pays.
    pub amount: i64,
}

/// R29: an objection's corrections, checked: only ordinary lines, none negative or above its
/// claim, each proceeds' ordinary total as served (an objection moves money between creditors,
/// it does not make or lose any). Returns each line's corrected amount (`None`: not corrected).
pub fn corrections(lines: &[Line], asked: &[(usize, i64)]) -> Result<Vec<Option<i64>>, RuleError> {
    let mut corrected = vec![None; lines.len()];
    for &(at, amount) in asked {
        let line = lines.get(at).ok_or(Invalid::Correction { line: at, why: "the plan has no such line" })?;
        if line.kind != LineKind::Ordinary {
            return Err(Invalid::Correction { line: at, why: "only an ordinary claim's line is corrected" }.into());
        }
        if amount < 0 || amount > line.claim {
            return Err(Invalid::Correction { line: at, why: "a line pays from 0 up to its claim" }.into());
        }
        if corrected[at].replace(amount).is_some() {
            return Err(Invalid::Correction { line: at, why: "is corrected twice" }.into());
        }
    }
    let total = |proceeds: &str, with: &dyn Fn(usize, &Line) -> i64| -> i64 {
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.proceeds == proceeds && l.kind == LineKind::Ordinary)
            .map(|(i, l)| with(i, l))
            .sum()
    };
    for (at, line) in lines.iter().enumerate().filter(|(i, _)| corrected[*i].is_some()) {
        let served = total(&line.proceeds, &|_, l| l.amount);
        let asked = total(&line.proceeds, &|i, l| corrected[i].unwrap_or(l.amount));
        if served != asked {
            return Err(Invalid::Correction {
                line: at,
                why: "the proceeds' ordinary lines must still pay what was served in all",
            }
            .into());
        }
    }
    Ok(corrected)
}

/// R29: what each line pays out now, and what is held back, once the plan's periods allow
/// `payout`: as served, as corrected, or all but the disputed (corrected) lines while a suit runs.
pub fn payments(lines: &[Line], corrected: &[Option<i64>], payout: Payout) -> Vec<(i64, i64)> {
    lines
        .iter()
        .zip(corrected)
        .map(|(line, fix)| match (payout, fix) {
            (Payout::Wait(_), _) => (0, 0),
            (Payout::AsCorrected, Some(fixed)) => (*fixed, 0),
            (Payout::UndisputedOnly, Some(_)) => (0, line.amount),
            _ => (line.amount, 0),
        })
        .collect()
}

/// R28: secured claims in the order they are paid: by registration time, ties by holder and amount
/// (so the order never depends on the input's). A plan's `secured` payments follow this order.
pub fn by_registration(secured: &mut [Secured]) {
    secured.sort_by(|a, b| (a.registered_at, &a.holder, a.amount).cmp(&(b.registered_at, &b.holder, b.amount)));
}

/// Pays up to `want` from what is `left`.
fn take(left: &mut i64, want: i64) -> i64 {
    let paid = want.min(*left);
    *left -= paid;
    paid
}

/// Seizers by rank, then participants; ties by case, so the order never depends on the input's.
fn order(c: &Creditor) -> (bool, u32, &str, i64) {
    (c.rank.is_none(), c.rank.unwrap_or(0), &c.case, c.claim)
}

/// `pool` (less than the claims' total) shared among `creditors` (in [`order`]): the first
/// seizer's pro-rata share raised by `bonus` percent and capped at its claim, the rest pro rata
/// among the others, each by the largest remainder, ties to the better rank.
fn pro_rata(pool: i64, creditors: &[Creditor], bonus: u32) -> Vec<i64> {
    let total: i64 = creditors.iter().map(|c| c.claim).sum();
    let first = creditors.first().filter(|c| bonus > 0 && c.rank.is_some());
    let Some(first) = first else { return largest_remainder(pool, creditors) };
    let raised = i128::from(pool) * i128::from(first.claim) * (100 + i128::from(bonus)) / (i128::from(total) * 100);
    let head = i64::try_from(raised).unwrap_or(i64::MAX).min(first.claim).min(pool);
    let mut shares = vec![head];
    shares.extend(largest_remainder(pool - head, &creditors[1..]));
    shares
}

/// `pool` shared pro rata to the claims, exactly: each its floor, then a unit each to the largest
/// remainders (ties to the earlier in order) until the pool is spent; never above a claim.
fn largest_remainder(pool: i64, creditors: &[Creditor]) -> Vec<i64> {
    let total = i128::from(creditors.iter().map(|c| c.claim).sum::<i64>());
    if total == 0 {
        return vec![0; creditors.len()];
    }
    let pool = i128::from(pool).min(total);
    let exact: Vec<(i128, i128)> =
        creditors.iter().map(|c| (pool * i128::from(c.claim) / total, pool * i128::from(c.claim) % total)).collect();
    let mut shares: Vec<i64> = exact.iter().map(|(q, _)| i64::try_from(*q).unwrap_or(i64::MAX)).collect();
    let spent: i128 = exact.iter().map(|(q, _)| q).sum();
    let mut by_remainder: Vec<usize> = (0..creditors.len()).collect();
    by_remainder.sort_by(|a, b| exact[*b].1.cmp(&exact[*a].1).then(a.cmp(b)));
    for i in by_remainder.into_iter().take(usize::try_from(pool - spent).unwrap_or(0)) {
        shares[i] += 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    use super::*;

    fn creditor(case: &str, rank: Option<u32>, claim: i64) -> Creditor {
        Creditor { case: case.into(), rank, claim }
    }

    fn mortgage(holder: &str, day: u32, amount: i64) -> Secured {
        Secured { holder: holder.into(), registered_at: Utc.with_ymd_and_hms(2020, 1, day, 0, 0, 0).unwrap(), amount }
    }

    #[test]
    fn r28_costs_then_mortgages_by_registration_then_ranks_for_a_company() {
        let creditors = [creditor("C", Some(3), 400), creditor("A", Some(1), 300), creditor("B", Some(2), 300)];
        let secured = [mortgage("bank-late", 9, 200), mortgage("bank-early", 2, 500)];
        let plan = draft((1_500, 100), &secured, &creditors, Sharing::ByRank).unwrap();
        assert_eq!(plan.costs, 100);
        assert_eq!(plan.secured, [("bank-early".into(), 500), ("bank-late".into(), 200)]);
        assert_eq!(plan.ordinary, [("A".into(), 300), ("B".into(), 300), ("C".into(), 100)], "C behind, short");
        assert_eq!((plan.paid(), plan.surplus), (1_500, 0));
        let rich = draft((5_000, 100), &secured, &creditors, Sharing::ByRank).unwrap();
        assert_eq!(rich.surplus, 5_000 - 100 - 700 - 1_000, "the rest is the debtor's");
    }

    #[test]
    fn r28_a_person_pays_pro_rata_with_the_first_seizers_bonus_and_the_last_cent_by_rank() {
        let creditors = [creditor("A", Some(1), 100), creditor("B", Some(2), 100), creditor("P", None, 100)];
        let plan = draft((100, 0), &[], &creditors, Sharing::ProRata { bonus_percent: 0 }).unwrap();
        // 33.33 each: the last cent to the first seizer.
        assert_eq!(plan.ordinary, [("A".into(), 34), ("B".into(), 33), ("P".into(), 33)]);
        let bonus = draft((150, 0), &[], &creditors, Sharing::ProRata { bonus_percent: 20 }).unwrap();
        // A: 50 × 1.2 = 60; B and P share 90.
        assert_eq!(bonus.ordinary, [("A".into(), 60), ("B".into(), 45), ("P".into(), 45)]);
        let capped = draft((280, 0), &[], &creditors, Sharing::ProRata { bonus_percent: 20 }).unwrap();
        assert_eq!(capped.ordinary[0], ("A".into(), 100), "never above its claim");
        assert_eq!(capped.paid(), 280);
    }

    #[test]
    fn r28_negative_amounts_are_refused_naming_them() {
        let refused = draft((-1, 0), &[], &[], Sharing::ByRank).unwrap_err();
        assert!(refused.to_string().contains("proceeds"), "{refused}");
        let refused = draft((10, 0), &[], &[creditor("A", Some(1), -5)], Sharing::ByRank).unwrap_err();
        assert!(refused.to_string().contains("claim of a distribution is -5"), "{refused}");
    }

    #[test]
    fn r28_the_debtor_decides_the_sharing_and_who_may_participate() {
        assert_eq!(sharing(DebtorKind::EnterpriseLegalPerson, 20), Sharing::ByRank);
        assert_eq!(sharing(DebtorKind::NaturalPerson, 20), Sharing::ProRata { bonus_percent: 20 });
        assert_eq!(sharing(DebtorKind::OtherOrganisation, 0), Sharing::ProRata { bonus_percent: 0 });
        assert_eq!(participation(DebtorKind::EnterpriseLegalPerson, None), Err(Refusal::ParticipationByRank.into()));
        assert!(participation(DebtorKind::NaturalPerson, None).is_ok());
        // Paid out at 23:30 on 9 March in Beijing: the refusal names that Beijing day.
        let paid = Utc.with_ymd_and_hms(2027, 3, 9, 15, 30, 0).unwrap();
        let late = participation(DebtorKind::NaturalPerson, Some(("plan-1", paid))).unwrap_err();
        assert_eq!(late, Refusal::PaidOut { distribution: "plan-1".into(), day: "2027-03-09".into() }.into());
    }

    fn line(proceeds: &str, kind: LineKind, claim: i64, amount: i64) -> Line {
        Line { proceeds: proceeds.into(), kind, claim, amount }
    }

    #[test]
    fn r29_an_objection_moves_money_between_creditors_within_what_was_served() {
        let plan = [
            line("p", LineKind::Costs, 10, 10),
            line("p", LineKind::Ordinary, 100, 60),
            line("p", LineKind::Ordinary, 100, 40),
            line("q", LineKind::Ordinary, 50, 50),
        ];
        assert_eq!(corrections(&plan, &[(1, 50), (2, 50)]).unwrap(), [None, Some(50), Some(50), None]);
        let refused = |asked: &[(usize, i64)]| match corrections(&plan, asked) {
            Err(RuleError::Invalid(Invalid::Correction { line, why })) => (line, why),
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(&[(0, 0)]).1, "only an ordinary claim's line is corrected");
        assert_eq!(refused(&[(9, 0)]).1, "the plan has no such line");
        assert_eq!(refused(&[(1, 101)]).1, "a line pays from 0 up to its claim");
        assert_eq!(refused(&[(1, -1)]).1, "a line pays from 0 up to its claim");
        assert_eq!(refused(&[(1, 50), (1, 50)]).1, "is corrected twice");
        // Money is not moved between proceeds: 10 more to q's line is 10 made up.
        assert_eq!(refused(&[(1, 50), (3, 40)]).0, 1);
    }

    #[test]
    fn r29_what_each_line_pays_once_the_periods_allow() {
        let plan = [line("p", LineKind::Ordinary, 100, 60), line("p", LineKind::Ordinary, 100, 40)];
        let fixed = [Some(50), Some(50)];
        let untouched = [None, None];
        let end = Utc.with_ymd_and_hms(2027, 3, 9, 16, 0, 0).unwrap();
        assert_eq!(payments(&plan, &fixed, Payout::Wait(end)), [(0, 0), (0, 0)]);
        assert_eq!(payments(&plan, &fixed, Payout::AsServed), [(60, 0), (40, 0)]);
        assert_eq!(payments(&plan, &fixed, Payout::AsCorrected), [(50, 0), (50, 0)]);
        assert_eq!(payments(&plan, &untouched, Payout::AsCorrected), [(60, 0), (40, 0)]);
        let partly = [Some(20), None];
        assert_eq!(payments(&plan, &partly, Payout::UndisputedOnly), [(0, 60), (40, 0)]);
    }

    fn creditors() -> impl Strategy<Value = Vec<Creditor>> {
        prop::collection::vec((prop::option::of(1u32..20), 0i64..1_000_000), 1..8).prop_map(|v| {
            v.into_iter().enumerate().map(|(i, (rank, claim))| creditor(&format!("case-{i}"), rank, claim)).collect()
        })
    }

    proptest! {
        #[test]
        fn r28_whatever_the_queue_the_plan_pays_what_it_can_and_no_more(
            proceeds in 0i64..3_000_000,
            costs in 0i64..100_000,
            creditors in creditors(),
            bonus in prop_oneof![Just(0u32), 1u32..30],
            by_rank in any::<bool>(),
            turn in any::<prop::sample::Index>(),
        ) {
            let sharing = if by_rank { Sharing::ByRank } else { Sharing::ProRata { bonus_percent: bonus } };
            let plan = draft((proceeds, costs), &[], &creditors, sharing).unwrap();
            let claims: i64 = creditors.iter().map(|c| c.claim).sum();
            let ordinary: i64 = plan.ordinary.iter().map(|(_, a)| a).sum();
            prop_assert_eq!(ordinary, (proceeds - costs).max(0).min(claims), "paid what there is, up to the claims");
            prop_assert_eq!(plan.paid() + plan.surplus, proceeds);
            let claim_of = |case: &str| creditors.iter().find(|c| c.case == case).map_or(0, |c| c.claim);
            for (case, paid) in &plan.ordinary {
                prop_assert!(*paid >= 0 && *paid <= claim_of(case), "{} paid {} of {}", case, paid, claim_of(case));
            }
            if by_rank {
                // Nobody behind is paid while someone ahead is short.
                let short = plan.ordinary.iter().position(|(case, paid)| *paid < claim_of(case));
                if let Some(at) = short {
                    prop_assert!(plan.ordinary[at + 1..].iter().all(|(_, paid)| *paid == 0));
                }
            } else if bonus == 0 && ordinary < claims {
                for (case, paid) in &plan.ordinary {
                    let exact = ordinary as f64 * claim_of(case) as f64 / claims as f64;
                    prop_assert!((*paid as f64 - exact).abs() < 1.0, "{} paid {} against {}", case, paid, exact);
                }
            }
            // The same facts in another order: the same plan.
            let mut turned = creditors.clone();
            let by = turn.index(turned.len());
            turned.rotate_left(by);
            turned.reverse();
            prop_assert_eq!(draft((proceeds, costs), &[], &turned, sharing).unwrap(), plan);
        }
    }
}
