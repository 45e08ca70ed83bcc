//! The "your own tasks" examples as a user runs them: a real coordinator,
//! the example's own worker binary (`examples/ratings`, `examples/hash-files`,
//! built by `cargo test` next to the `brigade` binary), jobs submitted from
//! an inputs file through the `brigade` CLI on every model the example is
//! for, and every output checked exactly against values computed here.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use common::{
    assert_error, assert_succeeded, done, id_of, parse_json, Client, Cluster, Slots, BIN,
};

/// A Cargo example of this package, built next to the `brigade` binary.
fn example(name: &str) -> PathBuf {
    let path = Path::new(BIN)
        .parent()
        .expect("the brigade binary has a directory")
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test` builds the examples; with a test filter, \
         run `cargo build --examples` first",
        path.display()
    );
    path
}

/// 64-bit FNV-1a, written here again so the tests check the examples and
/// the io-target rather than share their code.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Restaurant names: plain, accented, and with the characters a URL query
/// must escape (space, `&`, `#`, `%`, `+`, `=`, quotes).
fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 5 {
            0 => format!("Bistro {i}"),
            1 => format!("Café Nº {i} — Crêperie"),
            2 => format!("Fish & Chips #{i}"),
            3 => format!("L'Auberge \"{i}\" 100% + more"),
            _ => format!("a=b{i}"),
        })
        .collect()
}

/// What the ratings job must return for `names`, row by row.
fn expected_ratings(names: &[String]) -> Vec<(u64, Value)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let rating = 1 + fnv1a64(n.as_bytes()) % 5;
            (i as u64, json!({ "name": n, "rating": rating }))
        })
        .collect()
}

/// Writes `lines` to DIR/NAME, one per line; returns the path as text.
fn write_lines(dir: &Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text)
        .unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

/// `brigade results ID --format jsonl`: each row's (index, output).
fn outputs(c: &Client, id: u64) -> Vec<(u64, Value)> {
    let args = ["results", &id.to_string(), "--format", "jsonl"].map(String::from);
    c.brigade_ok(&args)
        .lines()
        .map(|line| {
            let row = parse_json(&["results"], line);
            let index = row["index"]
                .as_u64()
                .unwrap_or_else(|| panic!("a row without an index: {line}"));
            (index, row["output"].clone())
        })
        .collect()
}

/// Submits the ratings job for the names in `file` and waits for its end.
fn submit_ratings(c: &Client, file: &str, io_url: &str, extra: &[&str]) -> Value {
    let url = format!("url={io_url}");
    let args = [
        &["rating", "--inputs", file, "--arg", &url, "--arg", "ms=10"],
        extra,
    ]
    .concat();
    c.submit_json(&args)
}

#[test]
fn ratings_are_fetched_exactly_on_async_thread_and_process_slots() {
    let mut c = Cluster::start(&[]);
    let io = c.start_io_target();
    c.spawn_user_worker(&example("ratings"), "ratings", Slots::new(2, 4, 64));
    c.wait_workers(1);
    let names = names(100);
    let file = write_lines(c.dir(), "names.txt", &names);
    let expected = expected_ratings(&names);
    for model in ["async", "thread", "process"] {
        let job = submit_ratings(&c, &file, &io, &["--model", model, "--wait"]);
        assert_succeeded(&job, names.len() as u64);
        assert_eq!(job["model"], model, "{job}");
        assert_eq!(job["workload"], "rating", "{job}");
        assert_eq!(outputs(&c, id_of(&job)), expected, "on {model} slots");
    }
}

