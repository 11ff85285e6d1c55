//! Delivering one webhook: a JSON POST to a URL a user chose, to a server we don't trust.
//!
//! Everything about the receiver is bounded: how long it may take (connect and total timeouts),
//! how much of its answer is read ([`SendConfig::body_limit`]), where it may send us (redirects
//! are not followed: a 3xx is a failed delivery, or a public URL could bounce us to
//! 127.0.0.1), and which addresses are reached at all (see [`super::guard`]).

use std::error::Error;
use std::io;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, USER_AGENT};
use reqwest::{Client, Response, StatusCode, redirect};

use super::guard::{self, GuardedResolver, NonPublicHost, UrlProblem};

const AGENT: &str = concat!("Gridlight-Webhooks/", env!("CARGO_PKG_VERSION"));

/// How much of a receiver's answer (or redirect target) is kept for the delivery log.
const EXCERPT_CHARS: usize = 200;

#[derive(Debug, Clone)]
pub struct SendConfig {
    /// Time allowed to establish the TCP connection (and TLS handshake).
    pub connect_timeout: Duration,
    /// Time allowed for the whole delivery, from connecting to the last byte of the answer read.
    pub timeout: Duration,
    /// Reach private, loopback and link-local addresses too: for receivers on the server's own
    /// network, and tests. Off, only public addresses are reached.
    pub allow_private: bool,
    /// At most this many bytes of the answer are read; the rest is never received.
    pub body_limit: usize,
}

/// Sends deliveries over one connection pool. Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct Sender {
    client: Client,
    config: SendConfig,
}

/// What became of one delivery attempt, for the delivery log and the retry decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The receiver's HTTP status, if it answered at all.
    pub status: Option<u16>,
    /// From sending the request to the answer's headers (or to the failure).
    pub latency: Duration,
    /// Why the delivery failed, in short English; never the body nor header values we sent.
    pub error: Option<String>,
    /// The start of the receiver's answer, as printable text.
    pub excerpt: String,
}

impl Outcome {
    /// Whether the receiver took the delivery (a 2xx answer).
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|status| (200..300).contains(&status))
    }

    /// A delivery refused before anything was sent.
    fn unsent(error: String) -> Outcome {
        Outcome { status: None, latency: Duration::ZERO, error: Some(error), excerpt: String::new() }
    }
}

