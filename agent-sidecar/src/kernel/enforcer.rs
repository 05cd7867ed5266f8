//! Loads, attaches, pins, updates and removes one agent's enforcement.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use agent_sidecar_common::{
    Counter, EndpointKey, PROTO_TCP, RedirectKey, RedirectTarget, SETTINGS_INTERCEPT,
    SETTINGS_QUARANTINE, SETTINGS_READY, Settings, map_names, private_port_bit, program_names,
    v4_mapped,
};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr, links::FdLink,
    },
};
use aya_log::EbpfLogger;
use tracing::{info, warn};

use super::{
    KernelError,
    allowlist_maps::{AllowlistMaps, Entries},
    cgroup::AgentCgroup,
    lsm_guard, object,
    pins::{OwnerLock, PinLayout, PinnedState},
    preflight,
    sockets::{self, NetnsSet},
};
use crate::egress::Allowlist;

/// Where and for whom to enforce.
#[derive(Clone, Debug)]
pub struct EnforcerConfig {
    /// The agent id; names the cgroup, pin directory and state file.
    pub agent_id: String,
    /// bpffs mount point (default `/sys/fs/bpf`).
    pub bpffs: PathBuf,
    /// Mount a bpffs at `bpffs` when none is there (default on).
    pub mount_bpffs: bool,
    /// State and lock directory (default `/run/agent-sidecar`).
    pub state_dir: PathBuf,
    /// Attach to this existing cgroup v2 directory instead of creating
    /// `<cgroup2>/agent-sidecar/<agent id>` (e.g. a pod's cgroup).
    pub cgroup: Option<PathBuf>,
    /// The sidecar's private listeners (admin API, metrics): the kernel
    /// refuses every TCP connect and packet of the agent to their ports,
    /// whatever the address and whatever the allowlist says.
    pub private_listeners: Vec<SocketAddr>,
    /// cgroups under `cgroup` that the programs leave alone, each exactly
    /// (not its children): the sidecar's own container when `cgroup` is a
    /// pod's. Written before the programs are attached.
    pub exempt_cgroups: Vec<PathBuf>,
}

impl EnforcerConfig {
    /// Defaults for `agent_id`.
    pub fn new(agent_id: &str) -> Self {
        Self {
            agent_id: agent_id.into(),
            bpffs: preflight::DEFAULT_BPFFS.into(),
            mount_bpffs: true,
            state_dir: super::pins::DEFAULT_STATE_DIR.into(),
            cgroup: None,
            private_listeners: Vec::new(),
            exempt_cgroups: Vec::new(),
        }
    }
}

/// `CLOCK_BOOTTIME` in nanoseconds: the clock of `bpf_ktime_get_boot_ns()`.
fn boot_time_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Settings of a fresh generation: enforcing, trie epoch 0.
const READY: Settings = Settings {
    flags: SETTINGS_READY,
    epoch: 0,
};

/// Totals of the kernel's per-CPU counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Attempts allowed by the socket hooks.
    pub allowed: u64,
    /// Attempts denied by any hook.
    pub denied: u64,
    /// Deny events lost because the ring buffer was full.
    pub events_lost: u64,
    /// Packets dropped by the egress skb hook.
    pub skb_dropped: u64,
}

/// Live enforcement for one agent: programs attached to its cgroup, pinned,
/// with the maps open for updates.
///
/// Dropping an `Enforcer` leaves everything pinned and attached (fail
/// closed); [`Enforcer::teardown`] removes it.
pub struct Enforcer {
    layout: PinLayout,
    generation: u64,
    cgroup: AgentCgroup,
    allowlist: AllowlistMaps,
    entries: usize,
    settings: Array<MapData, Settings>,
    redirects: BpfHashMap<MapData, RedirectKey, RedirectTarget>,
    /// What `settings` holds.
    current: Settings,
    counters: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    logger: Option<EbpfLogger<&'static dyn log::Log>>,
    lsm_guard: bool,
    /// Whether `cgroup` was created for this agent (and is removed with it).
    owns_cgroup: bool,
    /// Whether this generation's hooks were attached before the cgroup's
    /// first process, so [`Counter::SocketsCreated`] counts every inet
    /// socket the agent ever had.
    counted_from_birth: bool,
    /// The network namespaces the agent's processes were seen in.
    netns: NetnsSet,
    /// cgroup ids under `cgroup` the programs leave alone.
    exempt: Vec<u64>,
    _lock: OwnerLock,
}

