//! `assetgw call`: any method of the gateway with its request as proto3 JSON
//! (the same JSON grpcurl takes), as one court; answers printed as JSON, or
//! only the fields named by dotted path, each checked against the answer's type.

use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor, ReflectMessage};
use tonic::Status;

use super::client::{ClientError, GatewayConnection};
use crate::core::method::Method;

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
pub async fn call(
    connection: &GatewayConnection,
    method: &str,
    request: &str,
    timeout: Duration,
    fields: &[String],
) -> Result<(), ClientError> {
    let Prepared { mut grpc, request: req, path, method: m } =
        prepare(connection, (method, request), timeout, None).await?;
    let print = |msg: &DynamicMessage, pretty: bool| -> Result<(), ClientError> {
        let json = |e: serde_json::Error| ClientError::Json(e.to_string());
        if fields.is_empty() {
            let text = if pretty { serde_json::to_string_pretty(msg) } else { serde_json::to_string(msg) };
            println!("{}", text.map_err(json)?);
        } else {
            let value = serde_json::to_value(msg).map_err(json)?;
            let picked = fields.iter().map(|f| pick(&msg.descriptor(), &value, f)).collect::<Result<Vec<_>, _>>();
            println!("{}", picked.map_err(ClientError::Field)?.join("\t"));
        }
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

/// A unary method's answer to `request` (proto3 JSON), as the court of `case` (else of the
/// request's case).
pub async fn ask(
    connection: &GatewayConnection,
    (method, request): (&str, &str),
    timeout: Duration,
    case: Option<&str>,
) -> Result<DynamicMessage, ClientError> {
    let Prepared { mut grpc, request, path, method: m } = prepare(connection, (method, request), timeout, case).await?;
    Ok(grpc.unary(request, path, DynamicCodec(m.output())).await?.into_inner())
}

/// A call ready to go: the connection, the request as its case's court sends it, and the method.
struct Prepared {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
    request: tonic::Request<DynamicMessage>,
    path: tonic::codegen::http::uri::PathAndQuery,
    method: MethodDescriptor,
}

async fn prepare(
    connection: &GatewayConnection,
    (method, request): (&str, &str),
    timeout: Duration,
    case: Option<&str>,
) -> Result<Prepared, ClientError> {
    let m = gateway_method(method)?;
    let mut de = serde_json::Deserializer::from_str(request);
    let input = DynamicMessage::deserialize(m.input(), &mut de)
        .map_err(|e| ClientError::Request(format!("{e} (a {} as proto3 JSON)", m.input().name())))?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::try_from(format!("/{}/{}", m.parent_service().full_name(), m.name()))
            .map_err(|e| ClientError::Json(e.to_string()))?;
    let text =
        |m: &DynamicMessage, field: &str| m.get_field_by_name(field).and_then(|v| v.as_str().map(str::to_string));
    let query = input.get_field_by_name("query").and_then(|q| q.as_message().cloned());
    let case = case
        .map(str::to_string)
        .or_else(|| text(&input, "case_number"))
        .or_else(|| text(&input, "new_case_number"))
        .or_else(|| query.and_then(|q| text(&q, "case_number")));
    let (channel, court) = connection.channel(case.as_deref()).await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = connection.request(&court, input)?;
    if !m.is_server_streaming() {
        request.set_timeout(timeout);
    }
    Ok(Prepared { grpc, request, path, method: m })
}

/// The gateway method `method` names (`Service/Method` or `package.Service.Method`); an unknown one
/// is refused with the methods there are, the nearest first.
fn gateway_method(method: &str) -> Result<MethodDescriptor, ClientError> {
    let pool = DescriptorPool::decode(crate::core::proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| ClientError::Json(e.to_string()))?;
    // The court-facing methods are those the gateway's spine knows.
    let methods: Vec<MethodDescriptor> = pool
        .services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .filter(|m| Method::from_path(&format!("/{}/{}", m.parent_service().full_name(), m.name())).is_some())
        .collect();
    let name = |m: &MethodDescriptor| format!("{}/{}", m.parent_service().name(), m.name());
    let wanted = method.rsplit_once(['/', '.']).map(|(service, name)| {
        let service = service.rsplit('.').next().unwrap_or(service);
        format!("{service}/{name}")
    });
    if let Some(found) = methods.iter().find(|m| wanted.as_deref() == Some(name(m).as_str())) {
        return Ok(found.clone());
    }
    let mut all: Vec<String> = methods.iter().map(name).collect();
    let asked = wanted.unwrap_or_else(|| method.to_string());
    all.sort_by_key(|m| strsim::levenshtein(&m.to_lowercase(), &asked.to_lowercase()));
    let hint = match all.first() {
        Some(nearest) if strsim::normalized_levenshtein(&nearest.to_lowercase(), &asked.to_lowercase()) > 0.6 => {
            format!("did you mean {nearest}? ")
        }
        _ => String::new(),
    };
    Err(ClientError::Usage(format!("no gateway method `{method}`; {hint}the gateway has {}", all.join(", "))))
}

/// The field at a dotted path (`result.seizure.seizureId`, `seizures.0.rank`)
/// of proto3 JSON, checked against the answer's message type `desc`: text as
/// it is, anything else as JSON, and nothing for a field that is absent (proto3
/// JSON leaves out default values). A path naming no field, or an index past
/// a list's end, is an error that says what there is.
fn pick(desc: &MessageDescriptor, value: &serde_json::Value, path: &str) -> Result<String, String> {
    let (mut at, mut message, mut list) = (Some(value), Some(desc.clone()), false);
    let mut walked: Vec<&str> = Vec::new();
    for key in path.split('.') {
        let here = if walked.is_empty() { "the answer".to_string() } else { format!("`{}`", walked.join(".")) };
        if list {
            let items = at.and_then(serde_json::Value::as_array).map_or(&[][..], Vec::as_slice);
            let index: usize = key.parse().map_err(|_| format!("{path}: {here} is a list; follow it with an index"))?;
            at =
                Some(items.get(index).ok_or_else(|| {
                    format!("{path}: {here} has {} item(s), so there is no item {index}", items.len())
                })?);
            list = false;
        } else {
            let m = message.take().ok_or_else(|| format!("{path}: {here} is a value, not a message"))?;
            let Some(field) = m.fields().find(|f| f.json_name() == key || f.name() == key) else {
                let names: Vec<String> = m.fields().map(|f| f.json_name().to_string()).collect();
                return Err(format!(
                    "{path}: {here} ({}) has no field `{key}`; its fields: {}",
                    m.name(),
                    names.join(", ")
                ));
            };
            at = at.and_then(|v| v.get(field.json_name()));
            list = field.is_list();
            message = field.kind().as_message().cloned().filter(|_| !field.is_map());
        }
        walked.push(key);
    }
    Ok(match at {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_picked_by_dotted_path_and_a_wrong_path_says_what_there_is() {
        let desc = gateway_method("SeizureService/PlaceSeizure").unwrap().output();
        let v = serde_json::json!({"result": {"message": "placed", "queue": {"seizures": [{"rank": 1}, {"rank": 2}]}}});
        assert_eq!(pick(&desc, &v, "result.message"), Ok("placed".into()));
        assert_eq!(pick(&desc, &v, "result.queue.seizures.1.rank"), Ok("2".into()));
        assert_eq!(pick(&desc, &v, "result.queue"), Ok(r#"{"seizures":[{"rank":1},{"rank":2}]}"#.into()));
        assert_eq!(pick(&desc, &v, "result.seizure.seizureId"), Ok(String::new()), "a field left at its default");
        let misspelt = pick(&desc, &v, "result.mesage").unwrap_err();
        assert!(misspelt.contains("has no field `mesage`") && misspelt.contains("message"), "{misspelt}");
        let past = pick(&desc, &v, "result.queue.seizures.9.rank").unwrap_err();
        assert!(past.contains("has 2 item(s), so there is no item 9"), "{past}");
        let unindexed = pick(&desc, &v, "result.queue.seizures.rank").unwrap_err();
        assert!(unindexed.contains("is a list; follow it with an index"), "{unindexed}");
    }

    #[test]
    fn an_unknown_method_is_refused_with_the_gateways_methods_the_nearest_first() {
        assert!(gateway_method("assetgw.v1.SeizureService.PlaceSeizure").is_ok());
        let err = gateway_method("SeizureService/PlaceSiezure").unwrap_err().to_string();
        assert!(err.contains("did you mean SeizureService/PlaceSeizure?"), "{err}");
        let err = gateway_method("RegistryService/Seize").unwrap_err().to_string();
        let listed = err.split("the gateway has").nth(1).unwrap_or_default();
        assert!(!listed.contains("RegistryService/") && !listed.contains("MockAdminService/"), "{err}");
    }
}
