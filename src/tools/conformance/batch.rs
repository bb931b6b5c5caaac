//! The batch check (`SearchAssetsBatch`, optional): a batch of the test
//! debtor, a malformed search and the debtor who owns nothing is answered
//! item by item in order (the malformed one alone `INVALID_ARGUMENT`, the
//! others as `SearchAssets` answers them); the gateway's largest batch, 256
//! searches, is answered whole; an empty batch is `INVALID_ARGUMENT`. A
//! registry answering `UNIMPLEMENTED` passes: the gateway asks it one search
//! a call.

use std::collections::BTreeSet;

use prost::Message;
use tonic::Code;

use super::{Suite, UNKNOWN_DEBTOR, Verdict, person, status_text};
use crate::core::proto::{
    SearchAssetsBatchRequest, SearchAssetsBatchResponse, SearchAssetsResponse, search_assets_batch_item::Outcome,
};

/// The most searches the gateway sends in one batch.
const GATEWAY_MAX: usize = 256;

fn assets(r: &SearchAssetsResponse) -> BTreeSet<Vec<u8>> {
    r.assets.iter().map(Message::encode_to_vec).collect()
}

impl Suite {
    async fn batch_of(
        &self,
        items: Vec<Option<crate::core::proto::Debtor>>,
    ) -> Result<SearchAssetsBatchResponse, tonic::Status> {
        let items = items.into_iter().map(|d| self.search_request(d, false)).collect();
        let request = self.request(SearchAssetsBatchRequest { items });
        self.client.clone().search_assets_batch(request).await.map(|r| r.into_inner())
    }

    pub(super) async fn batch(&self) -> Verdict {
        let debtor = &self.target.debtor;
        let mixed = vec![person(debtor), person("110105199001011233"), person(UNKNOWN_DEBTOR)];
        let answer = match self.batch_of(mixed).await {
            Err(s) if s.code() == Code::Unimplemented => {
                return Ok("not implemented (optional): the gateway asks one SearchAssets a call".into());
            }
            Err(s) => return Err(format!("a batch of three: {}", status_text(&s))),
            Ok(answer) => answer,
        };
        if answer.items.len() != 3 {
            return Err(format!(
                "a batch of three searches answered {} items; one per search, in order",
                answer.items.len()
            ));
        }
        let outcome = |i: usize| answer.items[i].outcome.clone();
        let alone =
            self.search(person(debtor)).await.map_err(|s| format!("SearchAssets alone: {}", status_text(&s)))?;
        match outcome(0) {
            Some(Outcome::Answer(a)) if assets(&a) == assets(&alone) => {}
            Some(Outcome::Answer(a)) => {
                return Err(format!(
                    "item 0 ({debtor}) answered {} assets, SearchAssets alone {}: the same search, the same answer",
                    a.assets.len(),
                    alone.assets.len()
                ));
            }
            other => return Err(format!("item 0 ({debtor}) did not answer: {other:?}")),
        }
        match outcome(1) {
            Some(Outcome::Error(e)) if e.code == Code::InvalidArgument as i32 => {}
            other => {
                return Err(format!("item 1 (a bad check character) answered {other:?}; it alone is INVALID_ARGUMENT"));
            }
        }
        match outcome(2) {
            Some(Outcome::Answer(a)) if a.assets.is_empty() && a.deferred.is_none() => {}
            other => {
                return Err(format!("item 2 ({UNKNOWN_DEBTOR}, who owns nothing) answered {other:?}; an empty answer"));
            }
        }
        let most = self
            .batch_of(vec![person(debtor); GATEWAY_MAX])
            .await
            .map_err(|s| format!("a batch of {GATEWAY_MAX} (the gateway's largest): {}", status_text(&s)))?;
        if most.items.len() != GATEWAY_MAX || most.items.iter().any(|i| !matches!(i.outcome, Some(Outcome::Answer(_))))
        {
            return Err(format!("a batch of {GATEWAY_MAX} was not answered item by item"));
        }
        match self.batch_of(Vec::new()).await {
            Err(s) if s.code() == Code::InvalidArgument => {}
            Err(s) => return Err(format!("an empty batch: {} instead of INVALID_ARGUMENT", status_text(&s))),
            Ok(_) => return Err("an empty batch answered OK instead of INVALID_ARGUMENT".into()),
        }
        Ok(format!("item by item in order, a bad item alone refused, {GATEWAY_MAX} at once, an empty batch refused"))
    }
}
