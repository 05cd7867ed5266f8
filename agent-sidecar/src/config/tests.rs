use std::{
    collections::HashMap,
    ffi::OsString,
    path::{Path, PathBuf},
};

use clap::FromArgMatches;

use super::{args::run_cli, file::file_keys, *};

/// A config file in a fresh directory.
fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("config-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sidecar.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn argv(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

/// Resolves `run` with `flags`, the variables `env` and the file `config`,
/// then parses the result as the binary does.
fn run(
    flags: &[&str],
    env: &[(&str, &str)],
    config: Option<&Path>,
) -> Result<(RunArgs, Resolved), ConfigError> {
    let mut words = vec!["agent-sidecar", "run"];
    let config_arg;
    if let Some(c) = config {
        config_arg = c.display().to_string();
        words.extend(["--config", config_arg.as_str()]);
    }
    words.extend(flags);
    words.extend(["--", "true"]);
    let env: HashMap<String, OsString> = env
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    let resolved = resolve(&run_cli(), "run", &argv(&words), &|k| env.get(k).cloned())?;
    let matches = run_cli()
        .try_get_matches_from(&resolved.argv)
        .map_err(|e| ConfigError::Combined(e.to_string()))?;
    let args = RunArgs::from_arg_matches(matches.subcommand_matches("run").unwrap()).unwrap();
    Ok((args, resolved))
}

fn source(r: &Resolved, key: &str) -> Source {
    r.entries.iter().find(|e| e.key.name == key).unwrap().source
}

#[test]
fn a_flag_beats_its_variable_which_beats_the_file_which_beats_the_default() {
    let f = file(
        "precedence",
        "dns-budget-queries: 10\nenvironment: staging\n",
    );
    let env = [("AGENT_SIDECAR_DNS_BUDGET_QUERIES", "20")];
    let (a, r) = run(&["--dns-budget-queries", "30"], &env, Some(&f)).unwrap();
    assert_eq!(a.sidecar.dns_budget_queries, 30);
    assert_eq!(source(&r, "dns-budget-queries"), Source::Flag);
    let (a, r) = run(&[], &env, Some(&f)).unwrap();
    assert_eq!(a.sidecar.dns_budget_queries, 20);
    assert_eq!(source(&r, "dns-budget-queries"), Source::Env);
    let (a, r) = run(&[], &[], Some(&f)).unwrap();
    assert_eq!(a.sidecar.dns_budget_queries, 10);
    assert_eq!(source(&r, "dns-budget-queries"), Source::File);
    let (a, r) = run(&[], &[], None).unwrap();
    assert_eq!(
        a.sidecar.dns_budget_queries,
        crate::dns::BudgetLimits::default().queries
    );
    assert_eq!(source(&r, "dns-budget-queries"), Source::Default);
    // Other keys of the file still apply when one is overridden.
    assert_eq!(
        run(&["--dns-budget-queries", "30"], &env, Some(&f))
            .unwrap()
            .0
            .sidecar
            .gateway
            .environment,
        "staging"
    );
}

#[test]
fn a_list_comes_whole_from_one_layer() {
    let f = file("lists", "allow:\n  - 10.0.0.1:80\n  - 10.0.0.2:80\n");
    let (a, _) = run(&[], &[], Some(&f)).unwrap();
    assert_eq!(a.sidecar.allow.len(), 2);
    let (a, r) = run(&[], &[("AGENT_SIDECAR_ALLOW", "10.0.0.3:80")], Some(&f)).unwrap();
    assert_eq!(a.sidecar.allow.len(), 1);
    assert_eq!(
        r.entries
            .iter()
            .find(|e| e.key.name == "allow")
            .unwrap()
            .values,
        ["10.0.0.3:80"]
    );
    let (a, _) = run(&["--allow", "10.0.0.4:80"], &[], Some(&f)).unwrap();
    assert_eq!(a.sidecar.allow.len(), 1);
}

#[test]
fn switches_from_the_file_and_variables() {
    let f = file("switches", "keep-pinned: true\nno-proxy-env: true\n");
    let (a, _) = run(&[], &[], Some(&f)).unwrap();
    assert!(a.keep_pinned && a.no_proxy_env);
    let (a, r) = run(&[], &[("AGENT_SIDECAR_KEEP_PINNED", "false")], Some(&f)).unwrap();
    assert!(!a.keep_pinned && a.no_proxy_env);
    assert_eq!(source(&r, "keep-pinned"), Source::Env);
    let e = run(&[], &[("AGENT_SIDECAR_KEEP_PINNED", "yes")], None).unwrap_err();
    assert!(e.to_string().contains("AGENT_SIDECAR_KEEP_PINNED"), "{e}");
}

#[test]
fn variables_are_parsed_like_the_flag() {
    let env = [
        (
            "AGENT_SIDECAR_ALLOW",
            "[api.example.com:443, \"*.b.example.com:443\", 10.0.0.0/8]",
        ),
        ("AGENT_SIDECAR_INTERCEPT_PORTS", "80,8080"),
        ("AGENT_SIDECAR_APPROVAL_SLA", "1h30m"),
        ("AGENT_SIDECAR_ENV", "GREETING=a,b c"),
        ("AGENT_SIDECAR_LOG", "debug"),
    ];
    let (a, r) = run(&[], &env, None).unwrap();
    assert_eq!(a.sidecar.allow.len(), 3);
    assert_eq!(a.sidecar.intercept_ports, [80, 8080]);
    assert_eq!(
        a.sidecar.gateway.approval_sla,
        std::time::Duration::from_secs(5400)
    );
    assert_eq!(a.env.len(), 1, "one value: commas are not separators");
    assert_eq!(source(&r, "log"), Source::Env);
    for (var, value, needle) in [
        ("AGENT_SIDECAR_DNS_BUDGET_NAMES", "many", "dns-budget-names"),
        (
            "AGENT_SIDECAR_ALLOW",
            "10.0.0.1/8",
            "did you mean `10.0.0.0/8`",
        ),
        ("AGENT_SIDECAR_ALLOW", "[10.0.0.1:80", "not a list"),
        ("AGENT_SIDECAR_APPROVAL_SLA", "soon", "not a duration"),
    ] {
        let e = run(&[], &[(var, value)], None).unwrap_err().to_string();
        assert!(e.contains(var) && e.contains(needle), "{var}={value}: {e}");
        assert!(e.contains("help: "), "{e}");
    }
}

#[test]
fn a_typo_names_the_file_line_column_and_the_nearest_key() {
    let f = file("typo", "agent-id: bot\npolcy-dir: /etc/policies\n");
    let e = run(&[], &[], Some(&f)).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2:1: ", f.display())), "{e}");
    assert!(
        e.contains("unknown key `polcy-dir`: did you mean `policy-dir`?"),
        "{e}"
    );
    let f = file("typo2", "admin_listen: 127.0.0.1:1\n");
    let e = LoadedFile::load(&f).unwrap_err().to_string();
    assert!(e.contains("did you mean `admin-listen`?"), "{e}");
    let f = file("typo3", "frobnicate: 1\n");
    let e = LoadedFile::load(&f).unwrap_err().to_string();
    assert!(
        e.contains("unknown key `frobnicate`") && !e.contains("did you mean"),
        "{e}"
    );
}

#[test]
fn a_wrong_type_or_value_names_where_it_is() {
    for (text, at, needle) in [
        ("dns-budget-queries: lots\n", ":1:21", "dns-budget-queries"),
        ("allow: 10.0.0.1:80\n", ":1:8", "allow"),
        ("keep-pinned: yes\n", ":1:14", "keep-pinned"),
        (
            "allow:\n  - 10.0.0.1:80\n  - 10.0.0.1/8\n",
            ":3:5",
            "did you mean `10.0.0.0/8`",
        ),
        ("dns-refusal: maybe\n", ":1:14", "dns-refusal"),
        ("pids-max: -3\n", ":1:11", "pids-max"),
        ("agent-id: a\nagent-id: b\n", ":2:1", "duplicate"),
    ] {
        let f = file("types", text);
        let e = run(&[], &[], Some(&f)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}{at}: ", f.display())),
            "{text:?}: {e}"
        );
        assert!(e.contains(needle) && e.contains("help: "), "{text:?}: {e}");
    }
}

