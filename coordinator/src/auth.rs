//! Who may call what: the three roles (worker, client, admin), the auth file
//! of hashed tokens (`--auth-file`), new tokens (`brigade token create`), and
//! the check every call goes through (a tonic interceptor per service).
//!
//! The auth file is text, one token per line, `#` comments and blank lines
//! ignored:
//!
//! ```text
//! sha256:<64 hex digits> <role> <name>
//! ```
//!
//! `<role>` is `worker`, `client` or `admin`; `<name>` (1–64 of `A-Z a-z 0-9
//! . _ - @`) is who the token belongs to: a job submitted with a client token
//! is owned by that name. Several lines may share a name (a rotated token).
//! The secret itself is never stored: it is `brigade_` followed by 32 random
//! bytes in unpadded base64url, and the file holds its SHA-256. A presented
//! token is hashed and compared with every line in constant time.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::Status;

/// What a credential lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Links to the coordinator (`WorkerLink`) and runs tasks; nothing else.
    Worker,
    /// Submits jobs and sees, follows and cancels its own.
    Client,
    /// A client that sees and cancels every client's jobs.
    Admin,
}

impl Role {
    /// Every role, in the order help texts list them.
    pub const ALL: [Role; 3] = [Role::Worker, Role::Client, Role::Admin];

    /// The role's name in the auth file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Client => "client",
            Role::Admin => "admin",
        }
    }

    /// The role's name with its indefinite article ("a client token").
    pub fn with_article(self) -> &'static str {
        match self {
            Role::Worker => "a worker",
            Role::Client => "a client",
            Role::Admin => "an admin",
        }
    }

    /// A role from its name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an auth file could not be used or written.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "auth file {path}, line {line}: {what}; \
         expected `sha256:<64 hex digits> <worker|client|admin> <name>` \
         (lines are written by `brigade token create`)"
    )]
    Line {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("auth file {path} holds no token: create one with `brigade token create --auth-file {path}`")]
    Empty { path: PathBuf },
    #[error("invalid token name {0:?}: use 1 to 64 of A-Z a-z 0-9 . _ - @")]
    Name(String),
    #[error("could not draw random bytes for a token: {0}")]
    Random(String),
}

/// One line of the auth file.
#[derive(Clone)]
struct Entry {
    hash: [u8; 32],
    role: Role,
    name: String,
}

/// The tokens a coordinator accepts (its `--auth-file`), hashed.
#[derive(Clone)]
pub struct AuthFile {
    entries: Vec<Entry>,
}

impl fmt::Debug for AuthFile {
    // Hashes are left out: they are what a guesser would check against.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthFile")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

/// The prefix of every secret, so a leaked one is recognisable (and
/// greppable by secret scanners).
const TOKEN_PREFIX: &str = "brigade_";

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl AuthFile {
    /// Reads and checks an auth file; an error names the file, the line and
    /// what is wrong with it (never the line's hash).
    pub fn load(path: &Path) -> Result<AuthFile, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file = AuthFile::parse(&text).map_err(|(line, what)| AuthError::Line {
            path: path.to_path_buf(),
            line,
            what,
        })?;
        if file.entries.is_empty() {
            return Err(AuthError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(file)
    }

    /// Parses an auth file's text, or (line number, what is wrong).
    pub fn parse(text: &str) -> Result<AuthFile, (usize, String)> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [hash, role, name] = fields[..] else {
                return Err((n + 1, format!("{} fields instead of 3", fields.len())));
            };
            let hash = hash.strip_prefix("sha256:").and_then(unhex).ok_or((
                n + 1,
                "the first field is not sha256:<64 hex digits>".into(),
            ))?;
            let role = Role::parse(role).ok_or((
                n + 1,
                format!("unknown role {role:?} (worker, client or admin)"),
            ))?;
            if !valid_name(name) {
                return Err((
                    n + 1,
                    format!("invalid name {name:?} (1 to 64 of A-Z a-z 0-9 . _ - @)"),
                ));
            }
            entries.push(Entry {
                hash,
                role,
                name: name.to_string(),
            });
        }
        Ok(AuthFile { entries })
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The role and name of `token`, if it is one of the file's. Every line
    /// is compared, in constant time, whether or not one matched already.
    fn lookup(&self, token: &str) -> Option<(Role, &str)> {
        let hash = sha256(token);
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.hash.ct_eq(&hash)) && found.is_none() {
                found = Some((e.role, e.name.as_str()));
            }
        }
        found
    }
}

