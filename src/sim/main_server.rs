//! A simulated processor's main port (8081): newline JSON communiqués over
//! mutual TLS, answered by [`super::main_routes::respond`]. A bad line is
//! answered with `400 BadRequest` and the connection goes on; a line too
//! long to skip is answered so, then the connection is closed, since
//! nothing after it can be trusted to start a frame.

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast::error::RecvError;

use super::SimProcessor;
use super::house_routes::{
    area_status_json, button_event_json, occupancy_group_status_json, zone_status_json,
};
use super::live_house::{CommandError, HouseEvent, LiveHouse};
use super::main_routes::{exception, is_bridge, respond, unreadable};
use crate::leap::connection::{Connection, ConnectionError};
use crate::leap::message::{Communique, CommuniqueType, Header, StatusCode};

/// Subscriptions one connection may hold (a URL and tag each; the same
/// pair twice counts once). Enough for pylutron-caseta on a big QSX, which
/// subscribes to every button; more is refused with `400 BadRequest`
/// (handoff's choice: what a real processor does is not known).
pub const MAX_SUBSCRIPTIONS: usize = 4096;

/// `201 Created`, the answer to a command.
fn created() -> StatusCode {
    StatusCode::new(201, "Created")
}

/// Why a main-port connection ended badly; logged, never fatal to the
/// fleet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MainPortError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("the client sent a line too long to skip: {0}")]
    Unreadable(String),
}

/// Serves one TLS-authenticated connection until it ends; logs how it
/// ended.
pub async fn serve_main_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    processor: &SimProcessor,
    house: &LiveHouse,
) {
    serve_main_connection_until(stream, processor, house, None).await;
}

/// As [`serve_main_connection`], but the connection is closed once
/// `requests` requests are answered (`--fault drops-mid-read`), as by a
/// processor that reboots or loses its link in the middle of a read.
pub async fn serve_main_connection_until<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    processor: &SimProcessor,
    house: &LiveHouse,
    requests: Option<usize>,
) {
    let mut connection = Connection::new(stream);
    match serve(&mut connection, processor, house, requests).await {
        Ok(()) => {}
        Err(e) => tracing::info!(
            id = %processor.serial.id(), serial = %processor.serial, mac = %processor.mac,
            "main-port connection ended: {e}"
        ),
    }
    let _ = connection.shutdown().await;
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    processor: &SimProcessor,
    house: &LiveHouse,
    mut requests_left: Option<usize>,
) -> Result<(), MainPortError> {
    let mut session = Session {
        processor,
        house,
        subscriptions: Vec::new(),
    };
    let mut events = house.subscribe();
    loop {
        // `read_frame` keeps what it has read when an event wins the race.
        // Events first: what a command changed goes out right after the
        // command's answer, before the next request is read, so a client
        // (and the vectors in proto/vectors/house/) sees a fixed order.
        let answers = tokio::select! {
            biased;
            event = events.recv() => match event {
                Ok(event) => session.frames(&event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(
                        id = %processor.serial.id(),
                        "a main-port client reads too slowly: {missed} events dropped for it"
                    );
                    Vec::new()
                }
                Err(RecvError::Closed) => Vec::new(),
            },
            frame = connection.read_frame() => vec![match frame {
                Ok(None) => return Ok(()),
                Ok(Some(_)) if requests_left == Some(0) => return Ok(()),
                Ok(Some(object)) => match Communique::from_object(object.clone()) {
                    Ok(request) => {
                        requests_left = requests_left.map(|n| n - 1);
                        session.answer(&request)
                    }
                    Err(e) => unreadable(Some(&object), e.to_string()),
                },
                Err(ConnectionError::Codec(e)) if e.is_fatal() => {
                    connection
                        .write_frame(&unreadable(None, e.to_string()))
                        .await?;
                    return Err(MainPortError::Unreadable(e.to_string()));
                }
                Err(ConnectionError::Codec(e)) => unreadable(None, e.to_string()),
                Err(e) => return Err(e.into()),
            }],
        };
        for answer in answers {
            connection.write_frame(&answer).await?;
        }
    }
}

/// One connection's subscriptions, and how it answers.
struct Session<'a> {
    processor: &'a SimProcessor,
    house: &'a LiveHouse,
    /// `(Url, ClientTag)` of each subscription, in the order made.
    subscriptions: Vec<(String, Option<String>)>,
}

