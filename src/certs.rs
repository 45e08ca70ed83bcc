//! `brigade certs --out DIR`: a private CA and the certificates TLS and mTLS
//! need, so that securing a cluster is one step. The coordinator's
//! certificate names `localhost`, `127.0.0.1` and every `--san`; the worker
//! and client certificates are for client authentication (mTLS). Keys are
//! written with mode 0600; nothing existing is overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files `write` creates, in order.
pub const FILES: [&str; 7] = [
    "ca.pem",
    "coordinator.pem",
    "coordinator-key.pem",
    "worker.pem",
    "worker-key.pem",
    "client.pem",
    "client-key.pem",
];

/// Certificates are valid from a year ago (clock skew) to five years on.
fn validity(params: &mut CertificateParams) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let year = 1970 + (secs / 31_556_952) as i32;
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 5, 1, 1);
}

/// A leaf certificate's parameters: `name` as its common name, `sans`, and
/// what it is for.
fn leaf(
    name: &str,
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(sans).context("invalid --san")?;
    params
        .distinguished_name
        .push(DnType::CommonName, name.to_string());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    validity(&mut params);
    Ok(params)
}

/// Writes the CA and the coordinator, worker and client certificates and
/// keys into `out`; returns the paths written.
pub fn write(out: &Path, extra_sans: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    for name in FILES {
        let path = out.join(name);
        if path.exists() {
            bail!(
                "{} exists: `brigade certs` does not overwrite certificates; \
                 remove the old ones or pick another --out",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("could not create {}", out.display()))?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "brigade CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca_params);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for s in extra_sans {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    let mut files = vec![("ca.pem", ca_cert.pem(), false)];
    for (who, sans, usage) in [
        ("coordinator", sans, ExtendedKeyUsagePurpose::ServerAuth),
        (
            "worker",
            vec!["brigade-worker".to_string()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
        (
            "client",
            vec!["brigade-client".to_string()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ] {
        let key = KeyPair::generate()?;
        let cert = leaf(&format!("brigade {who}"), sans, usage)?.signed_by(&key, &ca)?;
        files.push((
            match who {
                "coordinator" => "coordinator.pem",
                "worker" => "worker.pem",
                _ => "client.pem",
            },
            cert.pem(),
            false,
        ));
        files.push((
            match who {
                "coordinator" => "coordinator-key.pem",
                "worker" => "worker-key.pem",
                _ => "client-key.pem",
            },
            key.serialize_pem(),
            true,
        ));
    }
    let mut written = Vec::with_capacity(files.len());
    for (name, pem, private) in files {
        let path = out.join(name);
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if private { 0o600 } else { 0o644 })
                .open(&path)
                .with_context(|| format!("could not create {}", path.display()))?
        };
        file.write_all(pem.as_bytes())
            .with_context(|| format!("could not write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
