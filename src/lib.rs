//! handoff: find lighting processors on the LAN, read their identity, claim
//! them with a button press, and relay claims to the cloud access layer.
//!
//! The binary is a thin shell over this library, so tests drive the same
//! code. Modules follow DESIGN.md:
//! - [`processor`]: the data model (MAC, serial, product, what a processor
//!   advertises); [`place`]: the Place vocabulary both ends of the relay
//!   speak; [`dirs`]: default directories;
//! - [`discovery`] finds processors over mDNS, [`lan`] chooses interfaces
//!   and makes private test networks;
//! - [`leap`] speaks the processors' wire protocol, [`tls`] configures
//!   rustls for both ports, [`identity`] keeps keys, certificates and the
//!   daemon's bundle;
//! - [`claim`]: pairing with the button, release, the takeover;
//! - [`proto`]: the relay and control messages; [`outbox`] keeps events
//!   durably and [`relay`] delivers them; [`site`] decides how a command
//!   reaches the cloud;
//! - [`daemon`]: the site service and its control socket;
//! - [`cloud`]: the reference Place service (rules, store, relay server);
//! - [`sim`]: simulated processors; [`cli`]: the command line;
//! - [`atomic_file`] is how any of them replaces a file, [`hex`] how they
//!   write bytes as hex digits and read them back, [`shutdown`] how
//!   their long-running tasks are stopped, [`metrics`] how the daemon's
//!   and the Place service's Prometheus metrics leave the process.
#![forbid(unsafe_code)]

pub mod atomic_file;
pub mod claim;
pub mod cli;
pub mod cloud;
pub mod daemon;
pub mod dirs;
pub mod discovery;
pub mod hex;
pub mod identity;
pub mod inventory;
pub mod lan;
pub mod leap;
pub mod metrics;
pub mod outbox;
pub mod place;
pub mod portal;
pub mod processor;
pub mod proto;
pub mod relay;
pub mod shutdown;
pub mod sim;
pub mod site;
pub mod tls;
