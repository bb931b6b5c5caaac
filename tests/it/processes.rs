//! Gateways as real processes: two replicas over one PostgreSQL ledger, and a
//! SIGKILL in the middle of concurrent placements on SQLite.

use std::{collections::HashSet, process::Command, sync::Arc, time::Duration};

use assetgw::{
    core::clock::SystemClock,
    core::proto::{
        AssetKind, PlaceSeizureResponse, SeizureState, WatchEventsRequest, seizure_service_client::SeizureServiceClient,
    },
    gateway::audit::Key,
    ledger::store::Store,
};
use futures::StreamExt;

use crate::{
    harness::*,
    ledger::{A, asset, place, place_req, queue},
};

/// Collects `placed` events from a gateway until `want` arrived (or 20 s passed).
async fn watch_placed(mut s: SeizureServiceClient<Courts>, want: usize) -> Vec<i64> {
    let mut stream = s.watch_events(WatchEventsRequest { after_sequence: 0 }).await.unwrap().into_inner();
    let mut seqs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seqs.len() < want {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(e))) if e.kind == "placed" => seqs.push(e.sequence),
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    seqs
}

#[tokio::test]
async fn two_replicas_on_postgres_keep_one_strict_order() {
    let Some(url) = ledger_url(Db::Postgres).await else { return };
    let stack = Stack::with(standard(), |c| c.ledger.url = url.clone()).await;
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let one = Process::serve(&stack.registries, &url).await;
    let two = Process::serve(&stack.registries, &url).await;
    const EACH: usize = 12;
    let watchers = [
        // A court watches its own seizures' events: 京0105's, through either replica.
        tokio::spawn(watch_placed(SeizureServiceClient::new(one.channel()), EACH)),
        tokio::spawn(watch_placed(SeizureServiceClient::new(two.channel()), EACH)),
    ];
    let mut calls = Vec::new();
    for i in 0..EACH {
        for (gw, court) in [(&one, "京0105"), (&two, "粤0304")] {
            let mut client = SeizureServiceClient::new(gw.channel());
            let case = format!("（2024）{court}执{}号", i + 1);
            let req = as_court(&case, place_req(&format!("{court}-{i}"), &case, &flat, 0));
            calls.push(async move { client.place_seizure(req).await });
        }
    }
    let replies: Vec<PlaceSeizureResponse> =
        futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap().into_inner()).collect();
    let ids: HashSet<String> =
        replies.iter().map(|r| r.result.as_ref().unwrap().seizure.as_ref().unwrap().seizure_id.clone()).collect();
    assert_eq!(ids.len(), 2 * EACH, "no duplicates");

    let queue = queue(&mut SeizureServiceClient::new(one.channel()), &flat).await;
    assert_eq!(queue.seizures.len(), 2 * EACH);
    assert_eq!(
        queue.seizures.iter().filter(|s| s.state == SeizureState::Effective as i32).count(),
        1,
        "one first seizure"
    );
    let ranks: Vec<u32> = queue.seizures.iter().map(|s| s.rank).collect();
    assert_eq!(ranks, (1..=2 * EACH as u32).collect::<Vec<_>>());
    // Every reply's rank is where that seizure stands: no two placements saw the same queue.
    for r in &replies {
        let s = r.result.as_ref().unwrap().seizure.as_ref().unwrap();
        assert_eq!(queue.seizures[s.rank as usize - 1].seizure_id, s.seizure_id);
    }

    let [a, b] = watchers;
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.len(), EACH, "replica one saw every placement of the court");
    assert_eq!(a, b, "both replicas stream the same changes in the same order");
    assert!(a.windows(2).all(|w| w[1] > w[0]));

    // Each replica kept its own audit chain in the shared database; all of them verify.
    let store = Store::open(&url, Arc::new(SystemClock), Default::default()).await.unwrap();
    let key = Key::load_or_create(&test_pki().join("audit.key")).unwrap();
    let chains: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT chain FROM audit").fetch_all(store.pool()).await.unwrap();
    assert!(chains.len() >= 3, "the test's gateway and both replicas: {chains:?}");
    let checked = assetgw::gateway::audit::verify(store.pool(), &key).await.unwrap().unwrap();
    assert!(checked >= 2 * EACH + 2, "{checked} records");
}