impl Session<'_> {
    fn answer(&mut self, request: &Communique) -> Communique {
        if let Some(answer) = self.command(request) {
            return answer;
        }
        let answer = respond(self.processor, &self.house.lock(), request);
        let subscribed = request.communique_type == CommuniqueType::SubscribeRequest
            && answer.status().is_some_and(StatusCode::is_success);
        if let (true, Some(url)) = (subscribed, request.url()) {
            let key = (url.to_owned(), request.client_tag().map(str::to_owned));
            if !self.subscriptions.contains(&key) {
                if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                    return exception(
                        request,
                        StatusCode::BAD_REQUEST,
                        format!("this connection already holds {MAX_SUBSCRIPTIONS} subscriptions"),
                    );
                }
                self.subscriptions.push(key);
            }
        }
        answer
    }

    /// A `CreateRequest` to `/zone/N/commandprocessor` or
    /// `/button/N/commandprocessor`; `None` for any other URL.
    fn command(&self, request: &Communique) -> Option<Communique> {
        let url = request.url()?;
        let path = url.strip_suffix("/commandprocessor")?;
        let (kind, id) = if let Some(id) = path.strip_prefix("/zone/") {
            ("zone", id)
        } else {
            ("button", path.strip_prefix("/button/")?)
        };
        let id: u32 = id.parse().ok()?;
        if request.communique_type != CommuniqueType::CreateRequest {
            return Some(exception(
                request,
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed on {url}", request.communique_type),
            ));
        }
        let Some(command) = request.body.as_ref().and_then(|b| b.get("Command")) else {
            return Some(exception(
                request,
                StatusCode::BAD_REQUEST,
                "the request has no Body.Command".into(),
            ));
        };
        let done = if kind == "zone" {
            self.house.command_zone(id, command).map(|zone| {
                (
                    "OneZoneStatus",
                    json!({"ZoneStatus": zone_status_json(&zone)}),
                )
            })
        } else {
            let kind = command
                .get("CommandType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.house.command_button(id, kind).map(|()| {
                let last = if kind == "Press" { "Press" } else { "Release" };
                ("OneButtonStatusEvent", button_event_json(id, last))
            })
        };
        Some(match done {
            Ok((body_type, body)) => {
                Communique::response_to(request, created(), Some(body_type.into()), Some(body))
            }
            Err(e @ CommandError::NotFound(_)) => {
                exception(request, StatusCode::NOT_FOUND, e.to_string())
            }
            Err(e) => exception(request, StatusCode::BAD_REQUEST, e.to_string()),
        })
    }

    /// What this connection is sent about `event`: one frame per matching
    /// subscription, with its tag. A Caséta bridge also sends a zone's
    /// change untagged to a connection that did not subscribe to zones,
    /// which is how pylutron-caseta learns of it there (it subscribes to
    /// no zone status on a bridge and handles untagged `OneZoneStatus`).
    fn frames(&self, event: &HouseEvent) -> Vec<Communique> {
        let mut frames = Vec::new();
        let mut send = |url: &str, tag: &Option<String>, body_type: &str, body: Value| {
            frames.push(event_frame(url, tag.clone(), body_type, body));
        };
        match event {
            HouseEvent::Zone(zone) => {
                let one = format!("/zone/{}/status", zone.id);
                let status = zone_status_json(zone);
                let mut heard = false;
                for (url, tag) in &self.subscriptions {
                    if url == "/zone/status" {
                        send(
                            url,
                            tag,
                            "MultipleZoneStatus",
                            json!({"ZoneStatuses": [status]}),
                        );
                    } else if *url == one {
                        send(url, tag, "OneZoneStatus", json!({"ZoneStatus": status}));
                    } else {
                        continue;
                    }
                    heard = true;
                }
                if !heard && is_bridge(&self.processor.system_type) {
                    send(&one, &None, "OneZoneStatus", json!({"ZoneStatus": status}));
                }
            }
            HouseEvent::Button { button, event } => {
                let url = format!("/button/{button}/status/event");
                for (_, tag) in self.subscriptions.iter().filter(|(u, _)| *u == url) {
                    send(
                        &url,
                        tag,
                        "OneButtonStatusEvent",
                        button_event_json(*button, event),
                    );
                }
            }
            HouseEvent::Occupancy { area, occupied } => {
                let group = occupancy_group_status_json(*area, *occupied);
                let area_status = {
                    let house = self.house.lock();
                    house.area(*area).map(|a| area_status_json(&house, a))
                };
                for (url, tag) in &self.subscriptions {
                    match url.as_str() {
                        "/occupancygroup/status" => send(
                            url,
                            tag,
                            "MultipleOccupancyGroupStatus",
                            json!({"OccupancyGroupStatuses": [group]}),
                        ),
                        "/area/status" => send(
                            url,
                            tag,
                            "MultipleAreaStatus",
                            json!({"AreaStatuses": [area_status]}),
                        ),
                        u if u == format!("/occupancygroup/{area}/status") => send(
                            url,
                            tag,
                            "OneOccupancyGroupStatus",
                            json!({"OccupancyGroupStatus": group}),
                        ),
                        u if u == format!("/area/{area}/status") => send(
                            url,
                            tag,
                            "OneAreaStatus",
                            json!({"AreaStatus": area_status}),
                        ),
                        _ => {}
                    }
                }
            }
        }
        frames
    }
}

