//! What a simulated processor answers on its main port: a pure function
//! from a request to its response, so every URL is tested without a socket.
//!
//! The bodies are small but shaped like real ones (pylutron-caseta's
//! `tests/responses/`): the fields clients read are there, with the
//! processor's own serial, MAC and address; everything else is left out.
//! Every response carries a `MessageBodyType` (lutron-leap-js drops one
//! without), except `204 NoContent`, which has no body to type, as QSX
//! sends it.

use serde_json::{Value, json};

use super::SimProcessor;
use crate::leap::MAIN_PORT;
use crate::leap::codec::JsonObject;
use crate::leap::message::{
    Communique, CommuniqueType, Header, LEGACY_PING_URL, PING_URL, StatusCode,
};
use crate::processor::SystemType;

/// `MessageBodyType` of every error answer.
pub const EXCEPTION_BODY_TYPE: &str = "ExceptionDetail";

/// What a request may do with a URL.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Access {
    Read,
    Subscribe,
}

/// The LEAP version a processor reports on ping (processor-protocol.md §3:
/// 1.106–1.124 seen on Caséta, 3.247 on QSX; RadioRA 3 runs QSX's
/// firmware family, so it reports the same).
pub fn leap_version(system_type: &SystemType) -> f64 {
    match system_type {
        SystemType::CasetaSmartBridge | SystemType::Ra2Select => 1.124,
        _ => 3.247,
    }
}

/// `Project.ProductType` per product line.
pub fn product_type(system_type: &SystemType) -> &'static str {
    match system_type {
        SystemType::CasetaSmartBridge | SystemType::Ra2Select => "Lutron Smart Bridge Project",
        SystemType::HomeWorksQsx => "Lutron HWQS Project",
        _ => "Lutron RadioRA 3 Project",
    }
}

/// `(ModelNumber, DeviceType)` of the processor itself.
fn model(system_type: &SystemType) -> (&'static str, &'static str) {
    match system_type {
        SystemType::CasetaSmartBridge => ("L-BDG2-WH", "SmartBridge"),
        SystemType::Ra2Select => ("RR-SEL-REP2-BL", "RA2SelectMainRepeater"),
        SystemType::HomeWorksQsx => ("HQP7-2", "HWQSProcessor"),
        _ => ("JanusProcRA3", "RadioRa3Processor"),
    }
}

fn is_bridge(system_type: &SystemType) -> bool {
    matches!(
        system_type,
        SystemType::CasetaSmartBridge | SystemType::Ra2Select
    )
}

/// A processor's root area, which holds every other (pylutron-caseta's
/// `tests/responses/ra3/areas.json`).
const ROOT_AREA: &str = "/area/3";
/// The leaf area a processor sits in, as the enclosure's equipment room.
const PROCESSOR_AREA: &str = "/area/83";

/// The processor's own device: `/device/1` on a bridge (ref §3), a
/// higher number on processors, whose device 1 is not themselves.
///
/// A bridge's device carries `FullyQualifiedName`, which pylutron-caseta
/// joins into the device's name when it loads `/device` (a `KeyError`
/// without it); a processor's carries `AssociatedArea`, which it looks up
/// in `/area` to name the processor (`_load_ra3_processor`).
fn this_device(p: &SimProcessor) -> Value {
    let (model_number, device_type) = model(&p.system_type);
    let mut device = json!({
        "Parent": {"href": "/project"},
        "SerialNumber": p.serial.0,
        "ModelNumber": model_number,
        "DeviceType": device_type,
        "FirmwareImage": {"Firmware": {"DisplayName": p.firmware()}},
        "NetworkInterfaces": [{"MACAddress": p.mac.to_string()}],
        "IsThisDevice": true,
    });
    let extra = if is_bridge(&p.system_type) {
        json!({
            "href": "/device/1",
            "Name": "Smart Bridge",
            "FullyQualifiedName": ["Smart Bridge"],
        })
    } else {
        json!({
            "href": "/device/104",
            "Name": "Enclosure Device 001",
            "AssociatedArea": {"href": PROCESSOR_AREA},
        })
    };
    if let (Some(device), Value::Object(extra)) = (device.as_object_mut(), extra) {
        device.extend(extra);
    }
    device
}

