//! `assetgw conformance`: checks a registry implementation against the
//! registry contract (`proto/assetgw/v1/registry.proto`) over the same mutual
//! TLS the gateway uses, and reports each check with the reason it failed.
//! Partners run it before they connect; CI runs it against every mock and
//! against a deliberately faulty registry.

mod batch;
mod deferred;

use std::{collections::BTreeSet, time::Duration};

use prost::Message;
use serde::Serialize;
use tonic::{Code, Request, Response, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::{
    core::clock::{Clock, SystemClock},
    core::merge,
    core::proto::{
        AssetKind, ControlOrder, Debtor, DeductRequest, DescribeRequest, RegistryKind, ReleaseRequest, ReleaseResponse,
        RenewRequest, SearchAssetsRequest, SearchAssetsResponse, SeizeRequest, SeizeResponse, debtor,
        registry_service_client::RegistryServiceClient,
    },
    ops::pki::TlsFiles,
};

/// A resident ID every registry must answer as unknown: an empty result.
pub const UNKNOWN_DEBTOR: &str = "360426199101010071";
/// The default debtor the suite expects at least one asset for (the mocks' richest demo debtor).
pub const KNOWN_DEBTOR: &str = "110105199001011232";

/// The registry to check and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`.
    pub address: String,
    /// The name its certificate must carry; `None` for a plaintext registry.
    pub tls: Option<(TlsFiles, String)>,
    /// A debtor the registry reports at least one asset for.
    pub debtor: String,
    /// The deadline given to each call, as the gateway gives it.
    pub deadline: Duration,
    /// A certificate of the same CA that is not the gateway's (a court's): the
    /// registry must refuse it. `None` over plaintext, or when there is none.
    pub outsider: Option<TlsFiles>,
    /// How long the suite waits for a deferred answer to become ready.
    pub deferred_wait: Duration,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Its name.
    pub name: &'static str,
    /// What it requires.
    pub requires: &'static str,
    /// Whether the registry met it.
    pub passed: bool,
    /// What was seen, or why it failed and what to fix.
    pub detail: String,
}

/// Every check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    /// The registry checked.
    pub target: String,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl ConformanceReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// A report for people: one line per check, failures with their reason.
    pub fn text(&self) -> String {
        let mut out = format!("conformance of {}\n", self.target);
        for c in &self.checks {
            out += &format!("  {} {:<26} {}\n", if c.passed { "PASS" } else { "FAIL" }, c.name, c.requires);
            out += &format!("       {}\n", c.detail);
        }
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        out + &format!("{} of {} checks passed", self.checks.len() - failed, self.checks.len())
    }
}

type Verdict = Result<String, String>;

fn person(id: &str) -> Option<Debtor> {
    Some(Debtor { id: Some(debtor::Id::ResidentId(id.into())), ..Default::default() })
}

fn order(key: &str, asset: &merge::Reported) -> Option<ControlOrder> {
    Some(ControlOrder {
        idempotency_key: key.into(),
        court_code: "京0105".into(),
        case_number: "（2024）京0105执1号".into(),
        asset_kind: asset.kind as i32,
        asset_id: asset.id.clone(),
        seizure_id: format!("conformance-{key}"),
    })
}

/// A status with its causes (a TLS failure hides behind "transport error").
fn status_text(s: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", s.code(), s.message());
    let mut cause = std::error::Error::source(s);
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text += &format!(": {c_text}");
        }
        cause = c.source();
    }
    text
}

struct Suite {
    client: RegistryServiceClient<Channel>,
    health: HealthClient<Channel>,
    target: Target,
    run: String,
}

