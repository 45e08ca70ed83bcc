//! The workload catalogue: every workload's name, arguments, default kind and
//! how its task results reduce to a job result. The coordinator validates
//! submissions against it (so a bad job is refused before any task runs) and the
//! worker implements exactly these names.

use std::collections::HashMap;

use crate::v1::Kind;

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
    /// An `http://host:port/path` URL.
    HttpUrl,
    /// Free text (non-empty).
    Text,
}

/// One workload argument.
#[derive(Debug, Clone, Copy)]
pub struct ArgDef {
    pub name: &'static str,
    pub ty: ArgType,
    /// The value used when the argument is absent.
    pub default: Option<&'static str>,
    /// Absent and without a default: refused.
    pub required: bool,
    pub help: &'static str,
}

/// One workload.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadDef {
    pub name: &'static str,
    pub kind: Kind,
    pub reduction: Reduction,
    pub args: &'static [ArgDef],
    pub help: &'static str,
}

const MS_ARG_MAX: u64 = 3_600_000;

/// Every workload a worker runs.
pub const WORKLOADS: &[WorkloadDef] = &[
    WorkloadDef {
        name: "sum-squares",
        kind: Kind::Cpu,
        reduction: Reduction::Sum,
        args: &[],
        help: "sum of i*i over the task's sub-range, exact in u128; the job result is the total",
    },
    WorkloadDef {
        name: "noop",
        kind: Kind::Io,
        reduction: Reduction::List,
        args: &[],
        help: "does nothing and returns the task's index (measures per-task overhead)",
    },
    WorkloadDef {
        name: "spin",
        kind: Kind::Cpu,
        reduction: Reduction::List,
        args: &[
            ArgDef {
                name: "ms",
                ty: ArgType::U64 {
                    min: 0,
                    max: MS_ARG_MAX,
                },
                default: None,
                required: true,
                help: "milliseconds of CPU to burn per task",
            },
            ArgDef {
                name: "crash-index",
                ty: ArgType::U64 {
                    min: 0,
                    max: u64::MAX,
                },
                default: None,
                required: false,
                help: "the task with this index aborts its process after burning (a poison task)",
            },
        ],
        help: "burns `ms` milliseconds of CPU time and returns the task's index \
               (with `crash-index`, that task aborts its process)",
    },
    WorkloadDef {
        name: "sleep",
        kind: Kind::Io,
        reduction: Reduction::List,
        args: &[ArgDef {
            name: "ms",
            ty: ArgType::U64 {
                min: 0,
                max: MS_ARG_MAX,
            },
            default: Some("100"),
            required: false,
            help: "milliseconds to wait per task",
        }],
        help: "waits `ms` milliseconds (non-blocking on async slots, blocking on thread and \
               process slots) and returns the task's index",
    },
    WorkloadDef {
        name: "http-get",
        kind: Kind::Io,
        reduction: Reduction::List,
        args: &[
            ArgDef {
                name: "url",
                ty: ArgType::HttpUrl,
                default: None,
                required: true,
                help: "http://host:port/path to GET (keep-alive HTTP/1.1)",
            },
            ArgDef {
                name: "expect-status",
                ty: ArgType::U64 { min: 100, max: 599 },
                default: Some("200"),
                required: false,
                help: "the status every response must have",
            },
            ArgDef {
                name: "expect-len",
                ty: ArgType::U64 {
                    min: 0,
                    max: u64::MAX,
                },
                default: None,
                required: false,
                help: "the body length every response must have (unchecked when absent)",
            },
        ],
        help: "GETs `url` and returns the body length; another status or length fails the task",
    },
    WorkloadDef {
        name: "exec",
        kind: Kind::Cpu,
        reduction: Reduction::List,
        args: &[ArgDef {
            name: "cmd",
            ty: ArgType::Text,
            default: None,
            required: true,
            help: "shell command run with /bin/sh -c; BRIGADE_TASK_INDEX, BRIGADE_TASK_START \
                   and BRIGADE_TASK_END are set",
        }],
        help: "runs a shell command per task (only on workers started with --allow-exec); \
               exit 0 succeeds and the integer it prints (none: 0) is the result",
    },
];

/// Why a workload or its arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown workload {name:?}; known workloads: {}", known_names())]
    UnknownWorkload { name: String },
    #[error("workload {workload} takes no argument {arg:?}; allowed: {allowed}")]
    UnknownArg {
        workload: &'static str,
        arg: String,
        allowed: String,
    },
    #[error("workload {workload} needs argument {arg} ({help})")]
    MissingArg {
        workload: &'static str,
        arg: &'static str,
        help: &'static str,
    },
    #[error("argument {arg}={value:?} of workload {workload} is invalid: {why}")]
    BadArg {
        workload: &'static str,
        arg: &'static str,
        value: String,
        why: String,
    },
}

