//! handoff: find lighting processors on the LAN, read their identity, claim
//! them with a button press, and relay claims to the cloud access layer.
//!
//! The binary is a thin shell over this library, so tests drive the same
//! code. Modules follow DESIGN.md: [`processor`] is the data model,
//! [`discovery`] finds processors over mDNS, [`leap`] speaks their wire
//! protocol, [`identity`] keeps keys and certificates and signs them as a
//! processor does, [`tls`] configures rustls for both ports, [`sim`]
//! simulates them, [`lan`] chooses interfaces and makes private test
//! networks, [`cloud`] keeps the Place rules, [`outbox`] keeps the events to relay
//! durably and [`relay`] delivers them, [`daemon`] is the site service and
//! its control socket, [`cli`] is the command line;
//! [`atomic_file`] is how any of them replaces a file, [`shutdown`] how
//! their long-running tasks are stopped.
#![forbid(unsafe_code)]

pub mod atomic_file;
pub mod claim;
pub mod cli;
pub mod cloud;
pub mod daemon;
pub mod dirs;
pub mod discovery;
pub mod identity;
pub mod lan;
pub mod leap;
pub mod outbox;
pub mod place;
pub mod processor;
pub mod proto;
pub mod relay;
pub mod shutdown;
pub mod sim;
pub mod tls;
