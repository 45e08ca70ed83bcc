//! brigade worker: the node that links to the coordinator ([`node`]), the three
//! executors that run tasks ([`exec`]: process, thread, async), the workloads
//! themselves ([`workload`]) and the HTTP target the I/O workloads hit
//! ([`io_target`]).

pub mod exec;
pub mod http_client;
pub mod io_target;
pub mod node;
pub mod spin;
pub mod workload;
