//! The wire codec on the hot path: one assignment of 4,096 tasks down a
//! worker's stream and one batch of 4,096 outcomes back, each wrapped in its
//! stream message as it travels, in the compact forms the link uses
//! (`runs` over the job's grid; OK outcomes in varint columns, see
//! `brigade_proto::batch`) and, for comparison, spelled out one message per
//! task (the protocol-1 forms). Each side is measured from its own records
//! to bytes (`encode`) and from bytes back to records (`decode`), so the
//! compact forms pay for building and walking their columns. Throughput is
//! in tasks; the encoded size per task is printed once per message.
//! Run with `cargo bench -p brigade-proto --bench codec`.

use std::hint::black_box;

use brigade_proto::batch::{self, AssignedTask, OkColumns, OkOutcome};
use brigade_proto::v1::{
    coordinator_message, worker_message, AssignBatch, CoordinatorMessage, Model, OutcomeStatus,
    ResultBatch, TaskAssignment, TaskGrid, TaskOutcome, WorkerMessage, U128,
};
use brigade_proto::Output;
use criterion::{criterion_group, Criterion, Throughput};
use prost::Message;

const TASKS: u64 = 4_096;
/// Where the batch's task indices start: a batch from the middle of a
/// million-task job, so indices take their realistic varint width.
const FIRST: u64 = 500_000;

/// The leases of one assignment, as the scheduler hands them out.
fn leases() -> Vec<AssignedTask> {
    (FIRST..FIRST + TASKS)
        .map(|i| AssignedTask {
            index: i,
            attempt: 1,
            start: i,
            end: i + 1,
        })
        .collect()
}

/// Outcomes as a worker's executors report them: a value (zero for noop,
/// a wide one for sum-squares), CPU and wall times of a few microseconds,
/// and neighbours finishing a little out of order.
fn outcomes(value: u128) -> Vec<OkOutcome> {
    (0..TASKS)
        .map(|k| OkOutcome {
            index: FIRST + (k ^ 1),
            attempt: 1,
            value: Output::Int(value),
            cpu_ns: 1_800 + k % 500,
            wall_ns: 2_400 + k % 700,
            ready_ns: 0,
        })
        .collect()
}

/// One way to put a batch of records on the wire and take it off again.
trait Form {
    type Record;
    fn encode(records: &[Self::Record], buf: &mut Vec<u8>);
    /// Decodes and walks every record; returns a checksum of them.
    fn decode(bytes: &[u8]) -> u64;
}

fn assign_header(tasks: Vec<TaskAssignment>, grid: Option<TaskGrid>) -> AssignBatch {
    AssignBatch {
        job_id: 7,
        model: Model::Async as i32,
        workload: "noop".into(),
        tasks,
        grid,
        ..Default::default()
    }
}

fn assign_message(batch: AssignBatch) -> CoordinatorMessage {
    CoordinatorMessage {
        msg: Some(coordinator_message::Msg::Assign(batch)),
    }
}

fn decode_assign(bytes: &[u8]) -> u64 {
    let m = CoordinatorMessage::decode(bytes).expect("valid bytes");
    let Some(coordinator_message::Msg::Assign(b)) = m.msg else {
        panic!("not an assignment")
    };
    let tasks = batch::assigned_tasks(&b).expect("well formed");
    tasks.iter().map(|t| t.index ^ t.end).sum()
}

/// Assignments as runs of consecutive indices over the job's grid.
struct AssignRuns;
impl Form for AssignRuns {
    type Record = AssignedTask;
    fn encode(records: &[AssignedTask], buf: &mut Vec<u8>) {
        let mut b = assign_header(
            Vec::new(),
            Some(TaskGrid {
                start: 0,
                end: 1_000_000,
                chunk: 1,
            }),
        );
        b.runs = batch::runs(records.iter().map(|t| (t.index, t.attempt)));
        assign_message(b).encode(buf).expect("vec grows");
    }
    fn decode(bytes: &[u8]) -> u64 {
        decode_assign(bytes)
    }
}

/// Assignments spelled out task by task.
struct AssignSpelled;
impl Form for AssignSpelled {
    type Record = AssignedTask;
    fn encode(records: &[AssignedTask], buf: &mut Vec<u8>) {
        let tasks = records
            .iter()
            .map(|t| TaskAssignment {
                index: t.index,
                attempt: t.attempt,
                start: t.start,
                end: t.end,
            })
            .collect();
        assign_message(assign_header(tasks, None))
            .encode(buf)
            .expect("vec grows");
    }
    fn decode(bytes: &[u8]) -> u64 {
        decode_assign(bytes)
    }
}

fn results_message(batch: ResultBatch) -> WorkerMessage {
    WorkerMessage {
        msg: Some(worker_message::Msg::Results(batch)),
    }
}

