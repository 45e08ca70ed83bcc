//! Shared support for the integration tests, which run the real `brigade`
//! binary (`CARGO_BIN_EXE_brigade`):
//! - [`cluster`]: a [`Cluster`] of coordinator, worker and io-target
//!   processes, killed on drop, logs kept when a test fails;
//! - [`client`]: CLI runs with deadlines, exit and error checks, and a
//!   [`Client`] of one coordinator with its output parsed;
//! - [`http`]: a plain HTTP GET (the dashboard and metrics port);
//! - [`job`]: job flags, JSON fields, expected values ([`SumSquares`]);
//! - [`poll`]: waiting for a condition with a deadline;
//! - [`proc`]: signals, `/proc`, commands with a deadline, a fixed port;
//! - [`tempdir`]: a temp dir per test.
//!
//! Each test binary uses part of it, hence `allow(dead_code, unused_imports)`
//! (a re-export one binary does not use).

#![allow(dead_code, unused_imports)]

pub mod client;
pub mod cluster;
pub mod http;
pub mod job;
pub mod poll;
pub mod proc;
pub mod tempdir;

pub use client::{
    assert_error, assert_success, brigade_command, check_run_fields, csv_index_value, parse_json,
    results_csv, run_brigade, stderr, stdout, strs, without_run_fields, Client, BIN, CLI_DEADLINE,
    RESULTS_CSV_HEADER,
};
pub use cluster::{BackgroundRun, Cluster, Slots};
pub use job::{
    assert_succeeded, done, ended, id_of, identity, sum_squares, sum_squares_below, SumSquares,
    FAST_LEASES, W_CPU_TOTAL,
};
pub use poll::{poll, wait_until, DEADLINE, POLL_EVERY};
pub use proc::{
    catches_signal, child_pids, first_line_in_background, free_port_below_ephemeral_range,
    kill_group, output_within, proc_alive, proc_gone, proc_stat, read_in_background, send_signal,
    ProcStat,
};
pub use tempdir::TempDir;
