//! Pairing with simulated processors and talking to their main port, with
//! a client built from handoff's own pieces (`tls`, `leap::pair`), each test
//! on its own private network.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Sim, TempDir};
use handoff::identity::{
    Credential, KeyAlgorithm, PairingAuthority, PairingIdentity, PrivateKey, TlsIdentity,
};
use handoff::leap::message::{CsrParameters, PairingFrame, StatusCode};
use handoff::leap::pairing::PairingClientConfig;
use handoff::leap::{Communique, CommuniqueType, Connection, pair};
use handoff::tls;
use rustls::ClientConfig;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const PAIRING_PORT: u16 = 8083;
const MAIN_PORT: u16 = 8081;
const STEP: Duration = Duration::from_secs(10);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn address(p: &Value) -> IpAddr {
    p["addresses"][0].as_str().unwrap().parse().unwrap()
}

fn pairing_identity(state_dir: &Path) -> PairingIdentity {
    PairingIdentity::load(&common::sim_identity_dir(state_dir)).expect("exported identity")
}

async fn tls_connect(
    config: Arc<ClientConfig>,
    ip: IpAddr,
    port: u16,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect((ip, port)).await?;
    TlsConnector::from(config)
        .connect(tls::processor_server_name(ip), tcp)
        .await
}

async fn pairing_connection(
    ip: IpAddr,
    identity: &PairingIdentity,
) -> Connection<TlsStream<TcpStream>> {
    let config = tls::pairing_client_config(identity).unwrap();
    Connection::new(
        tls_connect(config, ip, PAIRING_PORT)
            .await
            .expect("pairing port"),
    )
}

/// Pairs as `handoff claim` will: waits for the press, sends `csr` (or a
/// fresh one for `key`), returns the credential.
async fn pair_with(ip: IpAddr, identity: &PairingIdentity) -> Credential {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let csr = key.csr_pem("sim-pairing test").unwrap();
    let mut conn = pairing_connection(ip, identity).await;
    let config = PairingClientConfig::new(
        format!("simulated processor at {ip}"),
        CsrParameters::admin(csr, "sim-pairing test"),
    );
    let signed = pair(&mut conn, config).await.expect("paired");
    Credential {
        identity: TlsIdentity {
            key,
            certificate_pem: signed.certificate,
        },
        processor_ca_pem: signed.root_certificate,
        server_identity: None,
    }
}

async fn main_connection(ip: IpAddr, credential: &Credential) -> Connection<TlsStream<TcpStream>> {
    let config = tls::main_client_config(credential).unwrap();
    Connection::new(tls_connect(config, ip, MAIN_PORT).await.expect("main port"))
}

async fn answer(conn: &mut Connection<TlsStream<TcpStream>>) -> Communique {
    let object = tokio::time::timeout(STEP, conn.read_frame())
        .await
        .expect("an answer in time")
        .expect("a readable answer")
        .expect("an answer, not the end");
    Communique::from_object(object).expect("a communiqué")
}

async fn ask(conn: &mut Connection<TlsStream<TcpStream>>, request: &Communique) -> Communique {
    conn.write_frame(request).await.expect("request sent");
    let r = answer(conn).await;
    assert_eq!(r.client_tag(), request.client_tag(), "tag echoed");
    r
}

async fn read(conn: &mut Connection<TlsStream<TcpStream>>, url: &str) -> Communique {
    ask(conn, &Communique::read_request(format!("t-{url}"), url)).await
}

lan_test! {
    fn pairs_after_auto_press_and_reads_each_processors_identity_on_the_main_port() {
        let state = TempDir::new("sim-pairing");
        let state_dir = state.0.to_str().unwrap();
        let sim = Sim::start(&[
            "--count", "2", "--auto-press", "200ms", "--no-probe", "--seed", "7",
            "--state-dir", state_dir,
        ]);
        let identity = pairing_identity(&state.0);
        block_on(async {
            for p in &sim.manifest {
                let ip = address(p);
                let credential = pair_with(ip, &identity).await;
                let mut conn = main_connection(ip, &credential).await;
                let r = read(&mut conn, "/device?where=IsThisDevice:true").await;
                assert_eq!(r.status(), Some(&StatusCode::OK));
                assert_eq!(r.header.message_body_type.as_deref(), Some("MultipleDeviceDefinition"));
                let device = &r.body.as_ref().unwrap()["Devices"][0];
                assert_eq!(device["SerialNumber"], p["serial"], "{r:?}");
                assert!(device["SerialNumber"].is_u64());
                assert_eq!(device["NetworkInterfaces"][0]["MACAddress"], p["mac"]);
            }
        });
    }
}

