//! The in-memory pair: a processor machine and any number of clients,
//! bytes shuttled through the real codec, time on a fake clock (after
//! quinn-proto's `tests/util.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::leap::codec::LineCodec;
use crate::leap::message::{CsrParameters, PairingFrame};
use crate::leap::pairing::*;

pub const PROCESSOR: &str = "RadioRA 3 processor 0236e6a7 at 192.168.1.20";
pub const CODEC: LineCodec = LineCodec::with_max_line(4096);

/// What the fake signer does with a CSR.
#[derive(Clone, Copy, PartialEq)]
pub enum Signer {
    Sign,
    Refuse,
    /// Keep it; the test calls `finish_signing`.
    Hold,
}

/// One end of a connection, as the processor sees it.
#[derive(Default)]
pub struct Link {
    /// A client machine, or `None` for a raw peer the test drives by hand.
    pub client: Option<PairingClient>,
    /// Bytes the processor wrote, not yet read by the client.
    pub to_client: Vec<u8>,
    /// Bytes the client wrote, not yet read by the processor.
    pub to_server: Vec<u8>,
    /// Frames the processor sent, in order.
    pub received: Vec<PairingFrame>,
    /// Why the processor closed it, if it did.
    pub closed: Option<CloseReason>,
    /// The client's final result.
    pub outcome: Option<Result<SignedCertificate, PairingError>>,
}

pub struct Pair {
    pub start: Instant,
    pub now: Instant,
    pub server: PairingServer,
    pub links: BTreeMap<ConnectionId, Link>,
    pub next_id: u64,
    pub signer: Signer,
    pub held: VecDeque<ConnectionId>,
    pub events: Vec<ServerEvent>,
}

impl Pair {
    pub fn new() -> Pair {
        let start = Instant::now();
        Pair {
            start,
            now: start,
            server: PairingServer::new(PairingServerConfig::default()),
            links: BTreeMap::new(),
            next_id: 0,
            signer: Signer::Sign,
            held: VecDeque::new(),
            events: Vec::new(),
        }
    }

    pub fn client_config() -> PairingClientConfig {
        PairingClientConfig::new(
            PROCESSOR,
            CsrParameters::admin("-----BEGIN CSR-----", "handoff"),
        )
    }

    /// Connects a handoff client.
    pub fn connect(&mut self) -> ConnectionId {
        let client = PairingClient::new(self.now, Pair::client_config());
        self.open(Some(client))
    }

    /// Connects a peer whose bytes the test writes itself.
    pub fn connect_raw(&mut self) -> ConnectionId {
        self.open(None)
    }

    pub fn open(&mut self, client: Option<PairingClient>) -> ConnectionId {
        let conn = ConnectionId(self.next_id);
        self.next_id += 1;
        self.links.insert(
            conn,
            Link {
                client,
                ..Link::default()
            },
        );
        let actions = self.server.handle_connect(self.now, conn);
        self.apply(actions);
        self.drive();
        conn
    }

    pub fn press(&mut self) {
        let actions = self.server.press_button(self.now);
        self.apply(actions);
        self.drive();
    }

    pub fn send_raw(&mut self, conn: ConnectionId, bytes: &[u8]) {
        self.link(conn).to_server.extend_from_slice(bytes);
        self.drive();
    }

    pub fn send_csr_raw(&mut self, conn: ConnectionId) {
        let mut line = Vec::new();
        let csr = PairingFrame::csr_request("get-cert", CsrParameters::admin("PEM", "raw"));
        CODEC.encode(&csr, &mut line).unwrap();
        self.send_raw(conn, &line);
    }

    /// Moves the clock to `start + at`, firing every timeout on the way at
    /// its own instant.
    pub fn advance_to(&mut self, at: Duration) {
        let target = self.start + at;
        for _ in 0..1000 {
            let next = self
                .links
                .values()
                .filter_map(|l| l.client.as_ref()?.poll_timeout())
                .chain(self.server.poll_timeout())
                .filter(|&t| t <= target)
                .min();
            let Some(t) = next else {
                self.now = target;
                return;
            };
            self.now = t;
            let actions = self.server.handle_timeout(t);
            self.apply(actions);
            for link in self.links.values_mut() {
                if let Some(client) = &mut link.client
                    && link.outcome.is_none()
                    && let Err(e) = client.handle_timeout(t)
                {
                    link.outcome = Some(Err(e));
                }
            }
            self.drive();
        }
        panic!("a timeout keeps firing without effect");
    }

    /// The processor's connection to `conn` drops without a word.
    pub fn processor_vanishes(&mut self, conn: ConnectionId, partial_line: &[u8]) {
        let now = self.now;
        let link = self.link(conn);
        link.to_client.extend_from_slice(partial_line);
        link.closed = Some(CloseReason::UnreadableStream);
        Pair::deliver_to_client(now, link);
        let actions = self.server.handle_close(now, conn);
        self.apply(actions);
    }

