//! The gateway's error type and its one mapping to `tonic::Status`. Messages
//! are for the court officer; backend details go to the logs, never to the
//! client, and no message carries a full debtor identifier.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A field of the request and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path, e.g. `query.debtors[1].resident_id`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub description: String,
}

/// Everything a court-facing call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every bad field is listed.
    #[error("invalid request: {}", .0.iter().map(|v| format!("{} {}", v.field, bounded(&v.description, QUOTE_CHARS * 4))).collect::<Vec<_>>().join("; "))]
    InvalidArgument(Vec<Violation>),
    /// The overall deadline passed before every registry had answered.
    /// The search's answers that come later are kept under the search id, if any.
    #[error("the search did not finish within its deadline of {}; {}", humantime::format_duration(*.0), kept(.1.as_deref()))]
    DeadlineExceeded(Duration, Option<String>),
    /// The request is well formed but cannot be served as asked.
    #[error("{0}")]
    FailedPrecondition(String),
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller did not prove who it is.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller exceeded its rate or quota; it may retry after the given time.
    #[error("{message}")]
    ResourceExhausted {
        /// What was exceeded.
        message: String,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// A dependency is down; the request had no effect and may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected condition inside the gateway.
    #[error("internal error; the gateway's logs have the cause")]
    Internal(String),
}

impl Error {
    /// The gRPC code this error is answered with (also what the audit trail records).
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::DeadlineExceeded(..) => Code::DeadlineExceeded,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::NotFound(_) => Code::NotFound,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::ResourceExhausted { .. } => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }
}

/// The trailer that names the search a DEADLINE_EXCEEDED search continues as.
pub const SEARCH_ID_HEADER: &str = "x-search-id";

/// What a court can do about a search past its deadline.
fn kept(search_id: Option<&str>) -> String {
    match search_id {
        Some(id) => format!("the registries still asked answer into search {id} (GetSearch, WatchSearch)"),
        None => "retry, or allow a longer grpc-timeout".into(),
    }
}

/// Most characters of a court's own input that a message, a detail or an
/// audit record quotes: enough to recognise it, never enough to make a reply
/// too large for a client to read.
pub const QUOTE_CHARS: usize = 32;

/// Most characters of a message or of one violation's description.
pub const MESSAGE_CHARS: usize = 512;

/// `text`, cut to `max` characters with a note of its length when longer.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}… ({} characters)", &text[..end], text.chars().count()),
    }
}

/// A court's input as a message quotes it: at most [`QUOTE_CHARS`] characters.
pub fn quote(input: &str) -> String {
    bounded(input, QUOTE_CHARS)
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let (code, message) = (err.code(), bounded(&err.to_string(), MESSAGE_CHARS));
        match err {
            Error::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(
                        bounded(&v.field, QUOTE_CHARS),
                        bounded(&v.description, MESSAGE_CHARS),
                    );
                }
                Status::with_error_details(code, message, details)
            }
            Error::ResourceExhausted { retry_after, .. } => {
                Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(retry_after)))
            }
            Error::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Status::new(code, message)
            }
            Error::DeadlineExceeded(_, Some(id)) => {
                let mut status = Status::new(code, message);
                if let Ok(value) = id.parse() {
                    status.metadata_mut().insert(SEARCH_ID_HEADER, value);
                }
                status
            }
            _ => Status::new(code, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_violation_as_details() {
        let status: Status = Error::InvalidArgument(vec![
            Violation { field: "a".into(), description: "is bad".into() },
            Violation { field: "b".into(), description: "is worse".into() },
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid request: a is bad; b is worse");
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations.len(), 2);
        assert_eq!(bad.field_violations[1].field, "b");
    }
}
