//! Ids for what a step writes, and the numbering of events.
//!
//! A step writes its events to `event_queue` under ids taken in the order of
//! its writes ([`Store::next_ids`]): two steps on one asset run one after the
//! other (its row lock), so the later one's ids are larger. Numbering
//! ([`Store::number_events`]) is a short step of its own that holds the
//! 'events' counter row, moves the queued events into `events` with the next
//! numbers in id order, and commits: numbers are gap-free and appear in
//! order, so a watcher that has read event N never later finds an N−1 it
//! missed.
//!
//! On SQLite the writer numbers each batch before it commits. On PostgreSQL a
//! step commits first and then waits for this replica's numberer, which
//! numbers what every committed step (any replica's) has queued in one pass
//! for all the steps that asked meanwhile; it also passes once a second, for
//! what a replica that died between its commit and its numbering left behind.

use std::time::Duration;

use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{
    Backend, Store,
    rows::{Bind, EVENTS, insert_many},
};
use crate::{core::batch, ledger::LedgerError};

/// Most events one numbering statement moves.
const PASS: usize = 500;

/// How often the numberer passes with nobody asking.
const IDLE_PASS: Duration = Duration::from_secs(1);

/// A committed step waiting for its events to be numbered.
pub(super) type Waiter = oneshot::Sender<()>;

/// An event of no seizure, about to be queued: its kind, subject (a search, a decision, a plan or
/// proceeds), the court and case it goes to, and what happened.
pub(super) struct Note<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    pub court: &'a str,
    pub case: &'a str,
    pub message: &'a str,
}

/// One queued event as the numbering pass moves it.
struct Queued {
    id: i64,
    at: i64,
    kind: String,
    seizure_id: String,
    asset_key: String,
    court: String,
    case_number: String,
    message: String,
}

impl Store {
    /// `n` fresh ids, increasing: PostgreSQL's sequence, which no commit
    /// waits on; on SQLite the one writer's counter.
    pub(super) async fn next_ids(&self, conn: &mut AnyConnection, n: usize) -> Result<Vec<i64>, LedgerError> {
        let n = i64::try_from(n).map_err(|_| LedgerError::TooManyEvents)?;
        if self.backend == Backend::Postgres {
            let rows = sqlx::query("SELECT nextval('ledger_ids') FROM generate_series(1, $1) ORDER BY 1")
                .bind(n)
                .fetch_all(&mut *conn)
                .await?;
            return rows.iter().map(|r| r.try_get(0).map_err(LedgerError::from)).collect();
        }
        let last: i64 = sqlx::query("UPDATE counters SET value = value + $1 WHERE name = 'seq' RETURNING value")
            .bind(n)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok((last - n + 1..=last).collect())
    }

