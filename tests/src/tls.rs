//! Certificates for TLS tests, made fresh by each test with `rcgen` (none
//! are committed): a CA, the dispatcher's certificate for `localhost` and
//! `127.0.0.1`, a client certificate signed by the same CA, and a stranger's
//! CA whose client certificate the dispatcher must not accept.

use std::path::{Path, PathBuf};

use anyhow::Context;
use pingji_client::tls::{ClientTls, ClientTlsFiles};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// PEM files in a folder of the test's.
pub struct TestPki {
    /// The CA that signs the dispatcher's and the client's certificates.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate from another CA.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

impl TestPki {
    /// Writes every file into `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<TestPki> {
        let (ca_pem, ca) = new_ca("Pingji test CA")?;
        let (_, stranger_ca) = new_ca("Somebody else's CA")?;
        let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        };
        let (server_pem, server_key_pem) =
            new_leaf(&ca, &["localhost", "127.0.0.1"], "pingji dispatcher", ExtendedKeyUsagePurpose::ServerAuth)?;
        let (client_pem, client_key_pem) = new_leaf(&ca, &[], "p0001", ExtendedKeyUsagePurpose::ClientAuth)?;
        let (stranger_pem, stranger_key_pem) = new_leaf(&stranger_ca, &[], "p0001", ExtendedKeyUsagePurpose::ClientAuth)?;
        Ok(TestPki {
            ca: write("ca.pem", &ca_pem)?,
            server_cert: write("server.pem", &server_pem)?,
            server_key: write("server-key.pem", &server_key_pem)?,
            client_cert: write("client.pem", &client_pem)?,
            client_key: write("client-key.pem", &client_key_pem)?,
            stranger_cert: write("stranger.pem", &stranger_pem)?,
            stranger_key: write("stranger-key.pem", &stranger_key_pem)?,
        })
    }

    /// A client that trusts the test CA, without a client certificate.
    pub fn client(&self) -> anyhow::Result<ClientTls> {
        Ok(ClientTlsFiles { ca: Some(self.ca.clone()), cert: None, key: None }.load()?)
    }

    /// A client that trusts the test CA and shows the client certificate.
    pub fn client_with_certificate(&self) -> anyhow::Result<ClientTls> {
        Ok(ClientTlsFiles { ca: Some(self.ca.clone()), cert: Some(self.client_cert.clone()), key: Some(self.client_key.clone()) }
            .load()?)
    }

    /// A client that trusts the test CA and shows a certificate from another CA.
    pub fn client_with_strangers_certificate(&self) -> anyhow::Result<ClientTls> {
        Ok(ClientTlsFiles {
            ca: Some(self.ca.clone()),
            cert: Some(self.stranger_cert.clone()),
            key: Some(self.stranger_key.clone()),
        }
        .load()?)
    }
}

fn new_ca(name: &str) -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), Issuer::new(params, key)))
}

fn new_leaf(
    issuer: &Issuer<'static, KeyPair>,
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<(String, String)> {
    let mut params = CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, issuer)?;
    Ok((certificate.pem(), key.serialize_pem()))
}
