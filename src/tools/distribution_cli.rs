//! `assetgw distribution …`: what rank is for, from a court's desk (R28–R29):
//! record a sale's proceeds or a secured claim, apply to participate, draft a
//! plan, serve it, object, oppose or sue, pay it out, and read a case's
//! funds. The plan commands print the plan one line per payment (or the
//! fields named with `--field`); the others print as `assetgw call` does.

// clap turns doc comments into help text: the flattened argument groups have
// none on purpose (their own items say it).
#![allow(missing_docs)]

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{
    call,
    client::{ClientError, ConnectArgs},
    debtor_cli::{Listing, debtor},
};
use crate::core::{
    clock::{Clock, SystemClock},
    proto::{Distribution, DistributionState, LineKind, Sharing},
};

/// The distribution commands.
#[derive(Subcommand)]
pub enum DistributionCommand {
    /// As the court whose seizure sold the asset, record the proceeds and the execution costs (R28).
    Proceeds {
        #[command(flatten)]
        on: OnCase,
        /// The seizure the sale ended.
        #[arg(long)]
        seizure: String,
        /// The proceeds in minor units (fen for CNY).
        #[arg(long)]
        amount: i64,
        /// The execution costs in minor units, paid first.
        #[arg(long, default_value_t = 0)]
        costs: i64,
    },
    /// Record a claim secured on an asset the court's case seized, with its evidence (R28).
    Secured {
        #[command(flatten)]
        on: OnCase,
        /// The asset's kind: real_estate, securities, deposit, aircraft, patent, trademark.
        #[arg(long)]
        asset_kind: String,
        /// The asset's id, as search reports it.
        #[arg(long)]
        asset_id: String,
        /// A pledge (质押) rather than a mortgage (抵押).
        #[arg(long)]
        pledge: bool,
        /// The secured creditor.
        #[arg(long)]
        holder: String,
        /// The secured amount in minor units.
        #[arg(long)]
        amount: i64,
        /// When it was registered, e.g. 2021-06-30T00:00:00+08:00.
        #[arg(long)]
        registered: String,
        /// The evidence, e.g. the registration certificate's number.
        #[arg(long)]
        evidence: String,
    },
    /// Apply to share in a natural person's or another organisation's proceeds (参与分配, R28).
    Participate {
        #[command(flatten)]
        on: OnCase,
        /// The debtor's resident ID or credit code.
        #[arg(long)]
        debtor: String,
        /// The proceeds.
        #[arg(long)]
        proceeds: String,
    },
    /// Draft the distribution of the case's proceeds (R28), or with --series the receiving court's
    /// one plan across every case against the debtor (R23).
    Draft {
        #[command(flatten)]
        on: OnCase,
        /// The debtor's resident ID or credit code.
        #[arg(long)]
        debtor: String,
        /// The proceeds to distribute (repeatable).
        #[arg(long = "proceeds")]
        proceeds: Vec<String>,
        /// Every undistributed proceeds of the court's cases against the debtor.
        #[arg(long)]
        series: bool,
    },
    /// Serve the drafted plan: the objection period starts (R29).
    Serve {
        #[command(flatten)]
        plan: OnPlan,
        /// Served this long ago on paper (recorded late), e.g. 16d; default now.
        #[arg(long, value_parser = humantime::parse_duration)]
        ago: Option<Duration>,
    },
    /// Object to a served plan as a creditor, asking lines corrected: --line INDEX=AMOUNT (R29).
    Object {
        #[command(flatten)]
        plan: OnPlan,
        /// A line to correct and its amount, e.g. 3=150000 (repeatable).
        #[arg(long = "line", value_parser = correction)]
        lines: Vec<(u32, i64)>,
    },
    /// Oppose another creditor's objection (R29).
    Oppose {
        #[command(flatten)]
        plan: OnPlan,
    },
    /// Sue the opponents of the court's objection: the disputed lines are held back (R29).
    Sue {
        #[command(flatten)]
        plan: OnPlan,
    },
    /// Pay out the plan once its periods have run (the gateway does so by itself too) (R29).
    Pay {
        #[command(flatten)]
        plan: OnPlan,
    },
    /// Show one plan the court is part of.
    Show {
        #[command(flatten)]
        plan: OnPlan,
    },
    /// List the plans the court drafted or has a line in (one case's with --case).
    List {
        #[command(flatten)]
        listing: Listing,
    },
    /// A case's funds: received, held back, paid out, each movement.
    Funds {
        #[command(flatten)]
        connection: ConnectArgs,
        /// The court's case.
        #[arg(long = "case")]
        case_number: String,
        /// Print only these fields of the answer, by dotted path (repeatable).
        #[arg(long = "field")]
        fields: Vec<String>,
    },
}

