//! `assetgw search` and the connection every court-side command uses (`assetgw call` is in
//! [`super::call`]): it connects as one court over mutual TLS (its certificate from the PKI
//! directory), names the acting officer, and prints the merged result as a
//! table or as canonical proto JSON (the same mapping grpcurl uses).

use std::{path::PathBuf, time::Duration};

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use futures::StreamExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::{
    Code, Request, Status,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};
use tonic_types::StatusExt;

use crate::{
    core::identifiers::{CaseNumber, looks_like_resident_id},
    core::proto::{
        AssetKind, Debtor, DebtorResult, Money, RegistryKind, RegistryOutcome, RegistryStatus, SearchQuery,
        SearchRequest, SearchResponse, SearchStreamRequest, asset::Detail,
        asset_search_service_client::AssetSearchServiceClient, debtor, search_stream_response::Event,
    },
    gateway::auth::{COURT_HEADER, OFFICER_HEADER},
    ops::pki::{Role, TlsFiles},
};

/// How to reach the gateway and as whom, as the command line says it.
#[derive(clap::Args)]
pub struct ConnectArgs {
    /// Gateway URL: `https://` (mutual TLS) or `http://` (a gateway run with tls.plaintext).
    #[arg(long, env = "ASSETGW_GATEWAY", default_value = "https://127.0.0.1:50051")]
    gateway: String,
    /// The calling court (default: the court of the case number); its certificate is `<pki>/courts/<court>.pem`.
    #[arg(long)]
    court: Option<String>,
    /// The acting enforcement officer's id, recorded in the audit trail.
    #[arg(long, env = "ASSETGW_OFFICER", default_value = "officer-1")]
    officer: String,
    /// PKI directory with `ca.pem` and `courts/`.
    #[arg(long, env = "ASSETGW_PKI", default_value = "data/pki")]
    pki: PathBuf,
    /// Client certificate (PEM) instead of the court's in the PKI directory.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
}

impl ConnectArgs {
    /// The client's connection settings.
    pub fn connection(self) -> GatewayConnection {
        GatewayConnection {
            gateway: self.gateway,
            court: self.court,
            officer: self.officer,
            pki: self.pki,
            cert: self.cert.zip(self.key),
        }
    }
}

/// How to reach the gateway and as whom.
#[derive(Debug, Clone)]
pub struct GatewayConnection {
    /// `https://host:port` (mutual TLS) or `http://host:port` (a plaintext gateway).
    pub gateway: String,
    /// The calling court; default: the court of the case number.
    pub court: Option<String>,
    /// The acting officer's id.
    pub officer: String,
    /// PKI directory holding `ca.pem` and `courts/<code>.pem`.
    pub pki: PathBuf,
    /// Explicit certificate and key instead of the court's in `pki`.
    pub cert: Option<(PathBuf, PathBuf)>,
}

impl GatewayConnection {
    /// The court to call as: explicit, or the court of `case` (even a case the gateway will refuse
    /// for its type); a case number that does not parse is said first, as the gateway would say it.
    fn court(&self, case: Option<&str>) -> Result<String, ClientError> {
        match (&self.court, case) {
            (Some(court), _) => Ok(court.clone()),
            (None, Some(case)) => CaseNumber::parse(case)
                .map(|c| c.court_code)
                .map_err(|why| ClientError::Usage(format!("--case `{case}` {why}"))),
            (None, None) => Err(ClientError::Usage("name the calling court with --court".into())),
        }
    }