lan_test! {
    fn every_main_port_response_carries_a_message_body_type() {
        let sim = Sim::start(&["--count", "1", "--auto-press", "100ms", "--no-probe"]);
        let identity = pairing_identity(&sim.state_dir);
        let ip = address(&sim.manifest[0]);
        block_on(async {
            let credential = pair_with(ip, &identity).await;
            let mut conn = main_connection(ip, &credential).await;
            let mut statuses = Vec::new();
            for url in [
                "/server/1/status/ping", "/server/status/ping", "/server", "/project", "/device",
                "/device?where=IsThisDevice:true", "/networkinterface/1", "/area",
                "/virtualbutton", "/button", "/occupancygroup", "/server/2/id", "/no/such/thing",
            ] {
                let r = read(&mut conn, url).await;
                assert!(r.header.message_body_type.is_some(), "{url}: {r:?}");
                statuses.push(r.status().unwrap().code());
            }
            assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 404, 404]);
            for url in ["/occupancygroup/status", "/system/away/1/status"] {
                let request = Communique::request(
                    CommuniqueType::SubscribeRequest, Some("sub".into()), url, None,
                );
                let r = ask(&mut conn, &request).await;
                assert_eq!(r.status(), Some(&StatusCode::OK), "{url}");
                assert_eq!(r.communique_type, CommuniqueType::SubscribeResponse);
                assert!(r.header.message_body_type.is_some(), "{url}: {r:?}");
            }
            let request = Communique::request(
                CommuniqueType::DeleteRequest, Some("del".into()), "/project", None,
            );
            let r = ask(&mut conn, &request).await;
            assert_eq!(r.status(), Some(&StatusCode::METHOD_NOT_ALLOWED));
            assert!(r.header.message_body_type.is_some());
            let r = read(&mut conn, "/project").await;
            assert_eq!(r.body.unwrap()["Project"]["ProductType"], "Lutron RadioRA 3 Project");
        });
    }
}

lan_test! {
    fn a_csr_before_the_button_press_gets_401() {
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let identity = pairing_identity(&sim.state_dir);
        let ip = address(&sim.manifest[0]);
        block_on(async {
            let mut conn = pairing_connection(ip, &identity).await;
            let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
            let csr = key.csr_pem("too early").unwrap();
            let request = PairingFrame::csr_request("get-cert", CsrParameters::admin(csr, "too early"));
            conn.write_frame(&request).await.unwrap();
            let object = tokio::time::timeout(STEP, conn.read_frame())
                .await
                .expect("an answer in time")
                .unwrap()
                .expect("an answer");
            let PairingFrame::Exception { status_code, client_tag, .. } =
                PairingFrame::from_object(object.clone()).unwrap()
            else {
                panic!("not the 401 frame: {object:?}")
            };
            assert_eq!(status_code, StatusCode::UNAUTHORIZED);
            assert_eq!(client_tag.as_deref(), Some("get-cert"));
        });
    }
}

lan_test! {
    fn a_client_certificate_from_another_authority_is_refused_at_tls() {
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let ours = pairing_identity(&sim.state_dir);
        let elsewhere = TempDir::new("other-authority");
        let other = PairingAuthority::load_or_create(&elsewhere.0).unwrap();
        other.export_pairing_identity(&elsewhere.0).unwrap();
        // Trusts the simulator's authority, but shows a certificate from
        // another one.
        let mut stranger = pairing_identity(&elsewhere.0);
        stranger.authority_ca_pem = ours.authority_ca_pem.clone();
        let ip = address(&sim.manifest[0]);
        block_on(async {
            // Under TLS 1.3 the refusal arrives as an alert on the first
            // read; the server sends nothing else before a press.
            let attempt = |identity: PairingIdentity| async move {
                let config = tls::pairing_client_config(&identity).unwrap();
                let stream = tls_connect(config, ip, PAIRING_PORT).await?;
                let mut conn = Connection::new(stream);
                conn.read_frame().await.map_err(std::io::Error::other)
            };
            let refused = tokio::time::timeout(STEP, attempt(stranger))
                .await
                .expect("the refusal comes at once");
            let error = refused.expect_err("a stranger's certificate is refused");
            assert!(
                error.to_string().to_lowercase().contains("bad certificate")
                    || error.to_string().to_lowercase().contains("badcertificate"),
                "{error}"
            );
            // The exported identity gets in, and waits for the button.
            let waiting = tokio::time::timeout(Duration::from_millis(500), attempt(ours)).await;
            assert!(waiting.is_err(), "the simulator's own client is let in and waits: {waiting:?}");
        });
    }
}

