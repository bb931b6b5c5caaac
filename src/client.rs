//! `assetgw search`: the command-line court client. Prints the merged result
//! as a table, or as canonical proto JSON (the same mapping grpcurl uses).

use std::time::Duration;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use futures::StreamExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    identifiers::looks_like_resident_id,
    proto::{
        AssetKind, Debtor, DebtorResult, Money, RegistryKind, RegistryStatus, SearchQuery, SearchRequest,
        SearchResponse, SearchStreamRequest, asset::Detail, asset_search_service_client::AssetSearchServiceClient,
        debtor, search_stream_response::Event,
    },
};

/// What to search and how to show it.
#[derive(Debug, Clone)]
pub struct SearchArgs {
    /// The gateway's URL.
    pub gateway: String,
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
    /// The gateway could not be reached.
    #[error("cannot reach the gateway: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The gateway answered with an error.
    #[error("{}", describe_status(.0))]
    Status(#[from] Status),
    /// The gateway closed the stream without a summary.
    #[error("the gateway ended the stream without a summary")]
    NoSummary,
    /// JSON rendering failed.
    #[error("cannot render JSON: {0}")]
    Json(String),
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
fn debtor(id: &str, accept_unchecked: bool) -> Debtor {
    let id = id.trim().to_string();
    let id = if looks_like_resident_id(&id) { debtor::Id::ResidentId(id) } else { debtor::Id::CreditCode(id) };
    Debtor { id: Some(id), name: String::new(), accept_unchecked_credit_code: accept_unchecked }
}

/// Runs the search and returns what to print; with `stream`, progress lines go to stderr as they come.
pub async fn search(args: &SearchArgs) -> Result<String, ClientError> {
    let mut client = AssetSearchServiceClient::connect(args.gateway.clone()).await?;
    let query = SearchQuery {
        case_number: args.case_number.clone(),
        debtors: args.debtors.iter().map(|d| debtor(d, args.accept_unchecked_credit_code)).collect(),
        asset_kinds: args.kinds.iter().map(|k| *k as i32).collect(),
        max_age: args.max_age.and_then(|d| prost_types::Duration::try_from(d).ok()),
    };
    let response = if args.stream {
        let mut request = tonic::Request::new(SearchStreamRequest { query: Some(query) });
        request.set_timeout(args.timeout);
        let mut stream = client.search_stream(request).await?.into_inner();
        let mut summary = None;
        while let Some(event) = stream.next().await {
            match event?.event {
                Some(Event::RegistryAnswer(a)) => {
                    if let Some(o) = a.outcome {
                        eprintln!(
                            "  debtor #{} {:<18} {:<16} {:>3} assets {:>9}",
                            a.debtor_index + 1,
                            o.registry,
                            status_name(o.status),
                            o.asset_count,
                            latency(o.latency.as_ref())
                        );
                    }
                }
                Some(Event::Summary(s)) => summary = Some(s),
                None => {}
            }
        }
        summary.ok_or(ClientError::NoSummary)?
    } else {
        let mut request = tonic::Request::new(SearchRequest { query: Some(query) });
        request.set_timeout(args.timeout);
        client.search(request).await?.into_inner()
    };
    if args.json { to_json(&response) } else { Ok(render(&response)) }
}

/// Canonical proto3 JSON, as any gRPC tool would print it.
pub fn to_json(response: &SearchResponse) -> Result<String, ClientError> {
    let pool =
        DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).map_err(|e| ClientError::Json(e.to_string()))?;
    let descriptor = pool
        .get_message_by_name("assetgw.v1.SearchResponse")
        .ok_or_else(|| ClientError::Json("no descriptor".into()))?;
    let message = DynamicMessage::decode(descriptor, response.encode_to_vec().as_slice())
        .map_err(|e| ClientError::Json(e.to_string()))?;
    serde_json::to_string_pretty(&message).map_err(|e| ClientError::Json(e.to_string()))
}

fn status_name(status: i32) -> &'static str {
    match RegistryStatus::try_from(status).unwrap_or(RegistryStatus::Unspecified) {
        RegistryStatus::Ok => "ok",
        RegistryStatus::Timeout => "timeout",
        RegistryStatus::Unavailable => "unavailable",
        RegistryStatus::Error => "error",
        RegistryStatus::InvalidResponse => "invalid response",
        RegistryStatus::Unspecified => "?",
    }
}

