//! Reading one HTTP/1.1 request off a loopback socket, for the tests' scripted servers.

use std::io::Read;

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
}
