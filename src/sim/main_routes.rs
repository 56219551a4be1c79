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
use super::house::{House, PROCESSOR_DEVICE_ID};
use super::house_routes::{self, device_json};
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

pub fn is_bridge(system_type: &SystemType) -> bool {
    matches!(
        system_type,
        SystemType::CasetaSmartBridge | SystemType::Ra2Select
    )
}

/// The processor's own device, `/device/1` on every product line (ref §3
/// for Caséta; handoff's choice elsewhere, which keeps its id out of the
/// house's number space).
///
/// A bridge's device carries `FullyQualifiedName`, which pylutron-caseta
/// joins into the device's name when it loads `/device` (a `KeyError`
/// without it); a processor's carries `AssociatedArea`, which it looks up
/// in `/area` to name the processor (`_load_ra3_processor`).
fn this_device(p: &SimProcessor, house: &House) -> Value {
    let (model_number, device_type) = model(&p.system_type);
    let name = if is_bridge(&p.system_type) {
        "Smart Bridge"
    } else {
        "Enclosure Device 001"
    };
    json!({
        "href": format!("/device/{PROCESSOR_DEVICE_ID}"),
        "Name": name,
        "FullyQualifiedName": [name],
        "Parent": {"href": "/project"},
        "SerialNumber": p.serial.0,
        "ModelNumber": model_number,
        "DeviceType": device_type,
        "FirmwareImage": {"Firmware": {"DisplayName": p.firmware()}},
        "NetworkInterfaces": [{"MACAddress": p.mac.to_string()}],
        "AssociatedArea": {"href": format!("/area/{}", house.processor_area())},
        "IsThisDevice": true,
    })
}

/// Every device: the processor first, then the house's.
fn all_devices(p: &SimProcessor, house: &House) -> Vec<Value> {
    std::iter::once(this_device(p, house))
        .chain(house.devices.iter().map(|d| device_json(house, d)))
        .collect()
}

