//! Search jobs from the command line: `assetgw search … --submit` starts a
//! search and prints its id, `assetgw search --follow ID` prints each
//! registry's answer as it arrives and then the whole result, and
//! `assetgw searches` lists the court's searches.

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use futures::StreamExt;

use super::client::{ClientError, GatewayConnection, SearchArgs, local_time, progress, render, to_json};
use crate::core::proto::{
    GetSearchRequest, ListSearchesRequest, SubmitSearchRequest, WatchSearchRequest,
    asset_search_service_client::AssetSearchServiceClient,
};

/// Submits the search under `request_id` (a fresh one if none): returns its id, and says on
/// standard error how to follow it (so that `id=$(assetgw search … --submit)` holds the id alone).
pub async fn submit(args: &SearchArgs, request_id: Option<String>) -> Result<String, ClientError> {
    let (channel, court) = args.connection.channel(Some(&args.case_number)).await?;
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let message = SubmitSearchRequest { query: Some(args.query()), request_id: request_id.clone() };
    let mut request = args.connection.request(&court, message)?;
    request.set_timeout(args.timeout);
    let r = AssetSearchServiceClient::new(channel).submit_search(request).await?.into_inner();
    let what = if r.replayed {
        format!("already submitted under request id {request_id}")
    } else {
        format!("submitted (request id {request_id}); {} registries asked per debtor", r.registries)
    };
    eprintln!(
        "search {id} {what}\nfollow it: assetgw search --follow {id} --case '{}'",
        args.case_number,
        id = r.search_id
    );
    Ok(r.search_id)
}

/// Prints each answer of search `id` to stderr as it arrives (after `after`), then returns the result.
pub async fn follow(
    connection: &GatewayConnection,
    case: Option<&str>,
    id: &str,
    after: i64,
    json: bool,
) -> Result<String, ClientError> {
    if id.trim().is_empty() {
        return Err(ClientError::Usage(
            "--follow needs a search id, and it was empty (no search to follow: `assetgw searches` lists them)".into(),
        ));
    }
    let (channel, court) = connection.channel(case).await?;
    let mut client = AssetSearchServiceClient::new(channel);
    let watch = WatchSearchRequest { search_id: id.to_string(), after_sequence: after };
    let mut updates = client.watch_search(connection.request(&court, watch)?).await?.into_inner();
    while let Some(update) = updates.next().await {
        let update = update?;
        if let Some((answer, outcome)) = update.answer.as_ref().and_then(|a| Some((a, a.outcome.as_ref()?))) {
            eprintln!("#{:<3}{}", update.sequence, progress(answer.debtor_index, outcome));
        }
    }
    let got = client.get_search(connection.request(&court, GetSearchRequest { search_id: id.to_string() })?).await?;
    let result = got.into_inner().result.unwrap_or_default();
    if json { to_json(&result) } else { Ok(render(&result)) }
}

/// The court's searches (open ones only with `open`), newest first; with `ids`, only their ids, one per line.
pub async fn list(
    connection: &GatewayConnection,
    case: Option<&str>,
    open: bool,
    ids: bool,
) -> Result<String, ClientError> {
    let (channel, court) = connection.channel(case).await?;
    let request = connection.request(&court, ListSearchesRequest { open_only: open, limit: 0 })?;
    let found = AssetSearchServiceClient::new(channel).list_searches(request).await?.into_inner().searches;
    if ids {
        return Ok(found.into_iter().map(|s| s.search_id).collect::<Vec<_>>().join("\n"));
    }
    if found.is_empty() {
        return Ok(format!("no {}searches of court {court}", if open { "open " } else { "" }));
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(["search", "case", "debtors", "submitted", "settled", "pending"]);
    for s in found {
        table.add_row([
            s.search_id,
            s.case_number,
            s.debtors.join(", "),
            local_time(s.submitted_at.as_ref()),
            s.settled_at.as_ref().map_or("open".into(), |t| local_time(Some(t))),
            format!("{} of {}", s.pending, s.pending + s.settled),
        ]);
    }
    Ok(table.to_string())
}