fn decode_results(bytes: &[u8]) -> ResultBatch {
    let m = WorkerMessage::decode(bytes).expect("valid bytes");
    let Some(worker_message::Msg::Results(b)) = m.msg else {
        panic!("not results")
    };
    b
}

fn checksum(index: u64, value: u128, wall_ns: u64) -> u64 {
    index ^ (value as u64) ^ wall_ns
}

/// OK outcomes column by column.
struct ResultColumns;
impl Form for ResultColumns {
    type Record = OkOutcome;
    fn encode(records: &[OkOutcome], buf: &mut Vec<u8>) {
        let mut c = OkColumns::new(7, Model::Async);
        for o in records {
            c.push(o.clone());
        }
        let batch = ResultBatch {
            outcomes: Vec::new(),
            ok: vec![c.finish()],
        };
        results_message(batch).encode(buf).expect("vec grows");
    }
    fn decode(bytes: &[u8]) -> u64 {
        let b = decode_results(bytes);
        b.ok.iter()
            .flat_map(|c| c.outcomes().expect("columns line up"))
            .map(|o| checksum(o.index, o.value.as_int().unwrap_or(0), o.wall_ns))
            .sum()
    }
}

/// One `TaskOutcome` message per outcome.
struct ResultSpelled;
impl Form for ResultSpelled {
    type Record = OkOutcome;
    fn encode(records: &[OkOutcome], buf: &mut Vec<u8>) {
        let outcomes = records
            .iter()
            .map(|o| TaskOutcome {
                job_id: 7,
                index: o.index,
                attempt: o.attempt,
                model: Model::Async as i32,
                status: OutcomeStatus::Ok as i32,
                value: o.value.as_int().map(U128::from),
                output: None,
                error: String::new(),
                cpu_ns: o.cpu_ns,
                wall_ns: o.wall_ns,
                ready_ns: o.ready_ns,
            })
            .collect();
        let batch = ResultBatch {
            outcomes,
            ok: Vec::new(),
        };
        results_message(batch).encode(buf).expect("vec grows");
    }
    fn decode(bytes: &[u8]) -> u64 {
        decode_results(bytes)
            .outcomes
            .iter()
            .map(|o| checksum(o.index, o.value.map(u128::from).unwrap_or(0), o.wall_ns))
            .sum()
    }
}

fn bench_form<F: Form>(c: &mut Criterion, name: &str, records: &[F::Record]) {
    let mut bytes = Vec::new();
    F::encode(records, &mut bytes);
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
            F::encode(black_box(records), &mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| F::decode(black_box(bytes.as_slice())))
    });
    g.finish();
}

const WIDE: u128 = (1u128 << 100) + 12_345;

fn bench_codec(c: &mut Criterion) {
    bench_form::<AssignRuns>(c, "assign_runs_4096", &leases());
    bench_form::<AssignSpelled>(c, "assign_spelled_4096", &leases());
    bench_form::<ResultColumns>(c, "results_columns_4096_noop", &outcomes(0));
    bench_form::<ResultSpelled>(c, "results_spelled_4096_noop", &outcomes(0));
    bench_form::<ResultColumns>(c, "results_columns_4096_wide", &outcomes(WIDE));
    bench_form::<ResultSpelled>(c, "results_spelled_4096_wide", &outcomes(WIDE));
}

criterion_group!(benches, bench_codec);

/// Runs `op` (`encode` or `decode`) `reps` times, after the one encoding
/// that makes the bytes to decode.
fn repeat<F: Form>(records: &[F::Record], op: &str, reps: usize) {
    let mut bytes = Vec::new();
    F::encode(records, &mut bytes);
    let mut buf = Vec::with_capacity(bytes.len());
    for _ in 0..reps {
        if op == "encode" {
            buf.clear();
            F::encode(black_box(records), &mut buf);
        } else {
            black_box(F::decode(black_box(bytes.as_slice())));
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
            "assign_runs_4096" => repeat::<AssignRuns>(&leases(), op, reps),
            "assign_spelled_4096" => repeat::<AssignSpelled>(&leases(), op, reps),
            "results_columns_4096_noop" => repeat::<ResultColumns>(&outcomes(0), op, reps),
            "results_spelled_4096_noop" => repeat::<ResultSpelled>(&outcomes(0), op, reps),
            "results_columns_4096_wide" => repeat::<ResultColumns>(&outcomes(WIDE), op, reps),
            "results_spelled_4096_wide" => repeat::<ResultSpelled>(&outcomes(WIDE), op, reps),
            _ => eprintln!("unknown group {group}"),
        }
        println!("{only}: {reps} x {TASKS} tasks");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
