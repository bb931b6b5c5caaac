//! The registry directory: a TOML file of `[[registries]]` tables
//! (`network.directory`) that the gateway reads at start and again whenever
//! it changes. At the network's width it holds thousands of entries, so every
//! problem in it is reported at once, keyed by the entry it concerns (its
//! index and its name: `registries[12](bank-0013).kind`).

use std::{collections::HashSet, path::Path};

use super::{Config, Problem, Problems, RegistryConfig, check::registry_entries, problem};

/// Every registry the gateway knows: the configuration's own, then the directory file's.
pub fn registries(config: &Config) -> Result<Vec<RegistryConfig>, Problems> {
    let mut all = config.registries.clone();
    if let Some(path) = &config.network.directory {
        all.extend(read(config, path)?);
    }
    Ok(all)
}

/// The directory file at `path`, checked against `config` (names must also
/// differ from the configuration's own registries).
fn read(config: &Config, path: &Path) -> Result<Vec<RegistryConfig>, Problems> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| Problems(vec![problem(&file, format!("cannot read: {e}"))]))?;
    parse(config, &file, &text)
}

/// A directory file listing `registries` by name, kind and endpoint (their other keys at their defaults).
pub fn text(registries: &[RegistryConfig]) -> String {
    registries
        .iter()
        .map(|r| {
            format!(
                "[[registries]]\nname = {:?}\nkind = {:?}\nendpoint = {:?}\n\n",
                r.name,
                r.kind.short_name(),
                r.endpoint
            )
        })
        .collect()
}

/// The directory in `text` (named `file` in problems).
pub fn parse(config: &Config, file: &str, text: &str) -> Result<Vec<RegistryConfig>, Problems> {
    let mut table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| Problems(vec![problem(file, e.message().to_string())]))?;
    let mut problems: Vec<Problem> = table
        .keys()
        .filter(|k| *k != "registries")
        .map(|k| problem(format!("{file}: {k}"), "unknown key; the directory holds only [[registries]] tables"))
        .collect();
    let entries = match table.remove("registries") {
        Some(toml::Value::Array(entries)) => entries,
        None => Vec::new(),
        Some(_) => {
            problems.push(problem(format!("{file}: registries"), "must be a list of [[registries]] tables"));
            Vec::new()
        }
    };
    let (registries, found) = registry_entries(file, entries);
    problems.extend(found);
    let mut names: HashSet<&str> = config.registries.iter().map(|r| r.name.as_str()).collect();
    for (at, r) in &registries {
        problems.extend(config.registry_problems(r, at, &mut names));
    }
    match problems.is_empty() {
        true => Ok(registries.into_iter().map(|(_, r)| r).collect()),
        false => Err(Problems(problems)),
    }
}
