//! brigade coordinator: job admission ([`admission`]), the pure scheduling
//! core ([`sched`]), the actor that owns it ([`actor`]) and the gRPC services
//! around it ([`service`]).

pub mod actor;
pub mod admission;
pub mod sched;
pub mod service;
pub mod store;
mod writer;

pub use actor::CoordinatorConfig;
pub use service::{serve, Coordinator, ServeError};
