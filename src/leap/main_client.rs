//! The client of the main port (TCP [`MAIN_PORT`](super::MAIN_PORT)),
//! processor-protocol.md §3: a read request, then the communiqué that
//! answers it, skipping whatever else the processor says meanwhile.
//!
//! Like the pairing driver it runs over any stream: connecting with the
//! issued certificate and pinning the processor's key is TLS, the caller's
//! business (`claim` does it), so this module needs no certificates and its
//! tests need no network.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Communique, Connection, ConnectionError};
use crate::processor::{Mac, Serial};

/// The request that makes a processor say who it is.
pub const THIS_DEVICE_URL: &str = "/device?where=IsThisDevice:true";

/// Why the main port did not answer as a processor does. The messages
/// complete "the main port of PROCESSOR …" in the claim's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MainClientError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("no answer to {url} within {} s", .waited.as_secs())]
    NoAnswer { url: String, waited: Duration },
    #[error("it closed the connection before answering")]
    Closed,
    #[error("{url} was answered {status}")]
    Refused { url: String, status: String },
    #[error("{THIS_DEVICE_URL} named no device")]
    NoDevice,
    #[error("the device has no readable SerialNumber")]
    NoSerial,
}

/// What a processor says about itself on the main port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThisDevice {
    pub serial: Serial,
    /// Every readable MAC of its network interfaces.
    pub macs: Vec<Mac>,
}

