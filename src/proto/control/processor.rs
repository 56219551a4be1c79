//! A processor on the control socket: the facts discovery read, from which
//! the client rebuilds the same [`ProcessorInfo`] a standalone discover
//! would have.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::super::error::ProtoError;
use super::super::frame::canonical;
use super::super::relay::to_value;
use crate::processor::{DevClass, Mac, ProcessorInfo, Serial, SystemType};

/// The `processor` map of `control.cddl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorWire {
    #[serde(rename = "sn", default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<Serial>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::proto::wire::opt_mac"
    )]
    pub mac: Option<Mac>,
    pub host: String,
    #[serde(rename = "inst")]
    pub instance: String,
    #[serde(rename = "type")]
    pub service_type: String,
    pub port: u16,
    #[serde(rename = "addrs")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devclass: Option<u32>,
    #[serde(rename = "fw", default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(rename = "fw-st", default, skip_serializing_if = "Option::is_none")]
    pub fw_status: Option<String>,
    #[serde(rename = "nw-st", default, skip_serializing_if = "Option::is_none")]
    pub nw_status: Option<String>,
    #[serde(rename = "st-st", default, skip_serializing_if = "Option::is_none")]
    pub st_status: Option<String>,
    #[serde(rename = "claim-st", default, skip_serializing_if = "Option::is_none")]
    pub claim_status: Option<String>,
    #[serde(rename = "warn", default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl From<&ProcessorInfo> for ProcessorWire {
    fn from(p: &ProcessorInfo) -> ProcessorWire {
        ProcessorWire {
            serial: p.serial,
            mac: p.mac,
            host: p.host.clone(),
            instance: p.instance.clone(),
            service_type: p.service_type.clone(),
            port: p.port,
            addresses: p.addresses.iter().map(IpAddr::to_string).collect(),
            systype: p.systype.clone(),
            devclass: p.devclass.map(|d| d.0),
            firmware: p.firmware.clone(),
            fw_status: p.fw_status.clone(),
            nw_status: p.nw_status.clone(),
            st_status: p.st_status.clone(),
            claim_status: p.claim_status.clone(),
            warnings: p.warnings.clone(),
        }
    }
}

impl TryFrom<ProcessorWire> for ProcessorInfo {
    type Error = String;

    /// The product line follows from `SYSTYPE`, else `DEVCLASS`, as
    /// [`ProcessorInfo::from_record`] decides it.
    fn try_from(w: ProcessorWire) -> Result<ProcessorInfo, String> {
        let addresses = w
            .addresses
            .iter()
            .map(|a| {
                a.parse::<IpAddr>()
                    .map_err(|_| format!("\"{a}\" in \"addrs\" is not an IP address"))
            })
            .collect::<Result<_, _>>()?;
        let devclass = w.devclass.map(DevClass);
        let system_type = match &w.systype {
            Some(st) => Some(SystemType::from_systype(st)),
            None => devclass.and_then(|d| d.system_type()),
        };
        Ok(ProcessorInfo {
            serial: w.serial,
            mac: w.mac,
            host: w.host,
            instance: w.instance,
            service_type: w.service_type,
            port: w.port,
            addresses,
            systype: w.systype,
            system_type,
            devclass,
            firmware: w.firmware,
            fw_status: w.fw_status,
            nw_status: w.nw_status,
            st_status: w.st_status,
            claim_status: w.claim_status,
            warnings: w.warnings,
        })
    }
}

/// How many bytes `p` takes inside a `processors` list.
pub(super) fn encoded_len(p: &ProcessorInfo) -> Result<usize, ProtoError> {
    let value = canonical(to_value(&ProcessorWire::from(p))?);
    let mut counter = ByteCounter(0);
    ciborium::into_writer(&value, &mut counter).map_err(|e| ProtoError::Unencodable {
        reason: e.to_string(),
    })?;
    Ok(counter.0)
}

/// Counts what is written, keeps nothing.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