/// How long the teardown lets the agent's orphaned TCP sockets deliver what
/// they still hold to allowed peers (the hooks are still attached) before
/// they are destroyed.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

impl Enforcer {
    /// Checks the host, creates (or adopts) the agent's cgroup, loads the
    /// programs, writes `allowlist`, attaches and pins. A previous
    /// generation left by a dead sidecar is replaced only after the new one
    /// is attached, so there is no moment without enforcement.
    pub fn start(config: &EnforcerConfig, allowlist: &Allowlist) -> Result<Self, KernelError> {
        let cgroup2 = preflight::check(&config.bpffs, config.mount_bpffs)?;
        let entries = Entries::compile(allowlist);
        entries.check_capacity()?;
        let layout = PinLayout::new(&config.bpffs, &config.state_dir, &config.agent_id)?;
        let lock = OwnerLock::acquire(&layout)?;
        let previous = PinnedState::read(&layout)?;
        let old_generations = layout.generations();
        let exempt = exempt_ids(config)?;
        let (cgroup, created) = match &config.cgroup {
            Some(path) => (AgentCgroup::open(path.clone())?, false),
            None => AgentCgroup::create_or_open(&cgroup2, &config.agent_id)?,
        };
        // Every socket of a cgroup created now is made under this
        // generation's hooks, so its counters see them all.
        let counted_from_birth = created && previous.is_none() && old_generations.is_empty();
        if let Some(prev) = &previous {
            let orphans = cgroup.pids()?.len();
            info!(
                agent_id = %config.agent_id,
                previous_generation = prev.generation,
                previous_owner_pid = prev.owner_pid,
                orphaned_processes = orphans,
                "replacing stale pinned enforcement left by a sidecar that is gone"
            );
        }
        let generation = old_generations
            .last()
            .copied()
            .unwrap_or(0)
            .max(previous.as_ref().map(|p| p.generation).unwrap_or(0))
            + 1;
        let dir = layout.generation_dir(generation);
        PinLayout::create_private_dir(&dir)?;

        let attached = Self::load_and_attach(
            &layout,
            generation,
            &cgroup,
            &entries,
            &config.private_listeners,
            &exempt,
        );
        let (allowlist_maps, settings, redirects, counters, events, logger, lsm_guard) =
            match attached {
                Ok(parts) => parts,
                Err(e) => {
                    // Our half-built generation goes; any previous one stays in force.
                    let _ = layout.remove_generation(generation);
                    if old_generations.is_empty() {
                        let _ = std::fs::remove_dir(layout.agent_dir());
                        let created_here = config.cgroup.is_none() && previous.is_none();
                        if created_here && cgroup.pids().is_ok_and(|p| p.is_empty()) {
                            let _ = cgroup.remove();
                        }
                    }
                    return Err(e);
                }
            };
        for old in old_generations {
            layout.remove_generation(old)?;
        }
        let state = PinnedState {
            agent_id: config.agent_id.clone(),
            generation,
            cgroup: cgroup.path().to_path_buf(),
            object_sha256: object::digest(),
            owner_pid: std::process::id(),
        };
        state.write(&layout)?;
        info!(
            agent_id = %config.agent_id,
            generation,
            cgroup = %cgroup.path().display(),
            allowlist_entries = entries.len(),
            lsm_socket_guard = lsm_guard,
            "kernel egress enforcement attached"
        );
        Ok(Self {
            layout,
            generation,
            cgroup,
            allowlist: allowlist_maps,
            entries: entries.len(),
            settings,
            redirects,
            current: READY,
            counters,
            events,
            logger,
            lsm_guard,
            owns_cgroup: config.cgroup.is_none(),
            counted_from_birth,
            netns: NetnsSet::own()?,
            exempt,
            _lock: lock,
        })
    }