    /// A channel to the gateway as the court of `case`.
    pub async fn channel(&self, case: Option<&str>) -> Result<(Channel, String), ClientError> {
        let court = self.court(case)?;
        let mut endpoint = Endpoint::from_shared(self.gateway.clone())?;
        if self.gateway.starts_with("https:") {
            let mut files = TlsFiles::of(&self.pki, &Role::Court(court.clone()));
            if let Some((cert, key)) = &self.cert {
                (files.cert, files.key) = (cert.clone(), key.clone());
            }
            if !files.ca.exists() {
                return Err(ClientError::Usage(format!(
                    "{} is missing: run from the repository root (where `assetgw dev` keeps data/pki), start \
                     `assetgw dev` once to create the development PKI, or point --pki at your PKI directory",
                    files.ca.display()
                )));
            }
            if !files.cert.exists() {
                return Err(ClientError::Usage(format!(
                    "{} is missing: `assetgw pki issue --dir {} court {court}` issues the court's certificate",
                    files.cert.display(),
                    self.pki.display()
                )));
            }
            let host = endpoint.uri().host().unwrap_or("localhost").to_string();
            let tls = files.client(&host).map_err(|e| ClientError::Usage(e.to_string()))?;
            endpoint = endpoint.tls_config(tls)?;
        }
        let connected = endpoint.connect().await;
        let channel = connected.map_err(|source| ClientError::Connect { gateway: self.gateway.clone(), source })?;
        Ok((channel, court))
    }

    /// `message` with the officer (and, plaintext only, the court) in metadata.
    pub fn request<T>(&self, court: &str, message: T) -> Result<Request<T>, ClientError> {
        let mut request = Request::new(message);
        let value = |v: &str| {
            MetadataValue::try_from(v).map_err(|_| ClientError::Usage(format!("`{v}` cannot be sent as metadata")))
        };
        request.metadata_mut().insert(OFFICER_HEADER, value(&self.officer)?);
        if self.gateway.starts_with("http:") {
            request.metadata_mut().insert_bin(COURT_HEADER, MetadataValue::from_bytes(court.as_bytes()));
        }
        Ok(request)
    }
}

/// What to search and how to show it.
#[derive(Debug, Clone)]
pub struct SearchArgs {
    /// The gateway and who calls.
    pub connection: GatewayConnection,
    /// The enforcement case number.
    pub case_number: String,
    /// Debtor identifiers (resident IDs or credit codes).
    pub debtors: Vec<String>,
    /// Asset kinds wanted (empty: all).
    pub kinds: Vec<AssetKind>,
    /// Oldest acceptable cached answer.
    pub max_age: Option<Duration>,
    /// Accept credit codes that fail their checksum.
    pub accept_unchecked_credit_code: bool,
    /// Overall deadline sent as `grpc-timeout`.
    pub timeout: Duration,
    /// Print JSON instead of a table.
    pub json: bool,
    /// Use the streaming call and print each registry's answer as it arrives.
    pub stream: bool,
}

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway's address is not a URL.
    #[error("the gateway's address is not a URL like https://127.0.0.1:50051: {0}")]
    Address(#[from] tonic::transport::Error),
    /// The gateway could not be reached.
    #[error("cannot reach the gateway at {gateway}: {}", unreachable(.source))]
    Connect {
        /// Its address.
        gateway: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The gateway answered with an error.
    #[error("{}", describe_status(.0))]
    Status(#[from] Status),
    /// The gateway closed the stream without a summary.
    #[error("the gateway ended the stream without a summary")]
    NoSummary,
    /// JSON rendering failed.
    #[error("cannot render JSON: {0}")]
    Json(String),
    /// The request given to `assetgw call` is not one.
    #[error("cannot read the request: {0}")]
    Request(String),
    /// A `--field` path names no field of the answer.
    #[error("--field {0}")]
    Field(String),
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
}

/// Why a connection failed, and what to do, from the first cause in its chain that says.
fn unreachable(error: &tonic::transport::Error) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        let mut tls = e.downcast_ref::<rustls::Error>();
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connection refused: nothing listens there; start the stack with `assetgw dev` (from the \
                        repository root), or name the gateway with --gateway"
                    .into();
            }
            // The TLS stream reports rustls' error inside an I/O error, which `source` skips.
            tls = tls.or_else(|| io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()));
        }
        if let Some(tls) = tls {
            return match tls {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. }) => {
                    "its certificate does not name the host you called; call it by the name its certificate \
                     carries (localhost or 127.0.0.1 for the dev stack)"
                        .into()
                }
                rustls::Error::InvalidCertificate(why) => format!(
                    "its certificate was rejected ({why:?}): it was not issued by the CA in --pki; use the PKI \
                     directory of the gateway you call"
                ),
                rustls::Error::AlertReceived(alert) => format!(
                    "it refused this client's certificate ({alert:?}): the court's certificate is not from its CA"
                ),
                other => format!("TLS failed: {other}"),
            };
        }
        cause = e.source();
    }
    format!("{error}; is the gateway running? start it with `assetgw dev`")
}

