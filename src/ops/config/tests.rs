use super::*;

const ONE_REGISTRY: &str = r#"
    [[registries]]
    name = "bank-a"
    kind = "bank"
    endpoint = "https://127.0.0.1:50061"
"#;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn keys(p: Problems) -> Vec<String> {
    p.0.into_iter().map(|p| p.key).collect()
}

#[test]
fn the_shipped_config_is_valid() {
    let c = Config::parse(include_str!("../../../config/assetgw.toml"), []).unwrap();
    assert_eq!(c.registries.len(), 6);
    assert_eq!(c.registries[0].cache_ttl(&c.cache), Duration::from_secs(30));
    assert_eq!(c.registries[2].cache_ttl(&c.cache), Duration::from_secs(3600));
    assert_eq!(c.policy(&c.registries[0]).timeout, Duration::from_secs(2));
    assert_eq!(c.policy(&c.registries[3]).timeout, Duration::from_secs(3));
    assert_eq!(c.policy(&c.registries[3]), CallPolicy::default(), "the file shows every default");
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let c = Config::parse(ONE_REGISTRY, []).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:50051".parse().unwrap());
    assert_eq!(c.search.deadline, Duration::from_secs(10));
    assert_eq!(c.registries[0].asset_kinds(), [AssetKind::Deposit, AssetKind::Securities]);
}

#[test]
fn a_registry_overrides_calls_key_by_key() {
    let text = format!(
        "[calls]\nattempt_timeout = \"1s\"\nhedge_budget = 0.2\n{ONE_REGISTRY}calls = {{ timeout = \"500ms\", concurrency = 8 }}\n"
    );
    let c = Config::parse(&text, []).unwrap();
    let p = c.policy(&c.registries[0]);
    let d = CallPolicy::default();
    assert_eq!((p.timeout, p.concurrency), (Duration::from_millis(500), 8), "its own keys");
    assert_eq!(p.hedge_budget, 0.2, "[calls] where it sets none");
    assert_eq!(p.attempt_timeout, Duration::from_millis(500), "an attempt never outlasts the timeout");
    assert_eq!((p.breaker, p.retry_budget, p.hedge_percentile), (d.breaker, d.retry_budget, d.hedge_percentile));
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    let text = format!("[serch]\ndeadline = \"1s\"\n[cache]\nmax_entrys = 5\n{ONE_REGISTRY}colour = \"red\"\n");
    assert_eq!(
        keys(Config::parse(&text, []).unwrap_err()),
        ["cache.max_entrys", "serch", "registries[0](bank-a).colour"]
    );
}

#[test]
fn every_cross_field_problem_is_reported_with_its_key() {
    let text = r#"
        [server.connections]
        preface_timeout = "0s"
        max_connections = 10
        max_per_address = 11
        [search]
        deadline = "2s"
        max_debtors = 0
        list_registries = 0
        job_retention = "1m"
        [calls]
        timeout = "3s"
        [[registries]]
        name = "a"
        kind = "bank"
        endpoint = "127.0.0.1:1"
        calls = { timeout = "5s", concurrency = 0, hedge_percentile = 1.0, breaker = { failures = 0 } }
        [[registries]]
        name = "a"
        kind = "ip"
        endpoint = "https://127.0.0.1:2"
        asset_kinds = []
        [registries.mock]
        error_rate = 2.0
    "#;
    let problems = Config::parse(text, []).unwrap_err();
    assert_eq!(
        keys(problems.clone()),
        [
            "calls.timeout",
            "server.connections.preface_timeout",
            "server.connections.max_per_address",
            "search.max_debtors",
            "search.list_registries",
            "search.job_retention",
            "registries[0](a).endpoint",
            "registries[0](a).calls.timeout",
            "registries[0](a).calls.concurrency",
            "registries[0](a).calls.breaker.failures",
            "registries[0](a).calls.hedge_percentile",
            "registries[1](a).name",
            "registries[1](a).asset_kinds",
        ]
    );
    let shown = problems.to_string();
    assert!(shown.starts_with("13 configuration problem(s):"), "{shown}");
    assert!(shown.contains("registries[0](a).calls.timeout: (5s) is longer than search.deadline (2s)"), "{shown}");
}

#[test]
fn type_errors_name_their_key() {
    let p = Config::parse(&format!("[search]\ndeadline = \"soon\"\n{ONE_REGISTRY}"), []).unwrap_err();
    assert_eq!(keys(p), ["search.deadline"]);
    let p = Config::parse(&ONE_REGISTRY.replace("bank\"", "piggybank\""), []).unwrap_err();
    assert!(p.0[0].message.contains("unknown registry kind `piggybank`"), "{p}");
    let p = Config::parse("this is not toml", []).unwrap_err();
    assert_eq!(keys(p), ["(file)"]);
}

/// Issue 31, item 9: a value of the wrong type hides nothing else in the file, each problem is said
/// once, keyed by path, index and registry name.
#[test]
fn a_type_error_hides_no_other_problem() {
    let text = r#"
        [search]
        deadlin = "1s"
        max_debtors = "ten"
        [[registries]]
        name = "bank-x"
        kind = "banks"
        endpoint = "https://127.0.0.1:9"
        [[registries]]
        name = "bank-y"
        kind = "bank"
        endpoint = "https://127.0.0.1:10"
        cache_ttl = 5
        colour = "red"
    "#;
    let p = Config::parse(text, []).unwrap_err();
    let messages: Vec<String> = p.0.iter().map(|p| p.message.clone()).collect();
    assert_eq!(
        keys(p),
        [
            "search.max_debtors",
            "search.deadlin",
            "registries[0](bank-x).kind",
            "registries[1](bank-y).cache_ttl",
            "registries[1](bank-y).colour"
        ],
        "{messages:?}"
    );
    assert!(messages.iter().all(|m| !m.contains("\nin `")), "no repeated location: {messages:?}");
}

#[test]
fn environment_overrides_keys_and_list_entries() {
    let c = Config::parse(
        ONE_REGISTRY,
        env(&[
            ("ASSETGW__SEARCH__DEADLINE", "5s"),
            ("ASSETGW__SEARCH__MAX_DEBTORS", "3"),
            ("ASSETGW__REGISTRIES__0__CALLS__TIMEOUT", "1s"),
            ("OTHER", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(c.search.deadline, Duration::from_secs(5));
    assert_eq!(c.search.max_debtors, 3);
    assert_eq!(c.registries[0].calls.timeout, Some(Duration::from_secs(1)));
    let p = Config::parse(ONE_REGISTRY, env(&[("ASSETGW__REGISTRIES__4__CALLS__TIMEOUT", "1s")])).unwrap_err();
    assert_eq!(keys(p), ["ASSETGW__REGISTRIES__4__CALLS__TIMEOUT"]);
    let p = Config::parse(ONE_REGISTRY, env(&[("ASSETGW__SEARCH__DEADLINE", "60s")])).unwrap();
    assert_eq!(p.search.deadline, Duration::from_secs(60));
}

#[test]
fn no_registries_is_a_problem() {
    assert_eq!(keys(Config::parse("", []).unwrap_err()), ["registries"]);
}

proptest::proptest! {
    #[test]
    fn any_text_is_parsed_or_refused_with_problems_never_a_panic(text in "\\PC{0,200}", key in "[a-z_]{1,12}") {
        let _ = Config::parse(&text, []);
        let _ = Config::parse(&format!("[{key}]\n{key} = {text:?}\n"), [(format!("{ENV_PREFIX}{key}"), text.clone())]);
    }
}
