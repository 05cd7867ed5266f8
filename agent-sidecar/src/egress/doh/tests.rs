use super::*;

#[test]
fn list_is_sorted_unique_lowercase() {
    for pair in DOH_ENDPOINTS.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{} must sort before {}",
            pair[0],
            pair[1]
        );
    }
    for name in DOH_ENDPOINTS {
        assert_eq!(*name, name.to_ascii_lowercase());
        assert!(!name.ends_with('.'), "{name}");
    }
}

#[test]
fn endpoints_and_names_under_them_are_known() {
    for name in [
        "dns.google",
        "cloudflare-dns.com",
        "mozilla.cloudflare-dns.com",
        "abc123.dns.nextdns.io",
        "team.cloudflare-gateway.com",
        "one.one.one.one",
    ] {
        assert!(is_doh_endpoint(name), "{name}");
    }
}

#[test]
fn ordinary_names_are_not() {
    for name in [
        "google.com",
        "www.google",
        "example.com",
        "quad9.net",
        "com",
        "",
    ] {
        assert!(!is_doh_endpoint(name), "{name}");
    }
}
