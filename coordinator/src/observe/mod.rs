//! Seeing a running coordinator: Prometheus metrics ([`metrics`]), the
//! dashboard's state ([`dashboard`]) and the HTTP port serving both with
//! the dashboard page ([`http`]). The actor fills the snapshots; nothing
//! here touches the scheduler.

pub(crate) mod dashboard;
pub(crate) mod http;
pub(crate) mod metrics;
