//! What operators are paged by and look at: the alert and recording rules
//! pass promtool and their unit tests, every alert is tested and points at a
//! runbook section that exists, the Kubernetes rule is the rules file, every
//! metric a rule or dashboard names is one the gateway has, every dashboard
//! query parses, and a real Prometheus scraping a gateway fires the breaker
//! alert when a registry goes down.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use assetgw::{core::proto::RegistryKind, ops::metrics::Metrics};

use crate::harness::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap()
}

/// `program`, or `None` outside CI when it is not installed (in CI that is a failure: `.ci/run` installs it).
fn tool(program: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/usr/local/bin", "/bin"].iter().map(|d| Path::new(d).join(program)).find(|p| p.exists());
    if found.is_none() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{program} is required in CI (.ci/run installs it)");
        eprintln!("{program} not installed; skipped");
    }
    found
}

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    let promtool = tool("promtool")?;
    Some(Command::new(promtool).args(args).current_dir(repo("deploy/prometheus")).output().unwrap())
}

/// The names of the alerts in the rules file.
fn alerts(rules: &str) -> Vec<&str> {
    rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect()
}

#[test]
fn the_rules_pass_promtool_and_every_alert_has_a_unit_test() {
    let Some(checked) = promtool(&["check", "rules", "rules.yml"]) else { return };
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));
    let Some(tested) = promtool(&["test", "rules", "rules_test.yml"]) else { return };
    assert!(
        tested.status.success(),
        "{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
    let (rules, tests) = (read("deploy/prometheus/rules.yml"), read("deploy/prometheus/rules_test.yml"));
    assert!(alerts(&rules).len() >= 15, "{:?}", alerts(&rules));
    for alert in alerts(&rules) {
        assert!(tests.contains(&format!("alertname: {alert}\n")), "{alert} has no unit test");
    }
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    let text = heading.trim_start_matches('#').trim().to_lowercase();
    text.chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_says_its_severity_what_courts_see_and_a_runbook_section_that_exists() {
    let rules = read("deploy/prometheus/rules.yml");
    let runbook = read("deploy/RUNBOOK.md");
    let anchors: Vec<String> = runbook.lines().filter(|l| l.starts_with('#')).map(anchor).collect();
    let blocks: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert_eq!(blocks.len(), alerts(&rules).len());
    for block in blocks {
        let name = block.lines().next().unwrap();
        assert!(block.contains("severity: critical") || block.contains("severity: warning"), "{name}: severity");
        assert!(block.contains("summary: "), "{name}: summary");
        let runbook =
            block.lines().find_map(|l| l.trim().strip_prefix("runbook: ")).unwrap_or_else(|| panic!("{name}"));
        let section =
            runbook.trim_matches('"').strip_prefix("deploy/RUNBOOK.md#").unwrap_or_else(|| panic!("{runbook}"));
        assert!(
            anchors.iter().any(|a| a == section),
            "{name}: no section #{section} in deploy/RUNBOOK.md ({anchors:?})"
        );
    }
}

#[test]
fn the_kubernetes_rule_carries_the_rules_file() {
    let rules = read("deploy/prometheus/rules.yml");
    let groups: String = rules
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| if l.is_empty() { "\n".to_string() } else { format!("  {l}\n") })
        .collect();
    let k8s = read("deploy/k8s/prometheusrule.yaml");
    let spec = k8s.split_once("\nspec:\n").map(|(_, s)| s).unwrap_or_default();
    assert!(k8s.contains("kind: PrometheusRule"));
    assert_eq!(spec, groups, "deploy/k8s/prometheusrule.yaml is stale: run scripts/prometheusrule.sh");
}

