//! The jobs' rows. Every change is one transaction; settling a leg locks its
//! job's row first, so the legs of one search get gap-free sequence numbers
//! in the order they settled, whichever replica settled them.

use std::time::Duration;

use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{Jobs, LegRow, LegState, NewJob, Opened};
use crate::{
    core::{
        clock::{Time, from_micros},
        identifiers::DebtorId,
        proto::{AssetKind, Debtor, debtor},
    },
    ledger::{LedgerError, store::Backend},
};

/// A stored search as a court reads it (who owns it is its [`Head`]).
#[derive(Debug, Clone)]
pub struct JobView {
    /// Its id.
    pub search_id: String,
    /// The debtors, their identifiers masked, in query order.
    pub debtors: Vec<Debtor>,
    /// When it was submitted.
    pub submitted_at: Time,
    /// When its last leg settled.
    pub settled_at: Option<Time>,
    /// Every leg.
    pub legs: Vec<LegRow>,
    /// For a re-search, the identities of what it found new to its case (R30).
    pub new_to_case: Vec<String>,
}

/// A stored search's owner and shape, without its legs.
#[derive(Debug, Clone)]
pub struct Head {
    /// The court that owns it.
    pub court: String,
    /// The case.
    pub case_number: String,
    /// The asked asset kinds (empty: all).
    pub kinds: Vec<AssetKind>,
    /// How many legs it has.
    pub legs: i64,
}

/// One search in a court's list.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Its id.
    pub search_id: String,
    /// The case.
    pub case_number: String,
    /// The debtors, masked.
    pub debtors: Vec<String>,
    /// When it was submitted.
    pub submitted_at: Time,
    /// When it settled.
    pub settled_at: Option<Time>,
    /// Legs still pending.
    pub pending: u32,
    /// Legs settled.
    pub settled: u32,
}

/// One leg to record: its search, where it stands now, and failed asks since its last answer or ticket.
pub type Update = (String, LegRow, i64);

/// A leg this replica has claimed to ask again.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The search.
    pub search_id: String,
    /// Its court.
    pub court: String,
    /// Its case.
    pub case_number: String,
    /// The debtor, unsealed; `None` if its seal cannot be opened.
    pub debtor: Option<Debtor>,
    /// The leg as it stands.
    pub row: LegRow,
    /// Failed asks since the last answer or ticket.
    pub attempts: i64,
    /// A re-search's leg: asked within the registry's rate, after the courts' searches.
    pub scheduled: bool,
}

const LEG_COLUMNS: &str = "debtor_idx, registry, kind, state, ticket, next_ask, answer_by, status, message, answer, settled_at, seq, stated_by";

/// [`LEG_COLUMNS`] of the table aliased `l`, for a join.
fn leg_columns_of_l() -> String {
    LEG_COLUMNS.split(", ").map(|c| format!("l.{c}")).collect::<Vec<_>>().join(", ")
}

fn micros(t: Time) -> i64 {
    t.timestamp_micros()
}

fn leg(row: &AnyRow) -> Result<LegRow, LedgerError> {
    let state: String = row.try_get(3)?;
    let corrupt = |what: &str| LedgerError::Corrupt(format!("search leg: {what}"));
    Ok(LegRow {
        debtor_index: usize::try_from(row.try_get::<i64, _>(0)?).map_err(|_| corrupt("debtor index"))?,
        registry: row.try_get(1)?,
        kind: i32::try_from(row.try_get::<i64, _>(2)?).map_err(|_| corrupt("kind"))?,
        state: LegState::parse(&state).ok_or_else(|| corrupt(&format!("state {state}")))?,
        ticket: row.try_get(4)?,
        next_ask: from_micros(row.try_get(5)?),
        answer_by: row.try_get::<Option<i64>, _>(6)?.map(from_micros),
        status: i32::try_from(row.try_get::<i64, _>(7)?).map_err(|_| corrupt("status"))?,
        message: row.try_get(8)?,
        answer: row
            .try_get::<Option<String>, _>(9)?
            .map(|h| hex::decode(h).map_err(|_| corrupt("answer is not hex")))
            .transpose()?,
        seq: row.try_get(11)?,
        stated_by: row.try_get::<Option<i64>, _>(12)?.map(from_micros),
    })
}

fn kinds_text(kinds: &[AssetKind]) -> String {
    kinds.iter().map(|k| (*k as i32).to_string()).collect::<Vec<_>>().join(",")
}