    /// Numbers every event queued and committed so far, in id order, within
    /// the caller's transaction; returns how many. The counter row is locked
    /// first, so two passes never number one event twice.
    pub(super) async fn number_events(&self, conn: &mut AnyConnection) -> Result<usize, LedgerError> {
        // Most passes find nothing; they need not lock anything to see it.
        if sqlx::query("SELECT id FROM event_queue LIMIT 1").fetch_optional(&mut *conn).await?.is_none() {
            return Ok(0);
        }
        let mut numbered = 0;
        let mut last: i64 =
            sqlx::query(&format!("SELECT value FROM counters WHERE name = 'events'{}", self.lock_suffix(true)))
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
        loop {
            let rows = sqlx::query(
                "SELECT id, at, kind, seizure_id, asset_key, court, case_number, message FROM event_queue \
                 ORDER BY id LIMIT $1",
            )
            .bind(PASS as i64)
            .fetch_all(&mut *conn)
            .await?;
            if rows.is_empty() {
                break;
            }
            let queued = rows
                .iter()
                .map(|r| {
                    Ok(Queued {
                        id: r.try_get(0)?,
                        at: r.try_get(1)?,
                        kind: r.try_get(2)?,
                        seizure_id: r.try_get(3)?,
                        asset_key: r.try_get(4)?,
                        court: r.try_get(5)?,
                        case_number: r.try_get(6)?,
                        message: r.try_get(7)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let values = (0..queued.len())
                .map(|i| {
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        8 * i + 1,
                        8 * i + 2,
                        8 * i + 3,
                        8 * i + 4,
                        8 * i + 5,
                        8 * i + 6,
                        8 * i + 7,
                        8 * i + 8
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO events (seq, at, kind, seizure_id, asset_key, court, case_number, message) VALUES {values}"
            );
            let mut insert = sqlx::query(&sql);
            for (i, e) in queued.iter().enumerate() {
                insert = insert
                    .bind(last + 1 + i as i64)
                    .bind(e.at)
                    .bind(e.kind.clone())
                    .bind(e.seizure_id.clone())
                    .bind(e.asset_key.clone())
                    .bind(e.court.clone())
                    .bind(e.case_number.clone())
                    .bind(e.message.clone());
            }
            insert.execute(&mut *conn).await?;
            // Exactly the rows read: on PostgreSQL an event with a smaller id may commit meanwhile.
            let ids = (1..=queued.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("DELETE FROM event_queue WHERE id IN ({ids})");
            let mut delete = sqlx::query(&sql);
            for e in &queued {
                delete = delete.bind(e.id);
            }
            delete.execute(&mut *conn).await?;
            last += queued.len() as i64;
            numbered += queued.len();
            if queued.len() < PASS {
                break;
            }
        }
        if numbered > 0 {
            sqlx::query("UPDATE counters SET value = $1 WHERE name = 'events'").bind(last).execute(&mut *conn).await?;
            if self.backend == Backend::Postgres {
                // The events are readable once this commits: every replica's read model hears of it then.
                sqlx::query("SELECT pg_notify($1, '')").bind(super::CHANNEL).execute(&mut *conn).await?;
            }
        }
        Ok(numbered)
    }

    /// PostgreSQL's numberer: one pass for every step that asked while the
    /// last pass ran, and one a second regardless.
    pub(super) async fn numberer(self, mut asks: mpsc::Receiver<Waiter>) {
        // Its own connection, so that a pass never queues behind the steps for the pool.
        let mut conn: Option<AnyConnection> = None;
        loop {
            let waiters = match tokio::time::timeout(IDLE_PASS, batch::next(&mut asks)).await {
                Ok(Some(waiters)) => waiters,
                Ok(None) => return,
                Err(_) => Vec::new(),
            };
            match self.numbering_pass(&mut conn).await {
                Ok(n) if n > 0 => self.committed.notify_waiters(),
                Ok(_) => {}
                // The steps are committed; their events stay queued for the next pass, on a new connection.
                Err(e) => {
                    tracing::warn!(error = %e, "numbering events failed; the next pass retries");
                    conn = None;
                }
            }
            for w in waiters {
                let _ = w.send(());
            }
        }
    }

    async fn numbering_pass(&self, conn: &mut Option<AnyConnection>) -> Result<usize, LedgerError> {
        let conn = match conn {
            Some(c) => c,
            None => conn.insert(self.pool.acquire().await?.detach()),
        };
        let mut tx = sqlx::Connection::begin(conn).await?;
        let n = self.number_events(&mut tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Queues an event of no seizure for each of `courts` (court, case) in the caller's
    /// transaction: a court's search settled (`subject` is the search's id) or a decision on a
    /// debtor (`subject` is its reference). On SQLite they are numbered in that transaction too
    /// (the writer numbers only its own batches); on PostgreSQL, call [`Store::numbered`] after
    /// the commit.
    pub async fn queue_events(
        &self,
        conn: &mut AnyConnection,
        kind: &str,
        subject: &str,
        courts: &[(String, String)],
        message: &str,
    ) -> Result<(), LedgerError> {
        let events: Vec<Note<'_>> =
            courts.iter().map(|(court, case)| Note { kind, subject, court, case, message }).collect();
        self.queue_notes(conn, &events).await
    }

    /// Queues events of no seizure, each its own (see [`Store::queue_events`]), numbered as they are.
    pub(super) async fn queue_notes(&self, conn: &mut AnyConnection, events: &[Note<'_>]) -> Result<(), LedgerError> {
        let ids = self.next_ids(conn, events.len()).await?;
        let at = self.clock.micros();
        let rows: Vec<Vec<Bind>> = events
            .iter()
            .zip(ids)
            .map(|(e, id)| {
                vec![
                    Bind::Int(id),
                    Bind::Int(at),
                    Bind::Text(e.kind.into()),
                    Bind::Text(e.subject.into()),
                    Bind::Text(String::new()),
                    Bind::Text(e.court.into()),
                    Bind::Text(e.case.into()),
                    Bind::Text(e.message.into()),
                ]
            })
            .collect();
        insert_many(conn, EVENTS, &rows).await?;
        if self.backend == Backend::Sqlite {
            self.number_events(conn).await?;
        }
        Ok(())
    }

    /// Waits until this replica's numberer has numbered what is committed (PostgreSQL); tells the
    /// watchers of this process that events may have appeared (both).
    pub async fn numbered(&self) {
        if let Some(numberer) = &self.numberer {
            let (done, wait) = oneshot::channel();
            if numberer.send(done).await.is_ok() {
                let _ = wait.await;
            }
        } else {
            self.committed.notify_waiters();
        }
    }
}