/// The known workload names, comma separated (for error messages and help).
pub fn known_names() -> String {
    WORKLOADS
        .iter()
        .map(|w| w.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds a workload by name.
pub fn lookup(name: &str) -> Result<&'static WorkloadDef, CatalogError> {
    WORKLOADS
        .iter()
        .find(|w| w.name == name)
        .ok_or_else(|| CatalogError::UnknownWorkload {
            name: name.to_string(),
        })
}

/// An http URL split into what a client needs.
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
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    Ok(HttpUrl {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

impl ArgDef {
    fn check(&self, workload: &'static str, value: &str) -> Result<(), CatalogError> {
        let bad = |why: String| CatalogError::BadArg {
            workload,
            arg: self.name,
            value: value.to_string(),
            why,
        };
        match self.ty {
            ArgType::U64 { min, max } => {
                let v: u64 = value
                    .parse()
                    .map_err(|_| bad(format!("expected an integer in {min}..={max}")))?;
                if v < min || v > max {
                    return Err(bad(format!("expected an integer in {min}..={max}")));
                }
            }
            ArgType::HttpUrl => {
                parse_http_url(value).map_err(bad)?;
            }
            ArgType::Text => {
                if value.trim().is_empty() {
                    return Err(bad("expected a non-empty value".into()));
                }
            }
        }
        Ok(())
    }
}

impl WorkloadDef {
    /// Checks `args` against this workload's arguments: no unknown names, every
    /// required one present, every value well-formed.
    pub fn validate_args(&self, args: &HashMap<String, String>) -> Result<(), CatalogError> {
        for (name, value) in args {
            let def = self.args.iter().find(|a| a.name == name).ok_or_else(|| {
                CatalogError::UnknownArg {
                    workload: self.name,
                    arg: name.clone(),
                    allowed: if self.args.is_empty() {
                        "none".to_string()
                    } else {
                        self.args
                            .iter()
                            .map(|a| a.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                }
            })?;
            def.check(self.name, value)?;
        }
        for def in self.args {
            if def.required && !args.contains_key(def.name) {
                return Err(CatalogError::MissingArg {
                    workload: self.name,
                    arg: def.name,
                    help: def.help,
                });
            }
        }
        Ok(())
    }

    /// The value of argument `name`: the given one, else its default.
    pub fn arg<'a>(&self, args: &'a HashMap<String, String>, name: &str) -> Option<&'a str>
    where
        'static: 'a,
    {
        args.get(name).map(String::as_str).or_else(|| {
            self.args
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| a.default)
        })
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

    #[test]
    fn unknown_workload_lists_the_known_ones() {
        let e = lookup("fib").unwrap_err().to_string();
        assert!(e.contains("\"fib\""), "{e}");
        assert!(
            e.contains("sum-squares, noop, spin, sleep, http-get"),
            "{e}"
        );
    }

    #[test]
    fn required_unknown_and_malformed_args_are_refused() {
        let spin = lookup("spin").unwrap();
        assert!(matches!(
            spin.validate_args(&args(&[])),
            Err(CatalogError::MissingArg { arg: "ms", .. })
        ));
        assert!(matches!(
            spin.validate_args(&args(&[("ms", "ten")])),
            Err(CatalogError::BadArg { arg: "ms", .. })
        ));
        let e = spin
            .validate_args(&args(&[("ms", "1"), ("speed", "2")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"speed\"") && e.contains("allowed: ms"), "{e}");
        spin.validate_args(&args(&[("ms", "5")])).unwrap();
        let noop = lookup("noop").unwrap();
        let e = noop
            .validate_args(&args(&[("x", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("allowed: none"), "{e}");
    }

    #[test]
    fn optional_args_without_default_may_be_absent() {
        let get = lookup("http-get").unwrap();
        get.validate_args(&args(&[("url", "http://h:1/")])).unwrap();
        assert_eq!(
            get.arg(&args(&[("url", "http://h:1/")]), "expect-len"),
            None
        );
        assert!(matches!(
            get.validate_args(&args(&[])),
            Err(CatalogError::MissingArg { arg: "url", .. })
        ));
    }

    #[test]
    fn defaults_fill_in_missing_args() {
        let sleep = lookup("sleep").unwrap();
        let given = args(&[]);
        sleep.validate_args(&given).unwrap();
        assert_eq!(sleep.arg(&given, "ms"), Some("100"));
        assert_eq!(sleep.arg(&args(&[("ms", "7")]), "ms"), Some("7"));
    }

    #[test]
    fn http_urls_parse_or_say_why_not() {
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
    }
}
