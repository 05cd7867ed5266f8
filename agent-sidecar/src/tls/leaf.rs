//! Leaf certificates issued on demand, one per server name the agent asks
//! for (SNI), and cached.
//!
//! - Only names the caller's [`MayTerminate`] allows are issued; the policy is
//!   asked on every lookup, cached or not, so a policy reload takes effect at
//!   once.
//! - The cache is a bounded LRU by count. A miss on a full cache scans for
//!   the least recently used entry (O(capacity), which is cheap next to an
//!   ECDSA signature).
//! - Concurrent first requests for one name wait on one per-name
//!   [`OnceLock`]: the certificate is issued once.
//! - A leaf is re-issued once two thirds of its lifetime have passed, and
//!   never outlives the CA.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    crypto::CryptoProvider,
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    sign::CertifiedKey,
};
use time::OffsetDateTime;

use super::{CertificateAuthority, TlsError, ca::CLOCK_SKEW};

/// Decides whether the sidecar may terminate TLS for a (lower-case, no
/// trailing dot) server name.
pub type MayTerminate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Default number of cached leaf certificates.
pub const DEFAULT_LEAF_CAPACITY: usize = 1024;

/// Default lifetime of a leaf certificate.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Longest common name X.520 allows; longer names go in the SAN only.
const MAX_CN_LEN: usize = 64;

/// Sizing and lifetime of the leaf cache.
#[derive(Clone, Debug)]
pub struct LeafOptions {
    /// Maximum number of cached names (at least 1).
    pub capacity: usize,
    /// Lifetime of a leaf (clipped to the CA's `not_after`).
    pub validity: Duration,
}

impl Default for LeafOptions {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_LEAF_CAPACITY,
            validity: DEFAULT_LEAF_VALIDITY,
        }
    }
}

/// Issues and caches leaf certificates signed by the sidecar CA.
pub struct LeafCache {
    ca: Arc<CertificateAuthority>,
    allow: MayTerminate,
    options: LeafOptions,
    provider: Arc<CryptoProvider>,
    slots: Mutex<Slots>,
    issued: AtomicU64,
}

#[derive(Default)]
struct Slots {
    by_name: HashMap<String, Entry>,
    clock: u64,
}

struct Entry {
    slot: Arc<Slot>,
    last_used: u64,
}

/// One name's certificate, issued at most once.
#[derive(Default)]
struct Slot {
    leaf: OnceLock<Result<Leaf, String>>,
}

struct Leaf {
    key: Arc<CertifiedKey>,
    renew_at: OffsetDateTime,
}

impl LeafCache {
    /// A cache issuing for names `allow` accepts, signed by `ca`, with keys
    /// loaded by `provider`.
    pub fn new(
        ca: Arc<CertificateAuthority>,
        allow: MayTerminate,
        options: LeafOptions,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        if options.capacity == 0 {
            return Err(TlsError::Config("leaf cache capacity must be >= 1".into()));
        }
        if options.validity.is_zero() {
            return Err(TlsError::Config("leaf validity must be > 0".into()));
        }
        Ok(Self {
            ca,
            allow,
            options,
            provider,
            slots: Mutex::default(),
            issued: AtomicU64::new(0),
        })
    }

    /// The certificate chain and key for `server_name`, issuing it when it
    /// is not cached (or due for renewal). Refuses names the policy does not
    /// allow.
    pub fn get(&self, server_name: &str) -> Result<Arc<CertifiedKey>, TlsError> {
        let name = normalize(server_name);
        if !(self.allow)(&name) {
            return Err(TlsError::NameNotAllowed(name));
        }
        let now = OffsetDateTime::now_utc();
        self.ca.check_valid_at(now)?;
        let slot = self.slot(&name, now);
        let leaf = slot
            .leaf
            .get_or_init(|| self.issue(&name, now).map_err(|e| e.to_string()));
        match leaf {
            Ok(leaf) => Ok(Arc::clone(&leaf.key)),
            Err(reason) => {
                self.forget(&name, &slot);
                Err(TlsError::LeafIssuance {
                    name,
                    reason: reason.clone(),
                })
            }
        }
    }

    /// How many leaf certificates have been issued since start.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// How many names are cached.
    pub fn len(&self) -> usize {
        self.lock().by_name.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `server_name` is cached (does not touch the LRU order).
    pub fn contains(&self, server_name: &str) -> bool {
        self.lock().by_name.contains_key(&normalize(server_name))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every mutation is a single insert/remove), so poisoning is ignored.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The slot for `name`: the cached one, a fresh one replacing a leaf due
    /// for renewal, or a new one (evicting the least recently used entry
    /// when full).
    fn slot(&self, name: &str, now: OffsetDateTime) -> Arc<Slot> {
        let mut slots = self.lock();
        slots.clock += 1;
        let clock = slots.clock;
        if let Some(entry) = slots.by_name.get_mut(name) {
            let due = matches!(entry.slot.leaf.get(), Some(Ok(leaf)) if now >= leaf.renew_at);
            if due {
                entry.slot = Arc::default();
            }
            entry.last_used = clock;
            return Arc::clone(&entry.slot);
        }
        if slots.by_name.len() >= self.options.capacity {
            let oldest = slots
                .by_name
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(n, _)| n.clone());
            if let Some(oldest) = oldest {
                slots.by_name.remove(&oldest);
            }
        }
        let slot = Arc::<Slot>::default();
        slots.by_name.insert(
            name.to_owned(),
            Entry {
                slot: Arc::clone(&slot),
                last_used: clock,
            },
        );
        slot
    }

    /// Drops a failed slot so the next request tries again.
    fn forget(&self, name: &str, slot: &Arc<Slot>) {
        let mut slots = self.lock();
        if slots
            .by_name
            .get(name)
            .is_some_and(|e| Arc::ptr_eq(&e.slot, slot))
        {
            slots.by_name.remove(name);
        }
    }

    fn issue(&self, name: &str, now: OffsetDateTime) -> Result<Leaf, TlsError> {
        let validity = time::Duration::try_from(self.options.validity)
            .map_err(|_| TlsError::Config("leaf validity out of range".into()))?;
        let not_before = (now - CLOCK_SKEW).max(self.ca.not_before());
        let not_after = now
            .checked_add(validity)
            .map_or(self.ca.not_after(), |t| t.min(self.ca.not_after()));
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        let mut dn = DistinguishedName::new();
        if name.len() <= MAX_CN_LEN {
            dn.push(DnType::CommonName, name);
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, self.ca.issuer())?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = self.provider.key_provider.load_private_key(key_der)?;
        let chain = vec![cert.der().clone(), self.ca.cert_der().clone()];
        self.issued.fetch_add(1, Ordering::Relaxed);
        Ok(Leaf {
            key: Arc::new(CertifiedKey::new(chain, signer)),
            renew_at: now + (not_after - now) * 2 / 3,
        })
    }
}

impl fmt::Debug for LeafCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafCache")
            .field("ca", &self.ca)
            .field("options", &self.options)
            .field("cached", &self.len())
            .field("issued", &self.issued())
            .finish_non_exhaustive()
    }
}

/// Lower-case, without a trailing dot: the form names are cached and
/// checked in.
pub(crate) fn normalize(server_name: &str) -> String {
    server_name
        .strip_suffix('.')
        .unwrap_or(server_name)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests;
