//! What a ledger step answered: stored under the court's request id, so a
//! retry is answered with it, and handed back to the method as its own type.

use prost::Message;

use crate::{
    core::{
        method::Method,
        proto::{
            AnswerDisposalTransferResponse, ApplyToParticipateResponse, BankruptcyOutcome, Case, ControlResult,
            DesignateSeriesResponse, Distribution, Proceeds, RecordDesignationResponse, ResumeCaseResponse,
            SecuredClaim, TerminateCaseResponse, TransferCaseResponse,
        },
    },
    ledger::LedgerError,
};

/// What a step answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A seizure step.
    Control(ControlResult),
    /// A designation's receipt.
    Designation(RecordDesignationResponse),
    /// A case transfer step.
    Transfer(TransferCaseResponse),
    /// A disposal-transfer step.
    Disposal(AnswerDisposalTransferResponse),
    /// A bankruptcy decision.
    Bankruptcy(BankruptcyOutcome),
    /// A case registered.
    Case(Case),
    /// A series designation (R23).
    Series(DesignateSeriesResponse),
    /// A termination (R30).
    Terminated(TerminateCaseResponse),
    /// A resumption (R30).
    Resumed(ResumeCaseResponse),
    /// Proceeds recorded (R28).
    Proceeds(Proceeds),
    /// A secured claim recorded (R28).
    Secured(SecuredClaim),
    /// A participation (R28).
    Participation(ApplyToParticipateResponse),
    /// A plan drafted or moved on (R28, R29).
    Distribution(Distribution),
    /// Internal steps.
    Done,
}

impl Reply {
    /// The reply as stored: compact, a step's outcome without the asset's queue,
    /// which a replay reads afresh.
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Control(r) => ControlResult { queue: None, ..r.clone() }.encode_to_vec(),
            Reply::Designation(r) => r.encode_to_vec(),
            Reply::Transfer(r) => r.encode_to_vec(),
            Reply::Disposal(r) => r.encode_to_vec(),
            Reply::Bankruptcy(r) => r.encode_to_vec(),
            Reply::Case(r) => r.encode_to_vec(),
            Reply::Series(r) => r.encode_to_vec(),
            Reply::Terminated(r) => r.encode_to_vec(),
            Reply::Resumed(r) => r.encode_to_vec(),
            Reply::Proceeds(r) => r.encode_to_vec(),
            Reply::Secured(r) => r.encode_to_vec(),
            Reply::Participation(r) => r.encode_to_vec(),
            Reply::Distribution(r) => r.encode_to_vec(),
            Reply::Done => Vec::new(),
        }
    }

    pub(crate) fn decode(method: Method, bytes: &[u8]) -> Result<Reply, LedgerError> {
        let bad = |e: prost::DecodeError| LedgerError::Corrupt(format!("stored reply of a {method} request: {e}"));
        Ok(match method {
            Method::PlaceSeizure
            | Method::ReleaseSeizure
            | Method::RenewSeizure
            | Method::DeductFunds
            | Method::RecordDisposal => Reply::Control(ControlResult::decode(bytes).map_err(bad)?),
            Method::RecordDesignation => Reply::Designation(RecordDesignationResponse::decode(bytes).map_err(bad)?),
            Method::TransferCase | Method::AcceptTransfer => {
                Reply::Transfer(TransferCaseResponse::decode(bytes).map_err(bad)?)
            }
            Method::RequestDisposalTransfer | Method::AnswerDisposalTransfer => {
                Reply::Disposal(AnswerDisposalTransferResponse::decode(bytes).map_err(bad)?)
            }
            Method::TransferToBankruptcyReview
            | Method::RecordBankruptcyAcceptance
            | Method::RecordBankruptcyRefusal
            | Method::RecordBankruptcyDismissal => Reply::Bankruptcy(BankruptcyOutcome::decode(bytes).map_err(bad)?),
            Method::RegisterCase => Reply::Case(Case::decode(bytes).map_err(bad)?),
            Method::DesignateSeries => Reply::Series(DesignateSeriesResponse::decode(bytes).map_err(bad)?),
            Method::TerminateCase => Reply::Terminated(TerminateCaseResponse::decode(bytes).map_err(bad)?),
            Method::ResumeCase => Reply::Resumed(ResumeCaseResponse::decode(bytes).map_err(bad)?),
            Method::RecordProceeds => Reply::Proceeds(Proceeds::decode(bytes).map_err(bad)?),
            Method::RecordSecuredClaim => Reply::Secured(SecuredClaim::decode(bytes).map_err(bad)?),
            Method::ApplyToParticipate => Reply::Participation(ApplyToParticipateResponse::decode(bytes).map_err(bad)?),
            Method::DraftDistribution
            | Method::ServeDistribution
            | Method::ObjectToDistribution
            | Method::PayOutDistribution => Reply::Distribution(Distribution::decode(bytes).map_err(bad)?),
            other => return Err(LedgerError::Corrupt(format!("stored reply of {other}, which is no ledger step"))),
        })
    }
}

/// A step's typed reply, taken out of [`Reply`]; the other variants are handed back.
macro_rules! reply_of {
    ($variant:ident, $ty:ty) => {
        impl TryFrom<Reply> for $ty {
            type Error = Reply;

            fn try_from(reply: Reply) -> Result<Self, Reply> {
                match reply {
                    Reply::$variant(r) => Ok(r),
                    other => Err(other),
                }
            }
        }
    };
}

reply_of!(Control, ControlResult);
reply_of!(Designation, RecordDesignationResponse);
reply_of!(Transfer, TransferCaseResponse);
reply_of!(Disposal, AnswerDisposalTransferResponse);
reply_of!(Bankruptcy, BankruptcyOutcome);
reply_of!(Case, Case);
reply_of!(Series, DesignateSeriesResponse);
reply_of!(Terminated, TerminateCaseResponse);
reply_of!(Resumed, ResumeCaseResponse);
reply_of!(Proceeds, Proceeds);
reply_of!(Secured, SecuredClaim);
reply_of!(Participation, ApplyToParticipateResponse);
reply_of!(Distribution, Distribution);
