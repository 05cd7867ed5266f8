//! `agent-sidecar fleet-ca init|issue`: the fleet CA that gives each agent a
//! short-lived SPIFFE-style identity for agent-to-agent calls
//! (docs/delegation.md). Private keys are written with mode 0600.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use agent_sidecar::delegation::fleet_ca;

/// The fleet-ca subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum FleetCaCommand {
    /// Create a fleet CA in a directory: fleet-ca.pem, fleet-ca.key (0600)
    /// and trust-domain. Refuses to overwrite an existing CA.
    Init {
        /// Trust domain of the identities it issues (lowercase letters,
        /// digits, '-' or '.'), e.g. `fleet.example`.
        #[arg(long, value_name = "DOMAIN")]
        trust_domain: String,
        /// Directory to write the CA into (created if absent).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// How long the CA certificate is valid.
        #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = humantime::parse_duration)]
        validity: Duration,
    },
    /// Issue an agent's identity `spiffe://DOMAIN/team/T/agent/A`: writes
    /// DIR/A.pem and DIR/A.key (0600), replacing an older pair (rotation).
    Issue {
        /// Directory of the fleet CA (`fleet-ca init --out`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The agent's team.
        #[arg(long)]
        team: String,
        /// The agent's id.
        #[arg(long)]
        agent: String,
        /// How long the identity is valid; keep it short and re-issue.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Directory to write the certificate and key into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Runs one subcommand; returns the exit code (0 ok, 2 unusable input or
/// files).
pub(crate) fn run(cmd: FleetCaCommand) -> i32 {
    let result = match cmd {
        FleetCaCommand::Init {
            trust_domain,
            out,
            validity,
        } => fleet_ca::init(&trust_domain, &out, validity).map(|cert| {
            serde_json::json!({
                "trust_domain": trust_domain,
                "ca_cert": cert,
                "ca_key": out.join(fleet_ca::CA_KEY),
            })
        }),
        FleetCaCommand::Issue {
            ca,
            team,
            agent,
            ttl,
            out,
        } => fleet_ca::issue(&ca, &team, &agent, ttl, Duration::ZERO).and_then(|issued| {
            let (cert, key) = fleet_ca::write_issued(&issued, &out, &agent)?;
            Ok(serde_json::json!({
                "spiffe_id": issued.spiffe_id,
                "cert": cert,
                "key": key,
                "ttl_seconds": ttl.as_secs(),
            }))
        }),
    };
    match result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("agent-sidecar fleet-ca: {e}");
            2
        }
    }
}