fn describe_status(status: &Status) -> String {
    let mut out = format!("{:?}: ", status.code());
    match status.get_details_bad_request() {
        Some(bad) => {
            out += "the request was refused:";
            for v in bad.field_violations {
                out += &format!("\n  {}: {}", v.field, v.description);
            }
        }
        None => out += status.message(),
    }
    if status.code() == Code::Unavailable {
        out += "\n  (is the gateway running? start it with `assetgw dev`)";
    }
    out
}

/// Debtors as typed: the shape decides which identifier; the gateway validates.
/// Digits (with a final X) are a resident ID of whatever length, so that a
/// short or long number is refused as the resident ID it was meant to be.
fn debtor(id: &str, accept_unchecked: bool) -> Debtor {
    let id = id.trim().to_string();
    let digits = id.strip_suffix(['X', 'x']).unwrap_or(&id);
    let resident = looks_like_resident_id(&id) || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    let id = if resident { debtor::Id::ResidentId(id) } else { debtor::Id::CreditCode(id) };
    Debtor { id: Some(id), name: String::new(), accept_unchecked_credit_code: accept_unchecked }
}

impl SearchArgs {
    /// The query the arguments describe.
    pub fn query(&self) -> SearchQuery {
        SearchQuery {
            case_number: self.case_number.clone(),
            debtors: self.debtors.iter().map(|d| debtor(d, self.accept_unchecked_credit_code)).collect(),
            asset_kinds: self.kinds.iter().map(|k| *k as i32).collect(),
            max_age: self.max_age.and_then(|d| prost_types::Duration::try_from(d).ok()),
        }
    }
}

/// One registry's answer as a progress line.
pub fn progress(debtor_index: u32, o: &RegistryOutcome) -> String {
    format!(
        "  debtor #{} {:<18} {:<16} {:>10} {:>9}",
        debtor_index + 1,
        o.registry,
        status_name(o.status),
        asset_count(o.asset_count),
        timing(o)
    )
}

/// The time a registry took, or for an answer kept by a search job, when it came.
fn timing(o: &RegistryOutcome) -> String {
    match (&o.latency, &o.fetched_at) {
        (None, Some(at)) => format!("at {}", local_time(Some(at)).get(11..).unwrap_or_default()),
        (took, _) => latency(took.as_ref()),
    }
}

/// Runs the search and returns what to print; with `stream`, progress lines go to stderr as they come.
pub async fn search(args: &SearchArgs) -> Result<String, ClientError> {
    let (channel, court) = args.connection.channel(Some(&args.case_number)).await?;
    let mut client = AssetSearchServiceClient::new(channel);
    let query = args.query();
    let response = if args.stream {
        let mut request = args.connection.request(&court, SearchStreamRequest { query: Some(query) })?;
        request.set_timeout(args.timeout);
        let mut stream = client.search_stream(request).await?.into_inner();
        let mut summary = None;
        while let Some(event) = stream.next().await {
            match event?.event {
                Some(Event::RegistryAnswer(a)) => {
                    if let Some(o) = a.outcome {
                        eprintln!("{}", progress(a.debtor_index, &o));
                    }
                }
                Some(Event::Summary(s)) => summary = Some(s),
                None => {}
            }
        }
        summary.ok_or(ClientError::NoSummary)?
    } else {
        let mut request = args.connection.request(&court, SearchRequest { query: Some(query) })?;
        request.set_timeout(args.timeout);
        client.search(request).await?.into_inner()
    };
    if args.json { to_json(&response) } else { Ok(render(&response)) }
}

