//! Cases and the debtor as a whole in the store: registering a case against
//! its debtors, the series designation that moves a debtor's cases to one
//! court (R23), the debtor's picture (R27) and the seizures holding courts
//! must lift after an acceptance (R25).

use sqlx::{AnyConnection, Row};

use super::{LIVE, Store};
use crate::{
    core::{
        clock::{Time, from_micros},
        identifiers::CaseNumber,
        proto::{self, AssetRef, DebtorStanding, DesignateSeriesResponse, ts},
    },
    ledger::{
        LedgerError,
        command::Reply,
        rules::{self, CaseState, Designation, SeriesCase, Standing},
        views,
    },
};

/// Where a page of the debtor's picture starts: after this case and after this asset, each list
/// until it is done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PicturePage {
    /// The last case shown; empty: from the first.
    pub after_case: String,
    /// The last asset whose seizures were shown; empty: from the first.
    pub after_asset: String,
    /// Every case was shown.
    pub cases_done: bool,
    /// Every asset's seizures were shown.
    pub assets_done: bool,
    /// How many cases, and about how many seizures (an asset's are never split).
    pub size: usize,
}

impl PicturePage {
    /// The first page of `size`.
    pub fn first(size: usize) -> PicturePage {
        PicturePage { size, ..PicturePage::default() }
    }

    /// The token a court passes for the page after this one.
    pub fn token(&self) -> String {
        let done = |d: bool| if d { "1" } else { "0" };
        hex::encode(format!(
            "{}\n{}\n{}{}",
            self.after_case,
            self.after_asset,
            done(self.cases_done),
            done(self.assets_done)
        ))
    }

    /// The page a token names; `None` if it is not one of ours.
    pub fn from_token(token: &str, size: usize) -> Option<PicturePage> {
        let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
        let mut parts = text.split('\n');
        let (after_case, after_asset, done) = (parts.next()?, parts.next()?, parts.next()?);
        let (cases_done, assets_done) = match done {
            "00" => (false, false),
            "01" => (false, true),
            "10" => (true, false),
            "11" => (true, true),
            _ => return None,
        };
        let page = PicturePage {
            after_case: after_case.into(),
            after_asset: after_asset.into(),
            cases_done,
            assets_done,
            size,
        };
        (parts.next().is_none() && page != PicturePage::first(size)).then_some(page)
    }
}

