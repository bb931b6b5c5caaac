//! The court-facing RPCs as one type. A call's [`Method`] is read once from
//! its gRPC path; the audit trail, the daily quota, the ledger's stored
//! replies, the metrics and the logs all name it through this type, so a
//! renamed RPC cannot silently fall out of any of them.

use std::fmt;

/// One court-facing RPC of `AssetSearchService`, `SeizureService`, `DebtorService` or `DistributionService`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Search the registries for a debtor's assets.
    Search,
    /// The same search, each registry's answer sent as it arrives.
    SearchStream,
    /// The same search, answered with its id at once.
    SubmitSearch,
    /// A search's result so far.
    GetSearch,
    /// A search's result as it changes.
    WatchSearch,
    /// The court's searches.
    ListSearches,
    /// Freeze or seize an asset.
    PlaceSeizure,
    /// Lift a seizure.
    ReleaseSeizure,
    /// Extend a seizure's term.
    RenewSeizure,
    /// Take frozen funds.
    DeductFunds,
    /// Report a disposal step.
    RecordDisposal,
    /// An asset's seizures in rank order.
    GetSeizureQueue,
    /// A case's seizures.
    ListCaseSeizures,
    /// The court's seizures whose terms end soon.
    ListLapsingSeizures,
    /// Receive a designation of a case to this court.
    RecordDesignation,
    /// Hand a case over to another court.
    TransferCase,
    /// File a case handed over to this court.
    AcceptTransfer,
    /// Transfers the court sends or receives.
    ListTransfers,
    /// Ask the first seizure's court to hand over disposal.
    RequestDisposalTransfer,
    /// Answer such a request.
    AnswerDisposalTransfer,
    /// The court's seizure events as they happen.
    WatchEvents,
    /// Transfer a debtor to bankruptcy review.
    TransferToBankruptcyReview,
    /// Record a debtor's bankruptcy accepted.
    RecordBankruptcyAcceptance,
    /// Record a debtor's bankruptcy refused.
    RecordBankruptcyRefusal,
    /// Record a debtor's accepted bankruptcy dismissed.
    RecordBankruptcyDismissal,
    /// Register a case against its debtors.
    RegisterCase,
    /// Read a debtor's picture.
    GetDebtorPicture,
    /// The court's seizures to lift on bankrupt debtors' assets.
    ListBankruptcyLifts,
    /// Designate one court for a debtor's series of cases.
    DesignateSeries,
    /// Terminate a case for now.
    TerminateCase,
    /// Resume a terminated case.
    ResumeCase,
    /// The court's re-searches of terminated cases.
    ListResearches,
    /// Record a sale's proceeds and costs.
    RecordProceeds,
    /// Record a claim secured on an asset.
    RecordSecuredClaim,
    /// Apply to share in proceeds.
    ApplyToParticipate,
    /// Draft a distribution plan.
    DraftDistribution,
    /// Serve a drafted plan.
    ServeDistribution,
    /// Object, oppose or sue against a served plan.
    ObjectToDistribution,
    /// Pay out a served plan.
    PayOutDistribution,
    /// One plan.
    GetDistribution,
    /// The court's plans.
    ListDistributions,
    /// A case's funds.
    GetCaseFunds,
}

/// The package of the court services.
const PACKAGE: &str = "/assetgw.v1.";