    #[allow(clippy::type_complexity)]
    fn load_and_attach(
        layout: &PinLayout,
        generation: u64,
        cgroup: &AgentCgroup,
        entries: &Entries,
        private_listeners: &[SocketAddr],
        exempt: &[u64],
    ) -> Result<
        (
            AllowlistMaps,
            Array<MapData, Settings>,
            BpfHashMap<MapData, RedirectKey, RedirectTarget>,
            PerCpuArray<MapData, u64>,
            Option<RingBuf<MapData>>,
            Option<EbpfLogger<&'static dyn log::Log>>,
            bool,
        ),
        KernelError,
    > {
        // The programs use no CO-RE relocations: skip parsing the kernel's
        // BTF here (it costs tens of milliseconds at every start).
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .default_map_pin_directory(layout.generation_dir(generation))
            .load(object::bytes())
            .map_err(|e| KernelError::bpf("agent-sidecar-ebpf", "loading the object", &e))?;
        let logger = match EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                warn!(error = %e, "eBPF program logs unavailable");
                None
            }
        };
        let mut take = |name: &'static str| -> Result<Map, KernelError> {
            match ebpf.take_map(name) {
                Some(map) => Ok(map),
                None => Err(KernelError::Bpf {
                    program: name.into(),
                    action: "finding map",
                    detail: "missing from the object".into(),
                }),
            }
        };
        let mut allowlist = AllowlistMaps::new(&mut take)?;
        allowlist.apply(entries)?;
        let mut settings: Array<MapData, Settings> = Array::try_from(take(map_names::SETTINGS)?)
            .map_err(|e| KernelError::bpf(map_names::SETTINGS, "opening map", &e))?;
        let redirects = BpfHashMap::try_from(take(map_names::REDIRECT)?)
            .map_err(|e| KernelError::bpf(map_names::REDIRECT, "opening map", &e))?;
        let counters = PerCpuArray::try_from(take(map_names::COUNTERS)?)
            .map_err(|e| KernelError::bpf(map_names::COUNTERS, "opening map", &e))?;
        let events = RingBuf::try_from(take(map_names::EVENTS)?)
            .map_err(|e| KernelError::bpf(map_names::EVENTS, "opening map", &e))?;
        let mut private: Array<MapData, u64> = Array::try_from(take(map_names::PRIVATE_PORT_BITS)?)
            .map_err(|e| KernelError::bpf(map_names::PRIVATE_PORT_BITS, "opening map", &e))?;
        let mut words: BTreeMap<u32, u64> = BTreeMap::new();
        for listener in private_listeners {
            let (word, bit) = private_port_bit(PROTO_TCP, listener.port());
            *words.entry(word).or_default() |= bit;
        }
        for (word, bits) in words {
            private
                .set(word, bits, 0)
                .map_err(|e| KernelError::bpf(map_names::PRIVATE_PORT_BITS, "writing map", &e))?;
        }
        let mut exempt_map: BpfHashMap<MapData, u64, u8> =
            BpfHashMap::try_from(take(map_names::EXEMPT)?)
                .map_err(|e| KernelError::bpf(map_names::EXEMPT, "opening map", &e))?;
        for id in exempt {
            exempt_map
                .insert(id, 1, 0)
                .map_err(|e| KernelError::bpf(map_names::EXEMPT, "writing map", &e))?;
        }
        settings
            .set(0, READY, 0)
            .map_err(|e| KernelError::bpf(map_names::SETTINGS, "writing map", &e))?;

        for name in program_names::ALL {
            let link = attach(&mut ebpf, name, cgroup)?;
            link.pin(layout.link_path(generation, name))
                .map_err(|e| KernelError::bpf(name, "pinning the link", &e))?;
        }
        let lsm_guard = lsm_guard::attach(&mut ebpf, cgroup, layout, generation);
        Ok((
            allowlist,
            settings,
            redirects,
            counters,
            Some(events),
            logger,
            lsm_guard,
        ))
    }

    /// The agent's cgroup.
    pub fn cgroup(&self) -> &AgentCgroup {
        &self.cgroup
    }

    /// The pinned-state layout.
    pub fn layout(&self) -> &PinLayout {
        &self.layout
    }

    /// The generation attached.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the BPF-LSM socket guard is attached.
    pub fn lsm_guard(&self) -> bool {
        self.lsm_guard
    }

    /// Number of kernel allowlist entries.
    pub fn allowlist_entries(&self) -> usize {
        self.entries
    }

    /// Entries in each allowlist map and its capacity: what `/metrics`
    /// shows as map occupancy.
    pub fn map_occupancy(&self) -> [(&'static str, usize, u32); 5] {
        self.allowlist.occupancy()
    }

    /// Replaces the allowlist (new entries are added before stale ones go).
    /// Every packet is checked against the maps, so a removed destination is
    /// cut at its next packet, established connections included: a trie
    /// entry's removal bumps the trie epoch, which invalidates the kernel's
    /// cache of trie verdicts.
    pub fn update_allowlist(&mut self, allowlist: &Allowlist) -> Result<(), KernelError> {
        let entries = Entries::compile(allowlist);
        let trie_removed = self.allowlist.apply(&entries)?;
        self.entries = entries.len();
        if trie_removed {
            self.write_settings(Settings {
                epoch: self.current.epoch.wrapping_add(1),
                ..self.current
            })?;
        }
        Ok(())
    }

    fn write_settings(&mut self, settings: Settings) -> Result<(), KernelError> {
        self.settings
            .set(0, settings, 0)
            .map_err(|e| KernelError::bpf(map_names::SETTINGS, "writing map", &e))?;
        self.current = settings;
        Ok(())
    }

    /// Lets the agent always reach one of the sidecar's own listeners.
    pub fn allow_sidecar_endpoint(
        &mut self,
        addr: std::net::SocketAddr,
        proto: u8,
    ) -> Result<(), KernelError> {
        let addr_be = match addr.ip() {
            std::net::IpAddr::V4(v4) => v4_mapped(v4.octets()),
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        let key = EndpointKey {
            addr_be,
            port_be: addr.port().to_be(),
            proto,
            pad: 0,
        };
        self.allowlist.add_sidecar_endpoint(key)
    }

    /// Lets the agent open new connections to `addr` (`port` `None`: every
    /// port) over `proto` for `ttl` from now, on behalf of rule `rule_id`: a
    /// destination learned from an allowed DNS answer (TTL + grace period).
    /// Re-learning refreshes the expiry. Connections established before the
    /// expiry keep working after it: the entry stays while packets flow (see
    /// [`Enforcer::forget_expired`]). An address that an allowlist rule or a
    /// sidecar endpoint already covers is left as it is; returns whether the
    /// entry is a learned one.
    pub fn learn(
        &mut self,
        addr: std::net::IpAddr,
        port: Option<u16>,
        proto: u8,
        rule_id: u32,
        ttl: Duration,
    ) -> Result<bool, KernelError> {
        let addr_be = match addr {
            std::net::IpAddr::V4(v4) => v4_mapped(v4.octets()),
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        let key = EndpointKey {
            addr_be,
            port_be: port.unwrap_or(0).to_be(),
            proto,
            pad: 0,
        };
        let expires = boot_time_ns().saturating_add(ttl.as_nanos().try_into().unwrap_or(u64::MAX));
        self.allowlist.learn(key, rule_id, expires)
    }

    /// Removes learned destinations whose lifetime has passed and that saw no
    /// packet for `idle` (an established connection keeps its entry while it
    /// sends); returns how many went. Call it periodically.
    pub fn forget_expired(&mut self, idle: Duration) -> Result<usize, KernelError> {
        let idle = idle.as_nanos().try_into().unwrap_or(u64::MAX);
        self.allowlist.forget_expired(boot_time_ns(), idle)
    }

    /// Intercepts every `proto` connect or datagram from the agent to
    /// destination port `port`, whatever the address: the kernel rewrites it
    /// to the sidecar listener `v4` (IPv4 sockets and v4-mapped destinations)
    /// or `v6` (IPv6 destinations), which the agent may then reach. Replies
    /// to intercepted UDP seem to come from the address the agent chose.
    pub fn intercept(
        &mut self,
        proto: u8,
        port: u16,
        v4: std::net::SocketAddrV4,
        v6: std::net::SocketAddrV6,
    ) -> Result<(), KernelError> {
        self.allow_sidecar_endpoint(v4.into(), proto)?;
        self.allow_sidecar_endpoint(v6.into(), proto)?;
        let key = RedirectKey {
            proto,
            pad: 0,
            port_be: port.to_be(),
        };
        let target = RedirectTarget {
            addr4_be: v4.ip().octets(),
            port4_be: v4.port().to_be(),
            port6_be: v6.port().to_be(),
            addr6_be: v6.ip().octets(),
        };
        self.redirects
            .insert(key, target, 0)
            .map_err(|e| KernelError::bpf(map_names::REDIRECT, "writing map", &e))?;
        self.write_settings(Settings {
            flags: self.current.flags | SETTINGS_INTERCEPT,
            ..self.current
        })
    }

    /// Switches quarantine (deny everything) on or off. Switching it on
    /// first refuses every new connect and packet, then destroys every TCP
    /// and UDP socket of the agent's cgroup (TCP peers get a reset; data the
    /// agent queued is dropped), so nothing it wrote into an established
    /// connection can leave later.
    pub fn set_quarantine(&mut self, on: bool) -> Result<(), KernelError> {
        self.set_quarantine_flag(on)?;
        if on {
            let report = self.destroy_sockets()?;
            info!(
                cgroup = %self.cgroup.path().display(),
                destroyed = report.destroyed,
                "quarantine: the agent's open sockets were destroyed"
            );
        }
        Ok(())
    }

    /// Switches only the quarantine flag: every new connect and packet of
    /// the agent is refused (on) or decided by the allowlist again (off).
    /// Established sockets stay until [`Enforcer::destroy_sockets`]; their
    /// packets are dropped meanwhile.
    pub fn set_quarantine_flag(&mut self, on: bool) -> Result<(), KernelError> {
        let flags = (self.current.flags & !SETTINGS_QUARANTINE)
            | SETTINGS_READY
            | if on { SETTINGS_QUARANTINE } else { 0 };
        self.write_settings(Settings {
            flags,
            ..self.current
        })
    }

    /// Whether the quarantine is on.
    pub fn quarantined(&self) -> bool {
        self.current.flags & SETTINGS_QUARANTINE != 0
    }

    /// Destroys every TCP and UDP socket of the agent's cgroup, in every
    /// network namespace its processes were seen in.
    pub fn destroy_sockets(&mut self) -> Result<sockets::DestroyReport, KernelError> {
        let ids = self.governed_ids()?;
        sockets::destroy_all_of(&ids, &self.netns)
    }

    /// Destroys the agent's TCP and UDP sockets whose peer `cut` selects.
    pub fn destroy_sockets_to(
        &mut self,
        cut: impl Fn(std::net::SocketAddr) -> bool,
    ) -> Result<sockets::DestroyReport, KernelError> {
        let ids = self.governed_ids()?;
        sockets::destroy_matching_of(&ids, &self.netns, cut)
    }

    /// The TCP and UDP sockets of the agent's cgroup.
    pub fn sockets(&mut self) -> Result<Vec<sockets::AgentSocket>, KernelError> {
        let ids = self.governed_ids()?;
        sockets::list_of(&ids, &self.netns)
    }

    /// The ids of the governed cgroups: the agent's cgroup and, attached
    /// at a pod's cgroup, every cgroup under it but the exempt ones (a
    /// socket carries its own container's cgroup id, not the pod's); the
    /// network namespaces of their processes are added to those searched.
    fn governed_ids(&mut self) -> Result<Vec<u64>, KernelError> {
        self.netns.add_pids(&self.cgroup.pids()?);
        let mut ids = vec![self.cgroup.id()?];
        if !self.exempt.is_empty() {
            for (id, dir) in descendants(self.cgroup.path())? {
                if self.exempt.contains(&id) {
                    continue;
                }
                if let Ok(pids) = AgentCgroup::open(dir).and_then(|c| c.pids()) {
                    self.netns.add_pids(&pids);
                }
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Takes the deny-event ring buffer (once).
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Takes the eBPF log reader (once).
    pub fn take_logger(&mut self) -> Option<EbpfLogger<&'static dyn log::Log>> {
        self.logger.take()
    }

    /// Reads the kernel counters.
    pub fn counters(&self) -> KernelCounters {
        KernelCounters {
            allowed: self.sum(Counter::Allowed).unwrap_or(0),
            denied: self.sum(Counter::Denied).unwrap_or(0),
            events_lost: self.sum(Counter::EventsLost).unwrap_or(0),
            skb_dropped: self.sum(Counter::SkbDropped).unwrap_or(0),
        }
    }

    /// One counter summed over the CPUs, if it can be read.
    fn sum(&self, counter: Counter) -> Option<u64> {
        self.counters
            .get(&(counter as u32), 0)
            .ok()
            .map(|v| v.iter().sum())
    }

    /// Kills whatever is left in the cgroup (if this enforcer created it),
    /// destroys its remaining sockets, detaches and unpins everything,
    /// removes that cgroup and the state file. Processes are killed and
    /// their sockets destroyed *before* the programs are detached, so
    /// nothing runs or sends unenforced: data the hooks held back (a
    /// quarantine, a revoked rule) is never retransmitted after the detach.
    pub fn teardown(self) -> Result<(), KernelError> {
        // A socket-diagnostics dump walks every socket of the host (about
        // 10 ms for eight of them): skipped when the agent never had one.
        let sockets = if self.counted_from_birth && self.sum(Counter::SocketsCreated) == Some(0) {
            Sockets::NeverCreated
        } else if self.quarantined() {
            Sockets::Destroy
        } else {
            Sockets::DrainThenDestroy
        };
        let Self {
            layout,
            cgroup,
            events,
            logger,
            owns_cgroup,
            mut netns,
            ..
        } = self;
        drop((events, logger));
        remove_pinned(&layout, owns_cgroup.then_some(cgroup), &mut netns, sockets)?;
        let _ = std::fs::remove_file(layout.lock_path());
        Ok(())
    }
}

/// What the teardown does with the sockets of a cgroup whose processes are
/// gone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sockets {
    /// Let TCP sockets deliver what they hold to allowed peers for up to
    /// [`DRAIN_LIMIT`], then destroy whatever is left.
    DrainThenDestroy,
    /// Destroy them at once (a quarantine: nothing more may leave).
    Destroy,
    /// The counters show the agent never had an inet socket: no dump.
    NeverCreated,
}

/// Kills the processes in `owned` and deals with its sockets as `sockets`
/// says, unpins every generation, then removes `owned` and the state file.
/// A failure leaves the enforcement pinned (fail closed).
fn remove_pinned(
    layout: &PinLayout,
    owned: Option<AgentCgroup>,
    netns: &mut NetnsSet,
    sockets: Sockets,
) -> Result<(), KernelError> {
    if let Some(cgroup) = &owned {
        kill_and_destroy(cgroup, netns, sockets)?;
    }
    for generation in layout.generations() {
        layout.remove_generation(generation)?;
    }
    let _ = std::fs::remove_dir(layout.agent_dir());
    if let Some(cgroup) = owned {
        cgroup.remove()?;
    }
    let _ = std::fs::remove_file(layout.state_path());
    Ok(())
}

/// Kills every process of `cgroup`, then destroys the sockets they leave
/// behind (orphaned TCP sockets still holding data included).
fn kill_and_destroy(
    cgroup: &AgentCgroup,
    netns: &mut NetnsSet,
    sockets: Sockets,
) -> Result<(), KernelError> {
    netns.add_pids(&cgroup.pids()?);
    cgroup.kill_all(Duration::from_secs(5))?;
    if sockets == Sockets::NeverCreated {
        return Ok(());
    }
    let id = cgroup.id()?;
    if sockets == Sockets::DrainThenDestroy {
        let drained = sockets::drain(id, netns, DRAIN_LIMIT)?;
        if drained.unsent > 0 {
            warn!(
                cgroup = %cgroup.path().display(),
                unsent_bytes = drained.unsent,
                "the agent's sockets still held undelivered data at exit; destroying them"
            );
        }
        // With every process gone no socket can appear: none seen, none left.
        if drained.sockets == 0 {
            return Ok(());
        }
    }
    let report = sockets::destroy_all(id, netns)?;
    if report.destroyed > 0 {
        info!(
            cgroup = %cgroup.path().display(),
            destroyed = report.destroyed,
            "destroyed the sockets the agent left behind before removing enforcement"
        );
    }
    Ok(())
}

/// The cgroup id (inode number) and path of every directory under `dir`.
fn descendants(dir: &std::path::Path) -> Result<Vec<(u64, PathBuf)>, KernelError> {
    use std::os::unix::fs::MetadataExt;
    let mut ids = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // A container that went away between the listing and now.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d != dir => continue,
            Err(e) => return Err(KernelError::io("listing cgroup", &d, e)),
        };
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata()
                && meta.is_dir()
            {
                ids.push((meta.ino(), entry.path()));
                todo.push(entry.path());
            }
        }
    }
    Ok(ids)
}