fn latency(d: Option<&prost_types::Duration>) -> String {
    d.and_then(|d| Duration::try_from(*d).ok()).map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
}

fn local_time(t: Option<&prost_types::Timestamp>) -> String {
    t.map(crate::proto::time_of)
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
        let answer = match (r.status == RegistryStatus::Ok as i32, r.from_cache) {
            (true, true) => format!("cached, fetched {}", local_time(r.fetched_at.as_ref())),
            (true, false) => "fresh".into(),
            (false, _) => r.message.clone(),
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
    let mut assets = Table::new();
    assets.load_preset(UTF8_BORDERS_ONLY).set_header(["#", "kind", "asset", "detail", "reported by"]);
    for (i, a) in d.assets.iter().enumerate() {
        let detail = a.asset.as_ref().map(detail_line).unwrap_or_default();
        let sources: Vec<_> = a.sources.iter().map(|s| s.registry.as_str()).collect();
        assets.add_row([
            (i + 1).to_string(),
            AssetKind::try_from(a.kind).unwrap_or_default().short_name().into(),
            a.asset_id.clone(),
            detail,
            sources.join(", "),
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
        out += &format!("Totals: {} assets ({})", t.asset_count, kinds.join(", "));
        if !deposits.is_empty() {
            out += &format!("; deposits {}", deposits.join(", "));
        }
        out += "\n";
    }
    out
}

fn detail_line(asset: &crate::proto::Asset) -> String {
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

/// A codec for messages known only by their descriptors, as `assetgw call` needs.
struct DynamicCodec(prost_reflect::MessageDescriptor);

struct DynamicEncoder;
struct DynamicDecoder(prost_reflect::MessageDescriptor);

impl tonic::codec::Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.0.clone())
    }
}

impl tonic::codec::Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(e.to_string()))
    }
}

impl tonic::codec::Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src).map(Some).map_err(|e| Status::internal(e.to_string()))
    }
}

/// `assetgw call`: any method of the gateway (`SeizureService/PlaceSeizure`),
/// with the request as proto3 JSON; prints every response as JSON, one per
/// line for a stream, as it arrives.
pub async fn call(gateway: &str, method: &str, request: &str, timeout: Duration) -> Result<(), ClientError> {
    let pool =
        DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).map_err(|e| ClientError::Json(e.to_string()))?;
    let (service, name) =
        method.rsplit_once(['/', '.']).ok_or_else(|| ClientError::Json(format!("`{method}` is not Service/Method")))?;
    let found = pool
        .services()
        .filter(|s| s.name() == service || s.full_name() == service)
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .find(|m| m.name() == name);
    let Some(m) = found else {
        let all: Vec<String> = pool
            .services()
            .flat_map(|s| {
                s.methods().map(|m| format!("{}/{}", m.parent_service().name(), m.name())).collect::<Vec<_>>()
            })
            .collect();
        return Err(ClientError::Json(format!("no method `{method}`; the gateway has {}", all.join(", "))));
    };
    let mut de = serde_json::Deserializer::from_str(request);
    let input =
        DynamicMessage::deserialize(m.input(), &mut de).map_err(|e| ClientError::Json(format!("request: {e}")))?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::try_from(format!("/{}/{}", m.parent_service().full_name(), m.name()))
            .map_err(|e| ClientError::Json(e.to_string()))?;
    let channel = tonic::transport::Endpoint::from_shared(gateway.to_string())?.connect().await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(input);
    if !m.is_server_streaming() {
        req.set_timeout(timeout);
    }
    let print = |msg: &DynamicMessage, pretty: bool| -> Result<(), ClientError> {
        let text = if pretty { serde_json::to_string_pretty(msg) } else { serde_json::to_string(msg) };
        println!("{}", text.map_err(|e| ClientError::Json(e.to_string()))?);
        Ok(())
    };
    if m.is_server_streaming() {
        let mut stream = grpc.server_streaming(req, path, DynamicCodec(m.output())).await?.into_inner();
        while let Some(msg) = stream.next().await {
            print(&msg?, false)?;
        }
    } else {
        print(&grpc.unary(req, path, DynamicCodec(m.output())).await?.into_inner(), true)?;
    }
    Ok(())
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
