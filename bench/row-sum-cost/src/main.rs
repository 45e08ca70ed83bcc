//! Times 1,000,000 result-row checksums (integer outputs, as W_NOOP_1M
//! stores them), three times, with the coordinator's own code.

#[allow(dead_code)]
#[path = "../../../coordinator/src/row_sum.rs"]
mod row_sum;

fn main() {
    let n = 1_000_000i64;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let mut acc = 0i64;
        for i in 0..n {
            acc ^= row_sum::result(&row_sum::ResultCols {
                job: 1,
                idx: i,
                lo: i,
                hi: 0,
                output: None,
                attempts: 1,
                worker: 1,
                model: 2,
                cpu_ns: 1_000 + i,
                wall_ns: 2_000 + i,
                seq: i,
            });
        }
        let e = t.elapsed();
        println!(
            "{n} result-row checksums: {e:?} ({:.1} ns/row) [{acc:x}]",
            e.as_nanos() as f64 / n as f64
        );
    }
}