/// Every `assetgw_…` metric a text names, histogram series folded into their metric.
fn metrics_named(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .match_indices("assetgw_")
        .map(|(i, _)| text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
        .map(|n| {
            ["_bucket", "_sum", "_count"].iter().fold(n, |n, s| n.strip_suffix(s).map(str::to_string).unwrap_or(n))
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = repo("deploy/grafana/dashboards");
    let mut all: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    all.sort();
    all.into_iter()
        .map(|p| (p.display().to_string(), serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()))
        .collect()
}

/// Every query of every dashboard panel.
fn queries(dashboard: &serde_json::Value) -> Vec<String> {
    let panels = dashboard["panels"].as_array().unwrap();
    panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn every_metric_a_rule_or_dashboard_names_is_one_the_gateway_has() {
    let metrics = Metrics::new().unwrap();
    let known = metrics.names();
    let mut texts = vec![("rules.yml".to_string(), read("deploy/prometheus/rules.yml"))];
    texts.extend(dashboards().into_iter().map(|(path, d)| (path, queries(&d).join("\n"))));
    for (path, text) in texts {
        let named = metrics_named(&text);
        assert!(!named.is_empty(), "{path} names no metric");
        for name in named {
            assert!(known.contains(&name), "{path} names {name}, which the gateway does not export ({known:?})");
        }
    }
}

#[test]
fn every_dashboard_query_parses_and_each_dashboard_is_provisioned() {
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (path, dashboard) in dashboards() {
        assert_eq!(dashboard["tags"][0], "assetgw", "{path}");
        for (i, query) in queries(&dashboard).into_iter().enumerate() {
            let record = format!("dashboard:{}:{i}", dashboard["uid"].as_str().unwrap().replace('-', "_"));
            rules.push_str(&format!(
                "      - record: {record}\n        expr: {}\n",
                serde_json::to_string(&query).unwrap()
            ));
        }
    }
    let file = scratch().join("dashboard_queries.yml");
    std::fs::write(&file, rules).unwrap();
    let Some(checked) = promtool(&["check", "rules", file.to_str().unwrap()]) else { return };
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let compose = read("deploy/docker-compose.yml");
    assert!(compose.contains("./grafana/dashboards:/var/lib/grafana/dashboards"), "the compose file provisions them");
}

/// A Prometheus process, stopped when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` of a plain HTTP server, the body.
async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: prometheus\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.ok()?;
    let mut text = String::new();
    socket.read_to_string(&mut text).await.ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

#[tokio::test]
async fn a_real_prometheus_fires_the_breaker_alert_when_a_registry_goes_down() {
    let Some(prometheus) = tool("prometheus") else { return };
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port().await).parse().unwrap();
    let regs = vec![Reg::new("bank-a", RegistryKind::Bank), Reg::new("realestate", RegistryKind::RealEstate)];
    let stack = Stack::with(regs, |c| {
        c.server.metrics_listen = Some(metrics);
        c.calls.breaker =
            Some(assetgw::ops::config::BreakerConfig { failures: 2, cool_down: Duration::from_secs(600) });
    })
    .await;
    // The rules as shipped, each `for:` shortened so that the test waits seconds, not minutes.
    let dir = scratch().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let rules: String = read("deploy/prometheus/rules.yml")
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for: ") {
                l.split("for:").next().unwrap().to_string() + "for: 1s"
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n\
         scrape_configs:\n  - job_name: assetgw\n    static_configs:\n      - targets: [\"{metrics}\"]\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port().await).parse().unwrap();
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prometheus = Prometheus { child, addr };
    let alerts = async || http_get(prometheus.addr, "/api/v1/alerts").await.unwrap_or_default();

    // Healthy: Prometheus scrapes the gateway and nothing about bank-a fires.
    stack.search(query(&[RICH])).await.unwrap();
    let mut up = String::new();
    for _ in 0..100 {
        up = http_get(prometheus.addr, "/api/v1/query?query=up").await.unwrap_or_default();
        if up.contains(r#""value":["#) && up.contains(r#","1"]"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(up.contains(r#","1"]"#), "Prometheus scrapes the gateway: {up}");
    assert!(!alerts().await.contains("AssetgwRegistryBreakerOpen"));

    // bank-a goes down: two failed calls open its breaker, and the alert fires through Prometheus.
    stack.mock("bank-a").set_down(true);
    let fresh =
        || assetgw::core::proto::SearchQuery { max_age: Some(prost_types::Duration::default()), ..query(&[RICH]) };
    for _ in 0..3 {
        stack.search(fresh()).await.unwrap();
    }
    let mut seen = String::new();
    for _ in 0..150 {
        seen = alerts().await;
        if seen.contains(r#""alertname":"AssetgwRegistryBreakerOpen""#) && seen.contains(r#""state":"firing""#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen.contains(r#""alertname":"AssetgwRegistryBreakerOpen""#), "{seen}");
    assert!(seen.contains(r#""registry":"bank-a""#) && seen.contains(r#""state":"firing""#), "{seen}");
    assert!(!seen.contains(r#""registry":"realestate""#), "the registry that answers is not paged for: {seen}");
}

/// Scrapes `metrics` until `line` is there (or says what was there).
async fn until_exported(metrics: SocketAddr, stack: &Stack, line: &str, step: chrono::Duration) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        text = crate::telemetry::scrape(metrics).await;
        if text.lines().any(|l| l == line) {
            return text;
        }
        stack.clock.advance(step);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{line} never exported:\n{text}");
}

#[tokio::test]
async fn the_gateway_exports_what_the_ledger_and_audit_alerts_watch() {
    use assetgw::core::proto::{AssetKind, RecordDesignationRequest};
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port().await).parse().unwrap();
    let stack = Stack::with(standard(), |c| {
        c.server.metrics_listen = Some(metrics);
        c.ledger.sweep_interval = Duration::from_millis(100);
        c.ledger.verify_interval = Duration::from_millis(100);
    })
    .await;
    let text = until_exported(metrics, &stack, "assetgw_ledger_violations 0", chrono::Duration::zero()).await;
    let expires: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"assetgw_certificate_expiry_timestamp_seconds{certificate="cert"} "#))
        .and_then(|v| v.parse().ok())
        .expect("the gateway's certificate's expiry");
    let now = assetgw::core::clock::Clock::now(&assetgw::core::clock::SystemClock).timestamp() as f64;
    assert!(expires > now + 86_400.0, "a certificate valid for days: {expires} against {now}");
    assert!(text.contains(r#"assetgw_certificate_expiry_timestamp_seconds{certificate="ca"} "#), "{text}");

    // A designation not handed over within its seven days (R13) is counted overdue.
    let mut s = crate::ledger::seizures(&stack);
    let designation = RecordDesignationRequest {
        request_id: "d1".into(),
        case_number: crate::ledger::A.into(),
        to_court_code: "粤0304".into(),
        decision_reference: "（2027）京01执监3号".into(),
        decided_at: None,
    };
    s.record_designation(as_court(crate::ledger::A, designation)).await.unwrap();
    until_exported(metrics, &stack, "assetgw_transfers_overdue 0", chrono::Duration::zero()).await;
    until_exported(metrics, &stack, "assetgw_transfers_overdue 1", chrono::Duration::days(1)).await;

    // A ledger changed behind the gateway's back fails the periodic verification.
    let flat = crate::ledger::asset(&stack, AssetKind::RealEstate).await;
    crate::ledger::place(&mut s, "p1", crate::ledger::B, &flat, 0).await;
    let mut conn = unguarded_sqlite(&stack.ledger_url).await;
    sqlx::query("UPDATE assets SET total = 0").execute(&mut conn).await.unwrap();
    let mut violations = 0;
    for _ in 0..100 {
        let text = crate::telemetry::scrape(metrics).await;
        violations = text.lines().find_map(|l| l.strip_prefix("assetgw_ledger_violations ")?.parse().ok()).unwrap_or(0);
        if violations > 0 {
            assert!(text.contains(r#"assetgw_ledger_verifications_total{result="broken"} "#), "{text}");
            break;
        }
        stack.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(violations > 0, "the periodic verification finds the flat's balance below what is seized on it");

    // A call that cannot be recorded is refused and counted.
    sqlx::query("CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        .execute(&mut conn)
        .await
        .unwrap();
    let refused = stack.search(query(&[RICH])).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    until_exported(metrics, &stack, "assetgw_audit_failures_total 1", chrono::Duration::zero()).await;
}

#[tokio::test]
async fn late_answers_owed_and_how_late_they_reach_the_court_are_exported() {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port().await).parse().unwrap();
    let regs = vec![
        Reg::new("bank-a", RegistryKind::Bank),
        Reg::new("bank-late", RegistryKind::Bank).deferred("300ms..600ms"),
        // Never ready while the test runs: it stays owed until its window nears its end.
        Reg::new("bank-slow", RegistryKind::Bank).deferred("1h..2h"),
    ];
    let stack = Stack::with(regs, |c| c.server.metrics_listen = Some(metrics)).await;
    let searched = stack.search(query(&[RICH])).await.unwrap();
    assert!(!searched.search_id.is_empty(), "two banks answer later: the search is kept");
    let answer_by = searched.debtors[0]
        .registries
        .iter()
        .find(|o| o.registry == "bank-slow")
        .and_then(|o| o.answer_by)
        .map(|t| assetgw::core::proto::time_of(&t))
        .expect("bank-slow's window");
    // bank-late's answer reaches the search: how long after it was ready is observed.
    let text =
        until_exported(metrics, &stack, "assetgw_late_answer_lag_seconds_count 1", chrono::Duration::seconds(1)).await;
    assert!(text.contains("assetgw_late_answer_lag_seconds_bucket{le="), "{text}");
    let owed = r#"assetgw_tickets_pending{registry="bank-slow"} 1"#;
    let text = until_exported(metrics, &stack, owed, chrono::Duration::seconds(5)).await;
    assert!(text.lines().any(|l| l == r#"assetgw_tickets_expiring{registry="bank-slow"} 0"#), "{text}");
    assert!(!text.contains(r#"assetgw_tickets_pending{registry="bank-a"}"#), "bank-a owes nothing: {text}");
    assert!(!text.contains(r#"assetgw_tickets_pending{registry="bank-late"}"#), "bank-late owes nothing now: {text}");
    // Half an hour before bank-slow's window ends, its answer is about to expire.
    let now = assetgw::core::clock::Clock::now(&*stack.clock);
    stack.clock.advance(answer_by - now - chrono::Duration::minutes(30));
    let expiring = r#"assetgw_tickets_expiring{registry="bank-slow"} 1"#;
    until_exported(metrics, &stack, expiring, chrono::Duration::zero()).await;
}
