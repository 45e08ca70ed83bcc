//! What a workload *is*, as data every side shares: its name, arguments (typed,
//! with defaults), default kind and default reduction ([`WorkloadDef`]); how a
//! job's string arguments are checked against it once and turned into typed
//! values ([`WorkloadDef::validate`] → [`ArgValues`]); and its wire form
//! (`WorkloadDescriptor`, which a worker announces at hello).
//!
//! Each workload is *defined* where it is implemented (one module per
//! workload in `brigade-worker`, or a user's crate): this module only holds
//! the vocabulary, so the coordinator can check any job against the
//! definition a worker announced without knowing the workload itself.

use std::collections::{BTreeMap, HashMap};

use crate::v1::{self, Kind};

/// How a job's task results are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// The job result is the exact u128 sum of the task results.
    Sum,
    /// The job result is the ordered list of task results.
    List,
}

/// What values an argument takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// An unsigned integer in `[min, max]`.
    U64 { min: u64, max: u64 },
    /// An `http://` or `https://` URL with a host.
    Url,
    /// Free text (non-empty).
    Text,
    /// `true` or `false`.
    Bool,
}

/// One workload argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    pub name: String,
    pub ty: ArgType,
    /// The value used when the argument is absent.
    pub default: Option<String>,
    /// Absent and without a default: refused.
    pub required: bool,
    pub help: String,
}

impl ArgDef {
    /// An optional argument of type `ty` with no default.
    pub fn new(name: &str, ty: ArgType, help: &str) -> ArgDef {
        ArgDef {
            name: name.to_string(),
            ty,
            default: None,
            required: false,
            help: help.to_string(),
        }
    }

    /// An unsigned integer argument in `[min, max]`.
    pub fn u64(name: &str, min: u64, max: u64, help: &str) -> ArgDef {
        ArgDef::new(name, ArgType::U64 { min, max }, help)
    }

    /// The argument must be given.
    pub fn required(mut self) -> ArgDef {
        self.required = true;
        self
    }

    /// The value used when the argument is absent.
    pub fn default(mut self, value: &str) -> ArgDef {
        self.default = Some(value.to_string());
        self
    }
}

/// One workload's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadDef {
    pub name: String,
    /// The kind a job of this workload has unless it says otherwise.
    pub kind: Kind,
    pub reduction: Reduction,
    pub args: Vec<ArgDef>,
    pub help: String,
}

impl WorkloadDef {
    /// A workload with no arguments yet; add them with [`WorkloadDef::arg`].
    pub fn new(name: &str, kind: Kind, reduction: Reduction, help: &str) -> WorkloadDef {
        WorkloadDef {
            name: name.to_string(),
            kind,
            reduction,
            args: Vec::new(),
            help: help.to_string(),
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: ArgDef) -> WorkloadDef {
        self.args.push(arg);
        self
    }
}

/// The longest workload or argument name a definition may have.
pub const MAX_NAME_LEN: usize = 64;
/// The most arguments one workload may declare.
pub const MAX_ARGS: usize = 64;
/// The longest help text or default value in a definition.
pub const MAX_TEXT_LEN: usize = 4096;

/// Why a workload, its definition or a job's arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown workload {name:?}; known workloads: {known}")]
    UnknownWorkload { name: String, known: String },
    #[error("workload {workload} takes no argument {arg:?}; allowed: {allowed}")]
    UnknownArg {
        workload: String,
        arg: String,
        allowed: String,
    },
    #[error("workload {workload} needs argument {arg} ({help})")]
    MissingArg {
        workload: String,
        arg: String,
        help: String,
    },
    #[error("argument {arg}={value:?} of workload {workload} is invalid: {why}")]
    BadArg {
        workload: String,
        arg: String,
        value: String,
        why: String,
    },
    #[error("invalid definition of workload {name:?}: {why}")]
    BadDefinition { name: String, why: String },
}

/// A typed argument value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    U64(u64),
    Url(String),
    Text(String),
    Bool(bool),
}