#[test]
fn relative_paths_are_relative_to_the_file() {
    let f = file(
        "paths",
        "policy: [egress.yaml, /abs/p.yaml]\npolicy-dir: policies\nadmin-token-file: ../token\nsecret: [crm=file:secrets/crm, env=env:X]\n",
    );
    let dir = f.parent().unwrap();
    let (a, _) = run(&[], &[], Some(&f)).unwrap();
    assert_eq!(
        a.sidecar.policies,
        [dir.join("egress.yaml"), PathBuf::from("/abs/p.yaml")]
    );
    assert_eq!(a.sidecar.gateway.policy_dir, Some(dir.join("policies")));
    assert_eq!(
        a.sidecar.gateway.admin_token_file,
        Some(dir.join("../token"))
    );
    let file = LoadedFile::load(&f).unwrap();
    assert_eq!(
        file.values["secret"],
        file::FileValue::Texts(vec![
            format!("crm=file:{}", dir.join("secrets/crm").display()),
            "env=env:X".into()
        ])
    );
}

#[test]
fn the_webhook_secret_syslog_and_baseline_keys_reach_the_gateway() {
    let f = file(
        "detect-keys",
        "policy-dir: policies\nwebhook-secret-file: secrets/webhook.secret\nbaseline-dir: none\nsyslog: [tcp://127.0.0.1:514, tls://siem.example:6514]\n",
    );
    let dir = f.parent().unwrap();
    let (a, _) = run(&[], &[], Some(&f)).unwrap();
    assert_eq!(
        a.sidecar.gateway.webhook_secret_file,
        Some(dir.join("secrets/webhook.secret"))
    );
    // `none` is a word, not a path next to the file: baselines in memory.
    assert_eq!(a.sidecar.gateway.baseline_dir, PathBuf::from("none"));
    let syslog: Vec<String> = a
        .sidecar
        .gateway
        .syslog
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(syslog, ["tcp://127.0.0.1:514", "tls://siem.example:6514"]);
    let opts = a.sidecar.gateway.options().expect("the gateway is on");
    assert_eq!(opts.baseline_dir, None);
    // A relative baseline directory is the file's; the variable wins over the file.
    let f = file(
        "detect-keys-dir",
        "policy-dir: p\nbaseline-dir: baselines\n",
    );
    let (a, _) = run(&[], &[], Some(&f)).unwrap();
    assert_eq!(
        a.sidecar.gateway.baseline_dir,
        f.parent().unwrap().join("baselines")
    );
    let (a, r) = run(
        &[],
        &[("AGENT_SIDECAR_WEBHOOK_SECRET_FILE", "/etc/s/webhook.secret")],
        Some(&f),
    )
    .unwrap();
    assert_eq!(
        a.sidecar.gateway.webhook_secret_file,
        Some(PathBuf::from("/etc/s/webhook.secret"))
    );
    assert_eq!(source(&r, "webhook-secret-file"), Source::Env);
    // A collector the flag refuses is refused in the file, where it is.
    let f = file("detect-keys-bad", "syslog: [ftp://x]\n");
    let e = run(&[], &[], Some(&f)).unwrap_err().to_string();
    assert!(e.contains("sidecar.yaml:1:") && e.contains("syslog"), "{e}");
}

