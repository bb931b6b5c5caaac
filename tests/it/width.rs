//! The network's width: registries kept in a directory file the gateway
//! follows, connections opened on demand and closed when idle, and searches
//! over a fleet of mock banks.

use std::{path::Path, time::Duration};

use assetgw::{
    core::proto::{AssetKind, RegistryKind, RegistryStatus, SearchResponse},
    ops::config::{Config, directory},
    tools::mock::{MockConfig, data, fleet::bank_name},
};
use prost::Message;

use crate::harness::*;

/// Writes a directory of the fleet's banks `banks` at `address`, each entry followed by `extra` lines.
fn write_directory(
    path: &Path,
    address: &str,
    banks: impl IntoIterator<Item = usize>,
    extra: &dyn Fn(usize) -> String,
) {
    let mut text = String::new();
    for n in banks {
        let name = bank_name(n);
        text += &format!(
            "[[registries]]\nname = \"{name}\"\nkind = \"bank\"\nendpoint = \"https://{address}\"\n{}\n",
            extra(n)
        );
    }
    // Write beside and rename, as an operator's tools do: the gateway never reads half a file.
    let staged = path.with_extension("staged");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(staged, path).unwrap();
}

/// The fleet banks a search asked, from its reply: those listed and those counted.
fn banks_asked(r: &SearchResponse) -> usize {
    let d = &r.debtors[0];
    let listed = d.registries.iter().filter(|o| o.registry.starts_with("bank-0")).count();
    listed + d.quiet_registries as usize
}

fn deposits() -> assetgw::core::proto::SearchQuery {
    assetgw::core::proto::SearchQuery { asset_kinds: vec![AssetKind::Deposit as i32], ..query(&[RICH]) }
}

/// Searches until `done` holds of the reply (the directory is read every 100 ms here), at most 10 s.
async fn search_until(stack: &Stack, done: impl Fn(&SearchResponse) -> bool) -> SearchResponse {
    let mut last = None;
    for _ in 0..100 {
        let r = stack.search(deposits()).await.unwrap();
        if done(&r) {
            return r;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the directory's change never took effect: {last:?}");
}

/// Established TCP connections to `address` (as the gateway's side sees them), from /proc.
fn connections_to(address: &str) -> usize {
    let port = address.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields[2].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            remote_port == Some(port) && fields[3] == "01"
        })
        .count()
}

#[tokio::test]
async fn registries_join_leave_and_are_rekeyed_through_the_directory_without_a_restart() {
    let address = serve_fleet(30, MockConfig::default()).await;
    let file = scratch().join("registries.toml");
    write_directory(&file, &address, 1..=10, &|_| String::new());
    let f = file.clone();
    let stack = Stack::with(standard(), move |c| {
        c.network.directory = Some(f);
        c.network.reload_every = Duration::from_millis(100);
        // Every search asks the banks again.
        c.cache.ttl.bank = Duration::from_millis(1);
    })
    .await;
    let r = stack.search(deposits()).await.unwrap();
    assert_eq!(banks_asked(&r), 10, "the directory's ten banks are asked at start");

    // Twenty more join, bank-0001 is disabled.
    write_directory(&file, &address, 1..=30, &|n| if n == 1 { "disabled = true".into() } else { String::new() });
    let r = search_until(&stack, |r| banks_asked(r) == 29).await;
    assert!(r.debtors[0].registries.iter().all(|o| o.registry != bank_name(1)));

    // Re-keyed: bank-0002 must now chain to another CA, which its certificate does not: it fails alone.
    let other = scratch().join("other-pki");
    assetgw::ops::pki::ensure_dev(&other, &[]).unwrap();
    let ca = other.join("ca.pem").display().to_string();
    write_directory(&file, &address, 2..=30, &|n| if n == 2 { format!("ca = \"{ca}\"") } else { String::new() });
    let r = search_until(&stack, |r| r.debtors[0].registries.iter().any(|o| status(o) != RegistryStatus::Ok)).await;
    let failed: Vec<_> = r.debtors[0].registries.iter().filter(|o| status(o) != RegistryStatus::Ok).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].registry, bank_name(2));
    assert_eq!(banks_asked(&r), 29);

    // A broken file is refused whole: the registries stay as they were.
    std::fs::write(&file, "[[registries]]\nname = \"bank-0031\"\nkind = \"moon\"\nendpoint = \"x\"\n").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(banks_asked(&stack.search(deposits()).await.unwrap()), 29);
}

