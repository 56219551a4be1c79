//! The data model: what a processor is, as handoff knows it.
//!
//! Everything here is pure: parsing and printing of MAC addresses, serials,
//! product lines, and the interpretation of a DNS-SD record into a
//! [`ProcessorInfo`].

mod info;
mod kind;
mod mac;
mod text;

pub use info::{MAX_FIELD_LEN, ProcessorInfo, ProcessorJson, ServiceRecord, TxtEntry};
pub use kind::{DevClass, Serial, SystemType};
pub use mac::{Mac, MacParseError};
pub use text::{field_text, printable, printable_but};