/// `/area`: a bridge has one flat area; a processor a root area with the
/// equipment room under it, as real RadioRA 3 projects have.
fn areas(p: &SimProcessor) -> Value {
    if is_bridge(&p.system_type) {
        json!({"Areas": [{"href": "/area/1", "Name": "Home", "IsLeaf": true}]})
    } else {
        json!({"Areas": [
            {"href": ROOT_AREA, "Name": "Home", "IsLeaf": false},
            {
                "href": PROCESSOR_AREA,
                "Name": "Equipment Room",
                "Parent": {"href": ROOT_AREA},
                "IsLeaf": true,
            },
        ]})
    }
}

/// The status of each of a processor's areas: nobody in them, no scene.
fn area_statuses() -> Value {
    [ROOT_AREA, PROCESSOR_AREA]
        .iter()
        .map(|area| {
            json!({
                "href": format!("{area}/status"),
                "OccupancyStatus": "Unknown",
                "CurrentScene": null,
            })
        })
        .collect()
}

/// Whether `url` is `/area/<id>/<what>` of one of a processor's areas.
fn is_processor_area_url(p: &SimProcessor, url: &str, what: &str) -> bool {
    !is_bridge(&p.system_type)
        && [ROOT_AREA, PROCESSOR_AREA]
            .iter()
            .any(|area| url.strip_prefix(area) == Some(what))
}

/// Answers one request.
pub fn respond(p: &SimProcessor, request: &Communique) -> Communique {
    if !request.communique_type.is_request() {
        return bad_request(
            request,
            format!("{} is not a request", request.communique_type),
        );
    }
    let Some(url) = request.url() else {
        return bad_request(request, "the request has no Url".into());
    };
    let Some((access, body_type, body)) = resource(p, url) else {
        return exception(
            request,
            StatusCode::NOT_FOUND,
            format!("{url} does not exist"),
        );
    };
    let allowed = match access {
        Access::Read => request.communique_type == CommuniqueType::ReadRequest,
        // A subscription also reads the current state.
        Access::Subscribe => matches!(
            request.communique_type,
            CommuniqueType::SubscribeRequest | CommuniqueType::ReadRequest
        ),
    };
    if !allowed {
        return exception(
            request,
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not allowed on {url}",
                request.communique_type.as_str()
            ),
        );
    }
    match body {
        None => Communique::no_content(request),
        Some(body) => {
            Communique::response_to(request, StatusCode::OK, Some(body_type.into()), Some(body))
        }
    }
}

