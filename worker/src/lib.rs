//! brigade worker: the node that links to the coordinator ([`node`]), the three
//! executors that run tasks ([`executors`]: process, thread, async), the workloads
//! themselves ([`workload`]), the HTTP target the I/O workloads hit
//! ([`io_target`]) and the idle spinner every brigade process may run
//! (`--spin-us`, [`idle_spin`]).

pub mod contain;
pub mod executors;
pub mod http_client;
pub mod idle_spin;
pub mod io_target;
pub mod node;
pub mod reaper;
pub mod task;
#[cfg(test)]
pub(crate) mod test_support;
pub mod workload;