/// The cgroup ids of `config.exempt_cgroups`; each must be a cgroup
/// strictly under `config.cgroup` (an exemption elsewhere would mean
/// nothing, or everything).
fn exempt_ids(config: &EnforcerConfig) -> Result<Vec<u64>, KernelError> {
    config
        .exempt_cgroups
        .iter()
        .map(|path| {
            let under = config
                .cgroup
                .as_ref()
                .is_some_and(|c| path.starts_with(c) && path != c);
            if !under {
                return Err(KernelError::io(
                    "exempting cgroup",
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "an exempt cgroup must lie strictly under the cgroup the programs are attached to",
                    ),
                ));
            }
            AgentCgroup::open(path.clone())?.id()
        })
        .collect()
}

/// Loads program `name` and attaches it to the cgroup with a BPF link.
/// Cgroup links always join the cgroup's multi-program list (the kernel
/// rejects explicit attach flags on `BPF_LINK_CREATE`, hence
/// `CgroupAttachMode::Single` here), so the programs coexist with other
/// cgroup programs (a CNI's, a previous generation's): the kernel runs all of
/// them and any deny wins.
fn attach(ebpf: &mut Ebpf, name: &str, cgroup: &AgentCgroup) -> Result<FdLink, KernelError> {
    let program = ebpf.program_mut(name).ok_or_else(|| KernelError::Bpf {
        program: name.into(),
        action: "finding program",
        detail: "missing from the object".into(),
    })?;
    let mode = CgroupAttachMode::Single;
    let fd = cgroup.dir();
    let load_err =
        |e: aya::programs::ProgramError| KernelError::bpf(name, "loading (verifier)", &e);
    let attach_err =
        |e: aya::programs::ProgramError| KernelError::bpf(name, "attaching to the cgroup", &e);
    let link: FdLink = if let Ok(p) = <&mut CgroupSockAddr>::try_from(&mut *program) {
        p.load().map_err(load_err)?;
        let id = p.attach(fd, mode).map_err(attach_err)?;
        p.take_link(id)
            .map_err(attach_err)?
            .try_into()
            .map_err(|e| KernelError::bpf(name, "taking the link", &e))?
    } else if let Ok(p) = <&mut CgroupSock>::try_from(&mut *program) {
        p.load().map_err(load_err)?;
        let id = p.attach(fd, mode).map_err(attach_err)?;
        p.take_link(id)
            .map_err(attach_err)?
            .try_into()
            .map_err(|e| KernelError::bpf(name, "taking the link", &e))?
    } else if let Ok(p) = <&mut CgroupSkb>::try_from(&mut *program) {
        p.load().map_err(load_err)?;
        let id = p
            .attach(fd, CgroupSkbAttachType::Egress, mode)
            .map_err(attach_err)?;
        p.take_link(id)
            .map_err(attach_err)?
            .try_into()
            .map_err(|e| KernelError::bpf(name, "taking the link", &e))?
    } else {
        return Err(KernelError::Bpf {
            program: name.into(),
            action: "loading",
            detail: "unexpected program type".into(),
        });
    };
    Ok(link)
}

