//! The wire codec on the hot path: one `AssignBatch` of 4,096 tasks down a
//! worker's stream and one `ResultBatch` of 4,096 outcomes back, each wrapped
//! in its stream message as it travels. Throughput is in tasks; the encoded
//! size per task is printed once per message.
//! Run with `cargo bench -p brigade-proto --bench codec`.

use std::hint::black_box;

use brigade_proto::v1::{
    coordinator_message, worker_message, AssignBatch, CoordinatorMessage, Model, OutcomeStatus,
    ResultBatch, TaskAssignment, TaskOutcome, WorkerMessage, U128,
};
use criterion::{criterion_group, Criterion, Throughput};
use prost::Message;

const TASKS: u64 = 4_096;
/// Where the batch's task indices start: a batch from the middle of a
/// million-task job, so indices take their realistic varint width.
const FIRST: u64 = 500_000;

fn assign() -> CoordinatorMessage {
    let batch = AssignBatch {
        job_id: 7,
        model: Model::Async as i32,
        workload: "noop".into(),
        args: Default::default(),
        timeout_ms: 0,
        tasks: (FIRST..FIRST + TASKS)
            .map(|i| TaskAssignment {
                index: i,
                attempt: 1,
                start: i,
                end: i + 1,
            })
            .collect(),
    };
    CoordinatorMessage {
        msg: Some(coordinator_message::Msg::Assign(batch)),
    }
}

/// Outcomes as a worker sends them: `value` set (zero for noop, a wide one
/// for sum-squares), CPU and wall times of a few microseconds.
fn results(value: u128) -> WorkerMessage {
    let outcomes = (FIRST..FIRST + TASKS)
        .map(|i| TaskOutcome {
            job_id: 7,
            index: i,
            attempt: 1,
            model: Model::Async as i32,
            status: OutcomeStatus::Ok as i32,
            value: Some(U128::from(value)),
            error: String::new(),
            cpu_ns: 1_800 + i % 500,
            wall_ns: 2_400 + i % 700,
        })
        .collect();
    WorkerMessage {
        msg: Some(worker_message::Msg::Results(ResultBatch { outcomes })),
    }
}

fn bench_message<M: Message + Default>(c: &mut Criterion, name: &str, msg: &M) {
    let bytes = msg.encode_to_vec();
    println!(
        "{name}: {} bytes for {TASKS} tasks, {:.2} bytes per task",
        bytes.len(),
        bytes.len() as f64 / TASKS as f64
    );
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(TASKS));
    let mut buf = Vec::with_capacity(bytes.len());
    g.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            black_box(msg).encode(&mut buf).expect("capacity is enough");
            black_box(buf.len())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| M::decode(black_box(bytes.as_slice())).expect("valid bytes"))
    });
    g.finish();
}

fn bench_codec(c: &mut Criterion) {
    bench_message(c, "assign_batch_4096", &assign());
    bench_message(c, "result_batch_4096_noop", &results(0));
    bench_message(
        c,
        "result_batch_4096_wide_value",
        &results((1u128 << 100) + 12_345),
    );
}

criterion_group!(benches, bench_codec);

/// Runs `op` (`encode` or `decode`) on `msg` `reps` times, after the one
/// encoding that makes the bytes to decode.
fn repeat<M: Message + Default>(msg: &M, op: &str, reps: usize) {
    let bytes = msg.encode_to_vec();
    let mut buf = Vec::with_capacity(bytes.len());
    for _ in 0..reps {
        if op == "encode" {
            buf.clear();
            black_box(msg).encode(&mut buf).expect("capacity is enough");
        } else {
            black_box(M::decode(black_box(bytes.as_slice())).expect("valid bytes"));
        }
    }
}

/// `BRIGADE_BENCH_ONCE=<group>/<encode|decode|build>` runs that operation
/// 100 times outside criterion (`build`: none, the set-up to subtract), for
/// instruction counts that do not vary between runs:
/// `valgrind --tool=callgrind target/release/deps/codec-*`.
fn main() {
    if let Some(only) = std::env::var_os("BRIGADE_BENCH_ONCE") {
        let only = only.to_string_lossy();
        let (group, op) = only.split_once('/').unwrap_or((&only, "encode"));
        let reps = if op == "build" { 0 } else { 100 };
        match group {
            "assign_batch_4096" => repeat(&assign(), op, reps),
            "result_batch_4096_noop" => repeat(&results(0), op, reps),
            "result_batch_4096_wide_value" => repeat(&results((1u128 << 100) + 12_345), op, reps),
            _ => eprintln!("unknown group {group}"),
        }
        println!("{only}: {reps} x {TASKS} tasks");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
