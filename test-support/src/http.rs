//! A plain HTTP/1.1 GET on a fresh connection, for tests that read a server's admin, health or
//! metrics port: the status and the body, with no client library and no runtime, so it works
//! from any thread (one inside a network namespace too).

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    time::Duration,
};

/// How long the connect, and each write or read, may take before the GET fails.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` on a new connection to `addr` (with `connection: close`): the status and the
/// body as text, a chunked body decoded. Any connection or protocol failure is an error, so a
/// test polling a port that is not up yet can try again.
pub fn http_get(addr: impl ToSocketAddrs, path: &str) -> io::Result<(u16, String)> {
    let mut stream = connect(addr)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let host = stream.peer_addr()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )?;
    read_response(&mut BufReader::new(stream))
}

/// A connection to the first of `addr`'s addresses that accepts one.
fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, HTTP_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| invalid("no address to connect to".to_owned())))
}

/// One response: the status line, the headers, then the body by its length, in chunks, or up
/// to the end of the connection.
fn read_response(reader: &mut impl BufRead) -> io::Result<(u16, String)> {
    let status_line = read_line(reader)?;
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP/1 status line: {status_line:?}")))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("not a header: {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = value.parse::<u64>();
            length = Some(parsed.map_err(|_| invalid(format!("content-length {value:?}")))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let mut body = Vec::new();
    match (chunked, length) {
        (true, _) => read_chunks(reader, &mut body)?,
        (false, Some(length)) => {
            reader.take(length).read_to_end(&mut body)?;
            if (body.len() as u64) < length {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        (false, None) => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A chunked body, up to its last (empty) chunk and the trailers after it.
fn read_chunks(reader: &mut impl BufRead, body: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("not a chunk size: {line:?}")))?;
        if size == 0 {
            while !read_line(reader)?.is_empty() {}
            return Ok(());
        }
        let before = body.len();
        reader.take(size).read_to_end(body)?;
        if ((body.len() - before) as u64) < size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        read_line(reader)?;
    }
}

/// One line without its line ending; an error at the end of the connection.
fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
