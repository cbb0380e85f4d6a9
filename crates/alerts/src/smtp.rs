//! A small SMTP client (RFC 5321) for alert e-mails: plain, STARTTLS or implicit TLS, AUTH PLAIN
//! or LOGIN, one message per connection.
//!
//! Written here rather than taken from `lettre` because `lettre`'s rustls support turns on
//! rustls features the rest of the tree does not use, which rebuilds every crate above rustls
//! (reqwest, object_store, delta-rs, DataFusion). This one uses the tokio-rustls already built.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tributary_core::alerts::{SmtpConfig, SmtpTls};

/// An SMTP failure: what happened, whether trying again later may help, and the reply code.
#[derive(Debug)]
pub struct SmtpError {
    /// What failed, without the password.
    pub message: String,
    /// Connection problems, timeouts and 4xx replies are temporary.
    pub retryable: bool,
    /// The server's reply code, when it gave one.
    pub code: Option<u32>,
}

impl SmtpError {
    fn io(what: &str, e: std::io::Error) -> SmtpError {
        SmtpError {
            message: format!("{what}: {e}"),
            retryable: true,
            code: None,
        }
    }
    fn protocol(message: String) -> SmtpError {
        SmtpError {
            message,
            retryable: false,
            code: None,
        }
    }
}

/// A message to send.
pub struct Mail<'a> {
    /// Sender address.
    pub from: &'a str,
    /// Recipients.
    pub to: &'a [String],
    /// Subject (one line).
    pub subject: &'a str,
    /// Plain-text body.
    pub body: &'a str,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Session {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    host: String,
}

/// One reply: its code and lines (without the code).
struct Reply {
    code: u32,
    lines: Vec<String>,
}

impl Session {
    async fn read_reply(&mut self) -> Result<Reply, SmtpError> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line.len() < 3 {
                return Err(SmtpError::protocol(format!(
                    "{}: malformed reply `{line}`",
                    self.host
                )));
            }
            let code: u32 = line[..3].parse().map_err(|_| {
                SmtpError::protocol(format!("{}: malformed reply `{line}`", self.host))
            })?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                return Ok(Reply { code, lines });
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, SmtpError> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..pos]).into_owned());
            }
            if self.buf.len() > 64 * 1024 {
                return Err(SmtpError::protocol(format!(
                    "{}: reply line too long",
                    self.host
                )));
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| SmtpError::io(&format!("reading from {}", self.host), e))?;
            if n == 0 {
                return Err(SmtpError {
                    message: format!("{} closed the connection", self.host),
                    retryable: true,
                    code: None,
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, line: &str) -> Result<(), SmtpError> {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| SmtpError::io(&format!("writing to {}", self.host), e))?;
        self.stream
            .flush()
            .await
            .map_err(|e| SmtpError::io(&format!("writing to {}", self.host), e))
    }

    /// Send `line` (shown as `shown` in errors) and expect a reply code in `ok`.
    async fn command(&mut self, line: &str, shown: &str, ok: &[u32]) -> Result<Reply, SmtpError> {
        self.send(line).await?;
        let reply = self.read_reply().await?;
        if ok.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(SmtpError {
                message: format!(
                    "{}: `{shown}` was answered {} {}",
                    self.host,
                    reply.code,
                    reply.lines.join(" ")
                ),
                retryable: (400..500).contains(&reply.code),
                code: Some(reply.code),
            })
        }
    }

    async fn ehlo(&mut self) -> Result<Vec<String>, SmtpError> {
        let reply = self.command("EHLO tributary", "EHLO", &[250]).await?;
        Ok(reply
            .lines
            .iter()
            .skip(1)
            .map(|l| l.to_ascii_uppercase())
            .collect())
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, SmtpError> {
    let mut roots = rustls::RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(loaded.certs);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SmtpError::protocol(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn wrap_tls<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    host: &str,
) -> Result<Box<dyn Io>, SmtpError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| SmtpError::protocol(format!("`{host}` is not a TLS server name: {e}")))?;
    let tls = tls_connector()?
        .connect(name, stream)
        .await
        .map_err(|e| SmtpError::io(&format!("TLS handshake with {host}"), e))?;
    Ok(Box::new(tls))
}

