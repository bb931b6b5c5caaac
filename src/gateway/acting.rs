//! What every court step that changes the ledger goes through, whichever
//! service it is on: the court's authority on its case (R15), noted for the
//! audit, and one durable ledger step, which the court's own searches see
//! before it hears of it and which is marked audited once on record (R16).

use std::sync::Arc;

use crate::{
    core::{error::Error, identifiers::CaseNumber},
    gateway::{auth::Authority, call::Call},
    ledger::{
        command::{Command, Reply},
        model::Model,
        rules::Action,
        store::Store,
    },
};

/// The ledger and who may act on it, as a service's steps use them.
#[derive(Clone)]
pub struct Acting {
    /// The ledger.
    pub store: Store,
    /// The ledger in memory, refreshed before a court hears of its step.
    model: Arc<Model>,
    authority: Authority,
}

impl Acting {
    /// Steps on `store`, seen by `model`, authorized by `authority`.
    pub fn new(store: Store, model: Arc<Model>, authority: Authority) -> Self {
        Self { store, model, authority }
    }

    /// Notes the validated case for the audit and checks the caller may act on it (R15).
    pub async fn authorize(&self, call: &Call, case: &CaseNumber, action: Action) -> Result<(), Error> {
        call.note.case(case.to_string());
        self.authority.authorize(&call.caller, case, action).await
    }

    /// One durable ledger step; its reply, as the method answers it.
    pub async fn execute<R: TryFrom<Reply, Error = Reply>>(&self, call: &Call, command: Command) -> Result<R, Error> {
        let step = command.request().map(|(key, method)| (key.clone(), method));
        let reply = self.store.execute(command).await?;
        // Before the court hears of its step, its own searches here must see it.
        if let Err(e) = self.model.refresh().await {
            tracing::warn!(error = %e, "the read model missed a step; the next refresh applies it");
        }
        if let Some((key, method)) = step {
            // Marked audited once the spine has its record (R16).
            call.note.acknowledged(key, method);
        }
        R::try_from(reply).map_err(|other| Error::Internal(format!("unexpected ledger reply {other:?}")))
    }
}