/// A job's arguments after [`WorkloadDef::validate`]: every value of its
/// declared type, defaults filled in. Reading them cannot fail on a value's
/// form, only on a name the definition does not have (a programming error
/// in the workload, reported as such).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArgValues {
    workload: String,
    values: BTreeMap<String, ArgValue>,
}

impl ArgValues {
    /// The value of `name`, if given or defaulted.
    pub fn get(&self, name: &str) -> Option<&ArgValue> {
        self.values.get(name)
    }

    /// An integer argument (`None` when absent without a default).
    pub fn u64(&self, name: &str) -> Option<u64> {
        match self.values.get(name) {
            Some(ArgValue::U64(v)) => Some(*v),
            _ => None,
        }
    }

    /// A text or URL argument.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(ArgValue::Text(v) | ArgValue::Url(v)) => Some(v),
            _ => None,
        }
    }

    /// A boolean argument (`false` when absent without a default).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(ArgValue::Bool(true)))
    }

    /// An argument the workload declared as required (so validation put it
    /// there), or an error naming the workload's own mistake.
    pub fn required_u64(&self, name: &str) -> Result<u64, String> {
        self.u64(name)
            .ok_or_else(|| self.undeclared(name, "an integer"))
    }

    /// A required text or URL argument (see [`ArgValues::required_u64`]).
    pub fn required_text(&self, name: &str) -> Result<&str, String> {
        self.text(name)
            .ok_or_else(|| self.undeclared(name, "a text"))
    }

    fn undeclared(&self, name: &str, what: &str) -> String {
        format!(
            "workload {} reads {what} argument {name:?} that its definition does not make required",
            self.workload
        )
    }

    /// Every value, by name (as JSON: integers as numbers, booleans as
    /// booleans, the rest as strings), for typed user arguments.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ArgValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// An http URL split into what a plain HTTP/1.1 client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Parses `http://host[:port][/path]`; `https` and other schemes are refused.
