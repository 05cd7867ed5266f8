//! Known DNS-over-HTTPS / DNS-over-TLS / DNS-over-QUIC endpoints.
//!
//! An agent that can reach one of these can resolve (and tunnel data through)
//! any name, bypassing the sidecar's resolver. So a name on this list, or a
//! name under one of them (NextDNS and Cloudflare Gateway give every customer
//! `<id>.dns.nextdns.io` / `<id>.cloudflare-gateway.com`), is refused even
//! when a wildcard rule matches it. Only an exact rule naming it
//! (`dns.google:443`) allows it: then someone wrote that name down on
//! purpose.
//!
//! The list is a deny-by-knowledge guard, not the enforcement itself: the
//! allowlist still has to name a host for it to be reachable at all. Keep it
//! sorted (a test checks), lowercase ASCII, without trailing dots.

/// Known public DoH/DoT/DoQ endpoint names (and the parents of per-customer
/// endpoint names). Sorted, so lookups can binary-search.
pub const DOH_ENDPOINTS: &[&str] = &[
    "1dot1dot1dot1.cloudflare-dns.com",
    "8888.google",
    "base.dns.mullvad.net",
    "cloudflare-dns.com",
    "cloudflare-gateway.com",
    "dns.aa.net.uk",
    "dns.adguard-dns.com",
    "dns.adguard.com",
    "dns.alidns.com",
    "dns.cloudflare.com",
    "dns.controld.com",
    "dns.digitale-gesellschaft.ch",
    "dns.google",
    "dns.google.com",
    "dns.mullvad.net",
    "dns.nextdns.io",
    "dns.njal.la",
    "dns.opendns.com",
    "dns.pub",
    "dns.quad9.net",
    "dns.switch.ch",
    "dns.twnic.tw",
    "dns.umbrella.com",
    "dns0.eu",
    "dns10.quad9.net",
    "dns11.quad9.net",
    "dns9.quad9.net",
    "dnsforge.de",
    "doh.360.cn",
    "doh.applied-privacy.net",
    "doh.cleanbrowsing.org",
    "doh.dns.sb",
    "doh.familyshield.opendns.com",
    "doh.ffmuc.net",
    "doh.libredns.gr",
    "doh.mullvad.net",
    "doh.opendns.com",
    "doh.pub",
    "doh.xfinity.com",
    "family.canadianshield.cira.ca",
    "freedns.controld.com",
    "mozilla.cloudflare-dns.com",
    "odvr.nic.cz",
    "one.one.one.one",
    "ordns.he.net",
    "private.canadianshield.cira.ca",
    "protected.canadianshield.cira.ca",
];

/// Whether `name` (lowercase ASCII, no trailing dot) is a known DoH/DoT
/// endpoint or a name under one.
pub fn is_doh_endpoint(name: &str) -> bool {
    let mut rest = name;
    loop {
        if DOH_ENDPOINTS.binary_search(&rest).is_ok() {
            return true;
        }
        match rest.split_once('.') {
            Some((_, parent)) => rest = parent,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests;
