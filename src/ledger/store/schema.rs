//! The ledger's schema: the migration files, embedded at build time (`build.rs`
//! lists them), run as sqlx migrations. `SHARED` holds what both databases
//! take; `POSTGRES` and `SQLITE` what only one can say (each ignores the
//! other's versions). Files are named `<version>_<description>.sql`, as sqlx
//! names its own.

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::{
    error::BoxDynError,
    migrate::{Migration, MigrationSource, MigrationType},
};

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Embedded migrations: `(file stem, SQL)`.
#[derive(Debug)]
pub struct Embedded(pub &'static [(&'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            self.0
                .iter()
                .map(|(stem, sql)| {
                    let (version, description) =
                        stem.split_once('_').ok_or_else(|| format!("migration `{stem}` is not VERSION_DESCRIPTION"))?;
                    let version: i64 = version.parse().map_err(|e| format!("migration `{stem}`: {e}"))?;
                    let description = Cow::Owned(description.replace('_', " "));
                    Ok(Migration::new(version, description, MigrationType::Simple, Cow::Borrowed(*sql), false))
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        core::proto::AssetKind,
        ledger::rules::{MAX_AMOUNT, SeizureState, is_divisible},
    };

    /// Each dialect's invariants, as written in its migration.
    fn invariants() -> Vec<(&'static str, &'static str)> {
        let all = SQLITE.iter().chain(POSTGRES).filter(|(stem, _)| stem.ends_with("_invariants")).copied();
        let found: Vec<_> = all.collect();
        assert_eq!(found.len(), 2, "one invariants migration per dialect");
        found
    }

    /// What follows each `marker` in `sql`, up to the next `)`.
    fn after<'a>(sql: &'a str, marker: &str) -> Vec<&'a str> {
        sql.match_indices(marker).map(|(i, _)| sql[i + marker.len()..].split(')').next().unwrap_or("")).collect()
    }

    /// The database keeps the ledger's invariants with facts of the rules written into SQL: they must be the
    /// rules' own, and this fails when one side changes without the other.
    #[test]
    fn the_invariants_in_sql_state_the_rules_facts() {
        // Every kind the proto defines: a new divisible kind must be named in SQL too.
        let divisible: Vec<String> = (0..64)
            .filter_map(|n| AssetKind::try_from(n).ok())
            .filter(|k| is_divisible(*k))
            .map(|k| (k as i32).to_string())
            .collect();
        let live: Vec<String> =
            SeizureState::ALL.into_iter().filter(|s| s.is_live()).map(|s| format!("'{}'", s.as_str())).collect();
        for (stem, sql) in invariants() {
            let bounds: Vec<i64> = after(sql, "BETWEEN 0 AND ")
                .iter()
                .map(|b| b.split_whitespace().next().unwrap().parse().unwrap())
                .collect();
            assert!(bounds.len() >= 2 && bounds.iter().all(|&b| b == MAX_AMOUNT), "{stem}: amounts up to {bounds:?}");
            let kinds = after(sql, "kind NOT IN (").into_iter().chain(after(sql, "(kind IN ("));
            let kinds: Vec<&str> = kinds.collect();
            assert!(!kinds.is_empty(), "{stem}: the divisible kinds are named");
            for named in kinds {
                assert_eq!(named.split(", ").collect::<Vec<_>>(), divisible, "{stem}: the divisible kinds (R4)");
            }
            assert!(sql.contains(&format!("a.kind = {}", AssetKind::Deposit as i32)), "{stem}: claims are on deposits");
            let states = after(sql, "state IN (");
            assert!(!states.is_empty(), "{stem}: the live states are named");
            for named in states {
                assert_eq!(named.split(", ").collect::<Vec<_>>(), live, "{stem}: the live states");
            }
            for state in SeizureState::ALL {
                assert!(sql.contains(&format!("WHEN '{}' THEN", state.as_str())), "{stem}: {state:?} has its amounts");
            }
        }
    }
}
