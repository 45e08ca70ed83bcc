//! The Kubernetes manifests (deploy/k8s/brigade.yaml), checked without a
//! cluster: every document parses; the workers reach the coordinator by its
//! Service's name, namespace and port over TLS with a worker token; the
//! coordinator serves TLS with an auth file; every file the containers
//! read is in the Secret `deploy/k8s/make-secrets.sh` writes (run here with
//! the real binary), under the mount the flag points into; and each
//! container's arguments are accepted by the real binary's parser.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::{brigade_command, TempDir, BIN};
use serde::Deserialize;
use serde_norway::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document of `path`.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| {
        v.get(*k)
            .unwrap_or_else(|| panic!("no {k:?} on the way to {path:?}"))
    })
}

/// The documents of kind `kind`, by name.
fn of_kind<'a>(docs: &'a [Value], kind: &str) -> BTreeMap<&'a str, &'a Value> {
    docs.iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .map(|d| (str_at(d, &["metadata", "name"]), d))
        .collect()
}

/// A workload's one container: its arguments (`--flag=value` split into
/// flag and value), its mounts (path → volume) and its volumes' Secrets
/// (volume → secret name).
struct Container {
    args: Vec<String>,
    mounts: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
}

impl Container {
    fn of(workload: &Value) -> Container {
        let spec = at(workload, &["spec", "template", "spec"]);
        let containers = at(spec, &["containers"]).as_sequence().expect("containers");
        assert_eq!(containers.len(), 1, "one container");
        let c = &containers[0];
        let args = at(c, &["args"])
            .as_sequence()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_string())
            .collect();
        let mounts = at(c, &["volumeMounts"])
            .as_sequence()
            .expect("mounts")
            .iter()
            .map(|m| {
                (
                    str_at(m, &["mountPath"]).into(),
                    str_at(m, &["name"]).into(),
                )
            })
            .collect();
        let secrets = at(spec, &["volumes"])
            .as_sequence()
            .expect("volumes")
            .iter()
            .filter_map(|v| {
                let secret = v.get("secret")?;
                Some((
                    str_at(v, &["name"]).into(),
                    str_at(secret, &["secretName"]).into(),
                ))
            })
            .collect();
        Container {
            args,
            mounts,
            secrets,
        }
    }

    /// The value of `--flag=value`.
    fn flag(&self, flag: &str) -> &str {
        let prefix = format!("{flag}=");
        self.args
            .iter()
            .find_map(|a| a.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {flag}= in {:?}", self.args))
    }

    /// The Secret and key a path under a Secret mount reads.
    fn secret_file(&self, path: &str) -> (String, String) {
        let (dir, file) = path.rsplit_once('/').expect("a path");
        let volume = &self.mounts[dir];
        (self.secrets[volume].clone(), file.to_string())
    }
}

