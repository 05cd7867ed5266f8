//! Test helpers: real ClientHellos produced by rustls (including one with a
//! GREASE `encrypted_client_hello` extension), a name policy and a resolver.

use std::{net::IpAddr, sync::Arc};

use rustls::{
    ClientConfig, ClientConnection, Error, RootCertStore,
    client::{EchGreaseConfig, EchMode},
    crypto::hpke::{
        EncapsulatedSecret, Hpke, HpkeOpener, HpkePrivateKey, HpkePublicKey, HpkeSealer, HpkeSuite,
    },
    internal::msgs::{
        enums::{HpkeAead, HpkeKdf, HpkeKem},
        handshake::HpkeSymmetricCipherSuite,
    },
    pki_types::ServerName,
};

use super::{Allowed, HostPolicy, HostRefusal, ProxyContext, Resolve, ResolveFuture};

/// The first flight of a rustls client for `sni` (`None`: SNI disabled),
/// with a GREASE ECH extension when `ech`.
pub(crate) fn client_hello(sni: Option<&str>, ech: bool) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider);
    let builder = if ech {
        let grease = EchGreaseConfig::new(&FAKE_HPKE, HpkePublicKey(vec![4; 65]));
        builder.with_ech(EchMode::Grease(grease)).expect("ech")
    } else {
        builder
            .with_safe_default_protocol_versions()
            .expect("versions")
    };
    let mut config = builder
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.enable_sni = sni.is_some();
    let name = ServerName::try_from(sni.unwrap_or("no-sni.test").to_owned()).expect("name");
    let mut conn = ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write");
    }
    out
}

/// An HPKE "suite" that only produces placeholder bytes: GREASE ECH needs
/// an encapsulated key of the right shape, never a real encryption.
#[derive(Debug)]
struct FakeHpke;

static FAKE_HPKE: FakeHpke = FakeHpke;

#[derive(Debug)]
struct FakeSealer;

impl HpkeSealer for FakeSealer {
    fn seal(&mut self, _aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(vec![0; plaintext.len() + 16])
    }
}

impl Hpke for FakeHpke {
    fn seal(
        &self,
        _info: &[u8],
        _aad: &[u8],
        plaintext: &[u8],
        _pub_key: &HpkePublicKey,
    ) -> Result<(EncapsulatedSecret, Vec<u8>), Error> {
        Ok((
            EncapsulatedSecret(vec![4; 65]),
            vec![0; plaintext.len() + 16],
        ))
    }

    fn setup_sealer(
        &self,
        _info: &[u8],
        _pub_key: &HpkePublicKey,
    ) -> Result<(EncapsulatedSecret, Box<dyn HpkeSealer + 'static>), Error> {
        Ok((EncapsulatedSecret(vec![4; 65]), Box::new(FakeSealer)))
    }

    fn open(
        &self,
        _enc: &EncapsulatedSecret,
        _info: &[u8],
        _aad: &[u8],
        _ciphertext: &[u8],
        _secret_key: &HpkePrivateKey,
    ) -> Result<Vec<u8>, Error> {
        Err(Error::General("test HPKE cannot open".into()))
    }

    fn setup_opener(
        &self,
        _enc: &EncapsulatedSecret,
        _info: &[u8],
        _secret_key: &HpkePrivateKey,
    ) -> Result<Box<dyn HpkeOpener + 'static>, Error> {
        Err(Error::General("test HPKE cannot open".into()))
    }

    fn generate_key_pair(&self) -> Result<(HpkePublicKey, HpkePrivateKey), Error> {
        Err(Error::General("test HPKE has no keys".into()))
    }

    fn suite(&self) -> HpkeSuite {
        HpkeSuite {
            kem: HpkeKem::DHKEM_P256_HKDF_SHA256,
            sym: HpkeSymmetricCipherSuite {
                kdf_id: HpkeKdf::HKDF_SHA256,
                aead_id: HpkeAead::AES_128_GCM,
            },
        }
    }
}

/// Allows exactly the listed names, on any port.
pub(crate) struct AllowNames(pub(crate) &'static [&'static str]);

impl HostPolicy for AllowNames {
    fn decide(&self, host: &str, _port: u16) -> Result<Allowed, HostRefusal> {
        if self.0.contains(&host) {
            Ok(Allowed::new(format!("allow {host}")))
        } else {
            Err(HostRefusal::new(
                "not_allowlisted",
                "no rule allows this name",
            ))
        }
    }
}

/// Resolves every name to 127.0.0.1.
pub(crate) struct Loopback;

impl Resolve for Loopback {
    fn resolve<'a>(&'a self, _host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async { Ok(vec![IpAddr::from([127, 0, 0, 1])]) })
    }
}

/// A context allowing `names`.
pub(crate) fn context(names: &'static [&'static str]) -> ProxyContext {
    ProxyContext::new(Arc::new(AllowNames(names)), Arc::new(Loopback))
}