/// A new token for `role` and `name`: the secret (shown once) and the line
/// the auth file keeps for it.
pub fn new_token(role: Role, name: &str) -> Result<(String, String), AuthError> {
    if !valid_name(name) {
        return Err(AuthError::Name(name.to_string()));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let line = format!("sha256:{} {role} {name}", hex(&sha256(&secret)));
    Ok((secret, line))
}

/// Appends a new token for `role` and `name` to the auth file at `path`
/// (created with mode 0600 if absent; an existing file must parse) and
/// returns its secret.
pub fn append_token(path: &Path, role: Role, name: &str) -> Result<String, AuthError> {
    let io = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(io)?;
        AuthFile::parse(&text).map_err(|(line, what)| AuthError::Line {
            path: path.to_path_buf(),
            line,
            what,
        })?;
    }
    let (secret, line) = new_token(role, name)?;
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?
    };
    writeln!(file, "{line}").map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(secret)
}

/// Who is calling, as the interceptor established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// `None`: the coordinator does not authenticate (every caller may do
    /// everything, as one anonymous owner).
    pub role: Option<Role>,
    /// The token's name; a job submitted by this caller is owned by it.
    pub name: String,
}

impl Caller {
    /// A caller of a coordinator without `--auth-file`.
    pub(crate) fn anonymous() -> Caller {
        Caller {
            role: None,
            name: String::new(),
        }
    }

    /// Whether this caller may see and cancel a job owned by `owner`.
    pub(crate) fn may_access(&self, owner: &str) -> bool {
        match self.role {
            None | Some(Role::Admin) => true,
            Some(_) => self.name == owner,
        }
    }

    /// Whether this caller sees every client's jobs.
    pub(crate) fn sees_all(&self) -> bool {
        matches!(self.role, None | Some(Role::Admin))
    }
}

/// Which service a call is for, and so which roles it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// The `Coordinator` service: clients and admins.
    Coordinator,
    /// The `WorkerLink` service: workers only (an admin token is refused,
    /// so the one secret that reads every job never sits on worker hosts).
    WorkerLink,
}

impl Service {
    fn allows(self, role: Role) -> bool {
        match self {
            Service::Coordinator => matches!(role, Role::Client | Role::Admin),
            Service::WorkerLink => role == Role::Worker,
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Service::Coordinator => "a client (or admin) token",
            Service::WorkerLink => "a worker token",
        }
    }
}

/// The check in front of both services: without an auth file every call is
/// anonymous and allowed; with one, a call must carry `authorization:
/// Bearer <token>` with a token of a role its service takes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Authenticator {
    file: Option<Arc<AuthFile>>,
}

impl Authenticator {
    pub(crate) fn new(file: Option<Arc<AuthFile>>) -> Self {
        Authenticator { file }
    }

