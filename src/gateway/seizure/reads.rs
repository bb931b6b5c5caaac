//! What a court reads of the ledger: an asset's queue, a case's seizures,
//! the court's lapsing seizures and transfers, and the stream of its events.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::SeizureApi;
use crate::{
    core::{
        error::Error,
        identifiers::CaseNumber,
        merge,
        proto::{
            GetSeizureQueueRequest, GetSeizureQueueResponse, ListCaseSeizuresRequest, ListCaseSeizuresResponse,
            ListLapsingSeizuresRequest, ListLapsingSeizuresResponse, ListTransfersRequest, ListTransfersResponse,
            WatchEventsRequest, WatchEventsResponse,
        },
    },
    gateway::{
        call::Call,
        validate::{Checks, violation},
    },
    ledger::{asset_key, rules::Action, views},
};

/// How often a watcher looks for changes committed by other replicas.
const WATCH_POLL: Duration = Duration::from_millis(200);

/// A court's seizure events as they are committed.
pub type EventStream = ReceiverStream<Result<WatchEventsResponse, Status>>;

impl SeizureApi {
    /// Any court may see an asset's queue: it shows cases and ranks, not debtors.
    pub(super) async fn queue(&self, call: &Call, r: GetSeizureQueueRequest) -> Result<GetSeizureQueueResponse, Error> {
        call.note.detail(json!({ "asset_kind": r.asset_kind, "asset_id": r.asset_id }));
        let mut c = Checks::default();
        let kind = c.kind("asset_kind", r.asset_kind);
        c.present("asset_id", &r.asset_id);
        c.done(Some(()))?;
        let key = asset_key(kind, &merge::normalise(&r.asset_id));
        let ledger = self.acting.store.ledgers(std::slice::from_ref(&key)).await?.pop();
        let ledger = ledger.ok_or_else(|| Error::NotFound(format!("no seizure has ever been placed on {key}")))?;
        Ok(GetSeizureQueueResponse { queue: Some(views::queue(&ledger)) })
    }

    pub(super) async fn case_seizures(
        &self,
        call: &Call,
        r: ListCaseSeizuresRequest,
    ) -> Result<ListCaseSeizuresResponse, Error> {
        call.note.case(&r.case_number);
        let mut c = Checks::default();
        let case = c.case("case_number", &r.case_number);
        let case = c.done(case)?;
        self.acting.authorize(call, &case, Action::Query).await?;
        let seizures = self.acting.store.case_seizures(&case.to_string()).await?;
        Ok(ListCaseSeizuresResponse { seizures })
    }

    /// A court sees its own lapsing seizures only.
    pub(super) async fn lapsing(
        &self,
        call: &Call,
        r: ListLapsingSeizuresRequest,
    ) -> Result<ListLapsingSeizuresResponse, Error> {
        let court = &call.caller.court;
        call.note.detail(json!({ "within_days": r.within_days, "court_code": r.court_code }));
        let mut c = Checks::default();
        if !(1..=3650).contains(&r.within_days) {
            c.bad("within_days", "must be 1 to 3650");
        }
        let named = match r.court_code.trim() {
            "" => None,
            code => c.court("court_code", code),
        };
        c.done(Some(()))?;
        if named.as_ref().is_some_and(|code| code != court) {
            return Err(Error::PermissionDenied(format!(
                "a court lists its own lapsing seizures; this caller is court {court} (R15)"
            )));
        }
        let seizures = self.acting.store.lapsing(r.within_days, court).await?;
        Ok(ListLapsingSeizuresResponse { seizures })
    }

    /// A court sees the transfers it sends or receives.
    pub(super) async fn transfers(&self, call: &Call, r: ListTransfersRequest) -> Result<ListTransfersResponse, Error> {
        let court = call.caller.court.as_str();
        let mut all = self.acting.store.transfers(r.overdue_only).await?;
        let mine = |case: &str| CaseNumber::parse_acting(case).is_ok_and(|c| c.court_code == court);
        all.transfers.retain(|t| t.from_court == court || t.to_court == court);
        all.disposal_transfers.retain(|d| mine(&d.from_case) || mine(&d.to_case));
        all.designations.retain(|d| mine(&d.case_number) || d.to_court_code == court);
        Ok(all)
    }

    /// A court watches the events of the seizures it holds; its stream slot is the spine's.
    pub(super) async fn watch(&self, call: &Call, r: WatchEventsRequest) -> Result<EventStream, Error> {
        call.note.detail(json!({ "after_sequence": r.after_sequence }));
        let mut last = r.after_sequence;
        let head = self.acting.store.last_event().await?;
        if !(0..=head).contains(&last) {
            return Err(violation(
                "after_sequence",
                &format!("is {last}; it must be 0 or a sequence number already seen (the last is {head})"),
            ));
        }
        let (tx, rx) = mpsc::channel(256);
        let (store, court) = (self.acting.store.clone(), call.caller.court.clone());
        let committed = store.committed();
        tokio::spawn(async move {
            loop {
                // Register interest before reading, so a commit between the read and the wait is not missed.
                let notified = committed.notified();
                let events = match store.events_after(last, 500).await {
                    Ok(events) => events,
                    Err(e) => {
                        let _ = tx.send(Err(Error::from(e).into())).await;
                        return;
                    }
                };
                let full = events.len() == 500;
                for e in events {
                    last = e.sequence;
                    if e.court_code == court && tx.send(Ok(e)).await.is_err() {
                        return;
                    }
                }
                if !full {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(WATCH_POLL) => {}
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}
