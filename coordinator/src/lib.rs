//! brigade coordinator: job admission ([`admission`]), the pure scheduling
//! core ([`sched`]) and the gRPC services around it ([`service`]).

pub mod admission;
pub mod sched;