impl Method {
    /// Every method.
    pub const ALL: [Method; 42] = [
        Method::Search,
        Method::SearchStream,
        Method::SubmitSearch,
        Method::GetSearch,
        Method::WatchSearch,
        Method::ListSearches,
        Method::PlaceSeizure,
        Method::ReleaseSeizure,
        Method::RenewSeizure,
        Method::DeductFunds,
        Method::RecordDisposal,
        Method::GetSeizureQueue,
        Method::ListCaseSeizures,
        Method::ListLapsingSeizures,
        Method::RecordDesignation,
        Method::TransferCase,
        Method::AcceptTransfer,
        Method::ListTransfers,
        Method::RequestDisposalTransfer,
        Method::AnswerDisposalTransfer,
        Method::WatchEvents,
        Method::TransferToBankruptcyReview,
        Method::RecordBankruptcyAcceptance,
        Method::RecordBankruptcyRefusal,
        Method::RecordBankruptcyDismissal,
        Method::RegisterCase,
        Method::GetDebtorPicture,
        Method::ListBankruptcyLifts,
        Method::DesignateSeries,
        Method::TerminateCase,
        Method::ResumeCase,
        Method::ListResearches,
        Method::RecordProceeds,
        Method::RecordSecuredClaim,
        Method::ApplyToParticipate,
        Method::DraftDistribution,
        Method::ServeDistribution,
        Method::ObjectToDistribution,
        Method::PayOutDistribution,
        Method::GetDistribution,
        Method::ListDistributions,
        Method::GetCaseFunds,
    ];

    /// The methods a court's daily search quota counts.
    pub const SEARCHES: [Method; 3] = [Method::Search, Method::SearchStream, Method::SubmitSearch];

    /// The method a gRPC path names (`/assetgw.v1.SeizureService/PlaceSeizure`), if a court-facing one.
    pub fn from_path(path: &str) -> Option<Method> {
        let (service, name) = path.strip_prefix(PACKAGE)?.split_once('/')?;
        // Each service serves its own methods only.
        Method::from_name(name).filter(|m| m.service() == service)
    }

