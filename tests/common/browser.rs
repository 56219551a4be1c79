//! A browser for the portal's HTTP tests: a cookie jar, one connection a
//! request (plain HTTP or TLS), forms sent as a browser sends them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::newest_link;

/// One answer: status, headers (names lowercased), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of the first hidden field `name` of the page.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let at = self.body.find(&marker).expect("a form with that field");
        let rest = &self.body[at + marker.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    /// The page's first CSRF token.
    pub fn csrf(&self) -> String {
        self.hidden("csrf")
    }

    /// The nonce of the page's first form (each form has its own; the
    /// portal takes any of the page's, once).
    pub fn nonce(&self) -> String {
        self.hidden("form")
    }

    pub fn redirects_to_sign_in(&self) -> bool {
        self.status == 303
            && self
                .header("location")
                .is_some_and(|l| l.starts_with("/sign-in"))
    }
}

/// A browser, for the portal: a cookie jar and one connection a request.
pub struct Browser {
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Browser {
        Browser {
            addr,
            tls: None,
            cookies: BTreeMap::new(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, None, false).await
    }

    pub async fn get_json(&mut self, path: &str) -> serde_json::Value {
        let reply = self.send("GET", path, None, true).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        serde_json::from_str(&reply.body).expect("JSON")
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send("POST", path, Some(form), false).await
    }

    /// A POST as a browser sends a form: it must answer 303 (POST,
    /// redirect, GET); the page it leads to is the answer.
    pub async fn submit(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let posted = self.post(path, form).await;
        assert_eq!(posted.status, 303, "POST {path}: {posted:?}");
        assert!(posted.body.is_empty(), "{}", posted.body);
        let to = posted.header("location").expect("a Location").to_owned();
        self.get(&to).await
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&[(&str, &str)]>,
        json: bool,
    ) -> Reply {
        let body = form
            .map(|f| serde_urlencoded::to_string(f).unwrap())
            .unwrap_or_default();
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            head.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        if json {
            head.push_str("Accept: application/json\r\n");
        }
        if form.is_some() {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        let tcp = TcpStream::connect(self.addr)
            .await
            .expect("connect to the portal");
        let raw = match &self.tls {
            None => exchange(tcp, head.as_bytes()).await,
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .expect("TLS handshake with the portal");
                exchange(tls, head.as_bytes()).await
            }
        };
        let reply = parse(&raw);
        for cookie in reply.set_cookies() {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || cookie.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        reply
    }

    /// Signs in as `email` through the sign-in page and the mail drop;
    /// returns the page the link's POST leads to.
    pub async fn sign_in(&mut self, data: &Path, email: &str) -> Reply {
        let form = self.get("/sign-in").await;
        let csrf = form.csrf();
        let sent = self
            .post(
                "/sign-in",
                &[("csrf", &csrf), ("email", email), ("next", "/")],
            )
            .await;
        // POST/redirect/GET: a refresh of the answer sends no second mail.
        assert_eq!(sent.status, 303, "{}", sent.body);
        let to = sent.header("location").unwrap().to_owned();
        assert!(to.starts_with("/sign-in?sent="), "{to}");
        let shown = self.get(&to).await;
        assert!(shown.body.contains("is on its way"), "{}", shown.body);
        let link = newest_link(data, email);
        self.follow_sign_in_link(&link).await
    }

    /// Opens a sign-in link (GET: a button), then presses the button.
    pub async fn follow_sign_in_link(&mut self, link: &str) -> Reply {
        let path = &link[link.find("/sign-in/").unwrap()..];
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains(">Sign in</button>"), "{}", page.body);
        let csrf = page.csrf();
        let action = path.split('?').next().unwrap();
        let next = page
            .body
            .split("name=\"next\" value=\"")
            .nth(1)
            .map(|r| r[..r.find('"').unwrap()].to_owned())
            .unwrap_or_default();
        self.post(action, &[("csrf", &csrf), ("next", &next)]).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> Vec<u8> {
    stream.write_all(request).await.unwrap();
    stream.flush().await.unwrap();
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify: what was read counts.
    let _ = stream.read_to_end(&mut raw).await;
    raw
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}
