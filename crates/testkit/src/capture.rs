//! Capture servers on loopback for alert tests: an HTTP/1.1 server and an SMTP server that record
//! what they receive. Standard library only; each connection is served on its own thread.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One HTTP request received.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Answers a request: (index of the request from 0, the request) -> (status, JSON body).
pub type Responder = dyn Fn(usize, &HttpRequest) -> (u16, String) + Send + Sync;

/// An HTTP server that records every request and answers with a [`Responder`]: the
/// [`crate::http::ApiServer`] with alert-shaped requests and answers.
pub struct HttpCapture {
    /// Its address.
    pub addr: SocketAddr,
    server: crate::http::ApiServer,
}

impl HttpCapture {
    /// Start a server answering every request with `200 {}`.
    pub fn ok() -> HttpCapture {
        HttpCapture::start(|_, _| (200, "{}".to_string()))
    }

    /// Start a server answering with `respond`.
    pub fn start(
        respond: impl Fn(usize, &HttpRequest) -> (u16, String) + Send + Sync + 'static,
    ) -> HttpCapture {
        let count = std::sync::atomic::AtomicUsize::new(0);
        let server = crate::http::ApiServer::start(move |req| {
            let index = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (status, body) = respond(index, &HttpRequest::from(req));
            crate::http::Response::json(status, body).into()
        });
        HttpCapture {
            addr: server.addr,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.server
            .requests()
            .iter()
            .map(HttpRequest::from)
            .collect()
    }
}

impl From<&crate::http::Request> for HttpRequest {
    fn from(r: &crate::http::Request) -> HttpRequest {
        HttpRequest {
            method: r.method.clone(),
            path: r.target.clone(),
            headers: r.headers.clone(),
            body: r.body.clone(),
        }
    }
}

/// One message received by the [`SmtpCapture`].
#[derive(Debug, Clone, Default)]
pub struct SmtpMessage {
    /// What followed `AUTH PLAIN`, or the two `AUTH LOGIN` answers, as sent (base64).
    pub auth: Vec<String>,
    /// `MAIL FROM:` address.
    pub mail_from: String,
    /// `RCPT TO:` addresses.
    pub rcpt_to: Vec<String>,
    /// The message after `DATA`, CRLF line ends, without the final `.` line.
    pub data: String,
}

/// A plain SMTP server (EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no STARTTLS)
/// that records each message.
pub struct SmtpCapture {
    /// Its address.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<SmtpMessage>>>,
}

impl SmtpCapture {
    /// Start the server.
    pub fn start() -> SmtpCapture {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let received: Arc<Mutex<Vec<SmtpMessage>>> = Arc::default();
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || serve_smtp(stream, &log));
            }
        });
        SmtpCapture { addr, received }
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        self.received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn serve_smtp(mut stream: TcpStream, log: &Mutex<Vec<SmtpMessage>>) {
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut say = |s: &str| stream.write_all(format!("{s}\r\n").as_bytes()).is_ok();
    if !say("220 capture ESMTP") {
        return;
    }
    let mut msg = SmtpMessage::default();
    let mut login_steps = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        if login_steps > 0 {
            msg.auth.push(line.clone());
            login_steps -= 1;
            let ok = if login_steps == 0 {
                say("235 ok")
            } else {
                say("334 UGFzc3dvcmQ6")
            };
            if !ok {
                return;
            }
            continue;
        }
        let upper = line.to_ascii_uppercase();
        let ok = if upper.starts_with("EHLO") {
            say("250-capture\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME")
        } else if upper.starts_with("AUTH PLAIN ") {
            msg.auth.push(line["AUTH PLAIN ".len()..].to_string());
            say("235 ok")
        } else if upper == "AUTH LOGIN" {
            login_steps = 2;
            say("334 VXNlcm5hbWU6")
        } else if upper.starts_with("MAIL FROM:") {
            msg.mail_from = line["MAIL FROM:".len()..]
                .trim_matches(|c| c == '<' || c == '>')
                .to_string();
            say("250 ok")
        } else if upper.starts_with("RCPT TO:") {
            msg.rcpt_to.push(
                line["RCPT TO:".len()..]
                    .trim_matches(|c| c == '<' || c == '>')
                    .to_string(),
            );
            say("250 ok")
        } else if upper == "DATA" {
            if !say("354 go ahead") {
                return;
            }
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(&l);
            }
            msg.data = data;
            log.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(std::mem::take(&mut msg));
            say("250 queued")
        } else if upper == "QUIT" {
            let _ = say("221 bye");
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            say("250 ok")
        } else {
            say("502 not implemented")
        };
        if !ok {
            return;
        }
    }
}
