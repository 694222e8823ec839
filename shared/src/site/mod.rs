//! What every site binary (node and hub) runs the same way: the config
//! sections they share, the exclusive lock on the database, and the gRPC
//! server scaffolding (health, reflection, socket options, drain order).
//!
//! The binaries keep only what differs between a district and a hub: their
//! `[site]` section, their services and their commands.

pub mod config;
pub mod lock;
pub mod serve;