    /// Who is calling `service` with `metadata`, or why the call is refused:
    /// UNAUTHENTICATED without a token or with one the file does not hold,
    /// PERMISSION_DENIED with a known token of the wrong role. No message
    /// repeats what the caller sent.
    pub(crate) fn check(&self, service: Service, metadata: &MetadataMap) -> Result<Caller, Status> {
        let Some(file) = &self.file else {
            return Ok(Caller::anonymous());
        };
        let Some(value) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(format!(
                "this coordinator requires {}: pass --token-file FILE or set BRIGADE_TOKEN",
                service.needs()
            )));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Status::unauthenticated(
                    "the authorization header is not `Bearer <token>`: pass the token with \
                     --token-file FILE or BRIGADE_TOKEN",
                )
            })?;
        let Some((role, name)) = file.lookup(token) else {
            return Err(Status::unauthenticated(format!(
                "the token is not valid for this coordinator (this call needs {}); \
                 check --token-file / BRIGADE_TOKEN, or create one with `brigade token create`",
                service.needs()
            )));
        };
        if !service.allows(role) {
            return Err(Status::permission_denied(format!(
                "this call needs {}, but the token presented is {} token (of {name:?})",
                service.needs(),
                role.with_article()
            )));
        }
        Ok(Caller {
            role: Some(role),
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(token: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(t) = token {
            m.insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        m
    }

    #[test]
    fn tokens_round_trip_through_the_file_and_roles_are_checked_per_service() {
        let (alice, alice_line) = new_token(Role::Client, "alice").unwrap();
        let (w, w_line) = new_token(Role::Worker, "w1").unwrap();
        let (root, root_line) = new_token(Role::Admin, "root").unwrap();
        assert!(
            alice.starts_with("brigade_") && alice.len() == 8 + 43,
            "{alice}"
        );
        assert!(
            !alice_line.contains(&alice),
            "the file never holds the secret"
        );
        let text = format!("# tokens\n\n{alice_line}\n{w_line}\n{root_line}\n");
        let auth = Authenticator::new(Some(Arc::new(AuthFile::parse(&text).unwrap())));

        let c = auth
            .check(Service::Coordinator, &metadata(Some(&alice)))
            .unwrap();
        assert_eq!((c.role, c.name.as_str()), (Some(Role::Client), "alice"));
        assert!(c.may_access("alice") && !c.may_access("bob") && !c.sees_all());
        let r = auth
            .check(Service::Coordinator, &metadata(Some(&root)))
            .unwrap();
        assert!(r.may_access("bob") && r.sees_all());
        auth.check(Service::WorkerLink, &metadata(Some(&w)))
            .unwrap();

        let denied = auth
            .check(Service::WorkerLink, &metadata(Some(&alice)))
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            denied.message().contains("needs a worker token"),
            "{denied:?}"
        );
        assert!(denied.message().contains("client token"), "{denied:?}");
        assert!(!denied.message().contains(&alice));
        for (service, token) in [(Service::WorkerLink, &root), (Service::Coordinator, &w)] {
            let e = auth.check(service, &metadata(Some(token))).unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        }

        let missing = auth
            .check(Service::Coordinator, &metadata(None))
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert_eq!(
            missing.message(),
            "this coordinator requires a client (or admin) token: pass --token-file FILE or set BRIGADE_TOKEN"
        );
        let forged = format!("{}x", &alice[..alice.len() - 1]);
        let wrong = auth
            .check(Service::Coordinator, &metadata(Some(&forged)))
            .unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(!wrong.message().contains(&forged));
    }

    #[test]
    fn without_a_file_every_caller_is_anonymous_and_sees_everything() {
        let auth = Authenticator::default();
        let c = auth.check(Service::WorkerLink, &metadata(None)).unwrap();
        assert_eq!(c, Caller::anonymous());
        assert!(c.may_access("anyone") && c.sees_all());
    }

    #[test]
    fn bad_lines_are_named_by_number_and_problem() {
        let good = new_token(Role::Client, "a").unwrap().1;
        let cases = [
            ("sha256:abc client a", "not sha256:<64 hex digits>"),
            ("only two", "2 fields instead of 3"),
            (&*good.replace("client", "root"), "unknown role \"root\""),
            (&*good.replace(" a", " a/b"), "invalid name \"a/b\""),
        ];
        for (line, want) in cases {
            let (n, what) = AuthFile::parse(&format!("{good}\n{line}\n"))
                .err()
                .unwrap_or_else(|| panic!("{line:?} accepted"));
            assert_eq!(n, 2);
            assert!(what.contains(want), "{line:?}: {what}");
        }
    }

    #[test]
    fn appending_creates_a_private_file_and_keeps_earlier_lines() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("brigade-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("auth");
        let _ = std::fs::remove_file(&path);
        let a = append_token(&path, Role::Client, "alice").unwrap();
        let b = append_token(&path, Role::Worker, "w").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let file = AuthFile::load(&path).unwrap();
        assert_eq!(file.len(), 2);
        assert_eq!(file.lookup(&a), Some((Role::Client, "alice")));
        assert_eq!(file.lookup(&b), Some((Role::Worker, "w")));
        assert!(matches!(
            append_token(&path, Role::Client, ""),
            Err(AuthError::Name(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