/// What a URL holds: who may ask, its body type, and its body (`None`:
/// `204 NoContent`).
fn resource(p: &SimProcessor, url: &str) -> Option<(Access, &'static str, Option<Value>)> {
    let read = |body_type, body| Some((Access::Read, body_type, Some(body)));
    match url {
        PING_URL | LEGACY_PING_URL => read(
            "OnePingResponse",
            json!({"PingResponse": {"LEAPVersion": leap_version(&p.system_type)}}),
        ),
        "/server" => read(
            "MultipleServerDefinition",
            json!({"Servers": [{
                "href": "/server/1",
                "Type": "LEAP",
                "NetworkInterfaces": [{"href": "/networkinterface/1"}],
                "EnableState": "Enabled",
                "LEAPProperties": {"PairingList": {"href": "/server/leap/pairinglist"}},
                "Endpoints": [{"Protocol": "TCP", "Port": MAIN_PORT}],
            }]}),
        ),
        "/project" => read(
            "OneProjectDefinition",
            json!({"Project": {
                "href": "/project",
                "Name": format!("{} {}", p.system_type.short_name(), p.serial.id()),
                "ProductType": product_type(&p.system_type),
                "MasterDeviceList": {"Devices": [{"href": this_device(p)["href"]}]},
            }}),
        ),
        // QSX answers a bare /device with 204 and no body (ref §3).
        "/device" if p.system_type == SystemType::HomeWorksQsx => {
            Some((Access::Read, "MultipleDeviceDefinition", None))
        }
        "/device" | "/device?where=IsThisDevice:true" => read(
            "MultipleDeviceDefinition",
            json!({"Devices": [this_device(p)]}),
        ),
        "/networkinterface/1" => read(
            "OneNetworkInterfaceDefinition",
            json!({"NetworkInterface": {
                "href": "/networkinterface/1",
                "MACAddress": p.mac.to_string(),
                "IPv4Properties": {"Type": "Static", "IP": p.address.to_string()},
            }}),
        ),
        "/area" => read("MultipleAreaDefinition", areas(p)),
        // A processor's areas hold no keypads or zones of the simulator's:
        // a real processor answers such an empty collection with 204 and
        // no body (pylutron-caseta's
        // `tests/responses/ra3/area/3/controlstation.json`), as it does
        // for the other devices of a processor that has none.
        _ if is_processor_area_url(p, url, "/associatedcontrolstation") => {
            Some((Access::Read, "MultipleControlStationDefinition", None))
        }
        _ if is_processor_area_url(p, url, "/associatedzone") => {
            Some((Access::Read, "MultipleZoneDefinition", None))
        }
        "/device?where=IsThisDevice:false" if !is_bridge(&p.system_type) => {
            Some((Access::Read, "MultipleDeviceDefinition", None))
        }
        // What processors' clients subscribe to (pylutron-caseta's
        // `tests/responses/ra3/zonestatus.json`, `area/status-subscribe.json`).
        "/zone/status" if !is_bridge(&p.system_type) => Some((
            Access::Subscribe,
            "MultipleZoneStatus",
            Some(json!({"ZoneStatuses": []})),
        )),
        "/area/status" if !is_bridge(&p.system_type) => Some((
            Access::Subscribe,
            "MultipleAreaStatus",
            Some(json!({"AreaStatuses": area_statuses()})),
        )),
        "/virtualbutton" => read(
            "MultipleVirtualButtonDefinition",
            json!({"VirtualButtons": []}),
        ),
        "/button" => read("MultipleButtonDefinition", json!({"Buttons": []})),
        "/occupancygroup" => read(
            "MultipleOccupancyGroupDefinition",
            json!({"OccupancyGroups": []}),
        ),
        "/occupancygroup/status" => Some((
            Access::Subscribe,
            "MultipleOccupancyGroupStatus",
            Some(json!({"OccupancyGroupStatuses": []})),
        )),
        "/system/away/1/status" => Some((
            Access::Subscribe,
            "OneAwayStatusDefinition",
            Some(json!({"AwayStatus": {
                "href": "/system/away/1/status",
                "EnabledState": "Disabled",
            }})),
        )),
        _ => None,
    }
}

/// An error answer: the request's response type (or `ExceptionResponse`),
/// the status, and the reason.
pub fn exception(request: &Communique, status: StatusCode, message: String) -> Communique {
    Communique::response_to(
        request,
        status,
        Some(EXCEPTION_BODY_TYPE.into()),
        Some(json!({"Message": message})),
    )
}

fn bad_request(request: &Communique, message: String) -> Communique {
    exception(request, StatusCode::BAD_REQUEST, message)
}