pub fn parse_http_url(s: &str) -> Result<HttpUrl, String> {
    let rest = s.strip_prefix("http://").ok_or_else(|| {
        "expected a URL starting with http:// (https is not supported)".to_string()
    })?;
    let (host, port, path) = split_authority(rest, 80)?;
    Ok(HttpUrl {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// Splits `host[:port][/path]` (after the scheme) or says what is wrong.
fn split_authority(rest: &str, default_port: u16) -> Result<(&str, u16, &str), String> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err("the URL has no host".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("port {p:?} is not a number in 1..=65535"))?;
            if port == 0 {
                return Err("port 0 is not allowed".into());
            }
            (h, port)
        }
        _ => (authority, default_port),
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    Ok((host, port, path))
}

/// Checks an `http://` or `https://` URL has a host and a valid port.
pub fn check_url(s: &str) -> Result<(), String> {
    let (rest, port) = if let Some(rest) = s.strip_prefix("http://") {
        (rest, 80)
    } else if let Some(rest) = s.strip_prefix("https://") {
        (rest, 443)
    } else {
        return Err("expected a URL starting with http:// or https://".into());
    };
    if s.chars().any(char::is_whitespace) {
        return Err("a URL has no spaces (percent-encode them as %20)".into());
    }
    split_authority(rest, port).map(|_| ())
}

impl ArgDef {
    fn parse(&self, workload: &str, value: &str) -> Result<ArgValue, CatalogError> {
        let bad = |why: String| CatalogError::BadArg {
            workload: workload.to_string(),
            arg: self.name.clone(),
            value: value.to_string(),
            why,
        };
        Ok(match self.ty {
            ArgType::U64 { min, max } => {
                let v: u64 = value
                    .parse()
                    .ok()
                    .filter(|v| (min..=max).contains(v))
                    .ok_or_else(|| bad(format!("expected an integer in {min}..={max}")))?;
                ArgValue::U64(v)
            }
            ArgType::Url => {
                check_url(value).map_err(bad)?;
                ArgValue::Url(value.to_string())
            }
            ArgType::Text => {
                if value.trim().is_empty() {
                    return Err(bad("expected a non-empty value".into()));
                }
                ArgValue::Text(value.to_string())
            }
            ArgType::Bool => match value {
                "true" => ArgValue::Bool(true),
                "false" => ArgValue::Bool(false),
                _ => return Err(bad("expected true or false".into())),
            },
        })
    }
}

impl WorkloadDef {
    /// Checks `args` against this workload's arguments (no unknown names,
    /// every required one present, every value well-formed) and returns them
    /// typed, defaults filled in.
    pub fn validate(&self, args: &HashMap<String, String>) -> Result<ArgValues, CatalogError> {
        let mut values = BTreeMap::new();
        for (name, value) in args {
            let def = self.args.iter().find(|a| a.name == *name).ok_or_else(|| {
                CatalogError::UnknownArg {
                    workload: self.name.clone(),
                    arg: name.clone(),
                    allowed: if self.args.is_empty() {
                        "none".to_string()
                    } else {
                        self.arg_names()
                    },
                }
            })?;
            values.insert(name.clone(), def.parse(&self.name, value)?);
        }
        for def in &self.args {
            if values.contains_key(&def.name) {
                continue;
            }
            if let Some(default) = &def.default {
                values.insert(def.name.clone(), def.parse(&self.name, default)?);
            } else if def.required {
                return Err(CatalogError::MissingArg {
                    workload: self.name.clone(),
                    arg: def.name.clone(),
                    help: def.help.clone(),
                });
            }
        }
        Ok(ArgValues {
            workload: self.name.clone(),
            values,
        })
    }

    fn arg_names(&self) -> String {
        self.args
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks the definition itself: names that fit on a command line,
    /// bounded sizes, no duplicate arguments, defaults of the right type.
    pub fn check(&self) -> Result<(), CatalogError> {
        let bad = |why: String| CatalogError::BadDefinition {
            name: self.name.chars().take(MAX_NAME_LEN).collect(),
            why,
        };
        check_name(&self.name).map_err(|why| bad(format!("its name {why}")))?;
        if self.help.len() > MAX_TEXT_LEN {
            return Err(bad(format!("help longer than {MAX_TEXT_LEN} bytes")));
        }
        if self.args.len() > MAX_ARGS {
            return Err(bad(format!("more than {MAX_ARGS} arguments")));
        }
        for (i, a) in self.args.iter().enumerate() {
            check_name(&a.name).map_err(|why| bad(format!("argument name {why}")))?;
            if self.args[..i].iter().any(|b| b.name == a.name) {
                return Err(bad(format!("argument {} declared twice", a.name)));
            }
            if a.help.len() > MAX_TEXT_LEN {
                return Err(bad(format!(
                    "help of {} longer than {MAX_TEXT_LEN} bytes",
                    a.name
                )));
            }
            if let Some(d) = &a.default {
                a.parse(&self.name, d)
                    .map_err(|e| bad(format!("default of {}: {e}", a.name)))?;
            }
        }
        Ok(())
    }

    /// The wire form a worker announces at hello.
    pub fn to_wire(&self) -> v1::WorkloadDescriptor {
        v1::WorkloadDescriptor {
            name: self.name.clone(),
            kind: self.kind as i32,
            reduction: match self.reduction {
                Reduction::Sum => v1::Reduction::Sum,
                Reduction::List => v1::Reduction::List,
            } as i32,
            help: self.help.clone(),
            args: self
                .args
                .iter()
                .map(|a| {
                    let (ty, min, max) = match a.ty {
                        ArgType::U64 { min, max } => (v1::ArgType::U64, min, max),
                        ArgType::Url => (v1::ArgType::Url, 0, 0),
                        ArgType::Text => (v1::ArgType::Text, 0, 0),
                        ArgType::Bool => (v1::ArgType::Bool, 0, 0),
                    };
                    v1::ArgDescriptor {
                        name: a.name.clone(),
                        r#type: ty as i32,
                        min,
                        max,
                        default: a.default.clone(),
                        required: a.required,
                        help: a.help.clone(),
                    }
                })
                .collect(),
        }
    }

    /// Reads a definition a worker announced, checking it whole.
    pub fn from_wire(d: &v1::WorkloadDescriptor) -> Result<WorkloadDef, CatalogError> {
        let bad = |why: String| CatalogError::BadDefinition {
            name: d.name.chars().take(MAX_NAME_LEN).collect(),
            why,
        };
        let kind = match Kind::try_from(d.kind) {
            Ok(k @ (Kind::Cpu | Kind::Io)) => k,
            _ => return Err(bad(format!("unknown kind value {}", d.kind))),
        };
        let reduction = match v1::Reduction::try_from(d.reduction) {
            Ok(v1::Reduction::Sum) => Reduction::Sum,
            Ok(v1::Reduction::List) => Reduction::List,
            _ => return Err(bad(format!("unknown reduction value {}", d.reduction))),
        };
        let mut def = WorkloadDef::new(&d.name, kind, reduction, &d.help);
        for a in &d.args {
            let ty = match v1::ArgType::try_from(a.r#type) {
                Ok(v1::ArgType::U64) if a.min <= a.max => ArgType::U64 {
                    min: a.min,
                    max: a.max,
                },
                Ok(v1::ArgType::Url) => ArgType::Url,
                Ok(v1::ArgType::Text) => ArgType::Text,
                Ok(v1::ArgType::Bool) => ArgType::Bool,
                _ => return Err(bad(format!("argument {:?} has an unknown type", a.name))),
            };
            def.args.push(ArgDef {
                name: a.name.clone(),
                ty,
                default: a.default.clone(),
                required: a.required,
                help: a.help.clone(),
            });
        }
        def.check()?;
        Ok(def)
    }
}

/// A workload or argument name: 1 to 64 characters of `[a-z0-9_-]`,
/// starting with a letter.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not 1 to {MAX_NAME_LEN} characters of a-z, 0-9, - and _ starting with a letter",
            name.chars().take(MAX_NAME_LEN).collect::<String>()
        ))
    }
}

