//! The brigade wire contract: generated `brigade.v1` messages and services, the
//! protocol version, conversions shared by every side, and the workload catalogue
//! (names, arguments, default kind, reduction) that the coordinator validates
//! against and the worker implements.

pub mod batch;
pub mod catalog;
pub mod connect;
pub mod convert;
pub mod output;
pub mod per_model;

pub use output::Output;
pub use per_model::{PerModel, SlotModel};

/// Generated from `proto/brigade/v1/brigade.proto`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("brigade.v1");
}

/// The encoded `FileDescriptorSet` of `brigade.v1`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/brigade_descriptor.bin"));

/// Bumped on any incompatible change to `brigade.v1` semantics. A worker with a
/// different version is refused at hello.
pub const PROTOCOL_VERSION: u32 = 3;

/// The crate version, reported by `brigade status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