/// Answers one request.
pub fn respond(p: &SimProcessor, house: &House, request: &Communique) -> Communique {
    if !request.communique_type.is_request() {
        return bad_request(
            request,
            format!("{} is not a request", request.communique_type),
        );
    }
    let Some(url) = request.url() else {
        return bad_request(request, "the request has no Url".into());
    };
    let Some((access, body_type, body)) = resource(p, house, url) else {
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
fn resource(
    p: &SimProcessor,
    house: &House,
    url: &str,
) -> Option<(Access, &'static str, Option<Value>)> {
    let read = |body_type, body| Some((Access::Read, body_type, Some(body)));
    let processor_url = format!("/device/{PROCESSOR_DEVICE_ID}");
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
                "Name": house.project,
                "ProductType": product_type(&p.system_type),
                "MasterDeviceList": {"Devices": all_devices(p, house).iter()
                    .map(|d| json!({"href": d["href"]})).collect::<Vec<_>>()},
            }}),
        ),
        // QSX answers a bare /device with 204 and no body (ref §3).
        "/device" if p.system_type == SystemType::HomeWorksQsx => {
            Some((Access::Read, "MultipleDeviceDefinition", None))
        }
        "/device" => read(
            "MultipleDeviceDefinition",
            json!({"Devices": all_devices(p, house)}),
        ),
        "/device?where=IsThisDevice:true" => read(
            "MultipleDeviceDefinition",
            json!({"Devices": [this_device(p, house)]}),
        ),
        "/device?where=IsThisDevice:false" => Some((
            Access::Read,
            "MultipleDeviceDefinition",
            (!house.devices.is_empty()).then(|| {
                json!({"Devices": house.devices.iter().map(|d| device_json(house, d)).collect::<Vec<_>>()})
            }),
        )),
        _ if url == processor_url => read(
            "OneDeviceDefinition",
            json!({"Device": this_device(p, house)}),
        ),
        "/networkinterface/1" => read(
            "OneNetworkInterfaceDefinition",
            json!({"NetworkInterface": {
                "href": "/networkinterface/1",
                "MACAddress": p.mac.to_string(),
                "IPv4Properties": {"Type": "Static", "IP": p.address.to_string()},
            }}),
        ),
        "/virtualbutton" => read(
            "MultipleVirtualButtonDefinition",
            json!({"VirtualButtons": []}),
        ),
        "/system/away/1/status" => Some((
            Access::Subscribe,
            "OneAwayStatusDefinition",
            Some(json!({"AwayStatus": {
                "href": "/system/away/1/status",
                "EnabledState": "Disabled",
            }})),
        )),
        _ => house_routes::resource(house, url).map(|r| {
            let access = if r.subscribable {
                Access::Subscribe
            } else {
                Access::Read
            };
            (access, r.body_type, r.body)
        }),
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
    use super::*;

    fn processor(system_type: SystemType) -> SimProcessor {
        SimProcessor::fixture(system_type)
    }

    fn ask(p: &SimProcessor, kind: CommuniqueType, url: &str) -> Communique {
        let request = Communique::request(kind, Some("tag".into()), url, None);
        respond(p, &example_house(), &request)
    }

    fn example_house() -> House {
        crate::sim::house::example()
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
    fn the_area_walk_finds_zones_and_keypads_and_empty_collections_are_204() {
        let p = processor(SystemType::RadioRa3);
        let zones = read(&p, "/area/5/associatedzone").body.unwrap();
        let names: Vec<_> = zones["Zones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|z| z["Name"].clone())
            .collect();
        assert_eq!(names, vec![json!("Pendants"), json!("Exhaust")]);
        assert_eq!(zones["Zones"][0]["ControlType"], "Dimmed");
        let stations = read(&p, "/area/5/associatedcontrolstation").body.unwrap();
        let ganged = &stations["ControlStations"][0]["AssociatedGangedDevices"];
        assert_eq!(ganged.as_array().unwrap().len(), 3, "{stations}");
        let groups = read(&p, "/device/12/buttongroup/expanded").body.unwrap();
        let buttons = &groups["ButtonGroupsExpanded"][0]["Buttons"];
        assert_eq!(buttons[1]["Engraving"]["Text"], "Cooking");
        assert_eq!(buttons[1]["Parent"]["href"], "/buttongroup/12");
        for url in [
            "/area/2/associatedzone",
            "/area/3/associatedcontrolstation",
            "/device/10/buttongroup/expanded",
        ] {
            let r = read(&p, url);
            assert_eq!(r.status(), Some(&StatusCode::NO_CONTENT), "{url}");
            assert_eq!(r.body, None, "{url}");
        }
        for url in [
            "/area/99/associatedzone",
            "/area/5/associatedzones",
            "/zone/12",
            "/device/999",
        ] {
            assert_eq!(
                read(&p, url).status(),
                Some(&StatusCode::NOT_FOUND),
                "{url}"
            );
        }
    }

    #[test]
    fn a_bridge_lists_every_device_with_its_zone_buttons_and_sensors() {
        let p = processor(SystemType::CasetaSmartBridge);
        let devices = read(&p, "/device").body.unwrap()["Devices"].clone();
        let devices = devices.as_array().unwrap();
        assert_eq!(devices.len(), 1 + example_house().devices.len());
        let dimmer = devices.iter().find(|d| d["href"] == "/device/10").unwrap();
        assert_eq!(dimmer["LocalZones"][0]["href"], "/zone/20");
        assert_eq!(dimmer["FullyQualifiedName"], json!(["Kitchen", "Pendants"]));
        let pico = devices.iter().find(|d| d["href"] == "/device/14").unwrap();
        assert_eq!(pico["ButtonGroups"][0]["href"], "/buttongroup/14");
        let groups = read(&p, "/occupancygroup").body.unwrap();
        assert_eq!(
            groups["OccupancyGroups"][0]["AssociatedAreas"][0]["Area"]["href"],
            "/area/6"
        );
        let status = read(&p, "/zone/22/status").body.unwrap();
        assert_eq!(status["ZoneStatus"]["Level"], 100);
    }

    #[test]
    fn processors_take_zone_and_area_status_subscriptions() {
        let p = processor(SystemType::RadioRa3);
        let r = ask(&p, CommuniqueType::SubscribeRequest, "/zone/status");
        assert_eq!(r.status(), Some(&StatusCode::OK));
        assert_eq!(r.body.unwrap()["ZoneStatuses"].as_array().unwrap().len(), 3);
        let r = ask(&p, CommuniqueType::SubscribeRequest, "/area/status");
        assert_eq!(
            r.header.message_body_type.as_deref(),
            Some("MultipleAreaStatus")
        );
        let body = r.body.unwrap();
        let sensed = body["AreaStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["href"] == "/area/6/status")
            .unwrap();
        assert_eq!(sensed["OccupancyStatus"], "Unoccupied");
        let r = ask(
            &p,
            CommuniqueType::SubscribeRequest,
            "/button/31/status/event",
        );
        assert_eq!(r.status(), Some(&StatusCode::OK));
        let r = ask(
            &p,
            CommuniqueType::SubscribeRequest,
            "/button/99/status/event",
        );
        assert_eq!(r.status(), Some(&StatusCode::NOT_FOUND));
    }

    #[test]
    fn the_biggest_default_bodies_fit_well_within_a_line() {
        let fleet = crate::sim::build_fleet(&crate::sim::FleetSpec {
            count: 60,
            system_types: vec![SystemType::HomeWorksQsx, SystemType::RadioRa3],
            ..crate::sim::FleetSpec::default()
        })
        .unwrap();
        let mut biggest = 0;
        for p in &fleet {
            let house = crate::sim::HouseSlot::new(p.clone(), None).initial();
            for url in [
                "/device?where=IsThisDevice:false",
                "/zone/status",
                "/button",
                "/area",
            ] {
                let request = Communique::read_request("t", url);
                let line = serde_json::to_vec(&respond(p, &house, &request)).unwrap();
                biggest = biggest.max(line.len());
            }
        }
        assert!(biggest < crate::leap::MAX_LINE / 2, "{biggest} bytes");
    }
}