#[test]
fn a_directory_reports_every_problem_at_once() {
    let pki = test_pki();
    let bank = tls_of(assetgw::ops::pki::Role::Registry("bank-0002".into()));
    let config = Config { tls: gateway_tls(), registries: vec![], ..Config::default() };
    let text = format!(
        r#"
[[registries]]
name = "bank-0001"
kind = "bank"
endpoint = "https://127.0.0.1:50170"

[[registries]]
name = "bank-0001"
kind = "bank"
endpoint = "https://127.0.0.1:50170"

[[registries]]
name = "bank-0003"
kind = "moon"
endpoint = "https://127.0.0.1:50170"

[[registries]]
name = "bank-0004"
kind = "bank"
endpoint = "http://127.0.0.1:50170"
colour = "blue"

[[registries]]
name = "bank-0005"
kind = "bank"
endpoint = "https://127.0.0.1:50170"
certificate = "{cert}"

[[registries]]
name = "bank-0002"
kind = "bank"
endpoint = "https://127.0.0.1:50170"
certificate = "{cert}"
ca = "{ca}"
"#,
        cert = bank.cert.display(),
        ca = pki.join("ca.pem").display(),
    );
    let problems = directory::parse(&config, "registries.toml", &text).unwrap_err().0;
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "registries.toml: registries[2](bank-0003).kind",
            "registries.toml: registries[3](bank-0004).colour",
            "registries.toml: registries[1](bank-0001).name",
            "registries.toml: registries[3](bank-0004).endpoint",
            "registries.toml: registries[4](bank-0005).certificate",
        ],
        "{problems:#?}"
    );
    assert!(problems[0].message.contains("moon"), "{:?}", problems[0]);
    assert!(problems[2].message.contains("unique"), "{:?}", problems[2]);
    assert!(problems[4].message.contains("bank-0005"), "{:?}", problems[4]);
}

#[tokio::test]
async fn connections_are_opened_on_first_use_bounded_and_closed_when_idle() {
    let address = serve_fleet(40, MockConfig::default()).await;
    let file = scratch().join("registries.toml");
    write_directory(&file, &address, 1..=40, &|_| String::new());
    let stack = Stack::with(standard(), move |c| {
        c.network.directory = Some(file);
        c.network.max_connections = 16;
        c.network.idle_close = Duration::from_millis(1500);
        c.cache.ttl.bank = Duration::from_millis(1);
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections_to(&address), 0, "nothing is connected before the first search");

    let r = stack.search(deposits()).await.unwrap();
    assert_eq!(banks_asked(&r), 40);
    assert!(r.debtors[0].registries.iter().all(|o| status(o) == RegistryStatus::Ok), "{r:?}");
    // The least recently used beyond the bound are closed once their calls end.
    let mut open = usize::MAX;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = connections_to(&address);
        if open <= 16 {
            break;
        }
    }
    assert!((1..=16).contains(&open), "{open} connections open after the search, bound 16");

    // Idle past `idle_close`: every connection is closed, and the next search opens them again.
    let mut open = usize::MAX;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = connections_to(&address);
        if open == 0 {
            break;
        }
    }
    assert_eq!(open, 0, "idle connections are closed");
    let again = stack.search(deposits()).await.unwrap();
    assert!(again.debtors[0].registries.iter().all(|o| status(o) == RegistryStatus::Ok));
    assert!(connections_to(&address) > 0);
}

/// The standard stack with the 1,000 banks of the fleet at `address` in its directory, a wide
/// network's seconds to answer in, and `tweak`.
async fn over_fleet(address: &str, tweak: impl FnOnce(&mut Config) + Send + 'static) -> Stack {
    let file = scratch().join("registries.toml");
    write_directory(&file, address, 1..=1000, &|_| String::new());
    Stack::with(standard(), move |c| {
        c.network.directory = Some(file);
        c.search.deadline = Duration::from_secs(60);
        c.calls.timeout = Some(Duration::from_secs(50));
        c.calls.attempt_timeout = Some(Duration::from_secs(50));
        tweak(c);
    })
    .await
}