/// Canonical proto3 JSON, as any gRPC tool would print it.
pub fn to_json(response: &SearchResponse) -> Result<String, ClientError> {
    let pool = DescriptorPool::decode(crate::core::proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| ClientError::Json(e.to_string()))?;
    let descriptor = pool
        .get_message_by_name("assetgw.v1.SearchResponse")
        .ok_or_else(|| ClientError::Json("no descriptor".into()))?;
    let message = DynamicMessage::decode(descriptor, response.encode_to_vec().as_slice())
        .map_err(|e| ClientError::Json(e.to_string()))?;
    serde_json::to_string_pretty(&message).map_err(|e| ClientError::Json(e.to_string()))
}

pub(crate) fn status_name(status: i32) -> &'static str {
    match RegistryStatus::try_from(status).unwrap_or(RegistryStatus::Unspecified) {
        RegistryStatus::Ok => "ok",
        RegistryStatus::Timeout => "timeout",
        RegistryStatus::Unavailable => "unavailable",
        RegistryStatus::Error => "error",
        RegistryStatus::InvalidResponse => "invalid response",
        RegistryStatus::Omitted => "omitted (too large for one reply)",
        RegistryStatus::Pending => "pending (answers later)",
        RegistryStatus::Expired => "expired (no answer in its window)",
        RegistryStatus::Unspecified => "?",
    }
}

fn latency(d: Option<&prost_types::Duration>) -> String {
    d.and_then(|d| Duration::try_from(*d).ok()).map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
}