fn kinds_of(text: &str) -> Vec<AssetKind> {
    text.split(',').filter_map(|k| k.parse::<i32>().ok()).filter_map(|k| AssetKind::try_from(k).ok()).collect()
}

impl Jobs {
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, LedgerError> {
        // SQLite: take the write lock up front; a deferred transaction that read first could not upgrade.
        let begin = if self.store.backend() == Backend::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" };
        Ok(self.store.pool().begin_with(begin).await?)
    }

    /// Stores a new search with its legs, in one transaction. A court's
    /// request id opens one search: the same id with the same query returns
    /// it, with another query is refused.
    pub async fn open(&self, job: &NewJob) -> Result<Opened, LedgerError> {
        let mut tx = self.begin().await?;
        if !job.request_id.is_empty() {
            let earlier = sqlx::query("SELECT search_id, digest FROM search_jobs WHERE court = $1 AND request_id = $2")
                .bind(&job.court)
                .bind(&job.request_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = earlier {
                let (id, digest): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                if digest != job.digest {
                    return Err(LedgerError::SearchReused(job.request_id.clone()));
                }
                return Ok(Opened::Replayed(id));
            }
        }
        let settled = job.legs.iter().all(|l| l.state.settled());
        let now = micros(job.now);
        let done: i64 = job.legs.iter().filter(|l| l.state.settled()).count().try_into().unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO search_jobs (search_id, court, request_id, digest, case_number, kinds, submitted_at, \
             settled_at, last_seq, research_round) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&job.search_id)
        .bind(&job.court)
        .bind(&job.request_id)
        .bind(&job.digest)
        .bind(&job.case_number)
        .bind(kinds_text(&job.kinds))
        .bind(now)
        .bind(settled.then_some(now))
        .bind(done)
        .bind(job.research_round)
        .execute(&mut *tx)
        .await?;
        for (i, (id, debtor)) in job.debtors.iter().enumerate() {
            // Sealed only while a registry may have to be asked again.
            let sealed = (!settled).then(|| self.sealed(&job.search_id, i, debtor)).flatten();
            sqlx::query(
                "INSERT INTO search_debtors (search_id, idx, masked, organisation, debtor_key, sealed) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&job.search_id)
            .bind(i64::try_from(i).unwrap_or(i64::MAX))
            .bind(id.masked().to_string())
            .bind(i64::from(matches!(id, DebtorId::Organisation(_))))
            .bind(self.key.debtor(id))
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
        }
        let mut seq = 0;
        for l in &job.legs {
            let seq = l.state.settled().then(|| {
                seq += 1;
                seq
            });
            insert_leg(&mut tx, &job.search_id, l, seq, now).await?;
        }
        // A re-search answered wholly by its shared fan-out settles as it opens (R30).
        if settled && job.research_round.is_some() {
            let whose = (job.court.clone(), job.case_number.clone());
            self.announce_settled(&mut tx, &job.search_id, whose, job.research_round).await?;
        }
        tx.commit().await?;
        if settled && job.research_round.is_some() {
            self.store.numbered().await;
        }
        if done > 0 {
            let _ = self.changed.send(job.search_id.as_str().into());
        }
        Ok(Opened::New(job.search_id.clone()))
    }

    /// Records legs of `search_id` that settled or got a (new) ticket, and
    /// settles the search when none is left open. A leg another replica
    /// settled meanwhile is left as it is. Returns whether the search settled.
    pub async fn record(&self, search_id: &str, legs: &[LegRow], attempts: i64) -> Result<bool, LedgerError> {
        let updates: Vec<Update> = legs.iter().map(|l| (search_id.to_string(), l.clone(), attempts)).collect();
        Ok(self.record_all(updates).await? > 0)
    }

    /// [`Jobs::record`] for the legs of many searches, in one transaction
    /// (searches locked in id order, so two replicas never wait on each
    /// other in a circle). Returns how many searches it settled.
    pub async fn record_all(&self, mut updates: Vec<Update>) -> Result<usize, LedgerError> {
        updates.sort_by(|a, b| a.0.cmp(&b.0));
        let now = micros(self.now());
        let mut tx = self.begin().await?;
        let (mut changed, mut settled) = (Vec::new(), 0);
        for group in updates.chunk_by(|a, b| a.0 == b.0) {
            let search_id = group[0].0.as_str();
            let (n, settles) = self.record_one(&mut tx, search_id, group, now).await?;
            if n > 0 {
                changed.push(search_id);
            }
            settled += usize::from(settles);
        }
        tx.commit().await?;
        for search_id in changed {
            // Nobody may be watching: a send without receivers is fine.
            let _ = self.changed.send(search_id.into());
        }
        if settled > 0 {
            self.store.numbered().await;
        }
        Ok(settled)
    }

    /// One search's part of [`Jobs::record_all`]: how many legs it numbered, and whether it settled.
    async fn record_one(
        &self,
        tx: &mut AnyConnection,
        search_id: &str,
        updates: &[Update],
        now: i64,
    ) -> Result<(usize, bool), LedgerError> {
        // Lock the job's row: its legs are numbered one at a time.
        let job = sqlx::query(
            "UPDATE search_jobs SET last_seq = last_seq WHERE search_id = $1 \
             RETURNING last_seq, court, case_number, research_round",
        )
        .bind(search_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(job) = job else { return Ok((0, false)) };
        let (mut last, court, case_number): (i64, String, String) = (job.try_get(0)?, job.try_get(1)?, job.try_get(2)?);
        let research_round: Option<i64> = job.try_get(3)?;
        let mut numbered = 0;
        for (_, l, attempts) in updates {
            let seq = l.state.settled().then_some(last + 1);
            let update = sqlx::query(
                "UPDATE search_legs SET state = $4, ticket = $5, next_ask = $6, answer_by = $7, status = $8, \
                 message = $9, answer = $10, settled_at = $11, seq = $12, stated_by = $13, lease_until = 0, claim = NULL, \
                 attempts = $14 \
                 WHERE search_id = $1 AND debtor_idx = $2 AND registry = $3 AND state IN ('asking', 'pending')",
            )
            .bind(search_id)
            .bind(i64::try_from(l.debtor_index).unwrap_or(i64::MAX))
            .bind(&l.registry);
            let changed = bind_state(update, l, now, seq).bind(*attempts).execute(&mut *tx).await?.rows_affected();
            if changed == 1 && seq.is_some() {
                last += 1;
                numbered += 1;
            }
        }
        if numbered == 0 {
            return Ok((0, false));
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM search_legs WHERE search_id = $1 AND state IN ('asking', 'pending')",
        )
        .bind(search_id)
        .fetch_one(&mut *tx)
        .await?;
        let settles = open == 0;
        sqlx::query(
            "UPDATE search_jobs SET last_seq = $2, settled_at = CASE WHEN $3 = 1 THEN $4 ELSE settled_at END \
             WHERE search_id = $1",
        )
        .bind(search_id)
        .bind(last)
        .bind(i64::from(settles))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if settles {
            sqlx::query("UPDATE search_debtors SET sealed = NULL WHERE search_id = $1")
                .bind(search_id)
                .execute(&mut *tx)
                .await?;
            self.announce_settled(tx, search_id, (court, case_number), research_round).await?;
        }
        Ok((numbered, settles))
    }

    /// Tells the court its search settled, with how its legs ended; for a re-search (R30), also what
    /// it found that is new to the case.
    async fn announce_settled(
        &self,
        tx: &mut AnyConnection,
        search_id: &str,
        (court, case_number): (String, String),
        research_round: Option<i64>,
    ) -> Result<(), LedgerError> {
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM search_legs WHERE search_id = $1 GROUP BY state ORDER BY state",
        )
        .bind(search_id)
        .fetch_all(&mut *tx)
        .await?;
        let counts: Vec<String> = counts.iter().map(|(state, n)| format!("{n} {state}")).collect();
        let message = format!("search {search_id} settled: {}", counts.join(", "));
        let holder = [(court, case_number.clone())];
        self.store.queue_events(&mut *tx, "search_settled", search_id, &holder, &message).await?;
        if let Some(round) = research_round {
            let message = self.compare_research(&mut *tx, search_id, (&case_number, round)).await?;
            self.store.queue_events(&mut *tx, "research_found", search_id, &holder, &message).await?;
        }
        Ok(())
    }

    /// Claims up to `limit` legs that are due (a pending ticket at its next
    /// ask, or a call whose holder's lease ran out) for `lease`: one write
    /// marks them with a fresh claim, one read fetches them.
    pub async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<Claimed>, LedgerError> {
        let now = micros(self.now());
        let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let due = |now: &str| format!("state IN ('asking', 'pending') AND next_ask <= {now} AND lease_until < {now}");
        let mut conn = self.store.pool().acquire().await?;
        // Look first: an idle poll is a read, not a write (on SQLite it would queue behind the ledger's writer).
        let any = sqlx::query(&format!("SELECT 1 FROM search_legs WHERE {} LIMIT 1", due("$1")))
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        // PostgreSQL: replicas skip rows another is claiming rather than wait for them.
        let skip = if self.store.backend() == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let token = uuid::Uuid::new_v4().to_string();
        sqlx::query(&format!(
            "UPDATE search_legs SET lease_until = $1, claim = $4 WHERE {due} AND (search_id, debtor_idx, registry) IN \
             (SELECT search_id, debtor_idx, registry FROM search_legs WHERE {due} ORDER BY next_ask LIMIT $3{skip})",
            due = due("$2")
        ))
        .bind(until)
        .bind(now)
        .bind(limit)
        .bind(&token)
        .execute(&mut *conn)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {}, j.court, j.case_number, d.sealed, l.search_id, l.attempts, j.research_round FROM search_legs l \
             JOIN search_jobs j ON j.search_id = l.search_id \
             JOIN search_debtors d ON d.search_id = l.search_id AND d.idx = l.debtor_idx \
             WHERE l.claim = $1 AND l.lease_until = $2",
            leg_columns_of_l()
        ))
        .bind(&token)
        .bind(until)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        // The joined columns follow the leg's.
        let at = LEG_COLUMNS.split(", ").count();
        for row in rows {
            let leg = leg(&row)?;
            let id: String = row.try_get(at + 3)?;
            let sealed: Option<String> = row.try_get(at + 2)?;
            out.push(Claimed {
                debtor: sealed.and_then(|s| self.unsealed(&id, leg.debtor_index, &s)),
                court: row.try_get(at)?,
                case_number: row.try_get(at + 1)?,
                attempts: row.try_get(at + 4)?,
                scheduled: row.try_get::<Option<i64>, _>(at + 5)?.is_some(),
                row: leg,
                search_id: id,
            });
        }
        Ok(out)
    }

    /// Who owns search `search_id` and its shape, if it exists: one small read.
    pub async fn head(&self, search_id: &str) -> Result<Option<Head>, LedgerError> {
        let row = sqlx::query(
            "SELECT court, case_number, kinds, (SELECT COUNT(*) FROM search_legs l WHERE l.search_id = j.search_id) \
             FROM search_jobs j WHERE search_id = $1",
        )
        .bind(search_id)
        .fetch_optional(self.store.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Head {
            court: row.try_get(0)?,
            case_number: row.try_get(1)?,
            kinds: kinds_of(&row.try_get::<String, _>(2)?),
            legs: row.try_get(3)?,
        }))
    }

    /// The search `search_id` with every leg, if it exists.
    pub async fn view(&self, search_id: &str) -> Result<Option<JobView>, LedgerError> {
        let mut conn = self.store.pool().acquire().await?;
        let job = sqlx::query("SELECT submitted_at, settled_at FROM search_jobs WHERE search_id = $1")
            .bind(search_id)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(job) = job else { return Ok(None) };
        let rows = sqlx::query("SELECT masked, organisation FROM search_debtors WHERE search_id = $1 ORDER BY idx")
            .bind(search_id)
            .fetch_all(&mut *conn)
            .await?;
        let mut debtors = Vec::with_capacity(rows.len());
        for r in rows {
            let masked: String = r.try_get(0)?;
            let id = match r.try_get::<i64, _>(1)? {
                0 => debtor::Id::ResidentId(masked),
                _ => debtor::Id::CreditCode(masked),
            };
            debtors.push(Debtor { id: Some(id), ..Debtor::default() });
        }
        let legs = self.legs(&mut conn, search_id, -1).await?;
        let new_to_case = sqlx::query_scalar("SELECT asset FROM research_new WHERE search_id = $1")
            .bind(search_id)
            .fetch_all(&mut *conn)
            .await?;
        Ok(Some(JobView {
            search_id: search_id.to_string(),
            debtors,
            submitted_at: from_micros(job.try_get(0)?),
            settled_at: job.try_get::<Option<i64>, _>(1)?.map(from_micros),
            legs,
            new_to_case,
        }))
    }

    /// The legs of `search_id` that settled after sequence `after`, in order (`after` −1: every leg).
    pub async fn settled_after(&self, search_id: &str, after: i64) -> Result<Vec<LegRow>, LedgerError> {
        let mut conn = self.store.pool().acquire().await?;
        self.legs(&mut conn, search_id, after).await
    }

    async fn legs(&self, conn: &mut AnyConnection, search_id: &str, after: i64) -> Result<Vec<LegRow>, LedgerError> {
        // Unsettled legs have no sequence number: `after` −1 takes them too.
        let filter = if after < 0 { "$2 < 0" } else { "seq > $2" };
        let sql =
            format!("SELECT {LEG_COLUMNS} FROM search_legs WHERE search_id = $1 AND {filter} ORDER BY seq, registry");
        let rows = sqlx::query(&sql).bind(search_id).bind(after).fetch_all(&mut *conn).await?;
        rows.iter().map(leg).collect()
    }

    /// `court`'s searches, newest first.
    pub async fn list(&self, court: &str, open_only: bool, limit: usize) -> Result<Vec<Summary>, LedgerError> {
        let open = if open_only { "AND j.settled_at IS NULL" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT j.search_id, j.case_number, j.submitted_at, j.settled_at, \
             (SELECT COUNT(*) FROM search_legs l WHERE l.search_id = j.search_id AND l.state IN ('asking', 'pending')), \
             (SELECT COUNT(*) FROM search_legs l WHERE l.search_id = j.search_id) \
             FROM search_jobs j WHERE j.court = $1 {open} ORDER BY j.submitted_at DESC, j.search_id LIMIT $2"
        ))
        .bind(court)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.store.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let search_id: String = r.try_get(0)?;
            let debtors = sqlx::query_scalar("SELECT masked FROM search_debtors WHERE search_id = $1 ORDER BY idx")
                .bind(&search_id)
                .fetch_all(self.store.pool())
                .await?;
            let (pending, all): (i64, i64) = (r.try_get(4)?, r.try_get(5)?);
            out.push(Summary {
                search_id,
                case_number: r.try_get(1)?,
                debtors,
                submitted_at: from_micros(r.try_get(2)?),
                settled_at: r.try_get::<Option<i64>, _>(3)?.map(from_micros),
                pending: u32::try_from(pending).unwrap_or(u32::MAX),
                settled: u32::try_from(all - pending).unwrap_or(u32::MAX),
            });
        }
        Ok(out)
    }

    /// Per registry, the late answers owed now and how many of them are owed by `soon` (their window ends).
    pub async fn owed(&self, soon: Time) -> Result<Vec<(String, i64, i64)>, LedgerError> {
        let rows = sqlx::query(
            "SELECT registry, COUNT(*), SUM(CASE WHEN answer_by < $1 THEN 1 ELSE 0 END) FROM search_legs \
             WHERE state = $2 GROUP BY registry",
        )
        .bind(micros(soon))
        .bind(LegState::Pending.as_str())
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<Option<i64>, _>(2)?.unwrap_or(0)))).collect()
    }

    /// Deletes searches settled before `before`; their legs and debtors go with them (foreign keys).
    pub async fn purge(&self, before: Time) -> Result<u64, LedgerError> {
        let deleted = sqlx::query("DELETE FROM search_jobs WHERE settled_at < $1")
            .bind(micros(before))
            .execute(self.store.pool())
            .await?;
        Ok(deleted.rows_affected())
    }
}

