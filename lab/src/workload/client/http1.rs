//! A small HTTP/1.1 client connection: sends prepared GET requests, keep-alive, and reads
//! answers delimited by content-length, chunked encoding or the end of the connection.

use anyhow::{Context, anyhow, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, sink},
    net::TcpStream,
};

use super::{Fields, field};

/// Longest status line, header line or chunk-size line accepted.
const MAX_LINE: u64 = 16 * 1024;
/// Most header lines accepted in one answer.
const MAX_HEADERS: usize = 200;

/// An answer's status and headers; the body has been read and dropped.
#[derive(Debug)]
pub(crate) struct Http1Answer {
    /// Status code.
    pub(crate) status: u16,
    /// Header fields, names in lower case.
    pub(crate) headers: Fields,
    /// True when the connection may carry another request.
    pub(crate) reusable: bool,
}

/// How the answer's body ends.
enum BodyLength {
    /// No body (204, 304).
    Empty,
    /// Exactly this many bytes.
    Exactly(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// One HTTP/1.1 connection.
pub(crate) struct Http1Connection {
    io: BufReader<TcpStream>,
}

/// A GET request for `path`, with `headers` as given (`host` among them).
pub(crate) fn get_request(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

impl Http1Connection {
    /// Wraps a connected stream.
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            io: BufReader::new(stream),
        }
    }

    /// Sends a prepared request and reads its answer; `None` when the server had closed the
    /// connection before answering, as a server may with an idle keep-alive connection.
    pub(crate) async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Option<Http1Answer>> {
        if let Err(error) = self.io.write_all(request).await {
            return closed_or(error.into());
        }
        let (version, status, headers) = loop {
            let line = match self.read_line().await {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(None),
                Err(error) => return closed_or(error),
            };
            let (version, status) = status_line(&line)?;
            let headers = self.read_headers().await?;
            if !(100..200).contains(&status) {
                break (version, status, headers);
            }
        };
        let length = body_length(status, &headers)?;
        let delimited = self.skip_body(&length).await?;
        let keep_alive = match field(&headers, "connection") {
            Some(value) if value.eq_ignore_ascii_case("close") => false,
            Some(value) if value.eq_ignore_ascii_case("keep-alive") => true,
            _ => version == "HTTP/1.1",
        };
        Ok(Some(Http1Answer {
            status,
            headers,
            reusable: delimited && keep_alive,
        }))
    }

    /// Header lines up to the empty line.
    async fn read_headers(&mut self) -> anyhow::Result<Fields> {
        let mut headers = Vec::new();
        loop {
            let line = self
                .read_line()
                .await?
                .context("connection closed inside the answer's headers")?;
            if line.is_empty() {
                return Ok(headers);
            }
            if headers.len() == MAX_HEADERS {
                bail!("answer has more than {MAX_HEADERS} headers");
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| anyhow!("malformed header line {line:?}"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }

    /// Reads and drops the body; true when its end was marked, not the connection's close.
    async fn skip_body(&mut self, length: &BodyLength) -> anyhow::Result<bool> {
        match length {
            BodyLength::Empty => Ok(true),
            BodyLength::Exactly(bytes) => {
                self.skip_exactly(*bytes).await?;
                Ok(true)
            }
            BodyLength::Chunked => {
                loop {
                    let line = self
                        .read_line()
                        .await?
                        .context("connection closed inside a chunked body")?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(size, 16)
                        .with_context(|| format!("malformed chunk size {line:?}"))?;
                    if size == 0 {
                        break;
                    }
                    self.skip_exactly(size).await?;
                    let end = self.read_line().await?;
                    if end.as_deref() != Some("") {
                        bail!("chunk not followed by CRLF");
                    }
                }
                self.read_headers().await?; // trailers
                Ok(true)
            }
            BodyLength::UntilClose => {
                tokio::io::copy(&mut self.io, &mut sink()).await?;
                Ok(false)
            }
        }
    }

    /// Reads and drops exactly `bytes` bytes.
    async fn skip_exactly(&mut self, bytes: u64) -> anyhow::Result<()> {
        let skipped = tokio::io::copy(&mut (&mut self.io).take(bytes), &mut sink()).await?;
        if skipped < bytes {
            bail!("connection closed after {skipped} of {bytes} body bytes");
        }
        Ok(())
    }

    /// One line without its CRLF; `None` at the end of the connection.
    async fn read_line(&mut self) -> anyhow::Result<Option<String>> {
        let mut line = Vec::new();
        let read = (&mut self.io)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            bail!("answer line too long or cut off");
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(String::from_utf8_lossy(&line).into_owned()))
    }
}

/// Treats a reset or broken pipe before any answer as the server having closed the
/// connection; any other error stays an error.
fn closed_or(error: anyhow::Error) -> anyhow::Result<Option<Http1Answer>> {
    let closed = error.downcast_ref::<std::io::Error>().is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )
    });
    if closed { Ok(None) } else { Err(error) }
}

