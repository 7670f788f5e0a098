//! backproof: proves that backups can be restored, and keeps the evidence.
//!
//! Data flows one way: [`source`] lists artifacts, [`catalog`] groups them
//! into backups with their manifests, [`verify`] streams each once through
//! [`digest`] and [`inspect`], producing [`finding`]s that [`report`] renders.
//! [`audit`] strings the stages together for each command.

pub mod catalog;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod compliance;
pub mod config;
pub mod demo;
pub mod digest;
pub mod escape;
pub mod expectation;
pub mod finding;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod inspect;
pub mod interrupt;
pub mod ledger;
pub mod logging;
pub mod manifest;
pub mod notify;
pub mod policy;
pub mod progress;
pub mod redact;
pub mod report;
pub mod restore;
pub mod shard;
pub mod source;
pub mod tomlerr;
pub mod verify;