    /// The method an RPC name names (`PlaceSeizure`), as the audit trail stores it.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The RPC's name as the protos spell it; also the audit trail's and the metrics' name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Search => "Search",
            Method::SearchStream => "SearchStream",
            Method::SubmitSearch => "SubmitSearch",
            Method::GetSearch => "GetSearch",
            Method::WatchSearch => "WatchSearch",
            Method::ListSearches => "ListSearches",
            Method::PlaceSeizure => "PlaceSeizure",
            Method::ReleaseSeizure => "ReleaseSeizure",
            Method::RenewSeizure => "RenewSeizure",
            Method::DeductFunds => "DeductFunds",
            Method::RecordDisposal => "RecordDisposal",
            Method::GetSeizureQueue => "GetSeizureQueue",
            Method::ListCaseSeizures => "ListCaseSeizures",
            Method::ListLapsingSeizures => "ListLapsingSeizures",
            Method::RecordDesignation => "RecordDesignation",
            Method::TransferCase => "TransferCase",
            Method::AcceptTransfer => "AcceptTransfer",
            Method::ListTransfers => "ListTransfers",
            Method::RequestDisposalTransfer => "RequestDisposalTransfer",
            Method::AnswerDisposalTransfer => "AnswerDisposalTransfer",
            Method::WatchEvents => "WatchEvents",
            Method::TransferToBankruptcyReview => "TransferToBankruptcyReview",
            Method::RecordBankruptcyAcceptance => "RecordBankruptcyAcceptance",
            Method::RecordBankruptcyRefusal => "RecordBankruptcyRefusal",
            Method::RecordBankruptcyDismissal => "RecordBankruptcyDismissal",
            Method::RegisterCase => "RegisterCase",
            Method::GetDebtorPicture => "GetDebtorPicture",
            Method::ListBankruptcyLifts => "ListBankruptcyLifts",
            Method::DesignateSeries => "DesignateSeries",
            Method::TerminateCase => "TerminateCase",
            Method::ResumeCase => "ResumeCase",
            Method::ListResearches => "ListResearches",
            Method::RecordProceeds => "RecordProceeds",
            Method::RecordSecuredClaim => "RecordSecuredClaim",
            Method::ApplyToParticipate => "ApplyToParticipate",
            Method::DraftDistribution => "DraftDistribution",
            Method::ServeDistribution => "ServeDistribution",
            Method::ObjectToDistribution => "ObjectToDistribution",
            Method::PayOutDistribution => "PayOutDistribution",
            Method::GetDistribution => "GetDistribution",
            Method::ListDistributions => "ListDistributions",
            Method::GetCaseFunds => "GetCaseFunds",
        }
    }

    /// The name the ledger stores a step's reply under: a ledger step's short
    /// name (these are in ledgers already written and never change), any
    /// other method's RPC name.
    pub fn step_name(self) -> &'static str {
        match self {
            Method::PlaceSeizure => "place",
            Method::ReleaseSeizure => "release",
            Method::RenewSeizure => "renew",
            Method::DeductFunds => "deduct",
            Method::RecordDisposal => "dispose",
            Method::RecordDesignation => "designate",
            Method::TransferCase => "transfer",
            Method::AcceptTransfer => "accept",
            Method::RequestDisposalTransfer => "request_disposal",
            Method::AnswerDisposalTransfer => "answer_disposal",
            Method::TransferToBankruptcyReview => "bankruptcy_review",
            Method::RecordBankruptcyAcceptance => "bankruptcy_accepted",
            Method::RecordBankruptcyRefusal => "bankruptcy_refused",
            Method::RecordBankruptcyDismissal => "bankruptcy_dismissed",
            Method::RegisterCase => "register_case",
            Method::DesignateSeries => "designate_series",
            Method::TerminateCase => "terminate_case",
            Method::ResumeCase => "resume_case",
            other => other.name(),
        }
    }

    /// The step a stored reply's method name names.
    pub fn from_step_name(stored: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.step_name() == stored)
    }

    /// Whether it holds one of the court's watch-stream slots while it runs.
    pub fn is_watch(self) -> bool {
        matches!(self, Method::WatchSearch | Method::WatchEvents)
    }

    /// The service that serves it.
    fn service(self) -> &'static str {
        match self {
            Method::Search
            | Method::SearchStream
            | Method::SubmitSearch
            | Method::GetSearch
            | Method::WatchSearch
            | Method::ListSearches => "AssetSearchService",
            Method::TransferToBankruptcyReview
            | Method::RecordBankruptcyAcceptance
            | Method::RecordBankruptcyRefusal
            | Method::RecordBankruptcyDismissal
            | Method::RegisterCase
            | Method::GetDebtorPicture
            | Method::ListBankruptcyLifts
            | Method::DesignateSeries
            | Method::TerminateCase
            | Method::ResumeCase
            | Method::ListResearches => "DebtorService",
            Method::RecordProceeds
            | Method::RecordSecuredClaim
            | Method::ApplyToParticipate
            | Method::DraftDistribution
            | Method::ServeDistribution
            | Method::ObjectToDistribution
            | Method::PayOutDistribution
            | Method::GetDistribution
            | Method::ListDistributions
            | Method::GetCaseFunds => "DistributionService",
            _ => "SeizureService",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    /// The protos are the source of the names: every RPC of the court services is a method,
    /// and every method an RPC of the service it is read from.
    #[test]
    fn every_court_rpc_is_a_method_read_from_its_path() {
        let set = prost_types::FileDescriptorSet::decode(crate::core::proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut paths = Vec::new();
        for file in &set.file {
            for service in &file.service {
                let name = service.name();
                if ["AssetSearchService", "SeizureService", "DebtorService", "DistributionService"].contains(&name) {
                    for m in &service.method {
                        paths.push(format!("/{}.{name}/{}", file.package(), m.name()));
                    }
                }
            }
        }
        let mut read: Vec<&str> =
            paths.iter().map(|p| Method::from_path(p).unwrap_or_else(|| panic!("{p}")).name()).collect();
        let mut all: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        read.sort();
        all.sort();
        assert_eq!(read, all);
        assert_eq!(Method::from_path("/assetgw.v1.SeizureService/Search"), None, "a method of the other service");
        assert_eq!(Method::from_path("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn stored_names_read_back_as_their_method() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
            assert_eq!(Method::from_step_name(m.step_name()), Some(m));
        }
        assert_eq!(Method::from_step_name("designate"), Some(Method::RecordDesignation));
    }
}
