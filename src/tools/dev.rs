//! `assetgw dev`: the whole stack on one machine, over mutual TLS. The
//! development PKI is created under the CA's directory if missing, every
//! configured registry with a `mock` table gets a mock registry at its
//! endpoint, a fleet of mock banks joins them when asked (`--fleet N`), then
//! the gateway starts; one Ctrl-C stops everything, gateway first.

use std::{future::Future, net::SocketAddr};

use tokio::sync::watch;

use crate::{
    gateway::server,
    ops::{
        config::Config,
        net::bind,
        pki::{self, Role, TlsFiles},
    },
    tools::{
        ToolError,
        mock::{
            self, MockConfig,
            fleet::{self, Fleet, FleetConfig, bank_name},
        },
    },
};

/// Runs the mocks (and a fleet of mock banks on the address given) and the gateway until `shutdown` completes.
pub async fn run(
    config: &Config,
    fleet: Option<(FleetConfig, SocketAddr)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ToolError> {
    let mut config = config.clone();
    let config = &mut config;
    let settings = MockConfig::of(config).map_err(crate::ops::config::Problems)?;
    let pki = config.tls.pki_dir();
    if !config.tls.plaintext {
        let names: Vec<&str> = config.registries.iter().filter(|r| r.mock.is_some()).map(|r| r.name.as_str()).collect();
        if pki::ensure_dev(&pki, &names)? {
            tracing::info!(dir = %pki.display(), "created the development PKI (CA, gateway, registries, demo courts)");
        }
    }
    let (stop, stopped) = watch::channel(());
    let mut mocks = Vec::new();
    for (r, settings) in config.registries.iter().zip(&settings) {
        let Some(settings) = settings else { continue };
        let addr = mock_addr(&r.endpoint)
            .ok_or_else(|| ToolError::MockAddress { registry: r.name.clone(), endpoint: r.endpoint.clone() })?;
        // Like a real registry, a mock remembers its tickets and references across a restart.
        let kept = pki.parent().unwrap_or(&pki).join("mocks");
        let registry = mock::MockRegistry::new(&r.name, r.kind, settings.clone())?.kept_in(&kept);
        let mut stopped = stopped.clone();
        let tls = (!config.tls.plaintext).then(|| TlsFiles::of(&pki, &Role::Registry(r.name.clone())));
        let (_, task) = mock::spawn(registry, addr, tls, async move {
            let _ = stopped.changed().await;
        })
        .await?;
        mocks.push(task);
    }
    if let Some((fleet, addr)) = fleet {
        let listener = bind(addr).await?;
        let listen = listener.local_addr().unwrap_or(addr);
        let banks = Fleet::new(&fleet)?;
        let mut stopped = stopped.clone();
        let dir = pki.clone();
        mocks.push(tokio::spawn(async move {
            banks
                .serve(listener, &dir, async move {
                    let _ = stopped.changed().await;
                })
                .await
        }));
        config.registries.extend(fleet::registries(fleet.banks, listen));
    }
    let listener = bind(config.server.listen).await?;
    println!("{}", banner(config, &settings, listener.local_addr().unwrap_or(config.server.listen)));
    let result = server::run(config, listener, shutdown).await.map_err(ToolError::from);
    drop(stop);
    for task in mocks {
        let _ = task.await;
    }
    result
}

fn mock_addr(endpoint: &str) -> Option<SocketAddr> {
    let uri: tonic::transport::Uri = endpoint.parse().ok()?;
    format!("{}:{}", uri.host()?, uri.port_u16()?).parse().ok()
}

fn banner(config: &Config, settings: &[Option<MockConfig>], gateway: SocketAddr) -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.strip_prefix(std::env::current_dir().ok()?).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| "assetgw".into());
    let pki = config.tls.pki_dir().display().to_string();
    let scheme = if config.tls.plaintext { "http" } else { "https" };
    let mut out = format!("assetgw dev stack is up\n  gateway            {scheme}://{gateway}\n");
    for (r, mock) in config.registries.iter().zip(settings) {
        let how = mock.as_ref().map_or("external".to_string(), |m| match m.deferred {
            Some(later) => format!("mock, latency {}, answers later: ready {later} after a search", m.latency),
            None => format!("mock, latency {}", m.latency),
        });
        out += &format!("  {:<18} {} ({}, {how})\n", r.name, r.endpoint, r.kind.short_name());
    }
    // The fleet's banks follow the configured registries.
    if let Some(first) = config.registries.get(settings.len()) {
        let banks = config.registries.len() - settings.len();
        out += &format!(
            "  and a fleet of {banks} mock banks at {}: {} … {}\n",
            first.endpoint,
            bank_name(1),
            bank_name(banks)
        );
    }
    out += &format!(
        "\nIn another terminal (over mutual TLS, as court 京0105 with {pki}/courts/京0105.pem):\n  \
         {exe} search --gateway {scheme}://{gateway} --case '（2024）京0105执1234号' --debtor 110105199001011232\n  \
         (add --json for JSON, --stream to watch registries answer)\n  \
         {exe} call --gateway {scheme}://{gateway} SeizureService/PlaceSeizure '{{\"requestId\":\"r1\",\"caseNumber\":\"（2024）京0105执1234号\",\"debtor\":{{\"residentId\":\"110105199001011232\"}},\"assetKind\":\"ASSET_KIND_REAL_ESTATE\",\"assetId\":\"<from the search>\"}}'\n  \
         (seizures: see README, Seizures)\n\nDemo debtors (any other valid ID or credit code works too):\n"
    );
    for d in mock::data::demo_debtors().unwrap_or_default() {
        out += &format!("  {}  {}  {:?}: {}\n", d.id, d.name, d.profile, d.note);
    }
    out + "\nCtrl-C stops the stack."
}