lan_test! {
    fn a_csr_asking_to_be_a_ca_gets_a_ca_false_certificate() {
        let sim = Sim::start(&["--count", "1", "--auto-press", "100ms", "--no-probe"]);
        let identity = pairing_identity(&sim.state_dir);
        let ip = address(&sim.manifest[0]);
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "wants to be a CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let certificate = block_on(async {
            let mut conn = pairing_connection(ip, &identity).await;
            let config = PairingClientConfig::new("simulated processor", CsrParameters::admin(csr, "ca"));
            pair(&mut conn, config).await.expect("paired").certificate
        });
        let (_, pem) = x509_parser::pem::parse_x509_pem(certificate.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let constraints = cert.basic_constraints().unwrap().expect("basic constraints present");
        assert!(!constraints.value.ca, "issued a CA certificate");
        assert!(cert.subject().to_string().contains("wants to be a CA"));
    }
}

lan_test! {
    fn garbage_and_oversized_lines_on_the_main_port_do_not_harm_the_next_connection() {
        let sim = Sim::start(&["--count", "1", "--auto-press", "100ms", "--no-probe"]);
        let identity = pairing_identity(&sim.state_dir);
        let ip = address(&sim.manifest[0]);
        block_on(async {
            let credential = pair_with(ip, &identity).await;
            let config = tls::main_client_config(&credential).unwrap();

            // Garbage: 400, and the same connection goes on.
            let mut stream = tls_connect(config.clone(), ip, MAIN_PORT).await.unwrap();
            stream.write_all(b"this is not json\r\n").await.unwrap();
            let mut conn = Connection::new(stream);
            let r = answer(&mut conn).await;
            assert_eq!(r.status(), Some(&StatusCode::BAD_REQUEST));
            assert!(r.header.message_body_type.is_some());
            let r = read(&mut conn, "/server/1/status/ping").await;
            assert_eq!(r.status(), Some(&StatusCode::OK));

            // A line past 256 KiB: answered 400 or not, the connection ends.
            let mut stream = tls_connect(config.clone(), ip, MAIN_PORT).await.unwrap();
            let line = vec![b'x'; 300 * 1024];
            let _ = tokio::time::timeout(STEP, stream.write_all(&line)).await;
            let _ = stream.flush().await;
            let mut conn = Connection::new(stream);
            let ended = tokio::time::timeout(STEP, async {
                loop {
                    match conn.read_frame().await {
                        Ok(Some(object)) => {
                            let r = Communique::from_object(object).unwrap();
                            assert_eq!(r.status(), Some(&StatusCode::BAD_REQUEST));
                        }
                        Ok(None) | Err(_) => return,
                    }
                }
            })
            .await;
            assert!(ended.is_ok(), "the connection was not closed");

            // The next connection is served as if nothing happened.
            let mut conn = main_connection(ip, &credential).await;
            let r = read(&mut conn, "/server/1/status/ping").await;
            assert_eq!(r.status(), Some(&StatusCode::OK));
            assert_eq!(r.leap_version(), Some(3.247));
        });
    }
}

lan_test! {
    fn qsx_answers_a_bare_device_read_with_204_and_no_body() {
        let sim = Sim::start(&[
            "--count", "1", "--system-type", "qsx", "--auto-press", "100ms", "--no-probe",
        ]);
        let identity = pairing_identity(&sim.state_dir);
        let p = &sim.manifest[0];
        let ip = address(p);
        block_on(async {
            let credential = pair_with(ip, &identity).await;
            let mut conn = main_connection(ip, &credential).await;
            let r = read(&mut conn, "/device").await;
            assert_eq!(r.status(), Some(&StatusCode::NO_CONTENT));
            assert_eq!(r.body, None);
            let r = read(&mut conn, "/device?where=IsThisDevice:true").await;
            assert_eq!(r.body.unwrap()["Devices"][0]["SerialNumber"], p["serial"]);
            let r = read(&mut conn, "/project").await;
            assert_eq!(r.body.unwrap()["Project"]["ProductType"], "Lutron HWQS Project");
        });
    }
}
