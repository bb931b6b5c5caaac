//! What each `assetgw` command does, behind the binary's flag parsing: load
//! the configuration, run or call the library, print the outcome. Every
//! failure is a [`ToolError`], which `main` prints and turns into exit 1.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use crate::{
    core::{
        clock::{SharedClock, SystemClock},
        identifiers::{CaseNumber, DebtorId},
        proto::{
            RegistryKind,
            mock::{Faults, GetFaultsRequest, SetFaultsRequest, mock_admin_service_client::MockAdminServiceClient},
        },
    },
    gateway::{audit, server},
    ledger::store::Store,
    ops::{
        config::{Config, Problems},
        metrics::Metrics,
        net::{bind, shutdown_signal},
        pki::{self, Ca, Role, TlsFiles, Validity},
        telemetry,
    },
    registry::network::Network,
    tools::{
        ToolError,
        bankruptcy_bench::{self, Scale},
        cli::FaultArgs,
        client, conformance, dev, jobs_bench, ledger_bench, loadgen,
        mock::{self, MockConfig},
        outbox_bench, research_bench,
    },
};

/// Loads and checks a configuration file, mock settings included, reporting every problem at once.
pub fn load(path: &Path) -> Result<Config, ToolError> {
    let config = Config::load(Some(path), std::env::vars())?;
    MockConfig::of(&config).map_err(Problems)?;
    Ok(config)
}

/// `assetgw check-config`: the file and its registry directory, every problem at once.
pub fn check_config(path: &Path) -> Result<(), ToolError> {
    let config = load(path)?;
    let registries = crate::ops::config::directory::registries(&config).map_err(ToolError::Config)?;
    let enabled = registries.iter().filter(|r| !r.disabled).count();
    println!("{}: OK, {enabled} registries ({} listed)", path.display(), registries.len());
    Ok(())
}

/// `assetgw dev`: the mocks and the gateway until Ctrl-C.
pub async fn dev(path: &Path, fleet: Option<(mock::fleet::FleetConfig, SocketAddr)>) -> Result<(), ToolError> {
    let config = load(path)?;
    let traces = telemetry::init(&config.log);
    let result = dev::run(&config, fleet, shutdown_signal()).await;
    telemetry::flush(traces);
    result
}

/// `assetgw serve`: the gateway until Ctrl-C or SIGTERM.
pub async fn serve(path: &Path) -> Result<(), ToolError> {
    let config = load(path)?;
    let traces = telemetry::init(&config.log);
    let result = match bind(config.server.listen).await {
        Ok(listener) => server::run(&config, listener, shutdown_signal()).await.map_err(ToolError::from),
        Err(e) => Err(e.into()),
    };
    telemetry::flush(traces);
    result
}

/// `assetgw mock-registry`: one mock registry until Ctrl-C.
pub async fn mock_registry(
    name: &str,
    kind: RegistryKind,
    listen: SocketAddr,
    pki: &Path,
    plaintext: bool,
    faults: MockConfig,
) -> Result<(), ToolError> {
    telemetry::init(&Default::default());
    let tls = (!plaintext).then(|| TlsFiles::of(pki, &Role::Registry(name.to_string())));
    let registry = mock::MockRegistry::new(name, kind, faults)?;
    let listener = bind(listen).await?;
    Ok(registry.serve(listener, tls, shutdown_signal()).await?)
}

