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
