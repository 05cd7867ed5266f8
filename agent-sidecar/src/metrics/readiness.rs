//! [`Readiness`]: what `GET /readyz` checks, also on `/metrics` as
//! `agent_sidecar_ready{check}`.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{IntGaugeVec, Opts, Registry};

/// One condition of readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The kernel programs are attached to the agent's cgroup.
    ProgramsAttached,
    /// The agent's resolver listens.
    ResolverListening,
    /// The egress policy (and the tier policy, with `--policy-dir`) is in
    /// force.
    PoliciesLoaded,
}

impl Check {
    /// Every check, in the order `/readyz` reports them.
    pub const ALL: [Check; 3] = [
        Check::ProgramsAttached,
        Check::ResolverListening,
        Check::PoliciesLoaded,
    ];

    /// The name in `/readyz` and in the `check` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::ProgramsAttached => "programs_attached",
            Check::ResolverListening => "resolver_listening",
            Check::PoliciesLoaded => "policies_loaded",
        }
    }
}

/// Whether the sidecar enforces and serves: ready only when every
/// [`Check`] holds.
pub struct Readiness {
    flags: [AtomicBool; 3],
    gauge: IntGaugeVec,
}

impl Readiness {
    pub(super) fn register(registry: &Registry) -> Self {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_ready",
                "1 while a readiness check holds (check: programs_attached, \
                 resolver_listening, policies_loaded), else 0; /readyz is 200 only when \
                 all are 1.",
            ),
            &["check"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(gauge.clone()))
            .expect("unique metric");
        for c in Check::ALL {
            gauge.with_label_values(&[c.as_str()]).set(0);
        }
        Readiness {
            flags: Default::default(),
            gauge,
        }
    }

    /// Records whether `check` holds.
    pub fn set(&self, check: Check, ok: bool) {
        self.flags[check as usize].store(ok, Ordering::SeqCst);
        self.gauge
            .with_label_values(&[check.as_str()])
            .set(i64::from(ok));
    }

    /// Whether every check holds, and one line per check
    /// (`programs_attached ok`, `resolver_listening no`).
    pub fn report(&self) -> (bool, String) {
        let mut ready = true;
        let mut text = String::new();
        for c in Check::ALL {
            let ok = self.flags[c as usize].load(Ordering::SeqCst);
            ready &= ok;
            text.push_str(c.as_str());
            text.push_str(if ok { " ok\n" } else { " no\n" });
        }
        (ready, text)
    }
}