    pub fn finish_signing(&mut self, result: Result<SignedCertificate, String>) {
        let conn = self.held.pop_front().expect("a CSR is being signed");
        let actions = self.server.signing_done(self.now, conn, result);
        self.apply(actions);
        self.drive();
    }

    pub fn link(&mut self, conn: ConnectionId) -> &mut Link {
        self.links.get_mut(&conn).expect("known connection")
    }

    pub fn apply(&mut self, actions: Vec<ServerAction>) {
        let mut queue: VecDeque<ServerAction> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                ServerAction::Send { conn, frame } => {
                    let link = self.link(conn);
                    assert!(link.closed.is_none(), "sent to a closed connection");
                    CODEC.encode(&frame, &mut link.to_client).unwrap();
                }
                ServerAction::Close { conn, reason } => self.link(conn).closed = Some(reason),
                ServerAction::Report(event) => self.events.push(event),
                ServerAction::Sign(request) => match self.signer {
                    Signer::Hold => self.held.push_back(request.conn),
                    signer => {
                        let result = if signer == Signer::Sign {
                            Ok(signed_for(&request.parameters))
                        } else {
                            Err("RSA-1024 keys are too weak".into())
                        };
                        queue.extend(self.server.signing_done(self.now, request.conn, result));
                    }
                },
            }
        }
    }

    /// Delivers bytes both ways until nothing moves.
    pub fn drive(&mut self) {
        loop {
            let mut moved = false;
            let now = self.now;
            for link in self.links.values_mut() {
                moved |= Pair::deliver_to_client(now, link);
            }
            let conns: Vec<ConnectionId> = self.links.keys().copied().collect();
            for conn in conns {
                moved |= self.deliver_to_server(conn);
            }
            if !moved {
                break;
            }
        }
    }

    pub fn deliver_to_client(now: Instant, link: &mut Link) -> bool {
        let mut moved = false;
        while let Ok(Some(len)) = CODEC.check(&link.to_client) {
            let line: Vec<u8> = link.to_client.drain(..len).collect();
            moved = true;
            let Ok(Some(object)) = CODEC.decode(&line) else {
                panic!("the processor wrote a bad line: {line:?}")
            };
            link.received
                .push(PairingFrame::from_object(object.clone()).unwrap());
            if let Some(client) = &mut link.client
                && link.outcome.is_none()
            {
                match client.handle_frame(now, object) {
                    Ok(Some(ClientAction::Send(frame))) => {
                        CODEC.encode(&frame, &mut link.to_server).unwrap();
                    }
                    Ok(Some(ClientAction::Paired(signed))) => link.outcome = Some(Ok(signed)),
                    Ok(None) => {}
                    Err(e) => link.outcome = Some(Err(e)),
                }
            }
        }
        if link.closed.is_some()
            && let Some(client) = &mut link.client
            && link.outcome.is_none()
        {
            let how = if link.to_client.is_empty() {
                Disconnect::Clean
            } else {
                Disconnect::MidFrame
            };
            if let Err(e) = client.handle_disconnect(now, how) {
                link.outcome = Some(Err(e));
            }
            moved = true;
        }
        moved
    }

    pub fn deliver_to_server(&mut self, conn: ConnectionId) -> bool {
        let mut moved = false;
        loop {
            let link = self.link(conn);
            if link.closed.is_some() {
                return moved;
            }
            let (actions, fatal) = match CODEC.check(&link.to_server) {
                Ok(None) => return moved,
                Ok(Some(len)) => {
                    let line: Vec<u8> = link.to_server.drain(..len).collect();
                    match CODEC.decode(&line) {
                        Ok(Some(object)) => {
                            (self.server.handle_frame(self.now, conn, object), false)
                        }
                        Ok(None) => (Vec::new(), false),
                        Err(e) => (self.server.handle_malformed(self.now, conn, &e), false),
                    }
                }
                Err(e) => (self.server.handle_malformed(self.now, conn, &e), true),
            };
            moved = true;
            self.apply(actions);
            if fatal {
                return moved;
            }
        }
    }

    pub fn outcome(&self, conn: ConnectionId) -> Option<&Result<SignedCertificate, PairingError>> {
        self.links[&conn].outcome.as_ref()
    }

    pub fn received(&self, conn: ConnectionId) -> &[PairingFrame] {
        &self.links[&conn].received
    }

    pub fn error(&self, conn: ConnectionId) -> PairingError {
        match self.outcome(conn) {
            Some(Err(e)) => e.clone(),
            other => panic!("expected a pairing error, got {other:?}"),
        }
    }
}

pub fn signed_for(parameters: &CsrParameters) -> SignedCertificate {
    SignedCertificate {
        certificate: format!("CERT for {}", parameters.display_name),
        root_certificate: "ROOT".into(),
    }
}

pub fn signing_result(tag: &str) -> PairingFrame {
    PairingFrame::signing_result(Some(tag.into()), "CERT for handoff", "ROOT")
}