/// Binds where a leg stands (state … stated_by, in [`LEG_COLUMNS`] order) after the query's first parameters.
fn bind_state<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    l: &'q LegRow,
    settled_at: i64,
    seq: Option<i64>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(l.state.as_str())
        .bind(&l.ticket)
        .bind(micros(l.next_ask))
        .bind(l.answer_by.map(micros))
        .bind(i64::from(l.status))
        .bind(&l.message)
        .bind(l.answer.as_ref().map(hex::encode))
        .bind(l.state.settled().then_some(settled_at))
        .bind(seq)
        .bind(l.stated_by.map(micros))
}

async fn insert_leg(
    conn: &mut AnyConnection,
    search_id: &str,
    l: &LegRow,
    seq: Option<i64>,
    now: i64,
) -> Result<(), LedgerError> {
    let sql = format!(
        "INSERT INTO search_legs (search_id, {LEG_COLUMNS}, lease_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    let insert = sqlx::query(&sql)
        .bind(search_id)
        .bind(i64::try_from(l.debtor_index).unwrap_or(i64::MAX))
        .bind(&l.registry)
        .bind(i64::from(l.kind));
    bind_state(insert, l, now, seq)
        // A call under way is this replica's until its lease (next_ask) ends.
        .bind(if l.state == LegState::Asking { micros(l.next_ask) } else { 0 })
        .execute(&mut *conn)
        .await?;
    Ok(())
}