#[tokio::test]
async fn every_acknowledged_placement_survives_sigkill() {
    let stack = Stack::start(standard()).await;
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let account = asset(&stack, AssetKind::Deposit).await;
    let db = scratch().join("ledger.db");
    let url = format!("sqlite://{}", db.display());
    let mut gateway = Process::serve(&stack.registries, &url).await;

    // Eight workers place seizures one after another until the process dies under them.
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for w in 0..8 {
        let channel = gateway.channel();
        let (flat, account, acks) = (flat.clone(), account.clone(), acks.clone());
        workers.push(tokio::spawn(async move {
            let mut client = SeizureServiceClient::new(channel);
            for i in 0.. {
                let target = if i % 2 == 0 { &flat } else { &account };
                let id = format!("w{w}-{i}");
                let req = place_req(&id, &format!("（2024）京0105执{}号", w * 1000 + i + 1), target, 1);
                match client.place_seizure(req).await {
                    Ok(r) => {
                        let _ = acks.send((id, r.into_inner().result.unwrap()));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    drop(acks);
    let mut confirmed = Vec::new();
    while confirmed.len() < 40 {
        confirmed.push(acked.recv().await.unwrap());
    }
    gateway.kill();
    for w in workers {
        let _ = w.await;
    }
    while let Ok(r) = acked.try_recv() {
        confirmed.push(r);
    }

    let restarted = Process::serve(&stack.registries, &url).await;
    let mut client = SeizureServiceClient::new(restarted.channel());
    for a in [&flat, &account] {
        let queue = queue(&mut client, a).await;
        let mine: Vec<_> =
            confirmed.iter().map(|(_, r)| r).filter(|r| r.queue.as_ref().unwrap().asset == queue.asset).collect();
        for r in &mine {
            let s = r.seizure.as_ref().unwrap();
            let stored = queue.seizures.iter().find(|q| q.seizure_id == s.seizure_id);
            let stored = stored.unwrap_or_else(|| panic!("acknowledged seizure {} lost", s.seizure_id));
            assert_eq!(stored.rank, s.rank, "rank as acknowledged");
        }
    }
    let verify = Command::new(env!("CARGO_BIN_EXE_assetgw"))
        .args(["ledger", "verify", "--config", restarted.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("every invariant holds"));

    // R16: every step the ledger acknowledged has its audit record, the ones whose record the kill cut off
    // included (written by the restarted gateway).
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut left = i64::MAX;
    for _ in 0..150 {
        left = sqlx::query_scalar("SELECT COUNT(*) FROM replies WHERE audited = 0").fetch_one(&mut conn).await.unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "acknowledged steps without an audit record");
    let details: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit WHERE method = 'PlaceSeizure' AND code = 'Ok'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (id, _) in &confirmed {
        let needle = format!("\"request_id\":\"{id}\"");
        assert!(details.iter().any(|d| d.contains(&needle)), "placement {id} was acknowledged but not audited");
    }
}

#[tokio::test]
async fn ledger_verify_names_a_tampered_seizure() {
    let stack = Stack::start(standard()).await;
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let db = scratch().join("ledger.db");
    let url = format!("sqlite://{}", db.display());
    let gateway = Process::serve(&stack.registries, &url).await;
    let mut client = SeizureServiceClient::new(gateway.channel());
    for (i, court) in ["京0105", "粤0304"].iter().enumerate() {
        let case = format!("（2024）{court}执1号");
        client.place_seizure(as_court(&case, place_req(&format!("v{i}"), &case, &flat, 0))).await.unwrap();
    }
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_assetgw"))
            .args(["ledger", "verify", "--config", gateway.config.to_str().unwrap()])
            .output()
            .unwrap()
    };
    assert!(verify().status.success());
    // Make the waiting seizure effective behind the ledger's back: two first seizures on one flat.
    let mut conn = unguarded_sqlite(&url).await;
    sqlx::query("UPDATE seizures SET state = 'effective', effective = 1, start_at = placed_at, end_at = placed_at + 1000000000000 WHERE state = 'waiting'")
        .execute(&mut conn)
        .await
        .unwrap();
    let out = verify();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("more than one effective seizure on an indivisible asset"), "{err}");
    assert!(err.contains(&flat.asset_id), "{err}");
}

#[tokio::test]
async fn a_clean_stop_leaves_the_whole_ledger_in_its_sqlite_file() {
    let stack = Stack::start(standard()).await;
    let file = scratch().join("ledger.db");
    let mut gateway = Process::serve(&stack.registries, &format!("sqlite://{}", file.display())).await;
    let mut s = SeizureServiceClient::new(gateway.channel());
    let flat = {
        let mut search =
            assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(gateway.channel());
        let request = as_court(CASE, assetgw::core::proto::SearchRequest { query: Some(query(&[RICH])) });
        let found = search.search(request).await.unwrap().into_inner();
        found.debtors[0].assets.iter().find(|a| a.kind == AssetKind::RealEstate as i32).unwrap().clone()
    };
    place(&mut s, "wal-1", A, &flat, 0).await;
    let wal = scratch_sibling(&file, "-wal");
    assert!(std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0), "the placement went to the write-ahead log first");
    // Off the test's thread: its clients must stay alive to answer the gateway's goodbye.
    tokio::task::spawn_blocking(move || gateway.terminate()).await.unwrap();
    let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(left, 0, "a clean stop folds the write-ahead log into the database file");
}

/// `file` with `suffix` appended to its name (SQLite's `-wal` and `-shm` companions).
fn scratch_sibling(file: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}
