//! How a client or a worker reaches a coordinator: the URL (`http://` plain,
//! `https://` TLS), the CA it trusts and the certificate it shows (mTLS), and
//! the token it sends as `authorization: Bearer <token>` on every call. The
//! client library and the worker node both build their channels here.

use std::fmt;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

/// What a caller presents to a coordinator, besides its URL.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The secret of a token (`brigade token create`), if the coordinator
    /// asks for one (`--auth-file`).
    pub token: Option<String>,
    /// PEM of the CA that signed the coordinator's certificate (`--tls-ca`);
    /// `https://` without it trusts the public web PKI roots.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// PEM certificate and key shown to a coordinator that requires client
    /// certificates (`--tls-cert` / `--tls-key` with its `--tls-client-ca`).
    pub tls_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for Credentials {
    // Secrets stay out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("tls_ca", &self.tls_ca_pem.is_some())
            .field("tls_identity", &self.tls_identity.is_some())
            .finish()
    }
}

/// Whether a coordinator URL asks for TLS, or what is wrong with it.
pub fn url_uses_tls(url: &str) -> Result<bool, String> {
    let (tls, rest) = match url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => match url.strip_prefix("http://") {
            Some(rest) => (false, rest),
            None => return Err("expected a URL starting with http:// or https://".into()),
        },
    };
    crate::catalog::parse_http_url(&format!("http://{rest}"))?;
    Ok(tls)
}

/// The endpoint for `url` with these credentials' TLS settings (not
/// connected yet), or what is wrong with them.
pub fn endpoint(url: &str, creds: &Credentials) -> Result<Endpoint, String> {
    let tls = url_uses_tls(url)?;
    let mut endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| e.to_string())?;
    if tls {
        let mut config = ClientTlsConfig::new();
        config = match &creds.tls_ca_pem {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_webpki_roots(),
        };
        if let Some((cert, key)) = &creds.tls_identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(config).map_err(|e| e.to_string())?;
    } else if creds.tls_ca_pem.is_some() || creds.tls_identity.is_some() {
        return Err(
            "TLS settings (--tls-ca, --tls-cert) were given for an http:// URL: use https://"
                .into(),
        );
    }
    Ok(endpoint
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(3)))
}

/// A hint for a connection that failed at the transport level: the usual
/// reason is one side speaking TLS and the other not.
pub fn transport_hint(url: &str, error_chain: &str) -> Option<&'static str> {
    let e = error_chain.to_ascii_lowercase();
    let tls = url.starts_with("https://");
    if !tls
        && (e.contains("frame with invalid size")
            || e.contains("connection reset")
            || e.contains("broken pipe")
            || e.contains("invalid http version")
            || e.contains("protocol error")
            || e.contains("connection closed"))
    {
        Some(
            "if the coordinator serves TLS (--tls-cert), connect with https:// and --tls-ca CA.pem",
        )
    } else if tls && (e.contains("corrupt message") || e.contains("invalidcontenttype")) {
        Some("the coordinator does not seem to serve TLS: connect with http://")
    } else if tls && e.contains("certificate") {
        Some(
            "the coordinator's certificate was not accepted: pass the CA that signed it with \
             --tls-ca, and connect by a name in its certificate (brigade certs --san NAME)",
        )
    } else {
        None
    }
}

/// Adds `authorization: Bearer <token>` to every call (nothing without a
/// token).
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "BearerToken(<secret>)"
        } else {
            "BearerToken(none)"
        })
    }
}

impl BearerToken {
    /// The interceptor for `token`, or why it cannot travel in a header.
    pub fn new(token: Option<&str>) -> Result<BearerToken, String> {
        token
            .map(|t| {
                let mut v: MetadataValue<Ascii> = format!("Bearer {t}").parse().map_err(|_| {
                    "the token has characters a header cannot carry (expected brigade_...)"
                        .to_string()
                })?;
                v.set_sensitive(true);
                Ok(v)
            })
            .transpose()
            .map(BearerToken)
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// Reads a token: from `file` if given (its first line, trimmed), else
/// from `env_value` (`BRIGADE_TOKEN`); `None` when neither is set.
pub fn read_token(
    file: Option<&std::path::Path>,
    env_value: Option<String>,
) -> Result<Option<String>, String> {
    let token = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
            let token = text.lines().next().unwrap_or("").trim().to_string();
            if token.is_empty() {
                return Err(format!(
                    "--token-file {}: the file is empty (expected the secret `brigade token create` printed)",
                    path.display()
                ));
            }
            token
        }
        None => match env_value.map(|v| v.trim().to_string()) {
            Some(v) if !v.is_empty() => v,
            _ => return Ok(None),
        },
    };
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_say_whether_they_use_tls() {
        assert_eq!(url_uses_tls("http://127.0.0.1:7070"), Ok(false));
        assert_eq!(url_uses_tls("https://coordinator:7070"), Ok(true));
        assert!(url_uses_tls("grpc://x:1").is_err());
        assert!(url_uses_tls("https://").is_err());
        let e = endpoint(
            "http://127.0.0.1:1",
            &Credentials {
                tls_ca_pem: Some(b"x".to_vec()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("use https://"), "{e}");
    }

    #[test]
    fn the_bearer_token_is_added_to_calls_and_hidden_from_debug() {
        let mut t = BearerToken::new(Some("brigade_abc")).unwrap();
        let req = t.call(Request::new(())).unwrap();
        assert_eq!(
            req.metadata()
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap(),
            "Bearer brigade_abc"
        );
        assert!(!format!("{t:?}").contains("abc"));
        let mut none = BearerToken::new(None).unwrap();
        assert!(none.call(Request::new(())).unwrap().metadata().is_empty());
        assert!(BearerToken::new(Some("bad\ntoken")).is_err());
    }

    #[test]
    fn tokens_come_from_the_file_first_then_the_environment() {
        assert_eq!(read_token(None, None), Ok(None));
        assert_eq!(read_token(None, Some(" ".into())), Ok(None));
        assert_eq!(
            read_token(None, Some("brigade_x\n".into())),
            Ok(Some("brigade_x".into()))
        );
        let path = std::env::temp_dir().join(format!("brigade-token-{}", std::process::id()));
        std::fs::write(&path, "brigade_file\n").unwrap();
        assert_eq!(
            read_token(Some(&path), Some("brigade_env".into())),
            Ok(Some("brigade_file".into()))
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(read_token(Some(&path), None).unwrap_err().contains("empty"));
        let _ = std::fs::remove_file(&path);
    }
}