/// Runs deploy/k8s/make-secrets.sh with the test binary; its Secrets, by
/// name, with their keys.
fn made_secrets(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let yaml = dir.join("secrets.yaml");
    let out = Command::new(repo().join("deploy/k8s/make-secrets.sh"))
        .arg(dir.join("files"))
        .env("BRIGADE_BIN", BIN)
        .env("BRIGADE_SECRETS_YAML", &yaml)
        .output()
        .expect("make-secrets.sh runs");
    assert!(
        out.status.success(),
        "make-secrets.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&yaml)
        .iter()
        .map(|s| {
            assert_eq!(str_at(s, &["kind"]), "Secret");
            assert_eq!(str_at(s, &["metadata", "namespace"]), "brigade");
            let keys = at(s, &["data"])
                .as_mapping()
                .expect("data")
                .keys()
                .map(|k| k.as_str().expect("key").to_string())
                .collect();
            (str_at(s, &["metadata", "name"]).to_string(), keys)
        })
        .collect()
}

/// The real binary accepts `args` (each `--flag=value` parsed with its
/// value): `ARGS... --help` fails on any unknown flag or bad value before
/// printing help.
fn assert_parses(args: &[String]) {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.push("--help");
    let out = brigade_command(&all).output().expect("brigade runs");
    assert!(
        out.status.success(),
        "`brigade {}`: {}",
        all.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_kubernetes_manifests_wire_tls_tokens_and_secrets_together() {
    let docs = documents(&repo().join("deploy/k8s/brigade.yaml"));
    for d in &docs {
        assert!(
            d.get("apiVersion").is_some() && d.get("kind").is_some(),
            "{d:?}"
        );
        if str_at(d, &["kind"]) != "Namespace" {
            assert_eq!(str_at(d, &["metadata", "namespace"]), "brigade", "{d:?}");
        }
    }
    let service = of_kind(&docs, "Service")["coordinator"];
    let coordinator = Container::of(of_kind(&docs, "StatefulSet")["coordinator"]);
    let worker = Container::of(of_kind(&docs, "Deployment")["worker"]);
    assert_eq!(
        at(
            of_kind(&docs, "StatefulSet")["coordinator"],
            &["spec", "replicas"]
        )
        .as_u64(),
        Some(1),
        "one coordinator per state file"
    );

    // The coordinator: TLS, tokens, its state on the volume.
    assert_eq!(coordinator.args[0], "coordinator");
    assert_eq!(coordinator.flag("--listen"), "0.0.0.0:7070");
    let state_dir = coordinator
        .flag("--state")
        .rsplit_once('/')
        .unwrap()
        .0
        .to_string();
    assert_eq!(
        coordinator.mounts[&state_dir], "state",
        "the state file is on the volume"
    );
    // Workers: the Service's name, namespace and port, over TLS, a worker token.
    let port = at(service, &["spec", "ports"])[0]["port"].as_u64().unwrap();
    assert_eq!(worker.args[0], "worker");
    assert_eq!(
        worker.flag("--coordinator"),
        format!("https://coordinator.brigade.svc:{port}")
    );
    assert_eq!(port, 7070);

    let dir = TempDir::new("k8s-secrets");
    let secrets = made_secrets(dir.path());
    let needs = [
        (&coordinator, "--tls-cert"),
        (&coordinator, "--tls-key"),
        (&coordinator, "--auth-file"),
        (&worker, "--tls-ca"),
        (&worker, "--token-file"),
    ];
    for (c, flag) in needs {
        let (secret, key) = c.secret_file(c.flag(flag));
        assert!(
            secrets.get(&secret).is_some_and(|keys| keys.contains(&key)),
            "{flag} reads {key} of Secret {secret}; make-secrets.sh wrote {secrets:?}"
        );
    }
    // The coordinator's certificate names the Service the workers dial
    // (DNS names sit in the DER as plain ASCII).
    let pem = std::fs::read_to_string(dir.path().join("files/coordinator.pem")).expect("cert");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM base64");
    for name in ["coordinator.brigade.svc", "coordinator"] {
        assert!(
            der.windows(name.len()).any(|w| w == name.as_bytes()),
            "SAN {name}"
        );
    }
    assert!(!secrets["brigade-worker"].contains(&"coordinator-key.pem".to_string()));
    assert!(!secrets["brigade-worker"].contains(&"auth".to_string()));

    assert_parses(&coordinator.args);
    assert_parses(&worker.args);

    // Selectors pick their own pods; the Service's target port is the
    // coordinator container's named port, the one --listen binds.
    for (kind, name) in [("StatefulSet", "coordinator"), ("Deployment", "worker")] {
        let w = of_kind(&docs, kind)[name];
        let labels = at(w, &["spec", "template", "metadata", "labels"]);
        let selector = at(w, &["spec", "selector", "matchLabels"]);
        assert_eq!(selector, labels, "{kind} {name}: selector vs pod labels");
        let c = &at(w, &["spec", "template", "spec", "containers"])[0];
        assert!(
            c.get("resources").is_some(),
            "{kind} {name}: resource requests"
        );
        // Each probe runs `brigade health` over TLS with the mounted CA.
        let probe = at(c, &["readinessProbe", "exec", "command"])
            .as_sequence()
            .unwrap();
        let probe: Vec<String> = probe
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(probe[0], "/usr/local/bin/brigade");
        assert!(probe[2..]
            .windows(2)
            .any(|w| w[0] == "--coordinator" && w[1].starts_with("https://")));
        assert_parses(&probe[1..]);
    }
    let pod_labels = at(
        of_kind(&docs, "StatefulSet")["coordinator"],
        &["spec", "template", "metadata", "labels"],
    );
    assert_eq!(at(service, &["spec", "selector"]), pod_labels);
    let target = str_at(&at(service, &["spec", "ports"])[0], &["targetPort"]);
    let c = &at(
        of_kind(&docs, "StatefulSet")["coordinator"],
        &["spec", "template", "spec", "containers"],
    )[0];
    let named = at(c, &["ports"])
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(target))
        .expect("the Service's target port is a named container port");
    assert_eq!(named["containerPort"].as_u64(), Some(7070));
}
