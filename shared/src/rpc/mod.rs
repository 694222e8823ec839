//! gRPC services and status mapping shared by the node and the hub.
//!
//! - [`caller`]: who is calling and whether they may see reporter identity
//!   (the seam where mutual TLS will supply the role).
//! - [`complaints`]: the `Complaints` read service over a site's store.
//! - [`intake`]: the `Intake` service (Submit at nodes, AddEvent everywhere).
//! - [`status`]: the one mapping from store errors to gRPC statuses.
//!
//! Handlers here validate wire messages into domain values (through
//! `crate::proto::convert`) and call the store; they never hold SQL or
//! business rules of their own.

pub mod caller;
pub mod complaints;
pub mod intake;
pub mod status;
