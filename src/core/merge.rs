//! Merging registry answers into one de-duplicated asset list (asset identity:
//! kind and the registry's own id, docs/RULES.md). A pure function: the result does not depend on the order in
//! which answers or assets arrived, and merging a result with itself changes
//! nothing.

use std::{collections::BTreeMap, sync::Arc, time::SystemTime};

use prost::Message;

use crate::core::{
    answer::Broken,
    proto::{Asset, AssetKind, AssetSource, AssetTotals, KindCount, MergedAsset, Money, asset::Detail},
};

/// An asset as one registry reported it, with its derived identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// The asset's kind, from its detail.
    pub kind: AssetKind,
    /// The asset's identity within its kind.
    pub id: String,
    /// The asset as reported.
    pub asset: Asset,
    /// The asset's encoded size in bytes, counted once when it is reported (replies are bounded by it).
    pub size: usize,
}

impl Reported {
    /// A record of `kind` with identity `id`.
    pub fn new(kind: AssetKind, id: String, asset: Asset) -> Self {
        Self { kind, id, size: asset.encoded_len(), asset }
    }
}

/// One registry's successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The registry's name.
    pub registry: Arc<str>,
    /// When the answer was fetched from the registry.
    pub fetched_at: SystemTime,
    /// Its assets.
    pub assets: Arc<[Reported]>,
}

/// An identifier part as compared: no white space, upper case.
pub fn normalise(part: &str) -> String {
    part.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect()
}

/// Derives an asset's kind and identity from its detail. An asset without a
/// detail or without its identifying fields breaks the registry contract.
pub fn identify(asset: Asset) -> Result<Reported, Broken> {
    let (kind, parts): (AssetKind, Vec<&str>) = match &asset.detail {
        Some(Detail::Deposit(d)) => (AssetKind::Deposit, vec![&d.bank_code, &d.account_number]),
        Some(Detail::RealEstate(r)) => (AssetKind::RealEstate, vec![&r.unit_number]),
        Some(Detail::Patent(p)) => (AssetKind::Patent, vec![&p.patent_number]),
        Some(Detail::Trademark(t)) => (AssetKind::Trademark, vec![&t.registration_number]),
        Some(Detail::Aircraft(a)) => (AssetKind::Aircraft, vec![&a.registration_mark]),
        Some(Detail::Securities(s)) => (AssetKind::Securities, vec![&s.account, &s.security_code]),
        None => return Err(Broken::NoDetail),
    };
    let parts: Vec<String> = parts.into_iter().map(normalise).collect();
    if parts.iter().any(String::is_empty) {
        return Err(Broken::Unidentified(kind));
    }
    Ok(Reported::new(kind, parts.join(":"), asset))
}

/// One registry's records with no identity shared by two different records:
/// a record reported twice alike is kept once; records that share an
/// identity but differ (two lots of one security in one account, each with
/// its own reference) each get a finer identity, `<identity>#<reference>`,
/// so that none is lost in the merge and each can be seized on its own.
pub fn distinguish(mut records: Vec<Reported>) -> Vec<Reported> {
    // Sorted by identity, then by everything else, so that alike records sit together.
    records.sort_by(|a, b| (a.kind as i32, &a.id).cmp(&(b.kind as i32, &b.id)).then_with(|| order(a, b)));
    records.dedup();
    let mut out: Vec<Reported> = Vec::with_capacity(records.len());
    for group in records.chunk_by(|a, b| a.kind == b.kind && a.id == b.id) {
        if group.len() == 1 {
            out.extend(group.iter().cloned());
            continue;
        }
        for (i, r) in group.iter().enumerate() {
            let reference = normalise(&r.asset.registry_reference);
            // References are the registry's own; two alike still need telling apart.
            let shared = group.iter().filter(|o| normalise(&o.asset.registry_reference) == reference).count() > 1;
            let finer = if shared || reference.is_empty() { format!("{reference}{}", i + 1) } else { reference };
            out.push(Reported { id: format!("{}#{finer}", r.id), ..r.clone() });
        }
    }
    out
}

/// A total order over everything two records can differ in.
fn order(a: &Reported, b: &Reported) -> std::cmp::Ordering {
    a.asset
        .registry_reference
        .cmp(&b.asset.registry_reference)
        .then_with(|| a.asset.encode_to_vec().cmp(&b.asset.encode_to_vec()))
}

