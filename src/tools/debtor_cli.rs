//! `assetgw debtor …`: the debtor as a whole from a court's desk (R23–R27):
//! its picture, a case's registration, the series designation, the lifts a
//! court owes after an acceptance, and the four bankruptcy decisions. Each
//! command is one DebtorService call, made as `assetgw call` makes it and
//! printed the same way (proto3 JSON, or the fields named with `--field`).

// clap turns doc comments into help text: the flattened argument groups have
// none on purpose (their own items say it).
#![allow(missing_docs)]

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{
    call,
    client::{ClientError, ConnectArgs},
};
use crate::core::{
    clock::{Clock, SystemClock},
    identifiers::{DebtorId, looks_like_resident_id},
    proto::{
        CaseState, Debtor, DebtorStanding, GetDebtorPictureRequest, SeizureState,
        debtor_service_client::DebtorServiceClient,
    },
};

/// The debtor commands.
#[derive(Subcommand)]
pub enum DebtorCommand {
    /// Show the debtor's picture: every case against it, every live seizure on its assets, open
    /// designations and transfers, its bankruptcy standing (R27).
    Show {
        #[command(flatten)]
        on: OnCase,
        /// Cases and seizures per page (0: 100).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// The page after a previous one (its `nextPageToken`).
        #[arg(long, default_value = "")]
        page_token: String,
        /// Print the answer as proto3 JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Register the court's case against the debtor, with the applicant and the claim.
    Register {
        #[command(flatten)]
        on: OnCase,
        /// The applicant (申请执行人).
        #[arg(long)]
        applicant: String,
        /// The claim in minor units (fen for CNY).
        #[arg(long, default_value_t = 0)]
        claim: i64,
    },
    /// Transfer the debtor to bankruptcy review under the court's enforcement case (R24).
    Review {
        #[command(flatten)]
        decision: Deciding,
        /// Whose written consent the transfer rests on.
        #[arg(long)]
        grounds: String,
    },
    /// Record the debtor's bankruptcy accepted, under the court's 破 or 破申 case (R25).
    Accept {
        #[command(flatten)]
        decision: Deciding,
    },
    /// Record the bankruptcy refused during review, under the court's 破申 case (R26).
    Refuse {
        #[command(flatten)]
        decision: Deciding,
    },
    /// Record an accepted bankruptcy dismissed, under the court's 破 case (R26).
    Dismiss {
        #[command(flatten)]
        decision: Deciding,
    },
    /// List the court's seizures to lift on bankrupt debtors' assets, with their due dates (R25).
    Lifts {
        #[command(flatten)]
        connection: ConnectArgs,
        /// Only those past their 7 days.
        #[arg(long)]
        overdue: bool,
        /// Judge overdue as things will stand this long from now, e.g. 8d (to plan ahead).
        #[arg(long, value_parser = humantime::parse_duration)]
        after: Option<Duration>,
        /// Print only these fields of the answer, by dotted path (repeatable).
        #[arg(long = "field")]
        fields: Vec<String>,
    },
    /// Terminate the court's case for now (终本): its debtors are searched again every six months
    /// for five years (R30).
    Terminate {
        #[command(flatten)]
        on: OnCase,
        /// Terminated this long ago (a termination recorded late), e.g. 190d; default now.
        #[arg(long, value_parser = humantime::parse_duration)]
        ago: Option<Duration>,
    },
    /// Resume the court's terminated case under a new 执恢 case, which takes over its seizures (R30).
    Resume {
        #[command(flatten)]
        connection: ConnectArgs,
        /// The terminated case.
        #[arg(long = "case")]
        case_number: String,
        /// The resumed case, e.g. （2027）京0105执恢3号.
        #[arg(long)]
        new_case: String,
        /// The court's id of the request, so that a retry resumes nothing new (default: a fresh one).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List the court's re-searches of terminated cases (of one case with --case): due, done, found, new (R30).
    Researches {
        #[command(flatten)]
        listing: Listing,
    },
    /// As a superior court (--court), designate one court for the debtor's cases (R23).
    Series {
        #[command(flatten)]
        connection: ConnectArgs,
        /// The debtor's resident ID or credit code.
        #[arg(long)]
        debtor: String,
        /// The court designated to execute them, e.g. 京0102.
        #[arg(long)]
        to_court: String,
        /// The designation decision's reference.
        #[arg(long)]
        decision: String,
        /// Only these cases (repeatable); default: every active enforcement case against the debtor.
        #[arg(long = "case")]
        cases: Vec<String>,
        /// The court's id of the request, so that a retry designates nothing new (default: a fresh one).
        #[arg(long)]
        request_id: Option<String>,
    },
}

/// A court's listing, of one of its cases or of all.
#[derive(Args)]
pub struct Listing {
    #[command(flatten)]
    pub(super) connection: ConnectArgs,
    /// Only this case's.
    #[arg(long = "case", default_value = "")]
    pub(super) case_number: String,
    /// Print only these fields of the answer, by dotted path (repeatable).
    #[arg(long = "field")]
    pub(super) fields: Vec<String>,
}

/// A court, its case and the debtor.
#[derive(Args)]
pub struct OnCase {
    #[command(flatten)]
    connection: ConnectArgs,
    /// The court's case against the debtor.
    #[arg(long = "case")]
    case_number: String,
    /// The debtor's resident ID or credit code.
    #[arg(long)]
    debtor: String,
    /// Print only these fields of the answer, by dotted path (repeatable).
    #[arg(long = "field")]
    fields: Vec<String>,
    /// The court's id of the request, so that a retry records nothing new (default: a fresh one).
    #[arg(long)]
    request_id: Option<String>,
}

/// A decision on the debtor's bankruptcy, under the court's case.
#[derive(Args)]
pub struct Deciding {
    #[command(flatten)]
    on: OnCase,
    /// The decision's reference, e.g. （2027）京0105破1号.
    #[arg(long)]
    decision: String,
}

/// A debtor as the protos' JSON names it.
pub(super) fn debtor(id: &str) -> Value {
    match looks_like_resident_id(id) {
        true => json!({ "residentId": id }),
        false => json!({ "creditCode": id }),
    }
}

fn request_id(given: Option<String>) -> String {
    given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Runs one debtor command.
pub async fn run(command: DebtorCommand) -> Result<(), ClientError> {
    let (connection, method, request, fields) = match command {
        DebtorCommand::Show { on, page_size, page_token, json: false } if on.fields.is_empty() => {
            return show(on, page_size, page_token).await;
        }
        DebtorCommand::Show { on, page_size, page_token, .. } => {
            let request = json!({
                "caseNumber": on.case_number, "debtor": debtor(&on.debtor),
                "pageSize": page_size, "pageToken": page_token,
            });
            (on.connection, "GetDebtorPicture", request, on.fields)
        }
        DebtorCommand::Register { on, applicant, claim } => {
            let request = json!({
                "requestId": request_id(on.request_id), "caseNumber": on.case_number,
                "debtors": [debtor(&on.debtor)], "applicant": applicant, "claimAmount": claim,
            });
            (on.connection, "RegisterCase", request, on.fields)
        }
        DebtorCommand::Review { decision, grounds } => {
            let (on, mut request) = decided(decision);
            request["grounds"] = json!(grounds);
            (on.connection, "TransferToBankruptcyReview", request, on.fields)
        }
        DebtorCommand::Accept { decision } => {
            let (on, request) = decided(decision);
            (on.connection, "RecordBankruptcyAcceptance", request, on.fields)
        }
        DebtorCommand::Refuse { decision } => {
            let (on, request) = decided(decision);
            (on.connection, "RecordBankruptcyRefusal", request, on.fields)
        }
        DebtorCommand::Dismiss { decision } => {
            let (on, request) = decided(decision);
            (on.connection, "RecordBankruptcyDismissal", request, on.fields)
        }
        DebtorCommand::Lifts { connection, overdue, after, fields } => {
            let mut request = json!({ "overdueOnly": overdue });
            if let Some(after) = after {
                request["asOf"] =
                    json!(timestamp(SystemClock.now() + chrono::Duration::from_std(after).unwrap_or_default()));
            }
            (connection, "ListBankruptcyLifts", request, fields)
        }
        DebtorCommand::Terminate { on, ago } => {
            let mut request = json!({
                "requestId": request_id(on.request_id), "caseNumber": on.case_number, "debtors": [debtor(&on.debtor)],
            });
            if let Some(ago) = ago {
                request["terminatedAt"] =
                    json!(timestamp(SystemClock.now() - chrono::Duration::from_std(ago).unwrap_or_default()));
            }
            (on.connection, "TerminateCase", request, on.fields)
        }
        DebtorCommand::Resume { connection, case_number, new_case, request_id: id } => {
            let request = json!({
                "requestId": request_id(id), "caseNumber": case_number, "newCaseNumber": new_case,
            });
            (connection, "ResumeCase", request, Vec::new())
        }
        DebtorCommand::Researches { listing: Listing { connection, case_number, fields } } => {
            (connection, "ListResearches", json!({ "caseNumber": case_number }), fields)
        }
        DebtorCommand::Series { connection, debtor: id, to_court, decision, cases, request_id: id_given } => {
            let request = json!({
                "requestId": request_id(id_given), "debtor": debtor(&id), "toCourtCode": to_court,
                "decisionReference": decision, "caseNumbers": cases,
            });
            (connection, "DesignateSeries", request, Vec::new())
        }
    };
    let method = format!("DebtorService/{method}");
    call::call(&connection.connection(), &method, &request.to_string(), Duration::from_secs(30), &fields).await
}

/// The debtor's picture as a court reads it: its standing, its cases, the live seizures on its
/// assets, what is in motion, one line each.
async fn show(on: OnCase, page_size: u32, page_token: String) -> Result<(), ClientError> {
    let connection = on.connection.connection();
    let (channel, court) = connection.channel(Some(&on.case_number)).await?;
    let debtor = match DebtorId::detect(&on.debtor) {
        Ok(id) => Debtor { id: Some(id.to_proto()), ..Debtor::default() },
        Err(e) => return Err(ClientError::Request(format!("--debtor {}: {e}", on.debtor))),
    };
    let request = GetDebtorPictureRequest { case_number: on.case_number, debtor: Some(debtor), page_size, page_token };
    let mut client = DebtorServiceClient::new(channel);
    let p = client.get_debtor_picture(connection.request(&court, request)?).await?.into_inner();
    let standing = match DebtorStanding::try_from(p.standing).unwrap_or_default() {
        DebtorStanding::InReview => "in bankruptcy review (R24)",
        DebtorStanding::Bankrupt => "bankrupt (R25)",
        DebtorStanding::Enforced | DebtorStanding::Unspecified => "under enforcement",
    };
    println!("debtor {}: {standing}", p.debtor);
    for d in &p.decisions {
        println!("  decision {} of {} under {}", d.decision_reference, d.court_code, d.case_number);
    }
    println!("cases ({}):", p.cases.len());
    for c in &p.cases {
        let state = CaseState::try_from(c.state).unwrap_or_default().as_str_name();
        let state = state.trim_start_matches("CASE_STATE_").to_lowercase();
        let claim =
            if c.claim_amount > 0 { format!("  claim {} {}", c.currency, c.claim_amount) } else { String::new() };
        println!("  {}  {}  {state}{claim}", c.case_number, c.court_code);
    }
    println!("live seizures ({}):", p.seizures.len());
    for s in &p.seizures {
        let asset = s.asset.as_ref().map(|a| a.asset_id.as_str()).unwrap_or_default();
        let state = SeizureState::try_from(s.state).unwrap_or_default().as_str_name();
        let state = state.trim_start_matches("SEIZURE_STATE_").to_lowercase();
        println!("  {asset}  rank {}  {state}  {}", s.rank, s.case_number);
    }
    for d in &p.designations {
        println!("designated: {} to court {} by {}", d.case_number, d.to_court_code, d.decision_reference);
    }
    for t in &p.transfers {
        println!("handed over: {} to court {}", t.from_case, t.to_court);
    }
    for f in &p.funds_to_hand_over {
        println!("to hand over: {} minor units deducted for {} (R25)", f.amount, f.case_number);
    }
    if !p.next_page_token.is_empty() {
        println!("more: --page-token {}", p.next_page_token);
    }
    Ok(())
}

/// A time as proto3 JSON writes a timestamp.
fn timestamp(t: crate::core::clock::Time) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A decision's request, and the court and case it is made under.
fn decided(d: Deciding) -> (OnCase, Value) {
    let request = json!({
        "requestId": request_id(d.on.request_id.clone()), "caseNumber": d.on.case_number,
        "debtor": debtor(&d.on.debtor), "decisionReference": d.decision,
    });
    (d.on, request)
}