impl Sender {
    /// Builds the client; fails if the system's CA certificates can't be loaded.
    pub fn new(config: SendConfig) -> anyhow::Result<Sender> {
        // reqwest is built without a crypto provider of its own (see Cargo.toml) and takes the
        // process default. An Err here means one is installed already (by an earlier Sender, or by
        // the program) and that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .no_proxy()
            .redirect(redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .dns_resolver(GuardedResolver::new(config.allow_private))
            .build()
            .context(
                "cannot build the webhook HTTP client; HTTPS certificates are checked against the \
                 system's CA store (the ca-certificates package, or SSL_CERT_FILE / SSL_CERT_DIR)",
            )?;
        Ok(Sender { client, config })
    }

    /// POSTs `body` (JSON) to `url` with the extra `headers`, and says what came of it.
    ///
    /// Never fails: every failure, including a URL the guard refuses, is an [`Outcome`] to log.
    /// `Content-Type` and `User-Agent` are always ours, whatever `headers` holds.
    pub async fn post(&self, url: &str, body: Vec<u8>, headers: &[(&'static str, String)]) -> Outcome {
        // The resolver guards names; a literal address never reaches it, so it is checked here.
        let url = match guard::check_url(url, self.config.allow_private) {
            Ok(url) => url,
            Err(problem @ UrlProblem::NotPublic { .. }) => {
                return Outcome::unsent(format!("refused by the address guard: {problem}"));
            }
            Err(problem) => return Outcome::unsent(format!("invalid webhook URL: {problem}")),
        };
        let mut request_headers = HeaderMap::with_capacity(headers.len() + 2);
        for (name, value) in headers {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                return Outcome::unsent(format!("{name:?} is not a valid HTTP header name"));
            };
            let Ok(mut value) = HeaderValue::from_str(value) else {
                return Outcome::unsent(format!("the {name} header's value is not a valid HTTP header value"));
            };
            // Signatures and tokens stay out of any debug output of the request.
            value.set_sensitive(true);
            request_headers.insert(header, value);
        }
        request_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request_headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));

        let sent = Instant::now();
        let answer = self.client.post(url).headers(request_headers).body(body).send().await;
        let latency = sent.elapsed();
        let response = match answer {
            Ok(response) => response,
            Err(err) => {
                return Outcome { status: None, latency, error: Some(self.describe(err)), excerpt: String::new() };
            }
        };
        let status = response.status();
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(match response.headers().get(LOCATION) {
                Some(target) => {
                    format!("redirect to {} not followed", printable(&String::from_utf8_lossy(target.as_bytes())))
                }
                None => format!("redirect ({}) without a Location not followed", status_line(status)),
            })
        } else {
            Some(format!("the receiver answered {}", status_line(status)))
        };
        let answer = read_limited(response, self.config.body_limit).await;
        Outcome { status: Some(status.as_u16()), latency, error, excerpt: printable(&String::from_utf8_lossy(&answer)) }
    }

    /// A short English account of a failed request, naming neither the URL (it may hold a token)
    /// nor anything we sent.
    fn describe(&self, err: reqwest::Error) -> String {
        let err = err.without_url();
        if let Some(refused) = find::<NonPublicHost>(&err) {
            return format!("refused by the address guard: {refused}");
        }
        if err.is_timeout() {
            return if err.is_connect() {
                format!("could not connect within {}", seconds(self.config.connect_timeout))
            } else {
                format!("no complete answer within {}", seconds(self.config.timeout))
            };
        }
        if let Some(tls) = find::<rustls::Error>(&err) {
            return format!("TLS error: {tls}");
        }
        if let Some(io) = find::<io::Error>(&err) {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
                io::ErrorKind::ConnectionReset => return "connection reset by the receiver".to_owned(),
                _ => {}
            }
        }
        if err.is_dns() {
            return format!("DNS lookup failed: {}", root_cause(&err));
        }
        if err.is_connect() {
            return format!("could not connect: {}", root_cause(&err));
        }
        format!("request failed: {}", root_cause(&err))
    }
}

/// Reads at most `limit` bytes of the answer. Dropping the response then closes the connection
/// rather than draining the rest.
async fn read_limited(mut response: Response, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    while kept.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            // The end of the answer, or a failure part-way: the status already decided the
            // outcome, and what arrived is kept.
            Ok(None) | Err(_) => break,
        }
    }
    kept
}

/// The first [`EXCERPT_CHARS`] characters of `text`, with control characters replaced so an
/// excerpt can't break the log line or terminal it is shown in.
fn printable(text: &str) -> String {
    text.chars()
        .take(EXCERPT_CHARS)
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect()
}

fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// The first error of type `T` in `err`'s chain.
fn find<'a, T: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        next = cause(err);
    }
    None
}

