//! `sum-squares`' loop on the sizes the benchmarks use: one W_CPU task
//! (1,500,000 squares from 0), one W_CPU_HEAVY task from the top of its
//! range (values near 4·10⁹, 5,000,000 squares), and a range whose sum
//! needs the per-element overflow check (values near 2⁶⁴). Throughput is in
//! squares. Run with `cargo bench -p brigade-worker --bench sum_squares`;
//! `-- --save-baseline NAME` / `-- --baseline NAME` compare two builds.

use std::hint::black_box;

use brigade_worker::workload::sum_squares::run;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn sum_squares(c: &mut Criterion) {
    let mut group = c.benchmark_group("sum_squares");
    let cases: [(&str, u64, u64); 3] = [
        ("w_cpu_task", 0, 1_500_000),
        ("w_cpu_heavy_task", 3_995_000_000, 4_000_000_000),
        // Near 2^64 each square is close to 2^128: the closed-form bound
        // does not fit, so every element is checked.
        ("near_2_64_checked", u64::MAX - 1_000_000, u64::MAX),
    ];
    for (name, a, b) in cases {
        group.throughput(Throughput::Elements(b - a));
        group.bench_function(name, |bench| bench.iter(|| run(black_box(a), black_box(b))));
    }
    group.finish();
}

criterion_group!(benches, sum_squares);
criterion_main!(benches);
