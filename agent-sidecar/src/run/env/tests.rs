use super::*;

fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

fn strings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn only_the_listed_variables_reach_the_agent() {
    let operator = os(&[
        ("PATH", "/usr/bin"),
        ("HOME", "/root"),
        ("LC_ALL", "C.UTF-8"),
        ("STRIPE_KEY", "sk_live_1"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("LOG_LEVEL", "debug"),
    ]);
    let options = EnvOptions {
        set: vec!["MODE=test".parse().unwrap()],
        pass: vec!["LOG_LEVEL".into(), "UNSET_VAR".into()],
    };
    let vars = agent_env(&EnvInputs {
        operator: &operator,
        options: &options,
        secret_sources: &strings(&[("stripe", "STRIPE_KEY")]),
        sidecar: &strings(&[("HTTPS_PROXY", "http://127.0.0.1:1")]),
        home: Path::new(NO_HOME),
    })
    .unwrap();
    assert_eq!(
        vars,
        os(&[
            ("PATH", "/usr/bin"),
            ("LC_ALL", "C.UTF-8"),
            ("HOME", NO_HOME),
            ("LOG_LEVEL", "debug"),
            ("MODE", "test"),
            ("HTTPS_PROXY", "http://127.0.0.1:1"),
        ])
    );
}

#[test]
fn a_secret_source_is_never_passed() {
    let operator = os(&[("PATH", "/secret/path"), ("TOKEN", "t")]);
    let sources = strings(&[("crm", "TOKEN"), ("odd", "PATH")]);
    let build = |options: &EnvOptions| {
        agent_env(&EnvInputs {
            operator: &operator,
            options,
            secret_sources: &sources,
            sidecar: &[],
            home: Path::new(NO_HOME),
        })
    };
    let vars = build(&EnvOptions::default()).unwrap();
    assert_eq!(vars, os(&[("PATH", DEFAULT_PATH), ("HOME", NO_HOME)]));
    for options in [
        EnvOptions {
            pass: vec!["TOKEN".into()],
            ..EnvOptions::default()
        },
        EnvOptions {
            set: vec!["TOKEN=copy".parse().unwrap()],
            ..EnvOptions::default()
        },
    ] {
        let err = build(&options).unwrap_err();
        assert!(matches!(err, EnvError::SecretSource { .. }), "{err}");
        assert!(err.to_string().contains("--secret crm"), "{err}");
    }
}

#[test]
fn home_can_be_set_by_the_operator() {
    let options = EnvOptions {
        set: vec!["HOME=/srv/agent".parse().unwrap()],
        ..EnvOptions::default()
    };
    let vars = agent_env(&EnvInputs {
        operator: &[],
        options: &options,
        secret_sources: &[],
        sidecar: &[],
        home: Path::new(NO_HOME),
    })
    .unwrap();
    assert_eq!(vars, os(&[("PATH", DEFAULT_PATH), ("HOME", "/srv/agent")]));
}

#[test]
fn sidecar_variables_and_bad_names_are_refused() {
    let sidecar = strings(&[("HTTPS_PROXY", "http://127.0.0.1:1")]);
    for (options, want) in [
        (
            EnvOptions {
                set: vec!["HTTPS_PROXY=http://evil".parse().unwrap()],
                ..EnvOptions::default()
            },
            "--env HTTPS_PROXY",
        ),
        (
            EnvOptions {
                pass: vec!["HTTPS_PROXY".into()],
                ..EnvOptions::default()
            },
            "--pass-env HTTPS_PROXY",
        ),
    ] {
        let err = agent_env(&EnvInputs {
            operator: &[],
            options: &options,
            secret_sources: &[],
            sidecar: &sidecar,
            home: Path::new(NO_HOME),
        })
        .unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    assert!(matches!(
        "NOVALUE".parse::<EnvVar>(),
        Err(EnvError::Malformed(_))
    ));
    assert!(matches!(
        "=x".parse::<EnvVar>(),
        Err(EnvError::Malformed(_))
    ));
    assert_eq!(
        "A=b=c".parse::<EnvVar>().unwrap(),
        EnvVar {
            name: "A".into(),
            value: "b=c".into()
        }
    );
    assert!(parse_pass_env("A=B").is_err());
}
