//! The crate's wings import one way: `tools` → `gateway` → `ledger`,
//! `registry` → `ops` → `core`, and `ledger` and `registry` know nothing of
//! each other. Reads every `crate::` path in `src/` (comments aside); prints
//! the wing graph with `cargo test wings -- --nocapture`.

use std::{collections::BTreeMap, path::Path};

/// Each wing and how low it sits: a wing may import only from lower ones.
const WINGS: [(&str, u8); 6] = [("core", 0), ("ops", 1), ("registry", 2), ("ledger", 2), ("gateway", 3), ("tools", 4)];

fn rank(wing: &str) -> Option<u8> {
    WINGS.iter().find(|(w, _)| *w == wing).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level names a file reaches through `crate::`, outside comments.
fn crate_imports(text: &str) -> Vec<String> {
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group's top-level items, up to its closing brace.
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(item);
        } else {
            out.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    out.iter()
        .map(|i| i.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
        .filter(|i| !i.is_empty())
        .collect()
}

#[test]
fn wings_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let Some(from) = relative.iter().next().and_then(|c| c.to_str()).filter(|w| rank(w).is_some()) else {
            continue; // lib.rs and main.rs sit above the wings
        };
        for to in crate_imports(&std::fs::read_to_string(file).unwrap()) {
            let Some(to_rank) = rank(&to) else {
                wrong.push(format!("{}: `crate::{to}` is not a wing", relative.display()));
                continue;
            };
            if to == from {
                continue;
            }
            *edges.entry((from.to_string(), to.clone())).or_default() += 1;
            if to_rank >= rank(from).unwrap_or(0) {
                wrong.push(format!("{}: {from} may not import {to}", relative.display()));
            }
        }
    }
    println!("wing graph (imports per edge):");
    for ((from, to), n) in &edges {
        println!("  {from:>8} -> {to:<8} {n}");
    }
    assert!(wrong.is_empty(), "imports against the wings' order:\n  {}", wrong.join("\n  "));
    assert!(edges.contains_key(&("gateway".into(), "ledger".into())), "the check reads the imports");
}

#[test]
fn the_import_reader_sees_groups_paths_and_skips_comments() {
    let text = "//! see [`crate::tools`]\nuse crate::{core::{a, b}, ops::c};\nfn f() { crate::ledger::x(); }\n";
    assert_eq!(crate_imports(text), ["core", "ops", "ledger"]);
}