pub(crate) fn local_time(t: Option<&prost_types::Timestamp>) -> String {
    t.map(crate::core::proto::time_of)
        .map_or("-".into(), |t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
}

fn money(m: &Money) -> String {
    let units = m.minor_units.unsigned_abs();
    let whole = (units / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if m.minor_units < 0 { "-" } else { "" };
    format!("{} {sign}{grouped}.{:02}", m.currency, units % 100)
}

/// A readable report of a search: per debtor, the registries' outcomes, the assets and the totals.
pub fn render(response: &SearchResponse) -> String {
    let mut out = format!("Case {}   searched {}\n", response.case_number, local_time(response.completed_at.as_ref()));
    for d in &response.debtors {
        out += &render_debtor(d);
    }
    let pending =
        response.debtors.iter().flat_map(|d| &d.registries).filter(|o| o.status == RegistryStatus::Pending as i32);
    let pending = pending.count();
    if pending > 0 {
        out += &format!(
            "\n{pending} registry answer(s) pending, kept under search {id}: \
             `assetgw search --follow {id} --case '{}'` shows them as they arrive.\n",
            response.case_number,
            id = response.search_id
        );
    }
    out
}

fn render_debtor(d: &DebtorResult) -> String {
    let id = match d.debtor.as_ref().and_then(|d| d.id.as_ref()) {
        Some(debtor::Id::ResidentId(s) | debtor::Id::CreditCode(s)) => s.as_str(),
        None => "?",
    };
    let mut out = format!("\nDebtor {id}\n");
    let mut registries = Table::new();
    registries.load_preset(UTF8_BORDERS_ONLY).set_header(["registry", "kind", "status", "assets", "latency", "answer"]);
    for r in &d.registries {
        let answer = match (r.status == RegistryStatus::Ok as i32, r.from_cache, &r.latency) {
            (true, true, _) => format!("cached, fetched {}", local_time(r.fetched_at.as_ref())),
            (true, false, None) => format!("answered {}", local_time(r.fetched_at.as_ref())),
            (true, false, Some(_)) => "fresh".into(),
            (false, _, _) => r.message.clone(),
        };
        registries.add_row([
            r.registry.clone(),
            RegistryKind::try_from(r.kind).unwrap_or_default().short_name().into(),
            status_name(r.status).into(),
            r.asset_count.to_string(),
            latency(r.latency.as_ref()),
            answer,
        ]);
    }
    out += &format!("{registries}\n");
    if d.quiet_registries > 0 {
        out += &format!("and {} more registries answered OK with nothing for this debtor.\n", d.quiet_registries);
    }
    let mut assets = Table::new();
    assets.load_preset(UTF8_BORDERS_ONLY).set_header(["#", "kind", "asset", "detail", "reported by", "seizures"]);
    for (i, a) in d.assets.iter().enumerate() {
        let detail = a.asset.as_ref().map(detail_line).unwrap_or_default();
        let sources: Vec<_> = a.sources.iter().map(|s| s.registry.as_str()).collect();
        assets.add_row([
            (i + 1).to_string(),
            AssetKind::try_from(a.kind).unwrap_or_default().short_name().into(),
            a.asset_id.clone(),
            detail,
            sources.join(", "),
            seizures(a.seizures.as_ref()),
        ]);
    }
    if d.assets.is_empty() {
        out += "No assets found at the registries that answered.\n";
    } else {
        out += &format!("{assets}\n");
    }
    if let Some(t) = &d.totals {
        let kinds: Vec<_> = t
            .by_kind
            .iter()
            .map(|k| format!("{} {}", AssetKind::try_from(k.kind).unwrap_or_default().short_name(), k.count))
            .collect();
        let deposits: Vec<_> = t.deposits_by_currency.iter().map(money).collect();
        out += &format!("Totals: {}", asset_count(t.asset_count));
        if !kinds.is_empty() {
            out += &format!(" ({})", kinds.join(", "));
        }
        if !deposits.is_empty() {
            out += &format!("; deposits {}", deposits.join(", "));
        }
        out += "\n";
    }
    out
}

/// `1 asset`, `2 assets`.
fn asset_count(n: u32) -> String {
    format!("{n} asset{}", if n == 1 { "" } else { "s" })
}

/// An asset's seizures as the ledger has them now, from the searching case's view.
fn seizures(summary: Option<&crate::core::proto::SeizureSummary>) -> String {
    let Some(s) = summary else { return "unknown (ledger unreadable)".into() };
    if s.live_count == 0 {
        return "none".into();
    }
    let mut out = match s.first_case_number.as_str() {
        "" => "none in effect".to_string(),
        first => format!("first {first}"),
    };
    if s.waiting_count > 0 {
        out += &format!(", {} waiting", s.waiting_count);
    }
    if s.caller_rank > 0 {
        out += &format!("; this case rank {}", s.caller_rank);
    }
    out
}

fn detail_line(asset: &crate::core::proto::Asset) -> String {
    match &asset.detail {
        Some(Detail::Deposit(d)) => {
            format!("{} {}", d.account_type, d.balance.as_ref().map(money).unwrap_or_default())
        }
        Some(Detail::RealEstate(r)) => {
            format!("{} {:.2}㎡ {} share {}%", r.address, r.area_square_metres, r.land_use, r.share_basis_points / 100)
        }
        Some(Detail::Patent(p)) => format!("{} {} ({})", p.patent_type, p.title, p.status),
        Some(Detail::Trademark(t)) => format!("{} class {} ({})", t.mark, t.nice_class, t.status),
        Some(Detail::Aircraft(a)) => format!("{} {} MSN {}", a.manufacturer, a.aircraft_type, a.serial_number),
        Some(Detail::Securities(s)) => {
            format!("{} {} × {} ({})", s.security_name, s.security_code, s.quantity, s.market)
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(&Money { currency: "CNY".into(), minor_units: 123_456_789 }), "CNY 1,234,567.89");
        assert_eq!(money(&Money { currency: "USD".into(), minor_units: 5 }), "USD 0.05");
    }
}
