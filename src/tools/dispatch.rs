//! From a parsed command line to the library call that does the work: one
//! arm per subcommand, each turning flags into the library's own arguments.

use std::time::Duration;

use crate::{
    ops::pki::{Role, TlsFiles},
    tools::{
        ToolError,
        bankruptcy_bench::Scale,
        call,
        cli::{AuditCommand, CliCommand, LedgerCommand, PkiCommand},
        client::{self, SearchArgs},
        commands,
        conformance::Target,
        debtor_cli, distribution_cli, jobs_bench, loadgen,
        mock::{MockConfig, fleet::FleetConfig},
        research_bench::Scale as ResearchScale,
        searches,
    },
};

/// Runs `command`.
pub async fn run(command: CliCommand) -> Result<(), ToolError> {
    match command {
        CliCommand::Dev { config, fleet, fleet_listen } => {
            let settings = MockConfig { holders: Some(0.02), ..MockConfig::default() };
            let fleet = fleet.map(|banks| (FleetConfig { banks, settings, deferred_share: 0.0 }, fleet_listen));
            commands::dev(&config, fleet).await
        }
        CliCommand::Serve { config } => commands::serve(&config).await,
        CliCommand::MockRegistry { name, kind, listen, pki, plaintext, faults } => {
            commands::mock_registry(&name, kind, listen, &pki, plaintext, faults.config()).await
        }
        CliCommand::MockFleet { banks, listen, pki, holders, deferred_share, directory, faults } => {
            let settings = MockConfig { holders: Some(holders), ..faults.config() };
            let config = FleetConfig { banks, settings, deferred_share };
            commands::mock_fleet(&config, listen, &pki, directory.as_deref()).await
        }
        CliCommand::MockFaults { target, name, pki, reset, faults } => {
            commands::set_faults(&target, &name, &pki, reset, &faults).await
        }
        CliCommand::Search {
            connection,
            case_number,
            debtors,
            kinds,
            max_age,
            fresh,
            accept_unchecked_credit_code,
            timeout,
            json,
            stream,
            submit,
            request_id,
            follow,
            after,
        } => {
            let args = SearchArgs {
                connection: connection.connection(),
                case_number: case_number.unwrap_or_default(),
                debtors,
                kinds,
                max_age: if fresh { Some(Duration::ZERO) } else { max_age },
                accept_unchecked_credit_code,
                timeout,
                json,
                stream,
            };
            let out = match follow {
                Some(id) => {
                    let case = Some(args.case_number.as_str()).filter(|c| !c.is_empty());
                    searches::follow(&args.connection, case, &id, after, json).await
                }
                None if submit => searches::submit(&args, request_id).await,
                None => client::search(&args).await,
            };
            out.map(|out| println!("{out}")).map_err(ToolError::from)
        }
        CliCommand::BenchJobs { connection, searches, rate, watch_every, settle, json } => {
            let plan = jobs_bench::JobsPlan { searches, rate, watch_every, settle };
            commands::jobs_bench(&plan, connection.connection(), json).await
        }
        CliCommand::Searches { connection, case_number, open, ids } => {
            let out = searches::list(&connection.connection(), case_number.as_deref(), open, ids).await;
            out.map(|out| println!("{out}")).map_err(ToolError::from)
        }
        CliCommand::Debtor { command } => debtor_cli::run(command).await.map_err(ToolError::from),
        CliCommand::Distribution { command } => distribution_cli::run(command).await.map_err(ToolError::from),
        CliCommand::Call { connection, method, request, timeout, fields } => {
            call::call(&connection.connection(), &method, &request, timeout, &fields).await.map_err(ToolError::from)
        }
        CliCommand::Conformance {
            target,
            name,
            pki,
            cert,
            key,
            plaintext,
            outsider_cert,
            outsider_key,
            debtor,
            deadline,
            deferred_wait,
            json,
        } => {
            let mut outsider = TlsFiles::of(&pki, &Role::Court("京0105".into()));
            if let Some((cert, key)) = outsider_cert.zip(outsider_key) {
                (outsider.cert, outsider.key) = (cert, key);
            }
            let outsider = (!plaintext && outsider.cert.exists()).then_some(outsider);
            let tls = match (plaintext, name) {
                (true, _) => Ok(None),
                (false, Some(name)) => {
                    let mut files = TlsFiles::of(&pki, &Role::Gateway);
                    if let Some((cert, key)) = cert.zip(key) {
                        (files.cert, files.key) = (cert, key);
                    }
                    Ok(Some((files, name)))
                }
                (false, None) => Err(ToolError::Usage(
                    "name the registry as its certificate does with --name (or --plaintext)".into(),
                )),
            };
            match tls {
                Ok(tls) => {
                    commands::conformance(
                        Target { address: target, tls, debtor, deadline, outsider, deferred_wait },
                        json,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        CliCommand::Loadgen {
            connection,
            scenario,
            concurrency,
            rate,
            duration,
            warmup,
            connections,
            timeout,
            config,
            json,
            debtors,
        } => {
            let plan =
                loadgen::LoadPlan { scenario, concurrency, rate, duration, warmup, connections, timeout, debtors };
            commands::loadgen(&plan, connection.connection(), &config, json).await
        }
        CliCommand::Pki { command: PkiCommand::Init { dir } } => commands::pki_init(&dir),
        CliCommand::Pki { command: PkiCommand::Fleet { dir, banks } } => commands::pki_fleet(&dir, banks),
        CliCommand::Pki { command: PkiCommand::Issue { dir, role, name, hosts, days, force } } => {
            commands::pki_issue(&dir, &role, name, &hosts, days, force)
        }
        CliCommand::Audit { command: AuditCommand::Verify { config } } => commands::audit_verify(&config).await,
        CliCommand::Audit { command: AuditCommand::Export { config, case_number, debtor } } => {
            commands::audit_export(&config, case_number, debtor).await
        }
        CliCommand::Ledger { command: LedgerCommand::Verify { config } } => commands::ledger_verify(&config).await,
        CliCommand::Ledger { command: LedgerCommand::Bench { url, concurrency, ops, fsync_dir } } => {
            commands::ledger_bench(&url, &concurrency, ops, &fsync_dir).await
        }
        CliCommand::Ledger {
            command: LedgerCommand::BenchBankruptcy { url, seizures, courts, per_asset, lifting },
        } => commands::bankruptcy_bench(&url, Scale { seizures, courts, per_asset, lifting }).await,
        CliCommand::Ledger {
            command: LedgerCommand::BenchResearch { url, cases, shared, registries, rate, days, hours },
        } => commands::research_bench(&url, ResearchScale { cases, shared, registries, rate, days, hours }).await,
        CliCommand::Ledger { command: LedgerCommand::BenchOutbox { url, orders, replicas, hung } } => {
            commands::outbox_bench(&url, orders, replicas, hung).await
        }
        CliCommand::CheckConfig { config } => commands::check_config(&config),
    }
}