#[tokio::test]
async fn a_search_over_a_thousand_fleet_banks_lists_the_holders_and_counts_the_rest() {
    let share = 0.01;
    let address = serve_fleet(1000, MockConfig { holders: Some(share), ..MockConfig::default() }).await;
    let stack = over_fleet(&address, |_| {}).await;
    let r = stack.search(deposits()).await.unwrap();
    let d = &r.debtors[0];
    let holders: Vec<String> = (1..=1000).map(bank_name).filter(|b| data::holds(b, RICH, share)).collect();
    assert!(!holders.is_empty() && holders.len() < 40, "a few of the thousand hold accounts: {}", holders.len());
    let listed: Vec<&str> =
        d.registries.iter().filter(|o| o.registry.starts_with("bank-0")).map(|o| o.registry.as_str()).collect();
    let failed: Vec<_> = d.registries.iter().filter(|o| status(o) != RegistryStatus::Ok).collect();
    assert!(failed.is_empty(), "every bank answered: {failed:?}");
    let mut expected: Vec<&str> = holders.iter().map(String::as_str).collect();
    expected.sort_unstable();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort_unstable();
    assert_eq!(listed_sorted, expected, "exactly the banks holding accounts are listed");
    assert_eq!(banks_asked(&r), 1000, "the rest are counted");
    for bank in &holders {
        assert!(
            d.assets.iter().any(|a| a.sources.iter().any(|s| &s.registry == bank)),
            "{bank}'s accounts are in the result"
        );
    }
    assert!(r.encoded_len() < 64 * 1024, "the reply stays small at width: {} bytes", r.encoded_len());
}

/// Issue 29: the searches of concurrent court searches bound for one bank travel in one batch, and
/// each answer goes back to its own search: across 1,000 fleet banks, six courts' searches for six
/// debtors at once each list exactly the banks holding that debtor's accounts.
#[tokio::test]
async fn concurrent_searches_over_a_thousand_fleet_banks_travel_in_batches() {
    let share = 0.01;
    // Banks that take a while, as real ones do: the searches that come while a bank's first is out meet.
    let latency = "fixed:300ms".parse().unwrap();
    let (address, fleet) =
        serve_counted_fleet(1000, MockConfig { holders: Some(share), latency, ..MockConfig::default() }).await;
    let stack = over_fleet(&address, |c| {
        // Wide enough that the six searches' legs for one bank meet on a loaded test machine.
        c.calls.batch =
            Some(assetgw::ops::config::BatchConfig { window: Duration::from_millis(500), ..Default::default() });
    })
    .await;
    let debtors =
        [RICH, "440304197506120049", COMPANY, "34052419800101001X", "110105198503070027", "91110105MA01R7KQ83"];
    let searches = debtors.iter().map(|d| {
        let q = assetgw::core::proto::SearchQuery { asset_kinds: vec![AssetKind::Deposit as i32], ..query(&[d]) };
        stack.search(q)
    });
    let replies = futures::future::join_all(searches).await;
    let demo = data::demo_debtors().unwrap();
    for (debtor, reply) in debtors.iter().zip(replies) {
        let r = reply.unwrap();
        let d = &r.debtors[0];
        let failed: Vec<_> = d.registries.iter().filter(|o| status(o) != RegistryStatus::Ok).collect();
        assert!(failed.is_empty(), "{debtor}: every bank answered: {failed:?}");
        assert_eq!(d.registries.len() + d.quiet_registries as usize, 1002, "the fleet and the two banks asked");
        let profile = data::profile_of(debtor, &demo);
        let holds = |b: &String| {
            let deposit = |a: &assetgw::core::proto::Asset| {
                matches!(a.detail, Some(assetgw::core::proto::asset::Detail::Deposit(_)))
            };
            data::holds(b, debtor, share) && data::assets(b, RegistryKind::Bank, debtor, profile).iter().any(deposit)
        };
        let mut expected: Vec<String> = (1..=1000).map(bank_name).filter(holds).collect();
        let mut listed: Vec<String> =
            d.registries.iter().filter(|o| o.registry.starts_with("bank-0")).map(|o| o.registry.clone()).collect();
        expected.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, expected, "{debtor}: its own answers, no other debtor's");
    }
    let (asked, batches) = fleet.counts();
    assert_eq!(asked, 6 * 1000, "one search per bank and debtor");
    eprintln!("{batches} batches carried {asked} searches");
    assert!(batches > 0 && batches * 3 <= asked, "{batches} batches carried {asked} searches: they travelled together");
}