#[test]
fn the_config_file_variable_names_the_file() {
    let f = file("envfile", "agent-id: from-file\n");
    let (a, r) = run(&[], &[("AGENT_SIDECAR_CONFIG", f.to_str().unwrap())], None).unwrap();
    assert_eq!(a.sidecar.agent_id.as_deref(), Some("from-file"));
    assert_eq!(r.file.as_deref(), Some(f.as_path()));
}

#[test]
fn other_subcommands_are_left_alone() {
    let words = argv(&["agent-sidecar", "policy", "check"]);
    let r = resolve(&run_cli(), "run", &words, &|_| Some("x".into())).unwrap();
    assert_eq!(r.argv, words);
    assert!(r.entries.is_empty());
}

#[test]
fn every_flag_of_run_and_serve_is_a_key_of_the_file_and_nothing_else_is() {
    let mut cli = run_cli();
    cli.build();
    let mut flags: Vec<String> = keys(cli.find_subcommand("run").unwrap())
        .into_iter()
        .chain(keys(cli.find_subcommand("serve").unwrap()))
        .map(|k| k.name)
        .collect();
    flags.dedup_by(|a, b| a == b);
    flags.sort();
    flags.dedup();
    let mut file = file_keys();
    flags.sort();
    file.sort();
    assert_eq!(flags, file);
}

/// `docs/config.schema.json` is what the code generates. Regenerate with
/// `UPDATE_SCHEMA=1 cargo test -p agent-sidecar --lib config::`.
#[test]
fn published_schema_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.schema.json");
    let want = schema_text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date with ConfigFile; regenerate it with:\n  UPDATE_SCHEMA=1 cargo test -p agent-sidecar --lib config::\n(or `agent-sidecar config schema > docs/config.schema.json`) and commit it",
        path.display()
    );
    let s = schema();
    assert_eq!(s["additionalProperties"], false);
    assert_eq!(s["properties"]["allow"]["type"][0], "array");
}