/// `assetgw mock-fleet`: many mock banks behind one port.
pub async fn mock_fleet(
    config: &mock::fleet::FleetConfig,
    listen: SocketAddr,
    pki: &Path,
    directory: Option<&Path>,
) -> Result<(), ToolError> {
    telemetry::init(&Default::default());
    for (what, share) in
        [("--holders", config.settings.holders.unwrap_or(1.0)), ("--deferred-share", config.deferred_share)]
    {
        if !(0.0..=1.0).contains(&share) {
            return Err(ToolError::Usage(format!("{what} {share} is not between 0.0 and 1.0")));
        }
    }
    let fleet = mock::fleet::Fleet::new(config)?;
    let listener = bind(listen).await?;
    if let Some(path) = directory {
        let banks = mock::fleet::registries(config.banks, listener.local_addr().unwrap_or(listen));
        std::fs::write(path, crate::ops::config::directory::text(&banks))
            .map_err(|e| ToolError::Usage(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(fleet.serve(listener, pki, shutdown_signal()).await?)
}

/// `assetgw mock-faults`: replaces a running mock's faults.
/// `assetgw mock-faults`: changes what `faults` names on a running mock (all of it back to how the
/// mock started first, with `reset`) and prints every fault it now has.
pub async fn set_faults(
    target: &str,
    name: &str,
    pki: &Path,
    reset: bool,
    faults: &FaultArgs,
) -> Result<(), ToolError> {
    let bad_target = |e: String| ToolError::Usage(format!("{target}: {e}"));
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(target.to_string()).map_err(|e| bad_target(e.to_string()))?;
    if target.starts_with("https:") {
        let tls = TlsFiles::of(pki, &Role::Gateway).client(name)?;
        endpoint = endpoint.tls_config(tls).map_err(|e| bad_target(e.to_string()))?;
    }
    let channel = endpoint.connect().await.map_err(|e| bad_target(format!("cannot connect: {e}")))?;
    let mut admin = MockAdminServiceClient::new(channel);
    let failed = |s: tonic::Status| ToolError::Failed(format!("{:?}: {}", s.code(), s.message()));
    let faults_of = |f: Option<Faults>| mock::faults_from(&f.unwrap_or_default()).map_err(failed);
    if reset {
        admin.set_faults(SetFaultsRequest { faults: None, reset: true }).await.map_err(failed)?;
    }
    let current = faults_of(admin.get_faults(GetFaultsRequest {}).await.map_err(failed)?.into_inner().faults)?;
    let wanted = mock::faults_proto(&faults.applied_to(current));
    let now = admin.set_faults(SetFaultsRequest { faults: Some(wanted), reset: false }).await.map_err(failed)?;
    println!("{name} at {target}: {}", faults_of(now.into_inner().faults)?);
    Ok(())
}

/// `assetgw conformance`: checks a registry; fails when it does not conform.
pub async fn conformance(target: conformance::Target, json: bool) -> Result<(), ToolError> {
    let report = conformance::run(target).await?;
    println!("{}", if json { serde_json::to_string_pretty(&report)? } else { report.text() });
    if report.passed() { Ok(()) } else { Err(ToolError::Failed("the registry does not conform".into())) }
}

/// `assetgw loadgen`.
pub async fn loadgen(
    plan: &loadgen::LoadPlan,
    connection: client::GatewayConnection,
    config: &Path,
    json: bool,
) -> Result<(), ToolError> {
    let registries = if plan.scenario == loadgen::Scenario::Direct {
        // The gateway's own registries (its directory too), each called as the gateway would.
        let config = load(config)?;
        Network::new(&config, &Metrics::new()?, Arc::new(SystemClock), None)?.registries()
    } else {
        Vec::new()
    };
    let report = loadgen::run(plan, connection, registries).await?;
    println!("{}", if json { serde_json::to_string_pretty(&report)? } else { report.text() });
    Ok(())
}

/// `assetgw bench-jobs`: prints the report.
pub async fn jobs_bench(
    plan: &jobs_bench::JobsPlan,
    connection: client::GatewayConnection,
    json: bool,
) -> Result<(), ToolError> {
    let report = jobs_bench::run(&connection, plan).await?;
    println!("{}", if json { serde_json::to_string_pretty(&report)? } else { report.text() });
    Ok(())
}

async fn ledger(config: &Config) -> Result<Store, ToolError> {
    let clock: SharedClock = Arc::new(SystemClock);
    Ok(Store::open(&config.ledger.url, clock, config.ledger.terms.clone()).await?)
}

/// `assetgw ledger verify`: fails naming every violated invariant.
pub async fn ledger_verify(path: &Path) -> Result<(), ToolError> {
    let violations = ledger(&load(path)?).await?.verify().await?;
    if violations.is_empty() {
        println!("ledger verified: every invariant holds");
        Ok(())
    } else {
        Err(ToolError::Failed(format!("{} violation(s):\n  {}", violations.len(), violations.join("\n  "))))
    }
}

/// `assetgw ledger bench`.
pub async fn ledger_bench(url: &str, concurrency: &[usize], ops: u64, fsync_dir: &Path) -> Result<(), ToolError> {
    let fsyncs = ledger_bench::fsync_rate(fsync_dir, Duration::from_secs(2))
        .map_err(|e| ToolError::Failed(format!("fsync measurement in {}: {e}", fsync_dir.display())))?;
    println!("disk: {fsyncs:.0} fsync/s (4 KiB write + fdatasync in {})", fsync_dir.display());
    for &c in concurrency {
        let r = ledger_bench::placements(url, c, ops).await?;
        println!(
            "{c:>3} writer(s): {:>6} placements in {:.2} s = {:>7.0}/s ({:.2}× fsync rate); p50 {:.2} ms, p99 {:.2} ms",
            r.ops,
            r.elapsed.as_secs_f64(),
            r.rate(),
            r.rate() / fsyncs,
            r.p50_us as f64 / 1e3,
            r.p99_us as f64 / 1e3
        );
    }
    Ok(())
}

/// `assetgw ledger bench-bankruptcy`.
pub async fn bankruptcy_bench(url: &str, scale: Scale) -> Result<(), ToolError> {
    let r = bankruptcy_bench::acceptance(url, scale).await?;
    let (took, cases, seizures) = r.picture;
    println!("picture: first page ({cases} cases, {seizures} seizures) in {:.1} ms", took.as_secs_f64() * 1e3);
    println!(
        "acceptance ({:?}): {} of {} seizures reached, {} release orders queued, acknowledged in {:.2} s",
        scale.lifting,
        r.reached,
        r.seeded,
        r.orders,
        r.elapsed.as_secs_f64()
    );
    Ok(())
}

/// `assetgw ledger bench-research`, from the Beijing midnight starting 1 January 2027.
pub async fn research_bench(url: &str, scale: research_bench::Scale) -> Result<(), ToolError> {
    let start = crate::core::clock::beijing_midnight(chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap_or_default());
    let r = research_bench::simulate(url, scale, start).await?;
    let (started, calls, unshared) =
        r.days.iter().fold((0, 0, 0), |(s, c, u), d| (s + d.started, c + d.calls, u + d.unshared));
    let per = |calls: u64| calls as f64 / started.max(1) as f64;
    println!(
        "{} days in {:.0} s: {started} re-searches, {:.1} registry calls each ({:.1} without sharing: {:.1} % saved);          the busiest registry had {} searches within a span, its rate {}; most waiting at a midnight: {} (oldest {:.1} h)",
        r.days.len(),
        r.elapsed.as_secs_f64(),
        per(calls),
        per(unshared),
        100.0 * (1.0 - calls as f64 / unshared.max(1) as f64),
        r.busiest,
        scale.rate,
        r.days.iter().map(|d| d.lag.0).max().unwrap_or(0),
        r.days.iter().map(|d| d.lag.1).max().unwrap_or_default().as_secs_f64() / 3600.0,
    );
    Ok(())
}

/// `assetgw ledger bench-outbox`.
pub async fn outbox_bench(url: &str, orders: u64, replicas: usize, hung: bool) -> Result<(), ToolError> {
    let d = outbox_bench::drain(url, orders, replicas, hung).await?;
    let what = if hung { "with the IP office hung" } else { "backlog" };
    println!(
        "{replicas} replica(s), {what}: {} orders delivered in {:.2} s = {:.0}/s; delay of orders made meanwhile \
         p50 {:.1} ms, p99 {:.1} ms",
        d.delivered,
        d.elapsed.as_secs_f64(),
        d.rate(),
        d.p50_ms,
        d.p99_ms
    );
    Ok(())
}

/// `assetgw pki init`.
pub fn pki_init(dir: &Path) -> Result<(), ToolError> {
    if Ca::load(dir).is_ok() {
        println!("{}: a CA exists; nothing to do", dir.display());
    } else {
        Ca::create(dir, "assetgw network CA")?;
        println!("{}: CA created (ca.pem; keep ca.key offline)", dir.join("ca.pem").display());
    }
    Ok(())
}

/// `assetgw pki fleet`.
pub fn pki_fleet(dir: &Path, banks: usize) -> Result<(), ToolError> {
    let names: Vec<String> = (1..=banks).map(mock::fleet::bank_name).collect();
    let started = tokio::time::Instant::now();
    pki::ensure_dev(dir, &names.iter().map(String::as_str).collect::<Vec<_>>())?;
    println!("{}: certificates of {banks} banks in {:.1} s", dir.display(), started.elapsed().as_secs_f64());
    Ok(())
}

/// `assetgw pki issue`.
pub fn pki_issue(
    dir: &Path,
    role: &str,
    name: Option<String>,
    hosts: &[String],
    days: i64,
    force: bool,
) -> Result<(), ToolError> {
    let role = match (role, name) {
        ("court", Some(code)) => Role::Court(code),
        ("registry", Some(name)) => Role::Registry(name),
        ("gateway", None) => Role::Gateway,
        _ => return Err(ToolError::Usage("give `court CODE`, `registry NAME` or `gateway`".into())),
    };
    let ca = Ca::load(dir).map_err(|e| ToolError::Usage(format!("{e} (create a CA with `assetgw pki init`)")))?;
    let (existing, _) = pki::paths(dir, &role);
    if existing.exists() && !force {
        return Err(ToolError::Usage(format!(
            "{} already holds the {role}'s certificate; a new one would replace the identity in use. \
             Pass --force to replace it",
            existing.display()
        )));
    }
    let (cert, key) = ca.issue_into(dir, &role, hosts, Validity::days(days))?;
    println!("issued for the {role}: {} and {} (valid {days} days)", cert.display(), key.display());
    Ok(())
}

/// `assetgw audit verify`: fails naming the first broken record.
pub async fn audit_verify(path: &Path) -> Result<(), ToolError> {
    let config = load(path)?;
    let store = ledger(&config).await?;
    let key = audit::Key::load_or_create(&config.audit.key_file)?;
    match audit::verify(store.pool(), &key).await? {
        Ok(n) => {
            println!("audit trail verified: {n} records, every chain intact");
            Ok(())
        }
        Err(bad) => Err(ToolError::Failed(format!("audit trail broken: {bad}"))),
    }
}

/// `assetgw audit export`: a case's or a debtor's records, one JSON object per line.
pub async fn audit_export(path: &Path, case: Option<String>, debtor: Option<String>) -> Result<(), ToolError> {
    let config = load(path)?;
    let store = ledger(&config).await?;
    let key = audit::Key::load_or_create(&config.audit.key_file)?;
    let (filter, what) = match (case, debtor) {
        (Some(case), _) => {
            let case = CaseNumber::parse_acting(&case).map(|c| c.to_string()).unwrap_or(case);
            (audit::Filter::Case(case.clone()), format!("case {case}"))
        }
        (None, Some(id)) => {
            let debtor = DebtorId::detect(&id).map_err(ToolError::Usage)?;
            (audit::Filter::DebtorKey(key.debtor(&debtor)), format!("debtor {}", debtor.masked()))
        }
        (None, None) => return Err(ToolError::Usage("give --case or --debtor".into())),
    };
    let records = audit::export(store.pool(), &filter).await?;
    if records.is_empty() {
        // Like grep: nothing found is not silence and success.
        return Err(ToolError::Failed(format!("no audit record names {what}")));
    }
    for r in records {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