impl Store {
    /// Registers a case against its debtors with its applicant and claim (again: updated).
    pub(super) async fn register(
        &self,
        conn: &mut AnyConnection,
        case: &CaseNumber,
        debtors: &[(String, String)],
        applicant: &str,
        (currency, claim): (&str, i64),
        now: Time,
    ) -> Result<Reply, LedgerError> {
        for (key, masked) in debtors {
            self.register_case(conn, case, (key, masked), now).await?;
        }
        sqlx::query("UPDATE cases SET applicant = $1, claim = $2, currency = $3 WHERE case_number = $4")
            .bind(applicant)
            .bind(claim)
            .bind(currency)
            .bind(case.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(Reply::Case(self.case_record(conn, &case.to_string()).await?))
    }

    /// A registered case as shown, suspended while its (first) debtor is in review or bankrupt.
    pub(super) async fn case_record(&self, conn: &mut AnyConnection, case: &str) -> Result<proto::Case, LedgerError> {
        let key: Option<String> = sqlx::query_scalar(
            "SELECT debtor_key FROM case_debtors WHERE case_number = $1 ORDER BY debtor_key LIMIT 1",
        )
        .bind(case)
        .fetch_optional(&mut *conn)
        .await?;
        let standing = match key {
            Some(key) => self.standing(conn, &key).await?,
            None => Standing::Enforced,
        };
        let row = sqlx::query(&format!("{CASES} WHERE case_number = $1")).bind(case).fetch_one(&mut *conn).await?;
        case_of(&row, &standing)
    }

    /// R23: a superior court designates `d.to_court` for the debtor's cases (`listed`, or every
    /// active enforcement case held elsewhere, preservation cases only `with_preservation`); each
    /// case's designation is received now (R12) and handed over as R13 times it.
    pub(super) async fn designate_series(
        &self,
        conn: &mut AnyConnection,
        (caller, debtor_key): (&str, &str),
        d: &Designation,
        (listed, with_preservation): (&[String], bool),
        now: Time,
    ) -> Result<Reply, LedgerError> {
        let registered = self.debtor_cases(conn, debtor_key).await?;
        let mut cases = Vec::new();
        for (number, state) in &registered {
            let Ok(case) = CaseNumber::parse_acting(number) else { continue };
            let chosen = match listed.is_empty() {
                true => case.case_type != "执保" || with_preservation,
                false => listed.contains(number),
            };
            if !chosen || *state != CaseState::Active || case.court_code == d.to_court {
                continue;
            }
            let w = self.open_case(conn, number, now).await?;
            let ending = Self::ending_measures(&w, number, now);
            let designated = self.designation(conn, number).await?;
            cases.push(SeriesCase { case, ending, designated });
        }
        if let Some(missing) = listed.iter().find(|n| !cases.iter().any(|c| c.case.to_string() == **n)) {
            return Err(LedgerError::NotInSeries(missing.clone()));
        }
        rules::series_designation(caller, &d.to_court, &d.decision, &cases)?;
        let mut designations = Vec::new();
        for c in &cases {
            let (d, received) = self.receive(conn, &c.case, d, now).await?;
            designations.push(views::designation(&c.case.to_string(), &d, received, false, now));
        }
        let message = format!(
            "{} case(s) against the debtor designated to court {} by {}: each court stops executing its case now \
             (R12) and hands it over by {} (TransferCase, R13)",
            cases.len(),
            d.to_court,
            d.decision,
            rules::day(rules::handover_due(d.decided_at) - chrono::Duration::microseconds(1)),
        );
        Ok(Reply::Series(DesignateSeriesResponse { designations, message }))
    }

    /// The debtor's cases and their stored states, by case number.
    async fn debtor_cases(
        &self,
        conn: &mut AnyConnection,
        debtor_key: &str,
    ) -> Result<Vec<(String, CaseState)>, LedgerError> {
        let rows = sqlx::query(
            "SELECT DISTINCT c.case_number, c.state FROM cases c JOIN case_debtors d ON d.case_number = c.case_number \
             WHERE d.debtor_key = $1 ORDER BY c.case_number",
        )
        .bind(debtor_key)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, stored_state(&r.try_get::<String, _>(1)?)?))).collect()
    }

    /// R27: may the court holding `case` read the debtor's picture?
    pub async fn may_read_picture(&self, case: &CaseNumber, debtor_key: &str) -> Result<bool, LedgerError> {
        let mut conn = self.reader().await?;
        let state: Option<String> = sqlx::query_scalar(
            "SELECT c.state FROM cases c JOIN case_debtors d ON d.case_number = c.case_number \
             WHERE c.case_number = $1 AND d.debtor_key = $2",
        )
        .bind(case.to_string())
        .bind(debtor_key)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(rules::may_read_picture(case, state.as_deref().map(stored_state).transpose()?))
    }

    /// One page of the debtor's picture (R27): its standing, the cases against it and the live
    /// seizures on its assets; the first page adds its decisions, open designations and
    /// transfers, and the funds to hand over when it is bankrupt (R25).
    pub async fn picture(
        &self,
        debtor_key: &str,
        page: &PicturePage,
    ) -> Result<(proto::GetDebtorPictureResponse, Option<PicturePage>), LedgerError> {
        let now = self.clock.now();
        let mut tx = self.snapshot().await?;
        let standing = self.standing(&mut tx, debtor_key).await?;
        let limit = i64::try_from(page.size + 1).unwrap_or(i64::MAX);
        let mut cases = Vec::new();
        if !page.cases_done {
            let rows = sqlx::query(&format!(
                "{CASES} WHERE case_number IN (SELECT case_number FROM case_debtors WHERE debtor_key = $1) \
                 AND case_number > $2 ORDER BY case_number LIMIT $3"
            ))
            .bind(debtor_key)
            .bind(&page.after_case)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            cases = rows.iter().map(|r| case_of(r, &standing)).collect::<Result<Vec<_>, _>>()?;
        }
        let cases_done = cases.len() <= page.size;
        cases.truncate(page.size);
        let mut assets: Vec<(String, i64)> = Vec::new();
        if !page.assets_done {
            assets = sqlx::query_as(&format!(
                "SELECT a.asset_key, COUNT(*) FROM assets a JOIN seizures s ON s.asset_key = a.asset_key \
                 WHERE a.debtor_key = $1 AND s.state IN {LIVE} AND a.asset_key > $2 GROUP BY a.asset_key \
                 ORDER BY a.asset_key LIMIT $3"
            ))
            .bind(debtor_key)
            .bind(&page.after_asset)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        }
        // Whole assets, until the page holds `size` seizures.
        let (mut keys, mut counted) = (Vec::new(), 0);
        for (key, n) in &assets {
            if counted >= page.size {
                break;
            }
            keys.push(key.clone());
            counted += usize::try_from(*n).unwrap_or(0);
        }
        let assets_done = keys.len() == assets.len();
        let ledgers = self.settled(&mut tx, &keys).await?;
        let seizures = ledgers.iter().flat_map(|l| l.queue().map(|(_, s)| views::seizure(l, s))).collect();
        let next = (!cases_done || !assets_done).then(|| PicturePage {
            after_case: cases.last().map_or_else(|| page.after_case.clone(), |c| c.case_number.clone()),
            after_asset: keys.last().cloned().unwrap_or_else(|| page.after_asset.clone()),
            cases_done,
            assets_done,
            size: page.size,
        });
        let mut picture = proto::GetDebtorPictureResponse {
            standing: match &standing {
                Standing::Enforced => DebtorStanding::Enforced,
                Standing::InReview(_) => DebtorStanding::InReview,
                Standing::Bankrupt(_) => DebtorStanding::Bankrupt,
            } as i32,
            cases,
            seizures,
            ..Default::default()
        };
        if *page == PicturePage::first(page.size) {
            self.first_page(&mut tx, debtor_key, &standing, &mut picture, now).await?;
        }
        Ok((picture, next))
    }

    /// What only the first page of a picture shows.
    async fn first_page(
        &self,
        conn: &mut AnyConnection,
        debtor_key: &str,
        standing: &Standing,
        picture: &mut proto::GetDebtorPictureResponse,
        now: Time,
    ) -> Result<(), LedgerError> {
        picture.debtor = sqlx::query_scalar("SELECT debtor FROM case_debtors WHERE debtor_key = $1 LIMIT 1")
            .bind(debtor_key)
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or_default();
        let rows = sqlx::query(
            "SELECT decision_reference, court, case_number, grounds, decided_at FROM debtor_decisions \
             WHERE debtor_key = $1 ORDER BY recorded_at",
        )
        .bind(debtor_key)
        .fetch_all(&mut *conn)
        .await?;
        for r in &rows {
            let d = super::debtors::decision_of(r, 0)?;
            picture.decisions.push(proto::BankruptcyDecision {
                decision_reference: d.reference,
                court_code: d.court,
                case_number: d.case_number,
                grounds: d.grounds,
                decided_at: Some(ts(d.at)),
            });
        }
        let mine: std::collections::HashSet<String> =
            self.debtor_cases(conn, debtor_key).await?.into_iter().map(|(c, _)| c).collect();
        let open = self.transfers_in(conn, now).await?;
        picture.designations = open.designations.into_iter().filter(|d| mine.contains(&d.case_number)).collect();
        picture.transfers = open
            .transfers
            .into_iter()
            .filter(|t| mine.contains(&t.from_case) && t.state == proto::TransferState::HandedOver as i32)
            .collect();
        if let Standing::Bankrupt(accepted) = standing {
            picture.funds_to_hand_over = self.funds_to_hand_over(conn, debtor_key, accepted.at).await?;
        }
        Ok(())
    }

    /// R25: what was deducted from the debtor's accounts and not paid out by a distribution (R28),
    /// to hand to the bankruptcy court within 7 days of `accepted`.
    async fn funds_to_hand_over(
        &self,
        conn: &mut AnyConnection,
        debtor_key: &str,
        accepted: Time,
    ) -> Result<Vec<proto::FundsToHandOver>, LedgerError> {
        let rows = sqlx::query(
            "SELECT p.seizure_id, p.court, p.case_number, a.kind, a.asset_id, a.registry, p.amount, p.received_at \
             FROM proceeds p JOIN assets a ON a.asset_key = p.asset_key WHERE a.debtor_key = $1 \
             AND p.kind = 'deduction' AND p.distribution_id IS NULL ORDER BY p.received_at, p.proceeds_id",
        )
        .bind(debtor_key)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(proto::FundsToHandOver {
                    seizure_id: r.try_get(0)?,
                    court_code: r.try_get(1)?,
                    case_number: r.try_get(2)?,
                    asset: Some(AssetRef {
                        kind: super::rows::kind_of(r.try_get(3)?)? as i32,
                        asset_id: r.try_get(4)?,
                        registry: r.try_get(5)?,
                    }),
                    amount: r.try_get(6)?,
                    deducted_at: Some(ts(from_micros(r.try_get(7)?))),
                    due: Some(ts(rules::lift_due(accepted))),
                })
            })
            .collect()
    }

    /// R25: live seizures on bankrupt debtors' assets, with the acceptance and its lift date,
    /// overdue as of `as_of`; those held by `court`, or every court's when `court` is `None`.
    pub async fn bankruptcy_lifts(
        &self,
        court: Option<&str>,
        as_of: Time,
    ) -> Result<Vec<proto::BankruptcyLift>, LedgerError> {
        let mut tx = self.snapshot().await?;
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT s.asset_key, s.seizure_id, d.decision_reference, d.decided_at FROM seizures s \
             JOIN assets a ON a.asset_key = s.asset_key JOIN debtor_standing st ON st.debtor_key = a.debtor_key \
             JOIN debtor_decisions d ON d.id = st.decision \
             WHERE st.standing = 'bankrupt' AND s.state IN {LIVE} AND ($1 = '' OR s.court = $1) ORDER BY d.decided_at"
        ))
        .bind(court.unwrap_or_default())
        .fetch_all(&mut *tx)
        .await?;
        let keys: Vec<String> = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
        let ledgers = self.settled(&mut tx, &keys).await?;
        let mut lifts = Vec::new();
        for r in &rows {
            let (key, id): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let found = ledgers.iter().filter(|l| crate::ledger::asset_key(l.asset.kind, &l.asset.asset_id) == key);
            // A seizure that lapsed since it was written is lifted already.
            let Some((l, s)) = found.flat_map(|l| l.queue().map(move |(_, s)| (l, s))).find(|(_, s)| s.id == id) else {
                continue;
            };
            let due = rules::lift_due(from_micros(r.try_get(3)?));
            lifts.push(proto::BankruptcyLift {
                seizure: Some(views::seizure(l, s)),
                decision_reference: r.try_get(2)?,
                due: Some(ts(due)),
                overdue: as_of >= due,
            });
        }
        Ok(lifts)
    }
}

/// The columns [`case_of`] reads.
const CASES: &str = "SELECT case_number, court, state, applicant, claim, currency, registered_at FROM cases";

/// A case as shown, its state as the debtor's standing makes it.
fn case_of(row: &sqlx::any::AnyRow, standing: &Standing) -> Result<proto::Case, LedgerError> {
    let number: String = row.try_get(0)?;
    let state = stored_state(&row.try_get::<String, _>(2)?)?;
    let shown = match CaseNumber::parse(&number) {
        Ok(case) => rules::shown_state(state, &case, standing),
        Err(_) => return Err(LedgerError::Corrupt(format!("case number `{number}`"))),
    };
    Ok(proto::Case {
        case_number: number,
        court_code: row.try_get(1)?,
        state: shown as i32,
        applicant: row.try_get(3)?,
        claim_amount: row.try_get(4)?,
        currency: row.try_get(5)?,
        registered_at: Some(ts(from_micros(row.try_get(6)?))),
    })
}

/// A case's state as stored.
pub(super) fn stored_state(s: &str) -> Result<CaseState, LedgerError> {
    CaseState::parse(s).ok_or_else(|| LedgerError::Corrupt(format!("case state `{s}`")))
}