/// A court and its case.
#[derive(Args)]
pub struct OnCase {
    #[command(flatten)]
    connection: ConnectArgs,
    /// The court's case.
    #[arg(long = "case")]
    case_number: String,
    /// Print only these fields of the answer, by dotted path (repeatable).
    #[arg(long = "field")]
    fields: Vec<String>,
    /// The court's id of the request, so that a retry records nothing new (default: a fresh one).
    #[arg(long)]
    request_id: Option<String>,
}

/// A plan, under the court's case.
#[derive(Args)]
pub struct OnPlan {
    #[command(flatten)]
    on: OnCase,
    /// The plan's id.
    #[arg(long = "plan")]
    distribution_id: String,
}

/// `INDEX=AMOUNT`.
fn correction(s: &str) -> Result<(u32, i64), String> {
    let (line, amount) = s.split_once('=').ok_or_else(|| format!("`{s}` is not INDEX=AMOUNT"))?;
    let line = line.trim().parse().map_err(|e| format!("line `{line}`: {e}"))?;
    let amount = amount.trim().parse().map_err(|e| format!("amount `{amount}`: {e}"))?;
    Ok((line, amount))
}

/// One call: the connection, the case whose court makes it, the method, its request as proto3
/// JSON, the fields to print, and whether it answers a plan.
struct Asked {
    connection: ConnectArgs,
    case: String,
    method: &'static str,
    request: Value,
    fields: Vec<String>,
    plan: bool,
}

impl Asked {
    fn on(on: OnCase, method: &'static str, request: Value, plan: bool) -> Asked {
        Asked { connection: on.connection, case: on.case_number, method, request, fields: on.fields, plan }
    }

    /// A step on a plan: its request id, case and plan, and for an objection its step.
    fn step(plan: OnPlan, method: &'static str, step: Option<&str>) -> Asked {
        let mut request = json!({
            "requestId": fresh(&plan.on.request_id), "caseNumber": plan.on.case_number,
            "distributionId": plan.distribution_id,
        });
        if let Some(step) = step {
            request["step"] = json!(step);
        }
        Asked::on(plan.on, method, request, true)
    }
}

