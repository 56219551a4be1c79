//! Pairing handshakes per second the simulator sustains: N concurrent
//! clients each pair again and again for a fixed time against
//! `handoff sim --auto-press 0s` (the button pressed as soon as a client
//! waits), with the library's own client: TCP connect, mutual TLS with the
//! pairing identity, `handoff::leap::pair` (wait for the press, send the
//! CSR, receive the signed certificate), close.
//!
//! ```text
//! cargo run --release --example pair_bench -- --address IP [--address IP…] \
//!     --identity DIR [--clients 1,4,16] [--seconds 5] [--key rsa|ec] [--json]
//! ```
//!
//! Client i pairs with address i mod (number of addresses): with as many
//! processors as clients, each has its own; with one, they contend for it
//! (a processor pairs one client at a time and closes on the others, as a
//! real one does: those count as `failed`).
//!
//! Run it where the simulator's address is reachable: inside the private
//! network namespace `bench/pairing` makes (it runs this). The client key
//! and its CSR are made once and reused, so what is measured is the
//! simulator's side (TLS, the LEAP exchange, signing the CSR) plus the
//! client's TLS, not the client's key generation. A measurement, not a
//! test: nothing is asserted about time.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use handoff::identity::{KeyAlgorithm, PairingIdentity, PrivateKey};
use handoff::leap::pairing::PairingClientConfig;
use handoff::leap::{Connection, CsrParameters, pair};
use handoff::tls;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const PAIRING_PORT: u16 = 8083;

struct Args {
    addresses: Vec<IpAddr>,
    identity: PathBuf,
    clients: Vec<usize>,
    seconds: f64,
    key: KeyAlgorithm,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut addresses = Vec::new();
    let mut identity = None;
    let mut clients = vec![1, 4, 16];
    let mut seconds = 5.0;
    let mut key = KeyAlgorithm::Rsa2048;
    let mut json = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--address" => {
                addresses.push(value()?.parse().map_err(|e| format!("--address: {e}"))?);
            }
            "--identity" => identity = Some(PathBuf::from(value()?)),
            "--clients" => {
                clients = value()?
                    .split(',')
                    .map(|n| n.parse().ok().filter(|n| *n > 0))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or("--clients needs positive numbers, comma-separated")?;
            }
            "--seconds" => {
                seconds = value()?
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0)
                    .ok_or("--seconds needs a positive number")?;
            }
            "--key" => {
                key = match value()?.as_str() {
                    "rsa" => KeyAlgorithm::Rsa2048,
                    "ec" => KeyAlgorithm::EcdsaP256,
                    other => return Err(format!("--key: rsa or ec, not {other}")),
                };
            }
            "--json" => json = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if addresses.is_empty() {
        return Err("--address IP is required".into());
    }
    Ok(Args {
        addresses,
        identity: identity.ok_or("--identity DIR is required")?,
        clients,
        seconds,
        key,
        json,
    })
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pair_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = bench(&args).await {
        eprintln!("pair_bench: {e}");
        std::process::exit(1);
    }
}

struct Round {
    clients: usize,
    processors: usize,
    ok: u64,
    failed: u64,
    elapsed: f64,
    latencies_ms: Vec<f64>,
    first_error: Option<String>,
}

async fn bench(args: &Args) -> Result<(), String> {
    let identity = PairingIdentity::load(&args.identity).map_err(|e| e.to_string())?;
    let config = tls::pairing_client_config(&identity).map_err(|e| e.to_string())?;
    let key = PrivateKey::generate(args.key).map_err(|e| e.to_string())?;
    let csr = key.csr_pem("pair_bench").map_err(|e| e.to_string())?;
    let csr = CsrParameters::admin(csr, "pair_bench");

    let mut rounds = Vec::new();
    for &clients in &args.clients {
        let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let config = Arc::clone(&config);
                let csr = csr.clone();
                let address = args.addresses[i % args.addresses.len()];
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut failed = 0u64;
                    let mut first_error = None;
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        match one(&config, address, csr.clone()).await {
                            Ok(()) => latencies.push(t0.elapsed().as_secs_f64() * 1000.0),
                            Err(e) => {
                                failed += 1;
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    (latencies, failed, first_error)
                })
            })
            .collect();
        let mut round = Round {
            clients,
            processors: clients.min(args.addresses.len()),
            ok: 0,
            failed: 0,
            elapsed: 0.0,
            latencies_ms: Vec::new(),
            first_error: None,
        };
        for task in tasks {
            let (latencies, failed, error) = task.await.map_err(|e| e.to_string())?;
            round.ok += latencies.len() as u64;
            round.latencies_ms.extend(latencies);
            round.failed += failed;
            if round.first_error.is_none() {
                round.first_error = error;
            }
        }
        round.elapsed = start.elapsed().as_secs_f64();
        round.latencies_ms.sort_by(f64::total_cmp);
        rounds.push(round);
    }
    report(args, &rounds);
    Ok(())
}

/// One whole pairing on a fresh connection.
async fn one(
    config: &Arc<rustls::ClientConfig>,
    address: IpAddr,
    csr: CsrParameters,
) -> Result<(), String> {
    let tcp = TcpStream::connect((address, PAIRING_PORT))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let tls = TlsConnector::from(Arc::clone(config))
        .connect(tls::processor_server_name(address), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let mut conn = Connection::new(tls);
    let mut cfg = PairingClientConfig::new("pair_bench", csr);
    cfg.button_timeout = Duration::from_secs(10);
    let signed = pair(&mut conn, cfg).await.map_err(|e| e.to_string())?;
    let _ = conn.shutdown().await;
    if signed.certificate.contains("-----BEGIN CERTIFICATE-----") {
        Ok(())
    } else {
        Err("the processor signed no PEM certificate".into())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(args: &Args, rounds: &[Round]) {
    if args.json {
        let rows: Vec<_> = rounds
            .iter()
            .map(|r| {
                serde_json::json!({
                    "clients": r.clients, "processors": r.processors, "ok": r.ok, "failed": r.failed,
                    "seconds": r.elapsed, "per_s": r.ok as f64 / r.elapsed,
                    "latency_ms": {
                        "median": percentile(&r.latencies_ms, 0.5),
                        "min": r.latencies_ms.first().copied().unwrap_or(0.0),
                        "max": r.latencies_ms.last().copied().unwrap_or(0.0),
                        "p90": percentile(&r.latencies_ms, 0.9),
                    },
                    "first_error": r.first_error,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"addresses": args.addresses, "seconds": args.seconds, "rounds": rows})
        );
        return;
    }
    println!(
        "{:>7} {:>10} {:>7} {:>7} {:>10} {:>24}",
        "clients", "processors", "ok", "failed", "pairs/s", "latency ms med (min–max)"
    );
    for r in rounds {
        println!(
            "{:>7} {:>10} {:>7} {:>7} {:>10.1} {:>8.1} ({:.1}–{:.1})",
            r.clients,
            r.processors,
            r.ok,
            r.failed,
            r.ok as f64 / r.elapsed,
            percentile(&r.latencies_ms, 0.5),
            r.latencies_ms.first().copied().unwrap_or(0.0),
            r.latencies_ms.last().copied().unwrap_or(0.0),
        );
        if let Some(e) = &r.first_error {
            println!("        first error: {e}");
        }
    }
}