impl Suite {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.target.deadline);
        request
    }

    async fn search(&self, debtor: Option<Debtor>) -> Result<SearchAssetsResponse, tonic::Status> {
        self.search_accepting(debtor, false).await
    }

    /// A search as the gateway sends it, taking a deferred answer or not.
    async fn search_accepting(
        &self,
        debtor: Option<Debtor>,
        accept_deferred: bool,
    ) -> Result<SearchAssetsResponse, tonic::Status> {
        let request = self.search_request(debtor, accept_deferred);
        self.client.clone().search_assets(self.request(request)).await.map(|r| r.into_inner())
    }

    /// A search as the gateway words it.
    fn search_request(&self, debtor: Option<Debtor>, accept_deferred: bool) -> SearchAssetsRequest {
        SearchAssetsRequest {
            debtor,
            case_number: "（2024）京0105执1号".into(),
            court_code: "京0105".into(),
            request_id: format!("conformance-{}", self.run),
            accept_deferred,
        }
    }

    async fn describe(&self) -> Verdict {
        let d = self.client.clone().describe(self.request(DescribeRequest {})).await.map_err(|s| status_text(&s))?;
        let d = d.into_inner();
        let kind = RegistryKind::try_from(d.kind).unwrap_or_default();
        if kind == RegistryKind::Unspecified {
            return Err(format!("kind {} is not a registry kind", d.kind));
        }
        if d.name.trim().is_empty() {
            return Err("name is empty".into());
        }
        let kinds: Vec<AssetKind> = d.asset_kinds.iter().map(|k| AssetKind::try_from(*k).unwrap_or_default()).collect();
        if kinds.is_empty() || kinds.contains(&AssetKind::Unspecified) {
            return Err(format!("asset_kinds {:?} must list one or more asset kinds", d.asset_kinds));
        }
        let names: Vec<_> = kinds.iter().map(|k| k.short_name()).collect();
        Ok(format!("{} ({}), reports {}", d.name, kind.short_name(), names.join(", ")))
    }

    async fn declared_kinds(&self) -> Vec<AssetKind> {
        match self.client.clone().describe(self.request(DescribeRequest {})).await {
            Ok(d) => d.into_inner().asset_kinds.iter().filter_map(|k| AssetKind::try_from(*k).ok()).collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn well_formed(&self) -> Result<Vec<merge::Reported>, String> {
        let answer = self.search(person(&self.target.debtor)).await.map_err(|s| status_text(&s))?;
        if answer.assets.is_empty() {
            return Err(format!(
                "no assets for debtor {}: pass --debtor with an identity this registry holds assets for",
                crate::core::identifiers::Masked(&self.target.debtor)
            ));
        }
        let declared = self.declared_kinds().await;
        answer
            .assets
            .into_iter()
            .enumerate()
            .map(|(i, asset)| {
                // The gateway's own field rules: what it would drop, the suite fails.
                let reported = crate::core::answer::check(&asset)
                    .and_then(|()| merge::identify(asset))
                    .map_err(|e| format!("assets[{i}]: {e}"))?;
                if !declared.contains(&reported.kind) {
                    return Err(format!(
                        "assets[{i}] is a {} asset, which Describe does not list",
                        reported.kind.short_name()
                    ));
                }
                Ok(reported)
            })
            .collect()
    }

    async fn deterministic(&self) -> Verdict {
        let digest =
            |r: SearchAssetsResponse| -> BTreeSet<Vec<u8>> { r.assets.iter().map(Message::encode_to_vec).collect() };
        let first = self.search(person(&self.target.debtor)).await.map_err(|s| status_text(&s))?;
        let second = self.search(person(&self.target.debtor)).await.map_err(|s| status_text(&s))?;
        let (a, b) = (digest(first), digest(second));
        if a != b {
            return Err(format!(
                "two identical searches differ ({} and {} assets, {} in common)",
                a.len(),
                b.len(),
                a.intersection(&b).count()
            ));
        }
        Ok(format!("{} assets, identical twice", a.len()))
    }

    async fn unknown_debtor(&self) -> Verdict {
        match self.search(person(UNKNOWN_DEBTOR)).await {
            Ok(r) if r.assets.is_empty() => Ok("empty result".into()),
            Ok(r) => {
                Err(format!("{} assets for the test identity {UNKNOWN_DEBTOR}, which owns nothing", r.assets.len()))
            }
            Err(s) => Err(format!("{}; an unknown debtor is an empty result, not an error", status_text(&s))),
        }
    }

    async fn invalid_input(&self) -> Verdict {
        for (what, debtor) in
            [("no debtor", None), ("a resident ID with a wrong check character", person("110105199001011233"))]
        {
            match self.search(debtor).await {
                Err(s) if s.code() == Code::InvalidArgument => {}
                Err(s) => return Err(format!("{what}: {} instead of INVALID_ARGUMENT", status_text(&s))),
                Ok(_) => return Err(format!("{what}: answered OK instead of INVALID_ARGUMENT")),
            }
        }
        Ok("INVALID_ARGUMENT for a missing debtor and a bad check character".into())
    }

    async fn deadline(&self) -> Verdict {
        let started = tokio::time::Instant::now();
        // The client gives up at the deadline; a registry that honours it has answered by then.
        match self.search(person(&self.target.debtor)).await {
            Ok(_) => Ok(format!(
                "answered in {:.1} ms within {:?}",
                started.elapsed().as_secs_f64() * 1e3,
                self.target.deadline
            )),
            Err(s) if s.code() == Code::DeadlineExceeded => Ok("answered DEADLINE_EXCEEDED within the deadline".into()),
            Err(s) if matches!(s.code(), Code::Cancelled) || started.elapsed() >= self.target.deadline => Err(format!(
                "no answer within the {:?} deadline sent as grpc-timeout; answer within it or return DEADLINE_EXCEEDED",
                self.target.deadline
            )),
            Err(s) => Err(status_text(&s)),
        }
    }

    async fn health(&self) -> Verdict {
        for service in ["", "assetgw.v1.RegistryService"] {
            let check = self.health.clone().check(self.request(HealthCheckRequest { service: service.into() })).await;
            match check.map(|r| r.into_inner().status()) {
                Ok(ServingStatus::Serving) => {}
                Ok(other) => return Err(format!("grpc.health.v1 says {other:?} for `{service}`")),
                Err(s) => return Err(format!("grpc.health.v1 Check(`{service}`): {}", status_text(&s))),
            }
        }
        Ok("SERVING, overall and for assetgw.v1.RegistryService".into())
    }

    /// The first seizure's reference (for the renewal and release checks), and whether a retry was idempotent.
    async fn idempotent(&self, asset: &merge::Reported) -> (Option<String>, Verdict) {
        let seize = || self.seize_order("seize", asset, 1, Some(365), String::new());
        let first = match self.seize(seize()).await {
            Ok(r) => r,
            Err(e) => return (None, Err(e)),
        };
        if first.registry_reference.is_empty() {
            return (None, Err("Seize answered no registry_reference".into()));
        }
        let reference = Some(first.registry_reference.clone());
        let outcome = match self.client.clone().seize(self.request(seize())).await {
            Ok(again) if again.get_ref() == &first => Ok(format!("{} both times", first.registry_reference)),
            Ok(again) => Err(format!(
                "the same idempotency key twice gave two answers ({} then {}): a retried order must have one effect",
                first.registry_reference,
                again.get_ref().registry_reference
            )),
            Err(s) => Err(format!("the retry failed: {}", status_text(&s))),
        };
        (reference, outcome)
    }

    /// A Seize order under this run's `key`, `amount`, ending `days` from now
    /// (none: it waits), quoting `reference` (a waiting seizure taking effect).
    fn seize_order(
        &self,
        key: &str,
        asset: &merge::Reported,
        amount: i64,
        days: Option<i64>,
        reference: String,
    ) -> SeizeRequest {
        let end = days.map(|d| crate::core::proto::ts(SystemClock.now() + chrono::Duration::days(d)));
        SeizeRequest {
            order: order(&format!("{}-{key}", self.run), asset),
            amount,
            end_time: end,
            registry_reference: reference,
        }
    }

    async fn seize(&self, request: SeizeRequest) -> Result<SeizeResponse, String> {
        self.client.clone().seize(self.request(request)).await.map(Response::into_inner).map_err(|s| status_text(&s))
    }

    /// A second seizure behind the first waits (no dates); quoting its
    /// reference with a term lets it take effect (dates); an unknown reference is NOT_FOUND.
    /// Leaves nothing behind: the waiting seizure is released.
    async fn waiting_and_promotion(&self, asset: &merge::Reported) -> (Verdict, Verdict) {
        let waiting = match self.seize(self.seize_order("waiting", asset, 1, None, String::new())).await {
            Ok(w) if w.registry_reference.is_empty() => Err("a waiting Seize answered no registry_reference".into()),
            Ok(w) if w.start_time.is_some() || w.end_time.is_some() => Err(format!(
                "a waiting Seize (no end_time) answered start {:?} and end {:?}; a waiting seizure has no term",
                w.start_time, w.end_time
            )),
            Ok(w) => Ok(w.registry_reference),
            Err(e) => Err(e),
        };
        let reference = match waiting {
            Ok(r) => r,
            Err(e) => return (Err(e), Err("needs the waiting seizure of seize_waiting".into())),
        };
        let promoted = self.seize(self.seize_order("promote", asset, 1, Some(365), reference.clone())).await;
        let promoted = match promoted {
            Ok(p) if p.registry_reference == reference && p.start_time.is_some() && p.end_time.is_some() => {
                let unknown = self.seize_order("promote-unknown", asset, 1, Some(365), format!("no-such-{}", self.run));
                match self.client.clone().seize(self.request(unknown)).await {
                    Err(s) if s.code() == Code::NotFound => {
                        Ok(format!("{reference} took effect; unknown reference NOT_FOUND"))
                    }
                    Err(s) => Err(format!("an unknown reference: {} instead of NOT_FOUND", status_text(&s))),
                    Ok(_) => Err("an unknown reference answered OK; answer NOT_FOUND".into()),
                }
            }
            Ok(p) => Err(format!(
                "quoting `{reference}` answered reference `{}`, start {:?}, end {:?}: answer the same reference and the term you started",
                p.registry_reference, p.start_time, p.end_time
            )),
            Err(e) => Err(e),
        };
        let _ = self.release_order("release-waiting", asset, &reference).await;
        (Ok(format!("{reference}, no term while it waits")), promoted)
    }

    /// Deducting from a deposit freeze answers what remains; a retry has one effect.
    async fn deduct(&self, deposit: Option<&merge::Reported>) -> Verdict {
        let Some(asset) = deposit else { return Ok("not applicable: no deposit among the assets".into()) };
        let freeze = self.seize(self.seize_order("deduct-freeze", asset, 100, Some(365), String::new())).await?;
        let reference = freeze.registry_reference;
        let request = || DeductRequest {
            order: order(&format!("{}-deduct", self.run), asset),
            registry_reference: reference.clone(),
            amount: 40,
        };
        let first =
            self.client.clone().deduct(self.request(request())).await.map_err(|s| status_text(&s))?.into_inner();
        let again =
            self.client.clone().deduct(self.request(request())).await.map_err(|s| status_text(&s))?.into_inner();
        let _ = self.release_order("release-deduct", asset, &reference).await;
        if first.registry_reference != reference || first.deducted_at.is_none() || first.remaining != 60 {
            return Err(format!(
                "deducting 40 of 100 answered reference `{}`, deducted_at {:?}, remaining {}: answer the freeze's reference, when, and 60",
                first.registry_reference, first.deducted_at, first.remaining
            ));
        }
        if again != first {
            return Err(format!(
                "the same deduction twice left {} then {}: a retried order has one effect",
                first.remaining, again.remaining
            ));
        }
        Ok(format!("{reference}: 40 of 100 deducted, 60 remain, once"))
    }

    async fn renew(&self, asset: &merge::Reported, reference: &str) -> Verdict {
        let end = SystemClock.now() + chrono::Duration::days(2 * 365);
        let request = RenewRequest {
            order: order(&format!("{}-renew", self.run), asset),
            registry_reference: reference.into(),
            end_time: Some(crate::core::proto::ts(end)),
        };
        let r = self.client.clone().renew(self.request(request)).await.map_err(|s| status_text(&s))?.into_inner();
        if r.registry_reference != reference {
            return Err(format!("answered reference `{}`, not the seizure's `{reference}`", r.registry_reference));
        }
        let (Some(_), Some(end)) = (r.start_time, r.end_time) else {
            return Err("a renewal answers the registry's start_time and end_time".into());
        };
        Ok(format!("{reference} until {}", crate::core::proto::time_of(&end).format("%Y-%m-%d")))
    }

    /// A Release order under this run's `key` for `reference`.
    async fn release_order(
        &self,
        key: &str,
        asset: &merge::Reported,
        reference: &str,
    ) -> Result<ReleaseResponse, tonic::Status> {
        let request = ReleaseRequest {
            order: order(&format!("{}-{key}", self.run), asset),
            registry_reference: reference.into(),
            // What an acceptance's lift carries (R25): a registry must take a release that says why.
            reason: "lifted: the debtor's bankruptcy was accepted (R25)".into(),
        };
        self.client.clone().release(self.request(request)).await.map(Response::into_inner)
    }

    async fn release(&self, asset: &merge::Reported, reference: &str) -> Verdict {
        let r = self.release_order("release", asset, reference).await.map_err(|s| status_text(&s))?;
        if r.registry_reference != reference || r.released_at.is_none() {
            return Err(format!(
                "answered reference `{}` and released_at {:?}; a release answers the seizure's reference and when",
                r.registry_reference, r.released_at
            ));
        }
        Ok(format!("{reference} released"))
    }

    async fn release_unknown(&self, asset: &merge::Reported) -> Verdict {
        let unknown = format!("conformance-no-such-reference-{}", self.run);
        match self.release_order("unknown", asset, &unknown).await {
            Err(s) if s.code() == Code::NotFound => Ok("NOT_FOUND".into()),
            Err(s) => Err(format!("{} instead of NOT_FOUND", status_text(&s))),
            Ok(_) => Err("answered OK for a reference it never issued; answer NOT_FOUND".into()),
        }
    }
}

/// A caller that is not the gateway (a court's certificate from the same CA) is refused.
async fn outsider(target: &Target) -> Verdict {
    let (Some(files), Some((_, name))) = (&target.outsider, &target.tls) else {
        return Ok("not checked: plaintext, or no outsider certificate given".into());
    };
    let seen = async {
        let tls = files.client(name).map_err(|e| e.to_string())?;
        let endpoint = Channel::from_shared(format!("https://{}", target.address)).map_err(|e| e.to_string())?;
        let channel = endpoint.tls_config(tls).map_err(|e| e.to_string())?.connect_lazy();
        let mut request = Request::new(SearchAssetsRequest { debtor: person(&target.debtor), ..Default::default() });
        request.set_timeout(target.deadline);
        Ok::<_, String>(RegistryServiceClient::new(channel).search_assets(request).await)
    };
    match seen.await? {
        Err(s) if s.code() == Code::PermissionDenied => Ok("PERMISSION_DENIED".into()),
        // Refused in the handshake (e.g. the certificate is not for client use): never answered.
        Err(s) if s.code() == Code::Unavailable || s.code() == Code::Unknown => {
            Ok(format!("refused: {}", status_text(&s)))
        }
        Err(s) => Err(format!("{} instead of PERMISSION_DENIED", status_text(&s))),
        Ok(_) => {
            Err("answered a caller that is not the gateway; refuse any other certificate with PERMISSION_DENIED".into())
        }
    }
}

/// Why the suite could not set out to reach the registry.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The target is not a `host:port`.
    #[error("`{address}` is not a registry address: {source}")]
    Address {
        /// The target given.
        address: String,
        /// The parse error.
        source: tonic::codegen::http::uri::InvalidUri,
    },
    /// The gateway's certificate for the call is missing or bad.
    #[error(transparent)]
    Tls(#[from] crate::ops::pki::PkiError),
    /// The channel refused the TLS settings.
    #[error("TLS settings refused: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Connects to the registry (lazily: a refused connection fails each check, with its reason).
fn channel(target: &Target) -> Result<Channel, ConnectError> {
    let scheme = if target.tls.is_some() { "https" } else { "http" };
    let address = &target.address;
    let mut endpoint = Channel::from_shared(format!("{scheme}://{address}"))
        .map_err(|source| ConnectError::Address { address: address.clone(), source })?;
    if let Some((files, name)) = &target.tls {
        endpoint = endpoint.tls_config(files.client(name)?)?;
    }
    Ok(endpoint.connect_lazy())
}

/// Runs every check against `target`.
pub async fn run(target: Target) -> Result<ConformanceReport, ConnectError> {
    let channel = channel(&target)?;
    let suite = Suite {
        client: RegistryServiceClient::new(channel.clone()),
        health: HealthClient::new(channel),
        run: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        target: target.clone(),
    };
    let mut checks = Vec::new();
    let mut record = |name, requires, outcome: Verdict| {
        let (passed, detail) = match outcome {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        checks.push(Check { name, requires, passed, detail });
    };
    record("describe", "Describe names the registry, its kind and asset kinds", suite.describe().await);
    let assets = suite.well_formed().await;
    let summary =
        assets.as_ref().map(|a| format!("{} well-formed assets of declared kinds", a.len())).map_err(Clone::clone);
    record("search_well_formed", "assets have valid identifiers for their kind", summary);
    record("search_deterministic", "the same search gives the same assets", suite.deterministic().await);
    record("unknown_debtor_empty", "an unknown debtor is an empty result, not an error", suite.unknown_debtor().await);
    record("invalid_input", "invalid input is INVALID_ARGUMENT", suite.invalid_input().await);
    record("deadline", "answers within the caller's grpc-timeout", suite.deadline().await);
    record("health", "serves grpc.health.v1", suite.health().await);
    let deposit = assets.as_ref().ok().and_then(|a| a.iter().find(|r| r.kind == AssetKind::Deposit).cloned());
    let asset = assets.ok().and_then(|a| a.into_iter().next());
    let needs_asset =
        || Err::<String, _>("needs an asset from search_well_formed and a seizure from seize_idempotent".to_string());
    let (reference, idempotent) = match &asset {
        Some(a) => suite.idempotent(a).await,
        None => (None, needs_asset()),
    };
    record("seize_idempotent", "the same idempotency key twice has one effect", idempotent);
    let (waiting, promoted) = match (&asset, &reference) {
        (Some(a), Some(_)) => suite.waiting_and_promotion(a).await,
        _ => (needs_asset(), needs_asset()),
    };
    record("seize_waiting", "a Seize without end_time waits: a reference, no dates", waiting);
    record("seize_promotion", "quoting a waiting reference starts its term", promoted);
    let (renewed, released, unknown) = match (&asset, &reference) {
        (Some(a), Some(r)) => (suite.renew(a, r).await, suite.release(a, r).await, suite.release_unknown(a).await),
        (Some(a), None) => (needs_asset(), needs_asset(), suite.release_unknown(a).await),
        _ => (needs_asset(), needs_asset(), needs_asset()),
    };
    record("renew_answers", "a renewal answers the reference and dates", renewed);
    record("release_answers", "a release answers the reference and date", released);
    record("release_unknown_not_found", "releasing an unknown reference is NOT_FOUND", unknown);
    record("deduct_answers", "a deduction answers what remains, once", suite.deduct(deposit.as_ref()).await);
    record("refuses_outsiders", "a caller that is not the gateway is refused", outsider(&target).await);
    record("deferred", "tickets only when accepted; pending, then one final answer", suite.deferred().await);
    record("batch", "a batch answers each search on its own, in order (optional)", suite.batch().await);
    Ok(ConformanceReport { target: target.address, checks })
}
