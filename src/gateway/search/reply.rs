//! How a search's result is assembled from its registries' parts: each
//! registry's outcome, the answers narrowed to the asked kinds, merged per
//! debtor within the reply's size, the quiet registries of a wide search
//! counted rather than listed, every asset annotated with the ledger's live
//! seizures as of now, and what the audit trail keeps of it.

use serde_json::{Value, json};
use tracing::info;

use crate::{
    core::{
        clock::Time,
        merge::{self, Answer},
        proto::{
            AssetKind, Debtor, DebtorResult, MergedAsset, RegistryAnswer, RegistryOutcome, RegistryStatus,
            SearchResponse, ts,
        },
    },
    ledger::{asset_key, model::Model, views},
    ops::config::SearchConfig,
    registry::{
        call::Failure,
        fanout::{Leg, Plan},
    },
};

fn outcome(leg: &Leg, answer: Option<&Answer>) -> RegistryOutcome {
    let ticket = match &leg.result {
        Err(Failure::Deferred(t)) => Some(t),
        _ => None,
    };
    let (status, message) = match &leg.result {
        Ok(entry) => match &entry.dropped {
            Some(why) => (RegistryStatus::InvalidResponse, why.to_string()),
            None => (RegistryStatus::Ok, String::new()),
        },
        Err(failure) => (failure.status(), failure.to_string()),
    };
    RegistryOutcome {
        registry: leg.registry.name.to_string(),
        kind: leg.registry.kind as i32,
        status: status as i32,
        message,
        latency: prost_types::Duration::try_from(leg.latency).ok(),
        asset_count: answer.map_or(0, |a| u32::try_from(a.assets.len()).unwrap_or(u32::MAX)),
        from_cache: leg.lookup.cached(),
        fetched_at: answer.map(|a| a.fetched_at.into()),
        next_ask: ticket.map(|t| ts(t.ask_after)),
        answer_by: ticket.map(|t| ts(t.answer_by)),
    }
}

/// One registry's part for one debtor, ready to merge: from a leg just
/// finished, or from a search job's stored leg.
pub(super) struct Part {
    pub(super) debtor_index: usize,
    pub(super) outcome: RegistryOutcome,
    pub(super) answer: Option<Answer>,
}

impl Part {
    pub(super) fn of(leg: &Leg, kinds: &[AssetKind]) -> Part {
        let answer = answer(leg, kinds);
        Part { debtor_index: leg.debtor_index, outcome: outcome(leg, answer.as_ref()), answer }
    }
}

/// A leg's answer, narrowed to the asked kinds (the cache holds every kind a registry reports).
fn answer(leg: &Leg, kinds: &[AssetKind]) -> Option<Answer> {
    let entry = leg.result.as_ref().ok()?;
    let assets = if kinds.is_empty() {
        entry.assets.clone()
    } else {
        entry.assets.iter().filter(|r| kinds.contains(&r.kind)).cloned().collect()
    };
    Some(Answer { registry: leg.registry.name.clone(), fetched_at: entry.fetched_at, assets })
}

/// One registry's answer for one debtor, merged and annotated with the ledger's seizures as of now.
pub(super) fn registry_answer(model: &Model, case: &str, part: Part) -> RegistryAnswer {
    let (mut assets, _) = merge::merge(part.answer.as_slice());
    annotate(model, case, assets.iter_mut());
    RegistryAnswer {
        debtor_index: u32::try_from(part.debtor_index).unwrap_or(u32::MAX),
        outcome: Some(part.outcome),
        assets,
    }
}

/// Adds each asset's live seizures as the ledger has them now (from the read
/// model, never from the answer cache).
fn annotate<'a>(model: &Model, case: &str, assets: impl Iterator<Item = &'a mut MergedAsset>) {
    let mut assets: Vec<&mut MergedAsset> = assets.collect();
    let keys: Vec<String> =
        assets.iter().map(|a| asset_key(AssetKind::try_from(a.kind).unwrap_or_default(), &a.asset_id)).collect();
    for (asset, ledger) in assets.iter_mut().zip(model.ledgers(&keys)) {
        asset.seizures = Some(ledger.map(|l| views::summary(&l, case)).unwrap_or_default());
    }
}

/// In a search of more than `list` registries, the outcomes worth reading
/// (assets found, or not OK) and the count of the quiet rest.
fn compact(registries: Vec<RegistryOutcome>, list: usize) -> (Vec<RegistryOutcome>, u32) {
    if registries.len() <= list {
        return (registries, 0);
    }
    let (listed, quiet): (Vec<_>, Vec<_>) =
        registries.into_iter().partition(|o| o.asset_count > 0 || o.status != RegistryStatus::Ok as i32);
    (listed, u32::try_from(quiet.len()).unwrap_or(u32::MAX))
}

/// What the audit trail keeps of a search's answer: each registry's outcome and counts.
pub(super) fn audit_detail(response: &SearchResponse) -> Value {
    let debtors: Vec<Value> = response
        .debtors
        .iter()
        .map(|d| {
            let registries: Vec<Value> = d
                .registries
                .iter()
                .map(|o| {
                    let status = RegistryStatus::try_from(o.status).unwrap_or_default();
                    json!({ "registry": o.registry, "status": status.as_str_name(), "assets": o.asset_count, "cached": o.from_cache })
                })
                .collect();
            json!({ "assets": d.assets.len(), "registries": registries, "quiet": d.quiet_registries })
        })
        .collect();
    json!({ "debtors": debtors })
}