#[test]
fn a_user_workload_is_refused_before_its_worker_links_and_waits_while_only_plain_workers_run() {
    let mut c = Cluster::start(&[]);
    let io = c.start_io_target();
    let names = names(12);
    let file = write_lines(c.dir(), "names.txt", &names);

    // Nobody has defined `rating` yet: refused, saying what to do.
    let url = format!("url={io}");
    let args = [
        "submit", "rating", "--inputs", &file, "--arg", &url, "--wait",
    ];
    let o = c.brigade(&args);
    assert_error(
        &o,
        &args,
        2,
        &[
            "unknown workload \"rating\"",
            "start a worker that offers it",
        ],
    );

    // The ratings worker links (the coordinator learns the definition) and
    // leaves; a plain brigade worker cannot run the job, which waits saying so.
    let first = c.spawn_user_worker(&example("ratings"), "ratings-1", Slots::new(0, 1, 8));
    c.wait_workers(1);
    let status = c.terminate_worker(first);
    assert!(
        status.success(),
        "the ratings worker drains and exits 0: {status}"
    );
    c.wait_workers(0);
    c.spawn_worker("plain", Slots::new(1, 1, 8));
    c.wait_workers(1);
    let job = submit_ratings(&c, &file, &io, &[]);
    let id = id_of(&job);
    let waiting = c.wait_job_until(id, "waiting for a worker that runs rating", |j| {
        j["waiting_reason"].as_str().is_some_and(|r| {
            r.contains("no linked worker runs workload rating")
                && r.contains("start a worker that offers it")
        })
    });
    assert_eq!(done(&waiting), 0, "{waiting}");
    assert_eq!(
        waiting["model"], "async",
        "an io workload goes to async slots"
    );

    // Its worker links again: the job runs to the end, every rating exact.
    c.spawn_user_worker(&example("ratings"), "ratings-2", Slots::new(0, 1, 8));
    let job = c.wait_job(id);
    assert_succeeded(&job, names.len() as u64);
    assert_eq!(outputs(&c, id), expected_ratings(&names));
}

#[test]
fn hash_files_hashes_every_file_exactly_on_process_and_thread_slots() {
    let mut c = Cluster::start(&[]);
    c.spawn_user_worker(&example("hash-files"), "hasher", Slots::new(2, 2, 0));
    c.wait_workers(1);
    let data = c.dir().join("data");
    std::fs::create_dir(&data).expect("a data dir");
    // Sizes around the example's 64 KiB read block, the empty file included.
    let sizes = [0usize, 1, 7, 4096, 65_535, 65_536, 65_537, 200_003];
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for i in 0..24 {
        let size = sizes[i % sizes.len()];
        let bytes: Vec<u8> = (0..size)
            .map(|k| (k * 31 + i * 7 + k / 251) as u8)
            .collect();
        let path = data.join(format!("file {i}.bin"));
        std::fs::write(&path, &bytes).expect("a data file");
        let path = path.to_string_lossy().into_owned();
        expected.push((
            i as u64,
            json!({
                "path": path,
                "bytes": size,
                "fnv1a64": format!("{:016x}", fnv1a64(&bytes)),
            }),
        ));
        files.push(path);
    }
    // A missing file fails its own task with the reason; the rest succeed.
    let missing = data.join("missing.bin").to_string_lossy().into_owned();
    files.push(missing.clone());
    let list = write_lines(c.dir(), "files.txt", &files);
    for model in ["process", "thread"] {
        let job = c.submit_json(&[
            "hash-file",
            "--inputs",
            &list,
            "--model",
            model,
            "--allow-failures",
            "1",
            "--max-attempts",
            "1",
            "--wait",
        ]);
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["model"], model, "{job}");
        assert_eq!(
            (job["tasks_done"].as_u64(), job["tasks_failed"].as_u64()),
            (Some(expected.len() as u64), Some(1)),
            "{job}"
        );
        let failed = &job["failed_tasks"][0];
        assert_eq!(failed["index"], expected.len() as u64, "{job}");
        let why = failed["error"].as_str().unwrap_or_default();
        assert!(
            why.contains(&format!("cannot open {missing}")),
            "the failure names the file: {why}"
        );
        assert_eq!(outputs(&c, id_of(&job)), expected, "on {model} slots");
    }
}