fn root_cause(err: &(dyn Error + 'static)) -> String {
    let mut last = err;
    while let Some(next) = cause(last) {
        last = next;
    }
    last.to_string()
}

/// The error `err` wraps. An `io::Error`'s `source` skips the error it wraps (it returns that
/// error's source), and TLS failures arrive as a rustls error inside two `io::Error`s, so for
/// those the wrapped error is taken instead.
fn cause<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    match err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
        Some(wrapped) => Some(wrapped),
        None => err.source(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nthanks";
    const GUARD_TAIL: &str = "webhooks may reach only public addresses unless the server allows private targets";

    fn sender(allow_private: bool, timeout: Duration) -> Sender {
        Sender::new(SendConfig { connect_timeout: Duration::from_secs(1), timeout, allow_private, body_limit: 4096 })
            .unwrap()
    }

    /// A request as the test server read it.
    struct Received {
        head: String,
        body: Vec<u8>,
    }

    impl Received {
        fn headers(&self, name: &str) -> Vec<&str> {
            let fields = self.head.lines().skip(1).filter_map(|line| line.split_once(':'));
            fields.filter(|(field, _)| field.eq_ignore_ascii_case(name)).map(|(_, value)| value.trim()).collect()
        }
    }

    fn read_request(stream: &mut TcpStream) -> Received {
        let mut data = Vec::new();
        let mut buf = [0; 4096];
        let head_end = loop {
            if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut buf).expect("reading the request head");
            assert!(n > 0, "the client closed before sending a whole request head");
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
        let mut received = Received { head, body: data[head_end..].to_vec() };
        let length: usize = received.headers("content-length").first().map_or(0, |v| v.parse().unwrap());
        while received.body.len() < length {
            let n = stream.read(&mut buf).expect("reading the request body");
            assert!(n > 0, "the client closed before sending the whole body");
            received.body.extend_from_slice(&buf[..n]);
        }
        received
    }

    /// Serves one connection on 127.0.0.1: reads a request, hands it to the test, then lets
    /// `respond` answer.
    fn serve_once(respond: impl FnOnce(TcpStream) + Send + 'static) -> (u16, mpsc::Receiver<Received>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = tx.send(read_request(&mut stream));
            respond(stream);
        });
        (port, rx)
    }

    fn reply(answer: impl Into<String>) -> impl FnOnce(TcpStream) + Send + 'static {
        let answer = answer.into();
        // The client may have gone already (it reads only so much): that is not the test's concern.
        move |mut stream| drop(stream.write_all(answer.as_bytes()))
    }

    fn assert_no_connection(listener: &TcpListener) {
        listener.set_nonblocking(true).unwrap();
        match listener.accept() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("a connection reached the listener: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_2xx_is_delivered_with_headers_and_body_intact() {
        let (port, requests) = serve_once(reply(OK));
        let body = br#"{"event":"task.due","id":42}"#.to_vec();
        let headers = [
            ("gridlight-signature", "t=1700000000,v1=ab".to_owned()),
            ("content-type", "text/plain".to_owned()),
            ("user-agent", "spoofed".to_owned()),
        ];
        let outcome = sender(true, Duration::from_secs(2))
            .post(&format!("http://127.0.0.1:{port}/in?x=1"), body.clone(), &headers)
            .await;
        assert_eq!(outcome.status, Some(200));
        assert!(outcome.delivered());
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.excerpt, "thanks");
        assert!(outcome.latency < Duration::from_secs(1), "{:?}", outcome.latency);

        let got = requests.recv_timeout(Duration::from_secs(1)).unwrap();
        assert!(got.head.starts_with("POST /in?x=1 HTTP/1.1\r\n"), "{}", got.head);
        assert_eq!(got.headers("content-type"), ["application/json"]);
        assert_eq!(got.headers("user-agent"), [concat!("Gridlight-Webhooks/", env!("CARGO_PKG_VERSION"))]);
        assert_eq!(got.headers("gridlight-signature"), ["t=1700000000,v1=ab"]);
        assert_eq!(got.body, body);
    }

    #[tokio::test]
    async fn a_5xx_is_a_failure_with_its_status() {
        let answer =
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 10\r\nConnection: close\r\n\r\noops\x07\nline";
        let (port, _requests) = serve_once(reply(answer));
        let outcome =
            sender(true, Duration::from_secs(2)).post(&format!("http://127.0.0.1:{port}/"), b"{}".to_vec(), &[]).await;
        assert_eq!(outcome.status, Some(500));
        assert!(!outcome.delivered());
        assert_eq!(outcome.error.as_deref(), Some("the receiver answered HTTP 500 Internal Server Error"));
        assert_eq!(outcome.excerpt, "oops\u{fffd} line");
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let location = format!("http://127.0.0.1:{}/stolen", target.local_addr().unwrap().port());
        let answer =
            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let (port, _requests) = serve_once(reply(answer));
        let outcome =
            sender(true, Duration::from_secs(2)).post(&format!("http://127.0.0.1:{port}/"), b"{}".to_vec(), &[]).await;
        assert_eq!(outcome.status, Some(302));
        assert!(!outcome.delivered());
        assert_eq!(outcome.error, Some(format!("redirect to {location} not followed")));
        assert_no_connection(&target);
    }

    #[tokio::test]
    async fn a_huge_answer_is_read_only_up_to_the_limit() {
        const SIZE: usize = 10 * 1024 * 1024;
        let (wrote_all_tx, wrote_all) = mpsc::channel();
        let (port, _requests) = serve_once(move |mut stream| {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n");
            let chunk = vec![b'x'; 64 * 1024];
            let complete = stream.write_all(head.as_bytes()).is_ok()
                && (0..SIZE / chunk.len()).all(|_| stream.write_all(&chunk).is_ok());
            let _ = wrote_all_tx.send(complete);
        });
        let started = Instant::now();
        let outcome =
            sender(true, Duration::from_secs(5)).post(&format!("http://127.0.0.1:{port}/"), b"{}".to_vec(), &[]).await;
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert!(outcome.delivered());
        assert_eq!(outcome.excerpt, "x".repeat(EXCERPT_CHARS));

        // The rest was never taken: the connection closed on the server while it was writing.
        let deadline = Instant::now() + Duration::from_secs(1);
        let complete = loop {
            match wrote_all.try_recv() {
                Ok(complete) => break complete,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => panic!("the server is still writing: {e}"),
            }
        };
        assert!(!complete, "the whole 10 MB answer was read");
    }

    #[tokio::test]
    async fn a_silent_receiver_runs_into_the_total_timeout() {
        let (port, _requests) = serve_once(|stream| {
            thread::sleep(Duration::from_secs(3));
            drop(stream);
        });
        let outcome =
            sender(true, Duration::from_secs(1)).post(&format!("http://127.0.0.1:{port}/"), b"{}".to_vec(), &[]).await;
        assert_eq!(outcome.status, None);
        assert_eq!(outcome.error.as_deref(), Some("no complete answer within 1 s"));
        assert!(
            outcome.latency >= Duration::from_secs(1) && outcome.latency < Duration::from_millis(1500),
            "{:?}",
            outcome.latency
        );
    }

    #[tokio::test]
    async fn private_targets_are_refused_before_any_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let guarded = sender(false, Duration::from_secs(1));

        let literal = guarded.post(&format!("http://127.0.0.1:{port}/"), b"{}".to_vec(), &[]).await;
        assert_eq!(literal.status, None);
        assert_eq!(
            literal.error,
            Some(format!("refused by the address guard: the URL's host 127.0.0.1 is a loopback address; {GUARD_TAIL}"))
        );
        let mapped = guarded.post(&format!("http://[::ffff:127.0.0.1]:{port}/"), b"{}".to_vec(), &[]).await;
        assert!(mapped.error.as_deref().unwrap().starts_with("refused by the address guard: "), "{mapped:?}");
        let named = guarded.post(&format!("http://localhost:{port}/"), b"{}".to_vec(), &[]).await;
        assert_eq!(named.status, None);
        assert_eq!(
            named.error,
            Some(format!(
                "refused by the address guard: localhost resolved only to non-public addresses; {GUARD_TAIL}"
            ))
        );
        assert_no_connection(&listener);
    }

    #[tokio::test]
    async fn private_targets_are_reached_when_allowed() {
        for host in ["127.0.0.1", "localhost"] {
            let (port, requests) = serve_once(reply(OK));
            let outcome =
                sender(true, Duration::from_secs(2)).post(&format!("http://{host}:{port}/"), b"{}".to_vec(), &[]).await;
            assert!(outcome.delivered(), "{host}: {outcome:?}");
            assert_eq!(requests.recv_timeout(Duration::from_secs(1)).unwrap().body, b"{}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_connection_refused() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let outcome =
            sender(true, Duration::from_secs(1)).post(&format!("http://127.0.0.1:{port}/"), b"{}".to_vec(), &[]).await;
        assert_eq!(outcome.status, None);
        assert_eq!(outcome.error.as_deref(), Some("connection refused"));
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_a_tls_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut hello = [0; 1024];
            let _ = stream.read(&mut hello);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        });
        let outcome =
            sender(true, Duration::from_secs(1)).post(&format!("https://127.0.0.1:{port}/"), b"{}".to_vec(), &[]).await;
        assert_eq!(outcome.status, None);
        assert_eq!(outcome.error.as_deref(), Some("TLS error: received corrupt message of type InvalidContentType"));
    }

    #[tokio::test]
    async fn a_header_that_cannot_be_sent_sends_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let headers = [("gridlight-signature", "t=1\r\nx-injected: yes".to_owned())];
        let outcome = sender(true, Duration::from_secs(1))
            .post(&format!("http://127.0.0.1:{port}/"), b"{}".to_vec(), &headers)
            .await;
        assert_eq!(
            outcome.error.as_deref(),
            Some("the gridlight-signature header's value is not a valid HTTP header value")
        );
        assert_no_connection(&listener);
    }
}
