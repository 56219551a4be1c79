//! The vectors of proto/processor.md §5: exchanges with a simulated
//! processor holding `examples/house.json`, one file each in
//! `proto/vectors/house/`. A line `> {…}` is what the client sends, `< {…}`
//! what the processor answers, in order. The test replays every file and
//! compares each answer as a JSON value; `HANDOFF_WRITE_VECTORS=1` writes
//! the files from the simulator instead (then read the diff).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::duplex;

use super::main_server::serve_main_connection;
use super::{LiveHouse, SimProcessor};
use crate::leap::Connection;
use crate::processor::SystemType;

/// (file, product line, requests).
fn scenarios() -> Vec<(&'static str, SystemType, Vec<Value>)> {
    let read = |tag: &str, url: &str| json!({"CommuniqueType": "ReadRequest", "Header": {"ClientTag": tag, "Url": url}});
    let subscribe = |tag: &str, url: &str| json!({"CommuniqueType": "SubscribeRequest", "Header": {"ClientTag": tag, "Url": url}});
    let create = |tag: &str, url: &str, command: Value| json!({"CommuniqueType": "CreateRequest", "Header": {"ClientTag": tag, "Url": url}, "Body": {"Command": command}});
    vec![
        (
            "caseta-device-list.txt",
            SystemType::CasetaSmartBridge,
            vec![
                read("1", "/device"),
                read("2", "/button"),
                read("3", "/occupancygroup"),
                read("4", "/zone/20/status"),
            ],
        ),
        (
            "ra3-this-device-and-project.txt",
            SystemType::RadioRa3,
            vec![
                read("1", "/device?where=IsThisDevice:true"),
                read("2", "/project"),
            ],
        ),
        (
            "ra3-area-walk.txt",
            SystemType::RadioRa3,
            vec![
                read("1", "/area"),
                read("2", "/area/5/associatedcontrolstation"),
                read("3", "/area/5/associatedzone"),
                read("4", "/device/12/buttongroup/expanded"),
                read("5", "/device/12"),
                read("6", "/area/2/associatedzone"),
            ],
        ),
        (
            "ra3-zone-command-and-event.txt",
            SystemType::RadioRa3,
            vec![
                subscribe("sub", "/zone/status"),
                create(
                    "on",
                    "/zone/20/commandprocessor",
                    json!({"CommandType": "GoToLevel", "Parameter": [{"Type": "Level", "Value": 100}]}),
                ),
                create(
                    "dim",
                    "/zone/20/commandprocessor",
                    json!({"CommandType": "GoToDimmedLevel", "DimmedLevelParameters": {"Level": 30, "FadeTime": "00:00:02"}}),
                ),
                create(
                    "shade",
                    "/zone/22/commandprocessor",
                    json!({"CommandType": "GoToShadeLevel", "ShadeLevelParameters": {"Level": 50}}),
                ),
                create(
                    "switch",
                    "/zone/21/commandprocessor",
                    json!({"CommandType": "GoToSwitchedLevel", "SwitchedLevelParameters": {"SwitchedLevel": "On"}}),
                ),
            ],
        ),
        (
            "caseta-unsolicited-zone-status.txt",
            SystemType::CasetaSmartBridge,
            vec![create(
                "on",
                "/zone/20/commandprocessor",
                json!({"CommandType": "GoToLevel", "Parameter": [{"Type": "Level", "Value": 100}]}),
            )],
        ),
        (
            "ra3-button-subscription-and-press.txt",
            SystemType::RadioRa3,
            vec![
                subscribe("sub", "/button/31/status/event"),
                create(
                    "tap",
                    "/button/31/commandprocessor",
                    json!({"CommandType": "PressAndRelease"}),
                ),
            ],
        ),
        (
            "ra3-occupancy.txt",
            SystemType::RadioRa3,
            vec![
                subscribe("sub", "/area/status"),
                read("2", "/device?where=IsThisDevice:false"),
            ],
        ),
        (
            "errors.txt",
            SystemType::RadioRa3,
            vec![
                read("404", "/no/such/url"),
                create(
                    "no-zone",
                    "/zone/999/commandprocessor",
                    json!({"CommandType": "GoToLevel", "Parameter": [{"Type": "Level", "Value": 1}]}),
                ),
                create(
                    "wrong-type",
                    "/zone/20/commandprocessor",
                    json!({"CommandType": "GoToShadeLevel", "ShadeLevelParameters": {"Level": 1}}),
                ),
                json!({"CommuniqueType": "CreateRequest", "Header": {"ClientTag": "no-command", "Url": "/zone/20/commandprocessor"}}),
                read("405", "/zone/20/commandprocessor"),
                json!({"Header": {"ClientTag": "no-type", "Url": "/device"}}),
            ],
        ),
    ]
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto/vectors/house")
}

fn processor(system_type: SystemType) -> SimProcessor {
    SimProcessor::fixture(system_type)
}

/// Sends each request, then reads until its answer (the frame with its
/// tag, or with none for a tagless one) and the events that follow it,
/// which come before the next request is read; the last request is
/// followed by a ping so that its events are collected too.
async fn replay(system_type: SystemType, requests: &[Value]) -> Vec<(char, Value)> {
    let (ours, theirs) = duplex(1 << 20);
    tokio::spawn(async move {
        let house = LiveHouse::new(super::house::example());
        serve_main_connection(theirs, &processor(system_type), &house).await;
    });
    let mut conn = Connection::new(ours);
    let mut lines = Vec::new();
    let fence = json!({"CommuniqueType": "ReadRequest", "Header": {"ClientTag": "fence", "Url": "/server/1/status/ping"}});
    for request in requests {
        lines.push(('>', request.clone()));
        conn.write_frame(request).await.unwrap();
        conn.write_frame(&fence).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), conn.read_frame())
                .await
                .expect("an answer in time")
                .unwrap()
                .expect("not the end");
            let frame = Value::Object(frame);
            if frame["Header"]["ClientTag"] == "fence" {
                break;
            }
            lines.push(('<', frame));
        }
    }
    lines
}

fn render(lines: &[(char, Value)]) -> String {
    lines.iter().map(|(d, v)| format!("{d} {v}\n")).collect()
}

#[tokio::test]
async fn the_simulator_answers_the_house_vectors() {
    let write = std::env::var_os("HANDOFF_WRITE_VECTORS").is_some();
    let mut listed = Vec::new();
    for (file, system_type, requests) in scenarios() {
        listed.push(file.to_string());
        let got = replay(system_type, &requests).await;
        let path = dir().join(file);
        if write {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&path, render(&got)).unwrap();
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let want: Vec<(char, Value)> = text
            .lines()
            .map(|l| {
                (
                    l.chars().next().unwrap(),
                    serde_json::from_str(&l[2..]).unwrap(),
                )
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{file}: frame count");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{file} line {}", i + 1);
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    listed.sort();
    assert_eq!(on_disk, listed, "every vector file is replayed");
}