/// The merged assets, ordered by kind then id, and their totals.
pub fn merge(answers: &[Answer]) -> (Vec<MergedAsset>, AssetTotals) {
    // (registry, fetched at, asset) per identity.
    type Sources<'a> = Vec<(&'a str, SystemTime, &'a Reported)>;
    let mut groups: BTreeMap<(i32, &str), Sources<'_>> = BTreeMap::new();
    for answer in answers {
        for r in answer.assets.iter() {
            groups.entry((r.kind as i32, r.id.as_str())).or_default().push((&answer.registry, answer.fetched_at, r));
        }
    }
    let assets: Vec<MergedAsset> = groups
        .into_values()
        .map(|mut sources| {
            // A total order over everything that can differ, so arrival order never shows.
            sources.sort_by(|a, b| {
                (a.0, &a.2.asset.registry_reference, a.1)
                    .cmp(&(b.0, &b.2.asset.registry_reference, b.1))
                    .then_with(|| a.2.asset.encode_to_vec().cmp(&b.2.asset.encode_to_vec()))
            });
            sources.dedup_by(|a, b| a.0 == b.0);
            let first = sources[0].2;
            MergedAsset {
                kind: first.kind as i32,
                asset_id: first.id.clone(),
                asset: Some(first.asset.clone()),
                sources: sources
                    .iter()
                    .map(|(registry, fetched_at, r)| AssetSource {
                        registry: registry.to_string(),
                        registry_reference: r.asset.registry_reference.clone(),
                        fetched_at: Some((*fetched_at).into()),
                    })
                    .collect(),
                seizures: None,
                // Only a terminated case's re-search marks what is new to the case (R30).
                new_to_case: false,
            }
        })
        .collect();
    let totals = totals(&assets);
    (assets, totals)
}