fn fresh(given: &Option<String>) -> String {
    given.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Runs one distribution command.
pub async fn run(command: DistributionCommand) -> Result<(), ClientError> {
    let asked = match command {
        DistributionCommand::Proceeds { on, seizure, amount, costs } => {
            let request = json!({
                "requestId": fresh(&on.request_id), "caseNumber": on.case_number, "seizureId": seizure,
                "amount": amount, "costs": costs,
            });
            Asked::on(on, "RecordProceeds", request, false)
        }
        DistributionCommand::Secured { on, asset_kind, asset_id, pledge, holder, amount, registered, evidence } => {
            let request = json!({
                "requestId": fresh(&on.request_id), "caseNumber": on.case_number,
                "asset": { "kind": format!("ASSET_KIND_{}", asset_kind.to_uppercase()), "assetId": asset_id },
                "kind": if pledge { "ENCUMBRANCE_KIND_PLEDGE" } else { "ENCUMBRANCE_KIND_MORTGAGE" },
                "holder": holder, "amount": amount, "registeredAt": registered, "evidenceReference": evidence,
            });
            Asked::on(on, "RecordSecuredClaim", request, false)
        }
        DistributionCommand::Participate { on, debtor: who, proceeds } => {
            let request = json!({
                "requestId": fresh(&on.request_id), "caseNumber": on.case_number, "proceedsId": proceeds,
                "debtor": debtor(&who),
            });
            Asked::on(on, "ApplyToParticipate", request, false)
        }
        DistributionCommand::Draft { on, debtor: who, proceeds, series } => {
            let request = json!({
                "requestId": fresh(&on.request_id), "caseNumber": on.case_number, "debtor": debtor(&who),
                "proceedsIds": proceeds, "series": series,
            });
            Asked::on(on, "DraftDistribution", request, true)
        }
        DistributionCommand::Serve { plan, ago } => {
            let mut asked = Asked::step(plan, "ServeDistribution", None);
            if let Some(ago) = ago {
                let at = SystemClock.now() - chrono::Duration::from_std(ago).unwrap_or_default();
                asked.request["servedAt"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            asked
        }
        DistributionCommand::Object { plan, lines } => {
            let mut asked = Asked::step(plan, "ObjectToDistribution", Some("OBJECTION_STEP_OBJECT"));
            let corrections = lines.iter().map(|(line, amount)| json!({ "line": line, "amount": amount }));
            asked.request["corrections"] = corrections.collect();
            asked
        }
        DistributionCommand::Oppose { plan } => {
            Asked::step(plan, "ObjectToDistribution", Some("OBJECTION_STEP_OPPOSE"))
        }
        DistributionCommand::Sue { plan } => Asked::step(plan, "ObjectToDistribution", Some("OBJECTION_STEP_SUE")),
        DistributionCommand::Pay { plan } => Asked::step(plan, "PayOutDistribution", None),
        DistributionCommand::Show { plan } => {
            let request = json!({ "distributionId": plan.distribution_id });
            Asked::on(plan.on, "GetDistribution", request, true)
        }
        DistributionCommand::List { listing: Listing { connection, case_number, fields } } => {
            let request = json!({ "caseNumber": case_number });
            Asked { connection, case: case_number, method: "ListDistributions", request, fields, plan: false }
        }
        DistributionCommand::Funds { connection, case_number, fields } => {
            let request = json!({ "caseNumber": case_number });
            Asked { connection, case: case_number, method: "GetCaseFunds", request, fields, plan: false }
        }
    };
    let method = format!("DistributionService/{}", asked.method);
    let (connection, request) = (asked.connection.connection(), asked.request.to_string());
    if !asked.plan || !asked.fields.is_empty() {
        return call::call(&connection, &method, &request, TIMEOUT, &asked.fields).await;
    }
    let answer = call::ask(&connection, (&method, &request), TIMEOUT, Some(&asked.case)).await?;
    let plan = answer
        .get_field_by_name("distribution")
        .and_then(|v| v.as_message().cloned())
        .and_then(|m| m.transcode_to::<Distribution>().ok())
        .ok_or_else(|| ClientError::Json(format!("{method} answered without a distribution")))?;
    print!("{}", summary(&plan));
    Ok(())
}

/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A plan one payment a line: its index (what an objection names), what it pays, to whom, how much.
pub fn summary(plan: &Distribution) -> String {
    let state = DistributionState::try_from(plan.state).unwrap_or_default().as_str_name();
    let sharing = match Sharing::try_from(plan.sharing).unwrap_or_default() {
        Sharing::ByRank => "by rank".to_string(),
        _ => format!("pro rata, first seizer's bonus {}%", plan.bonus_percent),
    };
    let received: i64 = plan.proceeds.iter().map(|p| p.amount).sum();
    let mut out = format!(
        "distribution {} of {}: {}, {sharing}; {received} received\n",
        plan.distribution_id,
        plan.case_number,
        state.trim_start_matches("DISTRIBUTION_STATE_").to_lowercase()
    );
    for (i, l) in plan.lines.iter().enumerate() {
        let what = match LineKind::try_from(l.kind).unwrap_or_default() {
            LineKind::Costs => "costs".to_string(),
            LineKind::Secured => "secured".to_string(),
            LineKind::Ordinary if l.rank > 0 => format!("rank {}", l.rank),
            LineKind::Ordinary => "participant".to_string(),
            _ => "surplus".to_string(),
        };
        let owed = if l.claim > 0 { format!(" of {}", l.claim) } else { String::new() };
        let corrected = l.corrected_amount.map(|c| format!(", corrected to {c}")).unwrap_or_default();
        let held = if l.held_back { ", held back" } else { "" };
        out.push_str(&format!("  {i}  {what:<11}  {}  {}{owed}{corrected}{held}\n", l.payee, l.amount));
    }
    out.push_str(&plan.message);
    out.push('\n');
    out
}
