//! Finding the destination name in the first bytes of a connection: the SNI
//! (and ECH) of a TLS ClientHello, or the `Host` of an HTTP/1 request head.
//!
//! Nothing here parses TLS or HTTP by hand. A TLS ClientHello must be accepted
//! by rustls' [`Acceptor`] (which also reassembles a hello split over several
//! records and gives the server name). rustls does not expose the extension
//! list, so the same bytes are parsed again with `tls-parser` to see the
//! `encrypted_client_hello` extension and the raw SNI (rustls hides an
//! IP-literal SNI); both parsers must agree on the name or the hello is
//! refused. HTTP heads are parsed with `httparse`.
//!
//! [`sniff`] is pure (bytes in, verdict out) and is the fuzz target.

use rustls::server::Acceptor;
use tls_parser::{
    TlsExtension, TlsExtensionType, TlsMessage, TlsMessageHandshake, TlsRecordType,
    parse_tls_client_hello_extensions, parse_tls_message_handshake, parse_tls_raw_record,
};

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// `encrypted_client_hello` (draft-ietf-tls-esni-18, IANA 0xfe0d).
const ECH_EXTENSION: TlsExtensionType = TlsExtensionType(0xfe0d);
/// Most header fields accepted in a request head.
const MAX_HEADERS: usize = 64;

/// What the first bytes of a connection say about its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// More bytes are needed.
    Incomplete,
    /// A complete TLS ClientHello.
    Tls(ClientHelloInfo),
    /// A complete HTTP/1 request head.
    Http(RequestHead),
}

/// The routing-relevant part of a ClientHello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// The `server_name` as sent (not normalised); `None` when absent. With
    /// ECH this is the outer (public) name.
    pub sni: Option<String>,
    /// The hello carries an `encrypted_client_hello` (or the older
    /// `encrypted_server_name`) extension: the real name may be hidden.
    pub ech: bool,
}

/// The routing-relevant part of an HTTP/1 request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Request method.
    pub method: String,
    /// Request target as sent (origin-form or absolute-form).
    pub target: String,
    /// The single `Host` header value, if present.
    pub host: Option<String>,
    /// Length of the head, including the blank line.
    pub head_len: usize,
}

/// Why the first bytes are not an acceptable ClientHello or request head.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    /// rustls rejected the ClientHello.
    #[error("malformed TLS ClientHello: {0}")]
    Tls(String),
    /// rustls accepted the hello but `tls-parser` could not list its
    /// extensions, or the two disagree on the server name.
    #[error("ClientHello could not be inspected: {0}")]
    Uninspectable(&'static str),
    /// `httparse` rejected the request head.
    #[error("malformed HTTP request head: {0}")]
    Http(String),
    /// More than one `Host` header, or one that is not UTF-8.
    #[error("ambiguous or non-UTF-8 Host header")]
    BadHost,
}

/// Looks at the first bytes of a connection.
///
/// A first byte of `0x16` (TLS handshake record) means TLS; anything else is
/// read as an HTTP/1 request head.
pub fn sniff(buf: &[u8]) -> Result<Sniffed, SniffError> {
    match buf.first() {
        None => Ok(Sniffed::Incomplete),
        Some(&TLS_HANDSHAKE) => sniff_tls(buf),
        Some(_) => sniff_http(buf),
    }
}

/// Whether `buf` starts like TLS (used to pick the refusal's protocol).
pub fn looks_like_tls(buf: &[u8]) -> bool {
    buf.first() == Some(&TLS_HANDSHAKE)
}

fn sniff_tls(buf: &[u8]) -> Result<Sniffed, SniffError> {
    let mut acceptor = Acceptor::default();
    let mut rest = buf;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(SniffError::Tls(e.to_string())),
        }
    }
    let accepted = match acceptor.accept() {
        Ok(None) => return Ok(Sniffed::Incomplete),
        Ok(Some(accepted)) => accepted,
        Err((e, _alert)) => return Err(SniffError::Tls(e.to_string())),
    };
    let rustls_name = accepted.client_hello().server_name().map(str::to_owned);
    let (sni, ech) = hello_extensions(buf)?;
    match (&rustls_name, &sni) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => {
            return Err(SniffError::Uninspectable(
                "parsers disagree on the server name",
            ));
        }
        (Some(_), None) => {
            return Err(SniffError::Uninspectable(
                "parsers disagree on the server name",
            ));
        }
        _ => {}
    }
    Ok(Sniffed::Tls(ClientHelloInfo { sni, ech }))
}

/// Raw SNI and ECH presence, from `tls-parser`. Handshake fragments are
/// gathered from consecutive handshake records (as `tls-parser` frames them)
/// until the ClientHello message parses.
fn hello_extensions(buf: &[u8]) -> Result<(Option<String>, bool), SniffError> {
    let mut handshake = Vec::new();
    let mut rest = buf;
    let hello = loop {
        let (after, record) =
            parse_tls_raw_record(rest).map_err(|_| SniffError::Uninspectable("record framing"))?;
        if record.hdr.record_type != TlsRecordType::Handshake {
            return Err(SniffError::Uninspectable(
                "non-handshake record before the hello",
            ));
        }
        handshake.extend_from_slice(record.data);
        rest = after;
        match parse_tls_message_handshake(&handshake) {
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)))) => {
                break hello.ext.map(<[u8]>::to_vec).unwrap_or_default();
            }
            Ok(_) => return Err(SniffError::Uninspectable("first handshake message")),
            Err(tls_parser::Err::Incomplete(_)) => continue,
            Err(_) => return Err(SniffError::Uninspectable("ClientHello body")),
        }
    };
    let (left, extensions) = parse_tls_client_hello_extensions(&hello)
        .map_err(|_| SniffError::Uninspectable("extension list"))?;
    if !left.is_empty() {
        return Err(SniffError::Uninspectable("extension list"));
    }
    let mut sni = None;
    let mut ech = false;
    for ext in &extensions {
        match ext {
            TlsExtension::SNI(names) => {
                // name_type 0 is host_name, the only type defined (RFC 6066).
                let host = names
                    .iter()
                    .find(|(kind, _)| kind.0 == 0)
                    .ok_or(SniffError::Uninspectable("server_name without host_name"))?;
                let name = std::str::from_utf8(host.1)
                    .map_err(|_| SniffError::Uninspectable("server_name is not UTF-8"))?;
                sni = Some(name.to_owned());
            }
            TlsExtension::EncryptedServerName { .. } => ech = true,
            TlsExtension::Unknown(kind, _) if *kind == ECH_EXTENSION => ech = true,
            _ => {}
        }
    }
    Ok((sni, ech))
}

fn sniff_http(buf: &[u8]) -> Result<Sniffed, SniffError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(Sniffed::Incomplete),
        Ok(httparse::Status::Complete(n)) => n,
        Err(e) => return Err(SniffError::Http(e.to_string())),
    };
    let mut hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    let host = match (hosts.next(), hosts.next()) {
        (None, _) => None,
        (Some(h), None) => Some(
            std::str::from_utf8(h.value)
                .map_err(|_| SniffError::BadHost)?
                .trim()
                .to_owned(),
        ),
        (Some(_), Some(_)) => return Err(SniffError::BadHost),
    };
    Ok(Sniffed::Http(RequestHead {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        host,
        head_len,
    }))
}

#[cfg(test)]
mod tests;
