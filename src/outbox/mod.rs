//! The durable outbox: every event the daemon relays to the cloud, kept on
//! disk until the cloud has acknowledged it.
//!
//! Two halves, in the manner of quinn's protocol core:
//! - [`OutboxCore`] is the pure state machine: append (sequence numbers),
//!   take the next batch in order, settle by ack, retry timing after a
//!   failed connection ([`Backoff`], jitter passed in). No I/O, no clock.
//! - [`Outbox`] keeps the core's events in one redb file. [`Outbox::append`]
//!   returns only once the event is committed with immediate durability;
//!   appends and acks from every task are group-committed by one writer
//!   thread, so the cost is one fsync per batch, not per event.
//!
//! Delivery order is global (sequence order), which keeps the order of each
//! Place's events: an event is never sent before an earlier one that is not
//! yet acknowledged, except on the same connection right behind it, where
//! the stream keeps the order.
//!
//! The relay ([`crate::relay`]) moves the frames; the outcome of each event
//! (applied, duplicate, refused with the rule's guidance) is kept so the
//! command that caused it can read it ([`Outbox::outcome`],
//! [`Outbox::wait_outcome`]).

mod core;
mod error;
mod record;
mod store;

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod store_tests;

pub use core::{AckEffect, Backoff, OutboxCore, Stats};
pub use error::OutboxError;
pub use store::{Outbox, Quarantined};

/// The file name of the outbox inside the state directory.
pub const FILE_NAME: &str = "outbox.redb";
