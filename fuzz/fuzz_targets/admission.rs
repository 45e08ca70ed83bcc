//! A submission as the coordinator meets it: any bytes decoded as a
//! SubmitJobRequest, then admitted against the built-in workloads with the
//! default limits. Refusals are fine; a panic is a bug.
#![no_main]

use std::sync::OnceLock;

use brigade_coordinator::fuzz_api::{admit, AdmissionLimits};
use brigade_proto::catalog::Catalog;
use brigade_proto::v1::SubmitJobRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(brigade_worker::workload::builtin_catalog)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(SubmitJobRequest { spec: Some(spec) }) = SubmitJobRequest::decode(data) {
        let _ = admit(spec, catalog(), &AdmissionLimits::default());
    }
});