fn totals(assets: &[MergedAsset]) -> AssetTotals {
    let mut by_kind: BTreeMap<i32, u32> = BTreeMap::new();
    let mut deposits: BTreeMap<&str, i64> = BTreeMap::new();
    for a in assets {
        *by_kind.entry(a.kind).or_default() += 1;
        if let Some(Detail::Deposit(d)) = a.asset.as_ref().and_then(|a| a.detail.as_ref()) {
            if let Some(m) = &d.balance {
                let sum = deposits.entry(m.currency.as_str()).or_default();
                *sum = sum.saturating_add(m.minor_units);
            }
        }
    }
    AssetTotals {
        asset_count: u32::try_from(assets.len()).unwrap_or(u32::MAX),
        by_kind: by_kind.into_iter().map(|(kind, count)| KindCount { kind, count }).collect(),
        deposits_by_currency: deposits
            .into_iter()
            .map(|(currency, minor_units)| Money { currency: currency.to_string(), minor_units })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::proto::{Aircraft, BankDeposit, SecuritiesHolding};
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn deposit(bank: &str, account: &str, cny: i64) -> Asset {
        Asset {
            registry_reference: format!("ref-{account}"),
            description: String::new(),
            detail: Some(Detail::Deposit(BankDeposit {
                bank_code: bank.into(),
                account_number: account.into(),
                balance: Some(Money { currency: "CNY".into(), minor_units: cny }),
                ..Default::default()
            })),
            encumbrances: Vec::new(),
        }
    }

    fn fund(account: &str, code: &str, reference: &str) -> Asset {
        Asset {
            registry_reference: reference.into(),
            description: String::new(),
            detail: Some(Detail::Securities(SecuritiesHolding {
                account: account.into(),
                security_code: code.into(),
                quantity: 100,
                ..Default::default()
            })),
            encumbrances: Vec::new(),
        }
    }

    fn answer(registry: &str, secs: u64, assets: Vec<Asset>) -> Answer {
        Answer {
            registry: registry.into(),
            fetched_at: UNIX_EPOCH + Duration::from_secs(secs),
            assets: assets.into_iter().map(|a| identify(a).unwrap()).collect(),
        }
    }

    #[test]
    fn the_same_asset_from_two_registries_is_one_entry_with_both_sources() {
        let (merged, totals) = merge(&[
            answer("securities-csdc", 1, vec![fund("F1", "110011", "csdc-1")]),
            answer("bank-a", 2, vec![deposit("102", "6222 01", 500), fund("f1", "110011", "bank-9")]),
        ]);
        assert_eq!(merged.len(), 2);
        let fund = merged.iter().find(|m| m.kind == AssetKind::Securities as i32).unwrap();
        assert_eq!(fund.asset_id, "F1:110011");
        let names: Vec<_> = fund.sources.iter().map(|s| s.registry.as_str()).collect();
        assert_eq!(names, ["bank-a", "securities-csdc"]);
        assert_eq!(merged[0].asset_id, "102:622201", "deposits sort first, whitespace removed");
        assert_eq!(totals.asset_count, 2);
        assert_eq!(totals.deposits_by_currency, vec![Money { currency: "CNY".into(), minor_units: 500 }]);
    }

    #[test]
    fn totals_count_kinds_and_sum_currencies_once_per_asset() {
        let (_, totals) = merge(&[
            answer("bank-a", 1, vec![deposit("102", "1", 100), deposit("102", "2", 250)]),
            answer("bank-a-mirror", 1, vec![deposit("102", "1", 100)]),
        ]);
        assert_eq!(totals.deposits_by_currency[0].minor_units, 350);
        assert_eq!(totals.by_kind, vec![KindCount { kind: AssetKind::Deposit as i32, count: 2 }]);
    }

    #[test]
    fn assets_without_identity_are_refused() {
        assert!(identify(Asset::default()).is_err());
        let blank = Asset { detail: Some(Detail::Aircraft(Aircraft::default())), ..Default::default() };
        assert_eq!(identify(blank).unwrap_err(), Broken::Unidentified(AssetKind::Aircraft));
    }

    fn arb_asset() -> impl Strategy<Value = Asset> {
        prop_oneof![
            ("[0-9]{3}", "[0-9]{2}", 0i64..1000).prop_map(|(b, a, v)| deposit(&b, &a, v)),
            ("[AF][0-9]", "[0-9]{2}", "r[0-9]").prop_map(|(a, c, r)| fund(&a, &c, &r)),
        ]
    }

    fn arb_answers() -> impl Strategy<Value = Vec<Answer>> {
        prop::collection::vec(
            (prop::sample::select(vec!["r1", "r2", "r3"]), 0u64..3, prop::collection::vec(arb_asset(), 0..6))
                .prop_map(|(r, t, a)| answer(r, t, a)),
            0..5,
        )
        .prop_map(|mut answers| {
            // One answer per registry, as in a search.
            answers.sort_by(|a, b| a.registry.cmp(&b.registry));
            answers.dedup_by(|a, b| a.registry == b.registry);
            answers
        })
    }

    fn holding(account: &str, reference: &str, quantity: i64) -> Reported {
        let mut asset = fund(account, "600519", reference);
        if let Some(Detail::Securities(h)) = asset.detail.as_mut() {
            h.quantity = quantity;
        }
        identify(asset).unwrap()
    }

    fn quantity(a: &Asset) -> i64 {
        match &a.detail {
            Some(Detail::Securities(h)) => h.quantity,
            _ => 0,
        }
    }

    #[test]
    fn one_identity_reported_twice_with_different_details_keeps_both() {
        // The depository reports one account and security as two lots, each with its reference.
        let records = distinguish(vec![holding("A1", "SEC1", 97_000), holding("A1", "SEC2", 164_100)]);
        let answer = Answer { registry: "csdc".into(), fetched_at: UNIX_EPOCH, assets: records.into() };
        let (merged, _) = merge(&[answer]);
        let ids: Vec<_> = merged.iter().map(|m| (m.asset_id.as_str(), quantity(m.asset.as_ref().unwrap()))).collect();
        assert_eq!(ids, [("A1:600519#SEC1", 97_000), ("A1:600519#SEC2", 164_100)]);
        // The same record twice is one record.
        assert_eq!(distinguish(vec![holding("A1", "SEC1", 5), holding("A1", "SEC1", 5)]).len(), 1);
    }

    proptest! {
        #[test]
        fn merged_quantities_equal_what_a_registry_reported(
            lots in prop::collection::vec(("[AB]", "S[0-9]", 0i64..1_000_000), 0..12),
        ) {
            let records: Vec<Reported> = lots.iter().map(|(a, r, q)| holding(a, r, *q)).collect();
            let mut distinct = records.clone();
            // A record sent twice alike counts once.
            distinct.sort_by(order);
            distinct.dedup();
            let reported: i64 = distinct.iter().map(|r| quantity(&r.asset)).sum();
            let answer = Answer { registry: "csdc".into(), fetched_at: UNIX_EPOCH, assets: distinguish(records).into() };
            let (merged, _) = merge(&[answer]);
            let kept: i64 = merged.iter().map(|m| quantity(m.asset.as_ref().unwrap())).sum();
            prop_assert_eq!(kept, reported);
        }

        #[test]
        fn merge_ignores_arrival_order(answers in arb_answers(), seed in any::<u64>()) {
            use rand::{SeedableRng, seq::SliceRandom};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut shuffled = answers.clone();
            shuffled.shuffle(&mut rng);
            for a in &mut shuffled {
                let mut assets = a.assets.to_vec();
                assets.shuffle(&mut rng);
                a.assets = assets.into();
            }
            prop_assert_eq!(merge(&answers), merge(&shuffled));
        }

        #[test]
        fn merging_a_result_with_itself_changes_nothing(answers in arb_answers()) {
            let twice: Vec<Answer> = answers.iter().chain(answers.iter()).cloned().collect();
            prop_assert_eq!(merge(&answers), merge(&twice));
        }

        #[test]
        fn every_reported_asset_appears_exactly_once(answers in arb_answers()) {
            let (merged, totals) = merge(&answers);
            let mut ids: Vec<_> = answers.iter().flat_map(|a| a.assets.iter().map(|r| (r.kind as i32, r.id.clone()))).collect();
            ids.sort();
            ids.dedup();
            let got: Vec<_> = merged.iter().map(|m| (m.kind, m.asset_id.clone())).collect();
            prop_assert_eq!(got, ids);
            prop_assert_eq!(totals.asset_count as usize, merged.len());
        }
    }
}
