//! A minimal HTTP/1.1 client over `std::net::TcpStream`, one connection per request
//! (`Connection: close`), with hard connect and read timeouts so that a hung server shows as a
//! failure instead of hanging the test. Raw requests let the bad-input tests send what no
//! well-behaved client library would (invalid UTF-8, lying headers).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

const PROBLEM_JSON: &str = "application/problem+json";

pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// From the start of the connect to the last byte read.
    pub elapsed: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: body is not JSON ({e}): {}", self.status, self.text()))
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// An RFC 9457 problem whose `status` member agrees with the status line.
    pub fn is_problem(&self) -> bool {
        if self.header("content-type") != Some(PROBLEM_JSON) {
            return false;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&self.body) else { return false };
        body["status"] == self.status
            && body["type"].as_str().is_some_and(|t| !t.is_empty())
            && body["title"].as_str().is_some_and(|t| !t.is_empty())
            && body["detail"].is_string()
    }

    /// The JSON body of a 2xx answer.
    #[track_caller]
    pub fn ok(&self, what: &str) -> Value {
        assert!(self.is_success(), "{what}: {} {}", self.status, self.text());
        self.json()
    }
}

/// Talks to one server address.
#[derive(Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
    pub timeout: Duration,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, timeout: Duration::from_secs(20) }
    }

    pub fn with_timeout(self, timeout: Duration) -> Client {
        Client { timeout, ..self }
    }

    /// A request with an optional bearer token and an optional body of a content type.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
        extra: &[(&str, &str)],
    ) -> io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let mut bytes = Vec::new();
        match body {
            Some((content_type, data)) => {
                head.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", data.len()));
                bytes.extend_from_slice(head.as_bytes());
                bytes.extend_from_slice(data);
            }
            None => {
                head.push_str("\r\n");
                bytes.extend_from_slice(head.as_bytes());
            }
        }
        self.raw(&bytes)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> io::Result<Response> {
        self.send("GET", path, token, None, &[])
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> io::Result<Response> {
        self.send("POST", path, token, Some(("application/json", body.to_string().as_bytes())), &[])
    }

    pub fn put(&self, path: &str, token: &str, body: &Value) -> io::Result<Response> {
        self.send("PUT", path, Some(token), Some(("application/json", body.to_string().as_bytes())), &[])
    }

    pub fn patch(&self, path: &str, token: &str, body: &Value) -> io::Result<Response> {
        self.send("PATCH", path, Some(token), Some(("application/json", body.to_string().as_bytes())), &[])
    }

    /// Sends these exact bytes and reads the answer until the server closes the connection.
    pub fn raw(&self, request: &[u8]) -> io::Result<Response> {
        let started = Instant::now();
        let mut stream = TcpStream::connect_timeout(&self.addr, self.timeout.min(Duration::from_secs(3)))?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        stream.set_nodelay(true)?;
        // A server may answer (413, 415) and close before reading a large body: then the write
        // fails, and the answer is still there to read.
        let written = stream.write_all(request);
        let mut buf = Vec::new();
        let read = stream.read_to_end(&mut buf);
        let elapsed = started.elapsed();
        match (parse(&buf), written, read) {
            (Ok((status, headers, body)), _, _) => Ok(Response { status, headers, body, elapsed }),
            (Err(_), Err(e), _) | (Err(_), Ok(()), Err(e)) => Err(e),
            (Err(e), Ok(()), Ok(_)) => Err(e),
        }
    }
}

fn incomplete(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_owned())
}

type Parsed = (u16, Vec<(String, String)>, Vec<u8>);

/// Parses a complete response; an answer cut short (say, by a killed server) is an error.
fn parse(buf: &[u8]) -> io::Result<Parsed> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| incomplete("no complete head"))?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| incomplete("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| incomplete("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| incomplete("bad content-length"))?;
        if rest.len() < len {
            return Err(incomplete("body shorter than content-length"));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| incomplete("chunk size"))?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| incomplete("chunk size"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| incomplete("chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(incomplete("chunk cut short"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