/// A set of workload definitions by name: what a worker offers, or what
/// the coordinator has learned from the workers that linked.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    defs: BTreeMap<String, WorkloadDef>,
}

impl Catalog {
    /// Adds (or replaces) a definition.
    pub fn insert(&mut self, def: WorkloadDef) {
        self.defs.insert(def.name.clone(), def);
    }

    /// The definition of `name`, or an error listing the known ones.
    pub fn lookup(&self, name: &str) -> Result<&WorkloadDef, CatalogError> {
        self.defs
            .get(name)
            .ok_or_else(|| CatalogError::UnknownWorkload {
                name: name.chars().take(MAX_NAME_LEN).collect(),
                known: self.known_names(),
            })
    }

    /// Whether `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }

    /// The known names, comma separated (for errors and help), or "none".
    pub fn known_names(&self) -> String {
        if self.defs.is_empty() {
            return "none".into();
        }
        self.defs.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// Every definition, by name.
    pub fn iter(&self) -> impl Iterator<Item = &WorkloadDef> {
        self.defs.values()
    }

    /// How many definitions.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// No definitions.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }
}

impl FromIterator<WorkloadDef> for Catalog {
    fn from_iter<I: IntoIterator<Item = WorkloadDef>>(iter: I) -> Catalog {
        let mut c = Catalog::default();
        for d in iter {
            c.insert(d);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spin() -> WorkloadDef {
        WorkloadDef::new("spin", Kind::Cpu, Reduction::List, "burns CPU")
            .arg(ArgDef::u64("ms", 0, 1000, "milliseconds").required())
            .arg(ArgDef::u64("crash-index", 0, u64::MAX, "poison"))
    }

    fn get() -> WorkloadDef {
        WorkloadDef::new("http-get", Kind::Io, Reduction::List, "GETs")
            .arg(ArgDef::new("url", ArgType::Url, "where").required())
            .arg(ArgDef::u64("expect-status", 100, 599, "status").default("200"))
            .arg(ArgDef::new("stdin", ArgType::Bool, "feed stdin").default("false"))
    }

    #[test]
    fn unknown_workload_lists_the_known_ones() {
        let c: Catalog = [spin(), get()].into_iter().collect();
        let e = c.lookup("fib").unwrap_err().to_string();
        assert!(e.contains("\"fib\""), "{e}");
        assert!(e.contains("known workloads: http-get, spin"), "{e}");
        assert_eq!(Catalog::default().known_names(), "none");
    }

    #[test]
    fn required_unknown_and_malformed_args_are_refused() {
        let spin = spin();
        assert!(matches!(
            spin.validate(&args(&[])),
            Err(CatalogError::MissingArg { arg, .. }) if arg == "ms"
        ));
        assert!(matches!(
            spin.validate(&args(&[("ms", "ten")])),
            Err(CatalogError::BadArg { arg, .. }) if arg == "ms"
        ));
        assert!(matches!(
            spin.validate(&args(&[("ms", "1001")])),
            Err(CatalogError::BadArg { why, .. }) if why == "expected an integer in 0..=1000"
        ));
        let e = spin
            .validate(&args(&[("ms", "1"), ("speed", "2")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"speed\"") && e.contains("allowed: ms, crash-index"),
            "{e}"
        );
        let v = spin.validate(&args(&[("ms", "5")])).unwrap();
        assert_eq!(v.u64("ms"), Some(5));
        assert_eq!(v.u64("crash-index"), None);
        let noop = WorkloadDef::new("noop", Kind::Io, Reduction::List, "nothing");
        let e = noop.validate(&args(&[("x", "1")])).unwrap_err().to_string();
        assert!(e.contains("allowed: none"), "{e}");
    }

    #[test]
    fn values_are_typed_and_defaults_fill_in() {
        let get = get();
        let v = get
            .validate(&args(&[("url", "https://example.org/a?b=c")]))
            .unwrap();
        assert_eq!(v.text("url"), Some("https://example.org/a?b=c"));
        assert_eq!(v.u64("expect-status"), Some(200));
        assert!(!v.flag("stdin"));
        let v = get
            .validate(&args(&[("url", "http://h:1/"), ("stdin", "true")]))
            .unwrap();
        assert!(v.flag("stdin"));
        assert_eq!(v.required_u64("expect-status"), Ok(200));
        assert!(v.required_u64("nope").unwrap_err().contains("nope"));
        let e = get
            .validate(&args(&[("url", "http://h/"), ("stdin", "yes")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected true or false"), "{e}");
        let e = get
            .validate(&args(&[("url", "ftp://h/")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http:// or https://"), "{e}");
    }

    #[test]
    fn definitions_round_trip_through_the_wire_and_bad_ones_are_refused() {
        for def in [spin(), get()] {
            assert_eq!(WorkloadDef::from_wire(&def.to_wire()).unwrap(), def);
        }
        let mut w = spin().to_wire();
        w.name = "Bad Name".into();
        assert!(WorkloadDef::from_wire(&w)
            .unwrap_err()
            .to_string()
            .contains("a-z, 0-9"));
        let mut w = spin().to_wire();
        w.args.push(w.args[0].clone());
        assert!(WorkloadDef::from_wire(&w)
            .unwrap_err()
            .to_string()
            .contains("declared twice"));
        let mut w = get().to_wire();
        w.args[1].default = Some("abc".into());
        assert!(WorkloadDef::from_wire(&w)
            .unwrap_err()
            .to_string()
            .contains("default of expect-status"));
        let mut w = spin().to_wire();
        w.kind = 99;
        assert!(WorkloadDef::from_wire(&w).is_err());
    }

    #[test]
    fn urls_are_checked_and_http_ones_split() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:8080/slow?ms=5").unwrap(),
            HttpUrl {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/slow?ms=5".into()
            }
        );
        assert_eq!(parse_http_url("http://example").unwrap().port, 80);
        assert_eq!(parse_http_url("http://example").unwrap().path, "/");
        assert!(parse_http_url("https://x/")
            .unwrap_err()
            .contains("http://"));
        assert!(parse_http_url("http://:80/").is_err());
        assert!(parse_http_url("http://h:99999/").is_err());
        assert!(parse_http_url("http://h:0/").is_err());
        check_url("https://example.org").unwrap();
        check_url("https://example.org:8443/x").unwrap();
        assert!(check_url("https://").is_err());
        assert!(check_url("https://a b/").is_err());
        assert!(check_url("mailto:x@y").is_err());
    }
}