/// Removes the pinned enforcement of an agent whose sidecar is gone (after
/// `run --keep-pinned`, or a crash): kills the processes left in its cgroup,
/// then detaches and unpins. Refuses while a live sidecar owns the agent.
pub fn teardown_agent(config: &EnforcerConfig) -> Result<PinnedState, KernelError> {
    preflight::check(&config.bpffs, config.mount_bpffs)?;
    let layout = PinLayout::new(&config.bpffs, &config.state_dir, &config.agent_id)?;
    let _lock = OwnerLock::acquire(&layout)?;
    let state = PinnedState::read(&layout)?;
    if state.is_none() && layout.generations().is_empty() {
        return Err(KernelError::NoState(config.agent_id.clone()));
    }
    let cgroup_path = state
        .as_ref()
        .map(|s| s.cgroup.clone())
        .or_else(|| config.cgroup.clone());
    let ours = |p: &PathBuf| {
        p.parent()
            .is_some_and(|d| d.ends_with(super::cgroup::PARENT))
    };
    let mut owned = None;
    let mut netns = NetnsSet::own()?;
    if let Some(path) = cgroup_path.filter(|p| p.exists()) {
        let cgroup = AgentCgroup::open(path.clone())?;
        if ours(&path) {
            owned = Some(cgroup);
        } else {
            kill_and_destroy(&cgroup, &mut netns, Sockets::DrainThenDestroy)?;
        }
    }
    remove_pinned(&layout, owned, &mut netns, Sockets::DrainThenDestroy)?;
    Ok(state.unwrap_or(PinnedState {
        agent_id: config.agent_id.clone(),
        generation: 0,
        cgroup: PathBuf::new(),
        object_sha256: String::new(),
        owner_pid: 0,
    }))
}
