//! Reading one HTTP/1.1 request off a loopback socket and writing one response, for the tests'
//! scripted servers.

use std::io::{Read, Write};

/// One request as it arrived: the head (request line and headers, up to and including the
/// blank line) and the body (`Content-Length` bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request line and headers, ending in `\r\n\r\n`.
    pub head: String,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
}

impl Request {
    /// The whole request, head then body.
    pub fn text(&self) -> String {
        format!("{}{}", self.head, self.body)
    }
}

/// Reads one request: the head byte by byte up to the blank line (so nothing after it is
/// consumed), then `Content-Length` bytes of body (0 when absent or unreadable). `None` when
/// the connection fails or closes before the head or the body is complete, e.g. a client that
/// refused the server's certificate.
pub fn read_request(s: &mut impl Read) -> Option<Request> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(Request { head, body: String::from_utf8_lossy(&body).into_owned() })
}

/// The request line's method and target (`"POST"`, `"/_bulk?refresh=wait_for"`).
pub fn method_and_target(req: &Request) -> (String, String) {
    let line = req.head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string())
}

/// The value of header `name` (case-insensitive), trimmed.
pub fn header(req: &Request, name: &str) -> Option<String> {
    req.head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// Writes one response: the status line, `headers`, `Content-Length`, then `body`.
pub fn write_response(w: &mut impl Write, status: u16, headers: &[(&str, &str)], body: &str) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n", reason(status), body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body.as_bytes())?;
    w.flush()
}

/// `Basic base64(user:password)`, the `Authorization` header of HTTP Basic auth (RFC 7617).
pub fn basic_auth(user: &str, password: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}");
    let mut out = String::from("Basic ");
    for chunk in raw.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One HTTP/1.1 response read off a raw client connection (for tests that drive a server over a
/// socket, e.g. keep-alive after a refused request): the head, lower-cased, and the body
/// (`Content-Length` bytes; none without one). `None` when the server closed or reset the
/// connection first.
pub fn read_response(r: &mut impl std::io::BufRead) -> Option<(String, String)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push_str(&line.to_ascii_lowercase()),
        }
    }
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_head_and_content_length_body_and_nothing_more() {
        let wire = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello, and more";
        let r = read_request(&mut &wire[..]).unwrap();
        assert_eq!(r.head, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(r.body, "hello");
        assert_eq!(r.text(), "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    }

    #[test]
    fn a_cut_head_or_body_is_none() {
        assert_eq!(read_request(&mut &b"GET / HTTP/1.1\r\nHost: a\r\n"[..]), None);
        assert_eq!(read_request(&mut &b"POST / HTTP/1.1\r\ncontent-length: 9\r\n\r\nshort"[..]), None);
        let no_body = read_request(&mut &b"GET / HTTP/1.1\r\n\r\n"[..]).unwrap();
        assert_eq!(no_body.body, "");
    }

    #[test]
    fn basic_auth_is_rfc_7617s() {
        assert_eq!(basic_auth("guardrail", "hunter2"), "Basic Z3VhcmRyYWlsOmh1bnRlcjI=");
        assert_eq!(
            basic_auth("sre-bot@example.com", "jira-api-token-for-tests"),
            "Basic c3JlLWJvdEBleGFtcGxlLmNvbTpqaXJhLWFwaS10b2tlbi1mb3ItdGVzdHM="
        );
        assert_eq!(basic_auth("a", "b"), "Basic YTpi");
    }

    #[test]
    fn request_line_and_headers() {
        let r = read_request(&mut &b"GET /x?y=1 HTTP/1.1\r\nAuthorization:  ApiKey k \r\n\r\n"[..]).unwrap();
        assert_eq!(method_and_target(&r), ("GET".to_string(), "/x?y=1".to_string()));
        assert_eq!(header(&r, "authorization").as_deref(), Some("ApiKey k"));
        assert_eq!(header(&r, "host"), None);
        let mut out = Vec::new();
        write_response(&mut out, 204, &[("x-a", "1")], "").unwrap();
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nx-a: 1\r\n\r\n");
    }
}