/// An event: a `ReadResponse` carrying the subscription's tag and URL.
fn event_frame(url: &str, tag: Option<String>, body_type: &str, body: Value) -> Communique {
    Communique {
        communique_type: CommuniqueType::ReadResponse,
        header: Header {
            status_code: Some(StatusCode::OK),
            url: Some(url.into()),
            message_body_type: Some(body_type.into()),
            client_tag: tag,
            content_type: None,
        },
        body: Some(body),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;
    use tokio::io::{AsyncWriteExt, duplex};

    use super::*;
    use crate::leap::message::StatusCode;
    use crate::processor::SystemType;

    fn processor() -> SimProcessor {
        SimProcessor::fixture(SystemType::HomeWorksQsx)
    }

    fn house() -> LiveHouse {
        LiveHouse::new(crate::sim::house::example())
    }

    async fn answer(conn: &mut Connection<tokio::io::DuplexStream>) -> Communique {
        let object = tokio::time::timeout(Duration::from_secs(5), conn.read_frame())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("an answer, not the end");
        Communique::from_object(object).unwrap()
    }

    #[tokio::test]
    async fn garbage_gets_400_and_the_connection_goes_on() {
        let (ours, theirs) = duplex(1 << 20);
        tokio::spawn(async move { serve_main_connection(theirs, &processor(), &house()).await });
        let mut raw = ours;
        raw.write_all(b"not json\r\n{\"Header\":{\"ClientTag\":\"x\"}}\r\n")
            .await
            .unwrap();
        let mut conn = Connection::new(raw);
        for tag in [None, Some("x")] {
            let r = answer(&mut conn).await;
            assert_eq!(r.status(), Some(&StatusCode::BAD_REQUEST));
            assert_eq!(r.client_tag(), tag);
            assert!(r.header.message_body_type.is_some());
        }
        conn.write_frame(&Communique::read_request("t", "/device"))
            .await
            .unwrap();
        let r = answer(&mut conn).await;
        assert_eq!(r.status(), Some(&StatusCode::NO_CONTENT));
        assert_eq!(r.body, None::<Value>);
    }

    #[tokio::test]
    async fn an_oversized_line_gets_400_then_the_connection_closes() {
        let (ours, theirs) = duplex(1 << 20);
        tokio::spawn(async move { serve_main_connection(theirs, &processor(), &house()).await });
        let mut raw = ours;
        let line = vec![b'a'; crate::leap::MAX_LINE + 10];
        // The server stops reading once it sees the line is too long, so
        // the write may fail part-way: that is fine.
        let _ = raw.write_all(&line).await;
        let mut conn = Connection::new(raw);
        let r = answer(&mut conn).await;
        assert_eq!(r.status(), Some(&StatusCode::BAD_REQUEST));
        assert!(conn.read_frame().await.unwrap().is_none(), "closed");
    }

    /// A client of a processor whose house is shared with other clients.
    fn client(
        system_type: SystemType,
        house: &std::sync::Arc<LiveHouse>,
    ) -> Connection<tokio::io::DuplexStream> {
        let (ours, theirs) = duplex(1 << 20);
        let house = house.clone();
        let p = SimProcessor {
            system_type,
            ..processor()
        };
        tokio::spawn(async move { serve_main_connection(theirs, &p, &house).await });
        Connection::new(ours)
    }

    fn request(kind: CommuniqueType, tag: &str, url: &str, body: Option<Value>) -> Communique {
        Communique::request(kind, Some(tag.into()), url, body)
    }

    async fn ask(conn: &mut Connection<tokio::io::DuplexStream>, r: Communique) -> Communique {
        conn.write_frame(&r).await.unwrap();
        answer(conn).await
    }

    fn go_to_level(level: u64) -> Option<Value> {
        Some(serde_json::json!({"Command": {"CommandType": "GoToLevel",
            "Parameter": [{"Type": "Level", "Value": level}]}}))
    }

    #[tokio::test]
    async fn a_zone_command_streams_the_new_level_to_every_subscriber() {
        let house = std::sync::Arc::new(house());
        let mut watcher = client(SystemType::RadioRa3, &house);
        let mut other = client(SystemType::RadioRa3, &house);
        let mut commander = client(SystemType::RadioRa3, &house);
        for (conn, tag) in [(&mut watcher, "w"), (&mut other, "o")] {
            let r = ask(
                conn,
                request(CommuniqueType::SubscribeRequest, tag, "/zone/status", None),
            )
            .await;
            assert_eq!(r.status(), Some(&StatusCode::OK));
        }
        let r = ask(
            &mut commander,
            request(
                CommuniqueType::CreateRequest,
                "c",
                "/zone/20/commandprocessor",
                go_to_level(100),
            ),
        )
        .await;
        assert_eq!(r.status().map(StatusCode::code), Some(201));
        assert_eq!(r.body.unwrap()["ZoneStatus"]["Level"], 100);
        for (conn, tag) in [(&mut watcher, "w"), (&mut other, "o")] {
            let event = answer(conn).await;
            assert_eq!(event.client_tag(), Some(tag));
            assert_eq!(event.communique_type, CommuniqueType::ReadResponse);
            assert_eq!(
                event.header.message_body_type.as_deref(),
                Some("MultipleZoneStatus")
            );
            let status = &event.body.unwrap()["ZoneStatuses"][0];
            assert_eq!(status["Zone"]["href"], "/zone/20");
            assert_eq!(status["Level"], 100);
        }
        assert_eq!(house.lock().zone(20).unwrap().level, 100);
    }

    #[tokio::test]
    async fn a_bridge_tells_unsubscribed_clients_of_zone_changes_untagged() {
        let house = std::sync::Arc::new(house());
        let mut listener = client(SystemType::CasetaSmartBridge, &house);
        let mut commander = client(SystemType::CasetaSmartBridge, &house);
        // A request first, so the listener is surely being served.
        ask(
            &mut listener,
            request(CommuniqueType::ReadRequest, "p", "/project", None),
        )
        .await;
        let dim = serde_json::json!({"Command": {"CommandType": "GoToDimmedLevel",
            "DimmedLevelParameters": {"Level": 30, "FadeTime": "00:00:04"}}});
        let r = ask(
            &mut commander,
            request(
                CommuniqueType::CreateRequest,
                "c",
                "/zone/20/commandprocessor",
                Some(dim),
            ),
        )
        .await;
        assert_eq!(r.status().map(StatusCode::code), Some(201));
        let event = answer(&mut listener).await;
        assert_eq!(event.client_tag(), None);
        assert_eq!(
            event.header.message_body_type.as_deref(),
            Some("OneZoneStatus")
        );
        assert_eq!(event.body.unwrap()["ZoneStatus"]["Level"], 30);
    }

    #[tokio::test]
    async fn button_presses_and_occupancy_reach_their_subscribers() {
        let house = std::sync::Arc::new(house());
        let mut watcher = client(SystemType::RadioRa3, &house);
        for (tag, url) in [("b", "/button/31/status/event"), ("a", "/area/status")] {
            let r = ask(
                &mut watcher,
                request(CommuniqueType::SubscribeRequest, tag, url, None),
            )
            .await;
            assert_eq!(r.status(), Some(&StatusCode::OK), "{url}");
        }
        let mut presser = client(SystemType::RadioRa3, &house);
        let press = Some(serde_json::json!({"Command": {"CommandType": "PressAndRelease"}}));
        let r = ask(
            &mut presser,
            request(
                CommuniqueType::CreateRequest,
                "p",
                "/button/31/commandprocessor",
                press,
            ),
        )
        .await;
        assert_eq!(r.status().map(StatusCode::code), Some(201));
        for event in ["Press", "Release"] {
            let e = answer(&mut watcher).await;
            assert_eq!(e.client_tag(), Some("b"));
            assert_eq!(
                e.body.unwrap()["ButtonStatus"]["ButtonEvent"]["EventType"],
                event
            );
        }
        // A keypad press from the control socket is the same event.
        house.press_keypad("Kitchen Keypad", "Cooking").unwrap();
        assert_eq!(answer(&mut watcher).await.client_tag(), Some("b"));
        assert_eq!(answer(&mut watcher).await.client_tag(), Some("b"));
        house.set_occupancy(6, true).unwrap();
        let e = answer(&mut watcher).await;
        assert_eq!(e.client_tag(), Some("a"));
        let body = e.body.unwrap();
        assert_eq!(body["AreaStatuses"][0]["href"], "/area/6/status");
        assert_eq!(body["AreaStatuses"][0]["OccupancyStatus"], "Occupied");
    }

    #[tokio::test]
    async fn bad_commands_get_404_400_or_405_and_change_nothing() {
        let house = std::sync::Arc::new(house());
        let mut conn = client(SystemType::RadioRa3, &house);
        let create = CommuniqueType::CreateRequest;
        let shade = Some(
            serde_json::json!({"Command": {"CommandType": "GoToShadeLevel",
            "ShadeLevelParameters": {"Level": 20}}}),
        );
        let cases = [
            (
                request(
                    create.clone(),
                    "1",
                    "/zone/999/commandprocessor",
                    go_to_level(50),
                ),
                404,
            ),
            (
                request(
                    create.clone(),
                    "2",
                    "/button/999/commandprocessor",
                    Some(serde_json::json!({"Command": {"CommandType": "PressAndRelease"}})),
                ),
                404,
            ),
            // Wrong type: a dimmer takes no shade level.
            (
                request(create.clone(), "3", "/zone/20/commandprocessor", shade),
                400,
            ),
            (
                request(create.clone(), "4", "/zone/20/commandprocessor", None),
                400,
            ),
            (
                request(
                    create.clone(),
                    "5",
                    "/zone/20/commandprocessor",
                    go_to_level(250),
                ),
                400,
            ),
            (
                request(
                    CommuniqueType::ReadRequest,
                    "6",
                    "/zone/20/commandprocessor",
                    None,
                ),
                405,
            ),
            (
                request(CommuniqueType::ReadRequest, "7", "/no/such/thing", None),
                404,
            ),
        ];
        for (r, code) in cases {
            let tag = r.client_tag().unwrap().to_owned();
            let a = ask(&mut conn, r).await;
            assert_eq!(a.status().map(StatusCode::code), Some(code), "case {tag}");
            assert_eq!(a.client_tag(), Some(tag.as_str()));
            assert_eq!(
                a.header.message_body_type.as_deref(),
                Some("ExceptionDetail")
            );
            assert!(a.body.unwrap()["Message"].is_string());
        }
        assert_eq!(house.lock().zone(20).unwrap().level, 0);
    }

    #[tokio::test]
    async fn a_thousand_subscriptions_from_one_client_stall_nobody() {
        let house = std::sync::Arc::new(house());
        let mut greedy = client(SystemType::RadioRa3, &house);
        for i in 0..1000 {
            let r = request(
                CommuniqueType::SubscribeRequest,
                &format!("s{i}"),
                "/zone/status",
                None,
            );
            greedy.write_frame(&r).await.unwrap();
        }
        for i in 0..1000 {
            let a = answer(&mut greedy).await;
            assert_eq!(a.status(), Some(&StatusCode::OK));
            assert_eq!(a.client_tag(), Some(format!("s{i}").as_str()));
        }
        // The greedy client now reads nothing; another is served at once,
        // and the greedy one still gets every event when it reads.
        let mut other = client(SystemType::RadioRa3, &house);
        let started = std::time::Instant::now();
        let r = ask(
            &mut other,
            request(
                CommuniqueType::CreateRequest,
                "c",
                "/zone/20/commandprocessor",
                go_to_level(60),
            ),
        )
        .await;
        assert_eq!(r.status().map(StatusCode::code), Some(201));
        assert!(started.elapsed() < Duration::from_secs(2));
        for _ in 0..1000 {
            assert_eq!(
                answer(&mut greedy).await.body.unwrap()["ZoneStatuses"][0]["Level"],
                60
            );
        }
    }
}