/// The version and status code of a status line.
fn status_line(line: &str) -> anyhow::Result<(String, u16)> {
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|code| code.parse().ok());
    match status {
        Some(status) if version.starts_with("HTTP/1.") => Ok((version.to_owned(), status)),
        _ => bail!("malformed status line {line:?}"),
    }
}

/// How the body of an answer to a GET ends (RFC 9112 §6.3).
fn body_length(status: u16, headers: &[(String, String)]) -> anyhow::Result<BodyLength> {
    if status == 204 || status == 304 {
        return Ok(BodyLength::Empty);
    }
    if let Some(coding) = field(headers, "transfer-encoding") {
        return if coding.to_ascii_lowercase().ends_with("chunked") {
            Ok(BodyLength::Chunked)
        } else {
            Ok(BodyLength::UntilClose)
        };
    }
    match field(headers, "content-length") {
        Some(length) => {
            Ok(BodyLength::Exactly(length.parse().with_context(|| {
                format!("malformed content-length {length:?}")
            })?))
        }
        None => Ok(BodyLength::UntilClose),
    }
}

#[cfg(test)]
mod tests {
    use tokio::{io::AsyncWriteExt, net::TcpListener};

    use super::*;

    /// A server that answers each request on one connection with the next canned answer,
    /// and hands back the requests it read.
    async fn canned(
        answers: Vec<&'static str>,
    ) -> (TcpStream, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut stream = BufReader::new(stream);
            let mut requests = Vec::new();
            for answer in answers {
                let mut request = String::new();
                loop {
                    let mut line = String::new();
                    stream.read_line(&mut line).await.expect("read");
                    request.push_str(&line);
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                requests.push(request);
                stream.write_all(answer.as_bytes()).await.expect("write");
            }
            requests
        });
        let client = TcpStream::connect(address).await.expect("connect");
        (client, server)
    }

    #[tokio::test]
    async fn reads_length_chunked_and_interim_answers_on_one_connection() {
        let (stream, server) = canned(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Pod: a\r\n\r\nhello",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n\
             Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
        ])
        .await;
        let mut connection = Http1Connection::new(stream);
        let request = get_request("/a?b=c", &[("host", "web"), ("x-canary", "1")]);

        let first = connection
            .exchange(&request)
            .await
            .expect("first")
            .expect("answered");
        assert_eq!(first.status, 200);
        assert_eq!(field(&first.headers, "x-pod"), Some("a"));
        assert!(first.reusable);
        let second = connection
            .exchange(&request)
            .await
            .expect("second")
            .expect("answered");
        assert_eq!(second.status, 503);
        assert!(second.reusable);
        let third = connection
            .exchange(&request)
            .await
            .expect("third")
            .expect("answered");
        assert_eq!(third.status, 204);

        let requests = server.await.expect("server");
        assert_eq!(
            requests[0],
            "GET /a?b=c HTTP/1.1\r\nhost: web\r\nx-canary: 1\r\n\r\n"
        );
        assert_eq!(requests.len(), 3);
    }

    #[tokio::test]
    async fn an_answer_ended_by_close_is_not_reusable_and_then_the_connection_is_closed() {
        let (stream, server) = canned(vec![
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        ])
        .await;
        let mut connection = Http1Connection::new(stream);
        let request = get_request("/", &[("host", "web")]);
        let answer = connection
            .exchange(&request)
            .await
            .expect("answer")
            .expect("answered");
        assert!(!answer.reusable);
        server.await.expect("server");
        // The server is gone: the next exchange reports a closed connection, not an answer.
        assert!(
            connection
                .exchange(&request)
                .await
                .expect("closed")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let (stream, server) =
            canned(vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]).await;
        let mut connection = Http1Connection::new(stream);
        let error = connection
            .exchange(&get_request("/", &[]))
            .await
            .expect_err("cut short");
        server.await.expect("server");
        assert!(error.to_string().contains("3 of 10"), "{error}");
    }

    #[test]
    fn status_lines_and_body_lengths() {
        assert_eq!(status_line("HTTP/1.1 404 Not Found").expect("ok").1, 404);
        assert!(status_line("SSH-2.0-OpenSSH").is_err());
        let until_close = body_length(200, &[]).expect("length");
        assert!(matches!(until_close, BodyLength::UntilClose));
        let bad = [("content-length".to_owned(), "x".to_owned())];
        assert!(body_length(200, &bad).is_err());
    }
}