/// A main-port connection, as a client uses it.
pub struct MainClient<S> {
    conn: Connection<S>,
    tag: String,
    answer_within: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> MainClient<S> {
    /// A client over `stream` that tags its requests with `tag` and gives
    /// each answer `answer_within`.
    pub fn new(stream: S, tag: impl Into<String>, answer_within: Duration) -> Self {
        MainClient {
            conn: Connection::new(stream),
            tag: tag.into(),
            answer_within,
        }
    }

    /// Reads `url`: the answer, whatever its status.
    ///
    /// # Errors
    /// [`MainClientError`] if the request cannot be sent, no answer comes in
    /// time, or the processor closes the connection first.
    pub async fn read(&mut self, url: &str) -> Result<Communique, MainClientError> {
        let request = Communique::read_request(self.tag.as_str(), url);
        self.conn.write_frame(&request).await?;
        loop {
            let frame = tokio::time::timeout(self.answer_within, self.conn.read_frame())
                .await
                .map_err(|_| MainClientError::NoAnswer {
                    url: url.to_owned(),
                    waited: self.answer_within,
                })??
                .ok_or(MainClientError::Closed)?;
            let Ok(communique) = Communique::from_object(frame) else {
                continue;
            };
            if communique.client_tag() == Some(self.tag.as_str()) {
                return Ok(communique);
            }
        }
    }

    /// Asks the processor who it is, then closes the connection.
    ///
    /// # Errors
    /// As [`MainClient::read`], and [`MainClientError::Refused`],
    /// [`MainClientError::NoDevice`] or [`MainClientError::NoSerial`] when
    /// the answer does not say.
    pub async fn this_device(mut self) -> Result<ThisDevice, MainClientError> {
        let answer = self.read(THIS_DEVICE_URL).await?;
        let _ = self.conn.shutdown().await;
        if !answer.status().is_some_and(|s| s.is_success()) {
            return Err(MainClientError::Refused {
                url: THIS_DEVICE_URL.to_owned(),
                status: answer
                    .status()
                    .map_or_else(|| "without a status".to_owned(), |s| s.to_string()),
            });
        }
        parse_this_device(answer.body.as_ref())
    }
}

/// `Devices[0].SerialNumber` and every `NetworkInterfaces[].MACAddress`.
fn parse_this_device(body: Option<&Value>) -> Result<ThisDevice, MainClientError> {
    let device = body
        .and_then(|b| b.get("Devices"))
        .and_then(|d| d.get(0))
        .ok_or(MainClientError::NoDevice)?;
    let serial = device
        .get("SerialNumber")
        .and_then(Value::as_u64)
        .and_then(|s| u32::try_from(s).ok())
        .map(Serial)
        .ok_or(MainClientError::NoSerial)?;
    let macs = device
        .get("NetworkInterfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("MACAddress").and_then(Value::as_str))
        .filter_map(|m| m.parse::<Mac>().ok())
        .collect();
    Ok(ThisDevice { serial, macs })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    #[test]
    fn reads_serial_and_every_mac_of_this_device() {
        let body = json!({"Devices": [{
            "SerialNumber": 37152423,
            "NetworkInterfaces": [{"MACAddress": "02:4c:02:36:e6:a7"}, {"MACAddress": "junk"}],
        }]});
        let device = parse_this_device(Some(&body)).unwrap();
        assert_eq!(device.serial, Serial(37_152_423));
        assert_eq!(device.macs.len(), 1);
        assert_eq!(device.macs[0].to_string(), "02:4c:02:36:e6:a7");
    }

    #[test]
    fn a_device_without_a_serial_is_not_an_identity() {
        let body = json!({"Devices": [{"SerialNumber": "x"}]});
        assert!(matches!(
            parse_this_device(Some(&body)),
            Err(MainClientError::NoSerial)
        ));
        assert!(matches!(
            parse_this_device(None),
            Err(MainClientError::NoDevice)
        ));
        assert!(parse_this_device(Some(&json!({"Devices": []}))).is_err());
    }

    /// A processor that first says something unrelated, then answers.
    async fn processor(stream: tokio::io::DuplexStream, answer: Value) {
        let (read, mut write) = tokio::io::split(stream);
        let mut lines = BufReader::new(read).lines();
        let request: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap())
            .expect("a JSON request");
        assert_eq!(request["Header"]["Url"], THIS_DEVICE_URL);
        let tag = request["Header"]["ClientTag"].clone();
        let mut unrelated = answer.clone();
        unrelated["Header"]["ClientTag"] = json!("someone-else");
        let mut ours = answer;
        ours["Header"]["ClientTag"] = tag;
        for frame in [unrelated, ours] {
            write
                .write_all(format!("{frame}\r\n").as_bytes())
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn this_device_skips_other_communiques_and_reads_its_answer() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let answer = json!({
            "CommuniqueType": "ReadResponse",
            "Header": {"StatusCode": "200 OK", "Url": THIS_DEVICE_URL,
                       "MessageBodyType": "MultipleDeviceDefinition"},
            "Body": {"Devices": [{"SerialNumber": 37152423,
                                  "NetworkInterfaces": [{"MACAddress": "02:4c:02:36:e6:a7"}]}]},
        });
        let server = tokio::spawn(processor(theirs, answer));
        let device = MainClient::new(ours, "handoff-claim", Duration::from_secs(5))
            .this_device()
            .await
            .unwrap();
        server.await.unwrap();
        assert_eq!(device.serial, Serial(37_152_423));
        assert_eq!(device.macs.len(), 1);
    }

    #[tokio::test]
    async fn a_refusal_names_the_url_and_the_status() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let answer = json!({
            "CommuniqueType": "ReadResponse",
            "Header": {"StatusCode": "404 NotFound", "Url": THIS_DEVICE_URL},
        });
        let server = tokio::spawn(processor(theirs, answer));
        let e = MainClient::new(ours, "t", Duration::from_secs(5))
            .this_device()
            .await
            .unwrap_err();
        server.await.unwrap();
        assert_eq!(
            e.to_string(),
            format!("{THIS_DEVICE_URL} was answered 404 NotFound")
        );
    }

    #[tokio::test]
    async fn silence_and_a_closed_connection_are_told_apart() {
        let (ours, _theirs) = tokio::io::duplex(4096);
        let e = MainClient::new(ours, "t", Duration::from_millis(50))
            .read("/device")
            .await
            .unwrap_err();
        assert!(matches!(e, MainClientError::NoAnswer { .. }), "{e}");
        assert!(
            e.to_string().starts_with("no answer to /device within "),
            "{e}"
        );

        let (ours, theirs) = tokio::io::duplex(4096);
        let hang_up = tokio::spawn(async move {
            let mut lines = BufReader::new(theirs).lines();
            lines.next_line().await.unwrap().expect("a request");
        });
        let e = MainClient::new(ours, "t", Duration::from_secs(5))
            .read("/device")
            .await
            .unwrap_err();
        hang_up.await.unwrap();
        assert!(matches!(e, MainClientError::Closed), "{e}");
        assert_eq!(e.to_string(), "it closed the connection before answering");
    }
}