/// Base64 (standard alphabet, padded): `AUTH` tokens, encoded subjects and bodies.
pub fn base64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// `Subject:` value: as is when ASCII, else an RFC 2047 encoded word.
fn encode_header(s: &str) -> String {
    let s = one_line(s);
    if s.is_ascii() {
        s
    } else {
        format!("=?UTF-8?B?{}?=", base64(s.as_bytes()))
    }
}

/// The message as sent after DATA (headers, body, dot-stuffed, CRLF line ends), without the
/// final `.` line.
pub fn render_message(mail: &Mail<'_>, date: chrono::DateTime<chrono::Utc>, id: &str) -> String {
    let mut m = String::new();
    m.push_str(&format!("From: <{}>\r\n", one_line(mail.from)));
    m.push_str(&format!(
        "To: {}\r\n",
        mail.to
            .iter()
            .map(|t| format!("<{}>", one_line(t)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    m.push_str(&format!("Subject: {}\r\n", encode_header(mail.subject)));
    m.push_str(&format!("Date: {}\r\n", date.to_rfc2822()));
    m.push_str(&format!("Message-ID: <{id}@tributary>\r\n"));
    m.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n");
    let lines: Vec<&str> = mail.body.lines().collect();
    if mail.body.is_ascii() && lines.iter().all(|l| l.len() <= 990) {
        m.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
        for l in lines {
            if l.starts_with('.') {
                m.push('.');
            }
            m.push_str(l);
            m.push_str("\r\n");
        }
    } else {
        m.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        let encoded = base64(mail.body.replace('\n', "\r\n").as_bytes());
        for chunk in encoded.as_bytes().chunks(76) {
            m.push_str(&String::from_utf8_lossy(chunk));
            m.push_str("\r\n");
        }
    }
    m
}

/// Send one message through the server of `smtp`, each step within `timeout`.
pub async fn send(smtp: &SmtpConfig, mail: &Mail<'_>, timeout: Duration) -> Result<u32, SmtpError> {
    let host = smtp.host.trim().to_string();
    let port = smtp.effective_port();
    let timed_out = |step: &str| SmtpError {
        message: format!("{host}:{port}: no answer to {step} within {timeout:?}"),
        retryable: true,
        code: None,
    };
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| timed_out("the connection"))?
        .map_err(|e| SmtpError::io(&format!("connecting to {host}:{port}"), e))?;
    let stream: Box<dyn Io> = match smtp.tls {
        SmtpTls::Tls => tokio::time::timeout(timeout, wrap_tls(tcp, &host))
            .await
            .map_err(|_| timed_out("the TLS handshake"))??,
        _ => Box::new(tcp),
    };
    let mut s = Session {
        stream,
        buf: Vec::new(),
        host: format!("{host}:{port}"),
    };
    let step = |what: &'static str| move |_: tokio::time::error::Elapsed| timed_out(what);
    let greeting = tokio::time::timeout(timeout, s.read_reply())
        .await
        .map_err(step("the greeting"))??;
    if greeting.code != 220 {
        return Err(SmtpError {
            message: format!(
                "{}: greeting {} {}",
                s.host,
                greeting.code,
                greeting.lines.join(" ")
            ),
            retryable: (400..500).contains(&greeting.code),
            code: Some(greeting.code),
        });
    }
    let mut ext = tokio::time::timeout(timeout, s.ehlo())
        .await
        .map_err(step("EHLO"))??;
    if smtp.tls == SmtpTls::Starttls {
        if !ext.iter().any(|e| e == "STARTTLS") {
            return Err(SmtpError::protocol(format!(
                "{}: the server does not offer STARTTLS; use `tls: tls` for SMTPS (port 465) or `tls: none` for a plain relay",
                s.host
            )));
        }
        tokio::time::timeout(timeout, s.command("STARTTLS", "STARTTLS", &[220]))
            .await
            .map_err(step("STARTTLS"))??;
        if !s.buf.is_empty() {
            return Err(SmtpError::protocol(format!(
                "{}: data sent before the TLS handshake",
                s.host
            )));
        }
        let plain = s.stream;
        s.stream = tokio::time::timeout(timeout, wrap_tls(plain, &host))
            .await
            .map_err(step("the TLS handshake"))??;
        ext = tokio::time::timeout(timeout, s.ehlo())
            .await
            .map_err(step("EHLO"))??;
    }
    if let Some(user) = &smtp.username {
        let password = smtp.password.as_ref().map_or("", |p| p.expose());
        let auth = ext
            .iter()
            .find(|e| e.starts_with("AUTH"))
            .cloned()
            .unwrap_or_default();
        if auth.split_whitespace().any(|m| m == "PLAIN") {
            let token = base64(format!("\0{user}\0{password}").as_bytes());
            tokio::time::timeout(
                timeout,
                s.command(&format!("AUTH PLAIN {token}"), "AUTH PLAIN", &[235]),
            )
            .await
            .map_err(step("AUTH"))??;
        } else if auth.split_whitespace().any(|m| m == "LOGIN") {
            tokio::time::timeout(timeout, async {
                s.command("AUTH LOGIN", "AUTH LOGIN", &[334]).await?;
                s.command(&base64(user.as_bytes()), "AUTH LOGIN (user)", &[334])
                    .await?;
                s.command(
                    &base64(password.as_bytes()),
                    "AUTH LOGIN (password)",
                    &[235],
                )
                .await
            })
            .await
            .map_err(step("AUTH"))??;
        } else {
            return Err(SmtpError::protocol(format!(
                "{}: the server offers no AUTH PLAIN or LOGIN for `username`",
                s.host
            )));
        }
    }
    let from = one_line(mail.from);
    tokio::time::timeout(
        timeout,
        s.command(&format!("MAIL FROM:<{from}>"), "MAIL FROM", &[250]),
    )
    .await
    .map_err(step("MAIL FROM"))??;
    for to in mail.to {
        let to = one_line(to);
        tokio::time::timeout(
            timeout,
            s.command(
                &format!("RCPT TO:<{to}>"),
                &format!("RCPT TO:<{to}>"),
                &[250, 251],
            ),
        )
        .await
        .map_err(step("RCPT TO"))??;
    }
    tokio::time::timeout(timeout, s.command("DATA", "DATA", &[354]))
        .await
        .map_err(step("DATA"))??;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let message = render_message(mail, chrono::Utc::now(), &id);
    let done = tokio::time::timeout(timeout, async {
        s.stream
            .write_all(message.as_bytes())
            .await
            .map_err(|e| SmtpError::io("sending the message", e))?;
        s.command(".", "the message", &[250]).await
    })
    .await
    .map_err(step("the message"))??;
    // The message is accepted; a failing QUIT changes nothing.
    let _ = tokio::time::timeout(timeout, s.command("QUIT", "QUIT", &[221])).await;
    Ok(done.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn messages_are_dot_stuffed_and_headers_cannot_be_injected() {
        let to = vec!["a@example.com".to_string()];
        let m = render_message(
            &Mail {
                from: "x@example.com",
                to: &to,
                subject: "hi\r\nBcc: evil@example.com",
                body: "line\n.starts with a dot\n",
            },
            chrono::Utc::now(),
            "id1",
        );
        assert!(m.contains("Subject: hi  Bcc: evil@example.com\r\n"), "{m}");
        assert!(m.contains("\r\n..starts with a dot\r\n"), "{m}");
        let m = render_message(
            &Mail {
                from: "x@example.com",
                to: &to,
                subject: "Échec",
                body: "données",
            },
            chrono::Utc::now(),
            "id2",
        );
        assert!(m.contains("Subject: =?UTF-8?B?"), "{m}");
        assert!(m.contains("Content-Transfer-Encoding: base64"), "{m}");
    }
}