/// Bytes a record adds to a reply beyond its own encoding: its entry, sources and seizure summary.
const RECORD_OVERHEAD: usize = 160;

/// Which answers fit in `budget` bytes, given each one's size: the smallest
/// first, so that one huge answer costs only itself (ties by position, so the
/// choice does not depend on arrival order).
fn fit(sizes: &[usize], budget: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| (sizes[i], i));
    let (mut used, mut fits) = (0usize, vec![false; sizes.len()]);
    for i in order {
        if used.saturating_add(sizes[i]) <= budget {
            used += sizes[i];
            fits[i] = true;
        }
    }
    fits
}

/// Groups parts per debtor and merges each debtor's answers, within
/// `limits.max_reply_bytes`: an answer that does not fit is reported
/// `OMITTED`, not sent; a wide search lists only the registries worth
/// reading. Seizures are annotated from `model`, as of now.
pub(super) fn respond(
    (model, case): (&Model, &str),
    debtors: &[Debtor],
    mut parts: Vec<Part>,
    now: Time,
    limits: &SearchConfig,
) -> SearchResponse {
    let max_bytes = limits.max_reply_bytes;
    parts.sort_by(|a, b| (a.debtor_index, &a.outcome.registry).cmp(&(b.debtor_index, &b.outcome.registry)));
    let size = |a: &Answer| a.assets.iter().map(|r| r.size + RECORD_OVERHEAD).sum::<usize>();
    let sizes: Vec<usize> = parts.iter().map(|p| p.answer.as_ref().map_or(0, size)).collect();
    let fits = fit(&sizes, max_bytes);
    let mut per_debtor: Vec<(Vec<RegistryOutcome>, Vec<Answer>)> = debtors.iter().map(|_| Default::default()).collect();
    for (part, fits) in parts.into_iter().zip(fits) {
        let Some((registries, kept)) = per_debtor.get_mut(part.debtor_index) else { continue };
        let mut outcome = part.outcome;
        match part.answer {
            Some(answer) if fits => kept.push(answer),
            Some(answer) => {
                outcome.status = RegistryStatus::Omitted as i32;
                outcome.message = format!(
                    "its {} records ({} KiB) did not fit in this reply's {} KiB; SearchStream sends them",
                    answer.assets.len(),
                    size(&answer) / 1024,
                    max_bytes / 1024
                );
            }
            None => {}
        }
        registries.push(outcome);
    }
    let debtors = debtors
        .iter()
        .zip(per_debtor)
        .map(|(debtor, (registries, answers))| {
            let (mut assets, totals) = merge::merge(&answers);
            annotate(model, case, assets.iter_mut());
            let (registries, quiet_registries) = compact(registries, limits.list_registries);
            DebtorResult { debtor: Some(debtor.clone()), assets, registries, totals: Some(totals), quiet_registries }
        })
        .collect();
    SearchResponse { case_number: case.to_string(), debtors, completed_at: Some(ts(now)), search_id: String::new() }
}

/// A search's result from its finished legs.
pub(super) fn result(model: &Model, plan: &Plan, legs: &[Leg], now: Time, limits: &SearchConfig) -> SearchResponse {
    let ok = legs.iter().filter(|l| l.result.is_ok()).count();
    info!(legs = legs.len(), ok, failed = legs.len() - ok, "search complete");
    let parts = legs.iter().map(|l| Part::of(l, &plan.kinds)).collect();
    let debtors: Vec<Debtor> = plan.debtors.iter().map(|(_, d)| d.clone()).collect();
    respond((model, &plan.caller.case_number), &debtors, parts, now, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_fit_smallest_first_and_one_huge_answer_costs_only_itself() {
        assert_eq!(fit(&[100, 5_000, 200, 0, 300], 1_000), [true, false, true, true, true]);
        assert_eq!(fit(&[600, 600, 600], 1_200), [true, true, false], "ties go by position");
        assert_eq!(fit(&[usize::MAX, 1], 10), [false, true]);
    }

    #[test]
    fn a_wide_search_lists_what_is_worth_reading_and_counts_the_rest() {
        let outcome = |name: &str, status: RegistryStatus, assets: u32| RegistryOutcome {
            registry: name.into(),
            status: status as i32,
            asset_count: assets,
            ..Default::default()
        };
        let all = vec![
            outcome("a", RegistryStatus::Ok, 0),
            outcome("b", RegistryStatus::Ok, 3),
            outcome("c", RegistryStatus::Timeout, 0),
            outcome("d", RegistryStatus::Ok, 0),
        ];
        assert_eq!(compact(all.clone(), 4), (all.clone(), 0), "within the limit every registry is listed");
        let (listed, quiet) = compact(all, 3);
        assert_eq!(listed.iter().map(|o| o.registry.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(quiet, 2);
    }
}