/// `400 BadRequest` for a line that is no communiqué at all; echoes its
/// `ClientTag` and `Url` when it has them.
pub fn unreadable(object: Option<&JsonObject>, message: String) -> Communique {
    let header = object.and_then(|o| o.get("Header"));
    let field = |name: &str| {
        header
            .and_then(|h| h.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Communique {
        communique_type: CommuniqueType::ExceptionResponse,
        header: Header {
            status_code: Some(StatusCode::BAD_REQUEST),
            url: field("Url"),
            message_body_type: Some(EXCEPTION_BODY_TYPE.into()),
            client_tag: field("ClientTag"),
            content_type: None,
        },
        body: Some(json!({"Message": message})),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::processor::{Mac, Serial};

    fn processor(system_type: SystemType) -> SimProcessor {
        SimProcessor {
            serial: Serial(12_345_678),
            mac: Mac([0x02, 0x4c, 0, 0xbc, 0x61, 0x4e]),
            address: Ipv4Addr::new(127, 0, 1, 1),
            system_type,
            instance: "Lutron Status".into(),
        }
    }

    fn ask(p: &SimProcessor, kind: CommuniqueType, url: &str) -> Communique {
        let request = Communique::request(kind, Some("tag".into()), url, None);
        respond(p, &request)
    }

    fn read(p: &SimProcessor, url: &str) -> Communique {
        ask(p, CommuniqueType::ReadRequest, url)
    }

    const URLS: [&str; 12] = [
        PING_URL,
        LEGACY_PING_URL,
        "/server",
        "/project",
        "/device",
        "/device?where=IsThisDevice:true",
        "/networkinterface/1",
        "/area",
        "/virtualbutton",
        "/button",
        "/occupancygroup",
        "/server/2/id",
    ];

    #[test]
    fn every_answer_with_a_body_says_its_body_type_and_echoes_the_request() {
        for system_type in [
            SystemType::CasetaSmartBridge,
            SystemType::RadioRa3,
            SystemType::HomeWorksQsx,
        ] {
            let p = processor(system_type.clone());
            for url in URLS {
                let r = read(&p, url);
                assert_eq!(r.client_tag(), Some("tag"), "{url}");
                assert_eq!(r.url(), Some(url));
                if r.body.is_some() {
                    assert!(
                        r.header.message_body_type.is_some(),
                        "{system_type:?} {url}"
                    );
                }
            }
        }
    }

    #[test]
    fn ping_reports_the_leap_version_of_the_product_line() {
        let caseta = processor(SystemType::CasetaSmartBridge);
        let qsx = processor(SystemType::HomeWorksQsx);
        for url in [PING_URL, LEGACY_PING_URL] {
            let r = read(&caseta, url);
            assert_eq!(r.status(), Some(&StatusCode::OK));
            assert_eq!(
                r.header.message_body_type.as_deref(),
                Some("OnePingResponse")
            );
            assert_eq!(r.leap_version(), Some(1.124));
            assert_eq!(read(&qsx, url).leap_version(), Some(3.247));
        }
    }

    #[test]
    fn this_device_gives_serial_as_integer_and_mac() {
        let p = processor(SystemType::RadioRa3);
        let r = read(&p, "/device?where=IsThisDevice:true");
        let device = &r.body.as_ref().unwrap()["Devices"][0];
        assert_eq!(device["SerialNumber"], json!(12_345_678));
        assert_eq!(device["DeviceType"], "RadioRa3Processor");
        assert_eq!(
            device["NetworkInterfaces"][0]["MACAddress"],
            "02:4c:00:bc:61:4e"
        );
    }

    #[test]
    fn project_product_type_follows_the_system_type() {
        for (t, want) in [
            (SystemType::CasetaSmartBridge, "Lutron Smart Bridge Project"),
            (SystemType::RadioRa3, "Lutron RadioRA 3 Project"),
            (SystemType::HomeWorksQsx, "Lutron HWQS Project"),
        ] {
            let r = read(&processor(t), "/project");
            assert_eq!(r.body.unwrap()["Project"]["ProductType"], want);
        }
    }

    #[test]
    fn caseta_lists_the_bridge_as_device_1_and_qsx_answers_204_without_body() {
        let r = read(&processor(SystemType::CasetaSmartBridge), "/device");
        assert_eq!(r.body.unwrap()["Devices"][0]["href"], "/device/1");
        let r = read(&processor(SystemType::HomeWorksQsx), "/device");
        assert_eq!(r.status(), Some(&StatusCode::NO_CONTENT));
        assert_eq!(r.body, None);
    }

    #[test]
    fn unknown_url_is_404_wrong_type_405_and_non_request_400() {
        let p = processor(SystemType::CasetaSmartBridge);
        assert_eq!(
            read(&p, "/server/2/id").status(),
            Some(&StatusCode::NOT_FOUND)
        );
        let r = ask(&p, CommuniqueType::UpdateRequest, "/project");
        assert_eq!(r.status(), Some(&StatusCode::METHOD_NOT_ALLOWED));
        assert_eq!(r.communique_type, CommuniqueType::UpdateResponse);
        assert_eq!(
            r.header.message_body_type.as_deref(),
            Some(EXCEPTION_BODY_TYPE)
        );
        let r = ask(&p, CommuniqueType::ReadResponse, "/project");
        assert_eq!(r.status(), Some(&StatusCode::BAD_REQUEST));
        assert_eq!(r.communique_type, CommuniqueType::ExceptionResponse);
    }

    #[test]
    fn subscriptions_answer_with_their_status_bodies() {
        let p = processor(SystemType::CasetaSmartBridge);
        for url in ["/occupancygroup/status", "/system/away/1/status"] {
            let r = ask(&p, CommuniqueType::SubscribeRequest, url);
            assert_eq!(r.status(), Some(&StatusCode::OK), "{url}");
            assert_eq!(r.communique_type, CommuniqueType::SubscribeResponse);
            assert!(r.header.message_body_type.is_some());
        }
        let r = ask(&p, CommuniqueType::SubscribeRequest, "/project");
        assert_eq!(r.status(), Some(&StatusCode::METHOD_NOT_ALLOWED));
    }

    #[test]
    fn a_bridge_device_has_the_fully_qualified_name_pylutron_joins() {
        let r = read(&processor(SystemType::CasetaSmartBridge), "/device");
        let device = &r.body.unwrap()["Devices"][0];
        assert_eq!(device["FullyQualifiedName"], json!(["Smart Bridge"]));
    }

    #[test]
    fn a_processor_sits_in_one_of_its_areas() {
        let p = processor(SystemType::RadioRa3);
        let r = read(&p, "/device?where=IsThisDevice:true");
        let area = r.body.unwrap()["Devices"][0]["AssociatedArea"]["href"].clone();
        let areas = read(&p, "/area").body.unwrap();
        let hrefs: Vec<_> = areas["Areas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["href"].clone())
            .collect();
        assert!(hrefs.contains(&area), "{area} not in {hrefs:?}");
    }

    #[test]
    fn a_processors_empty_collections_answer_204_and_unknown_areas_404() {
        let p = processor(SystemType::RadioRa3);
        for url in [
            "/area/3/associatedcontrolstation",
            "/area/83/associatedzone",
            "/device?where=IsThisDevice:false",
        ] {
            let r = read(&p, url);
            assert_eq!(r.status(), Some(&StatusCode::NO_CONTENT), "{url}");
            assert_eq!(r.body, None, "{url}");
        }
        for url in ["/area/4/associatedzone", "/area/83/associatedzones"] {
            assert_eq!(
                read(&p, url).status(),
                Some(&StatusCode::NOT_FOUND),
                "{url}"
            );
        }
        let bridge = processor(SystemType::CasetaSmartBridge);
        assert_eq!(
            read(&bridge, "/area/1/associatedzone").status(),
            Some(&StatusCode::NOT_FOUND)
        );
    }

    #[test]
    fn processors_take_zone_and_area_status_subscriptions() {
        let p = processor(SystemType::RadioRa3);
        let r = ask(&p, CommuniqueType::SubscribeRequest, "/zone/status");
        assert_eq!(r.status(), Some(&StatusCode::OK));
        assert_eq!(r.body.unwrap()["ZoneStatuses"], json!([]));
        let r = ask(&p, CommuniqueType::SubscribeRequest, "/area/status");
        assert_eq!(
            r.header.message_body_type.as_deref(),
            Some("MultipleAreaStatus")
        );
        assert_eq!(
            r.body.unwrap()["AreaStatuses"][1]["href"],
            "/area/83/status"
        );
        let bridge = processor(SystemType::CasetaSmartBridge);
        let r = ask(&bridge, CommuniqueType::SubscribeRequest, "/zone/status");
        assert_eq!(r.status(), Some(&StatusCode::NOT_FOUND));
    }
}
