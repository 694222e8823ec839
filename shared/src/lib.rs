//! lapor-shared: everything a district node and a hub have in common.
//!
//! # Layout
//!
//! - [`domain`]: identifiers and the complaint/event model (no proto, no SQL).
//! - [`crypto`]: the site key, sealing of reporter identity at rest, the
//!   keyed NIK hash.
//! - [`hlc`]: the hybrid logical clock that orders events across sites.
//! - [`regions`]: the Kemendagri province and kabupaten/kota list.
//! - [`lifecycle`]: the status transition table and the fold of a complaint's
//!   events into its state.
//! - [`calendar`]: working days (weekends, holidays, cuti bersama) in
//!   Indonesia's three time zones, and the province → zone map.
//! - [`deadline`]: a complaint's LAPOR service-level deadlines, computed from
//!   its state; judged against a hub's clock.
//! - [`overdue`]: which complaints are overdue, judged on a hub's clock.
//! - [`proto`]: generated wire types and the validating conversions between
//!   them and the domain.
//! - [`replication`]: the parent and child halves of event replication.
//! - [`store`]: the site's SQLite database — the only module that speaks SQL.
//! - [`rpc`]: the gRPC services both tiers serve (`Complaints`) and the one
//!   mapping from store errors to gRPC statuses.
//! - [`site`]: what node and hub binaries run alike: shared config
//!   sections, the database lock, the gRPC server scaffolding.
//! - [`tls`]: a hub's CA, what a peer certificate says, the deny-list.
//! - [`shutdown`]: SIGTERM/SIGINT to the root cancellation token.
//! - [`telemetry`]: tracing initialisation (`RUST_LOG`, plain or JSON).
//!
//! Data flows one way through these layers: bytes from the network become
//! `proto` messages, `proto::convert` validates them into `domain` values
//! (or answers `INVALID_ARGUMENT`), and only domain values reach the `store`.

pub mod calendar;
pub mod crypto;
pub mod deadline;
pub mod domain;
pub mod hlc;
pub mod lifecycle;
pub mod overdue;
pub mod proto;
pub mod regions;
pub mod replication;
pub mod rpc;
pub mod shutdown;
pub mod site;
pub mod store;
pub mod telemetry;
pub mod tls;