#[test]
fn show_says_where_each_value_comes_from() {
    let f = file("show", "agent-id: bot\nallow: [\"*.example.com:443\"]\n");
    let (_, r) = run(
        &["--keep-pinned"],
        &[("AGENT_SIDECAR_ENVIRONMENT", "dev")],
        Some(&f),
    )
    .unwrap();
    let text = show(&r);
    for line in [
        "agent-id:",
        "bot  # file",
        "[\"*.example.com:443\"]  # file",
        "dev  # env AGENT_SIDECAR_ENVIRONMENT",
        "true  # flag",
        "/sys/fs/bpf  # default",
        "~  # unset",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

/// The log filter `run` would log with, given `RUST_LOG=rust_log`.
fn log_filter(
    flags: &[&str],
    env: &[(&str, &str)],
    config: Option<&Path>,
    rust_log: &str,
) -> String {
    let (_, resolved) = run(flags, env, config).expect("resolves");
    let matches = run_cli()
        .try_get_matches_from(&resolved.argv)
        .expect("parses");
    let logging = args::LogArgs::from_arg_matches(&matches).expect("logging flags");
    logging.filter(Some(rust_log.to_string()))
}

#[test]
fn an_explicit_log_filter_wins_over_rust_log() {
    assert_eq!(log_filter(&[], &[], None, "warn"), "warn");
    assert_eq!(log_filter(&[], &[], None, ""), "info");
    assert_eq!(log_filter(&["--log", "debug"], &[], None, "warn"), "debug");
    assert_eq!(
        log_filter(&[], &[("AGENT_SIDECAR_LOG", "trace")], None, "warn"),
        "trace"
    );
    let f = file("log", "log: agent_sidecar=debug\n");
    assert_eq!(
        log_filter(&[], &[], Some(&f), "warn"),
        "agent_sidecar=debug"
    );
    assert_eq!(
        log_filter(&["--log", "error"], &[], Some(&f), "warn"),
        "error"
    );
}

/// `serve` reads the same layers: the pod's downward-API variables, the
/// mounted config file, its flags.
#[test]
fn serve_takes_the_pod_from_variables_and_the_file() {
    let path = file(
        "serve",
        "agent-id: from-file\nhost-cgroupfs: /host/sys/fs/cgroup\ndrain-grace: 5s\nallow: [10.0.0.1:443]\n",
    );
    let env: HashMap<String, OsString> = [
        (
            "AGENT_SIDECAR_POD_UID",
            "3f1c2a9e-7b4d-4e8a-9c11-0d5e6f7a8b9c",
        ),
        ("AGENT_SIDECAR_POD_NAME", "reviewer-abc"),
        ("AGENT_SIDECAR_AGENT_ID", "reviewer"),
        ("AGENT_SIDECAR_OWNER", "alice@example.com"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), OsString::from(v)))
    .collect();
    let words = [
        "agent-sidecar",
        "serve",
        "--config",
        path.to_str().unwrap(),
        "--team",
        "platform",
    ];
    let resolved = resolve(&run_cli(), "serve", &argv(&words), &|k| env.get(k).cloned()).unwrap();
    let matches = run_cli().try_get_matches_from(&resolved.argv).unwrap();
    let a = ServeArgs::from_arg_matches(matches.subcommand_matches("serve").unwrap()).unwrap();
    assert_eq!(a.pod_uid, "3f1c2a9e-7b4d-4e8a-9c11-0d5e6f7a8b9c");
    assert_eq!(a.pod_name, "reviewer-abc");
    assert_eq!(
        a.sidecar.agent_id.as_deref(),
        Some("reviewer"),
        "env beats the file"
    );
    assert_eq!(a.host_cgroupfs, PathBuf::from("/host/sys/fs/cgroup"));
    assert_eq!(a.drain_grace, std::time::Duration::from_secs(5));
    assert_eq!(a.owner.as_deref(), Some("alice@example.com"));
    assert_eq!(a.team.as_deref(), Some("platform"));
    assert_eq!(a.sidecar.allow.len(), 1);
    // Without the pod UID, serve does not start.
    let none = resolve(&run_cli(), "serve", &argv(&words[..2]), &|_| None).unwrap();
    assert!(run_cli().try_get_matches_from(&none.argv).is_err());
}
