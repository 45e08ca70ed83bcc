//! brigade coordinator: job admission, the pure scheduling core, the actor
//! that owns it, the durable store and the gRPC services around them.
//!
//! The public surface is what a program needs to run a coordinator:
//! [`serve`] (or [`Coordinator::open`] then [`Coordinator::serve`]) with a
//! [`CoordinatorConfig`] (its [`AdmissionLimits`] and defaults), and the
//! errors it returns ([`ServeError`], [`StoreError`]); with
//! [`Coordinator::with_http`], an HTTP port serving the dashboard and
//! Prometheus metrics. Everything else is
//! private; only the actor and service edge know the wire protocol, the
//! scheduling core speaks its own types.

mod actor;
mod admission;
pub mod auth;
mod inputs;
mod observe;
mod peers;
mod row_sum;
mod sched;
mod service;
mod state_lock;
mod store;
mod testing;
mod wal_check;
mod writer;

pub use actor::{CoordinatorConfig, Retention, ServerTls};
pub use admission::AdmissionLimits;
pub use service::{serve, Coordinator, ServeError};
pub use store::StoreError;

/// The scheduling core as the criterion bench (`benches/sched.rs`) drives
/// it, with the builders the unit tests use too: a bench is a crate of its
/// own and sees only public items. Not a supported API: it changes with the
/// core.
/// What the fuzz targets (fuzz/) drive: admission as a submission meets it.
#[doc(hidden)]
pub mod fuzz_api {
    pub use crate::admission::{admit, AdmissionLimits};
}

#[doc(hidden)]
pub mod bench_api {
    pub use crate::sched::{Action, JobState, SchedConfig, Scheduler, WorkerId};
    pub use crate::testing::{hello, ok, plan};
}
