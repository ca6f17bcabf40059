use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{self, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

use super::{
    test_util::{HelloBuilder, SNI, find, rustls_client_hello},
    *,
};

/// What every scripted client sends once detection is over: the rest of its stream.
const TRAILER: &[u8] = b"<sent after detection>";
/// The pause between a trickling client's writes.
const PAUSE: Duration = Duration::from_millis(1);

const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: web\r\n\r\n";
const GET_10: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
const POST: &[u8] = b"POST /orders HTTP/1.1\r\nContent-Length: 11\r\n\r\n{\"id\": 42}\n";
const REDIS_PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// The h2 preface followed by an empty SETTINGS frame and one with SETTINGS_MAX_CONCURRENT_STREAMS.
fn h2_preface_and_settings() -> Vec<u8> {
    let mut bytes = H2_PREFACE.to_vec();
    bytes.extend_from_slice(&[0, 0, 6, 0x04, 0, 0, 0, 0, 0, 0x00, 0x03, 0, 0, 0, 100]);
    bytes
}

fn random_binary() -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut bytes = vec![0; 512];
    rng.fill(&mut bytes);
    bytes
}

fn tls(sni: Option<&str>) -> Protocol {
    Protocol::Tls {
        sni: sni.map(str::to_owned),
    }
}

/// Detection with a timeout long enough for a whole ClientHello sent a byte per `PAUSE`.
fn patient() -> DetectConfig {
    DetectConfig {
        timeout: Duration::from_secs(60),
        ..DetectConfig::default()
    }
}

/// A scripted client on the other end of an in-memory pipe.
struct Client {
    chunks: Vec<Vec<u8>>,
    pause: Duration,
    half_close: bool,
}

/// What the server side saw.
#[derive(Debug)]
struct Detected {
    protocol: Protocol,
    prefix: Bytes,
    elapsed: Duration,
}

// === impl Client ===

impl Client {
    /// Sends `bytes` in one write.
    fn whole(bytes: &[u8]) -> Self {
        Self::chunks(&[bytes])
    }

    /// Sends `bytes` one byte per write.
    fn trickle(bytes: &[u8]) -> Self {
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        Self::chunks(&chunks)
    }

    /// Sends each chunk in its own write.
    fn chunks(chunks: &[&[u8]]) -> Self {
        Self {
            chunks: chunks.iter().map(|c| c.to_vec()).collect(),
            pause: PAUSE,
            half_close: false,
        }
    }

    /// Half-closes after its chunks instead of sending the trailer.
    fn half_closing(mut self) -> Self {
        self.half_close = true;
        self
    }

    /// Runs detection against this client, then checks that a `PrefixedIo` replays exactly what
    /// the client sent, in order, followed by the rest of its stream.
    async fn detect(self, config: DetectConfig) -> Detected {
        let mut sent = self.chunks.concat();
        if !self.half_close {
            sent.extend_from_slice(TRAILER);
        }
        let (mut client, mut server) = io::duplex(64 * 1024);
        let (detected_tx, detected_rx) = oneshot::channel::<()>();
        let writer = tokio::spawn(async move {
            for chunk in &self.chunks {
                client.write_all(chunk).await.unwrap();
                time::sleep(self.pause).await;
            }
            if self.half_close {
                client.shutdown().await.unwrap();
            }
            // Stay connected (and silent) until detection is over.
            let _ = detected_rx.await;
            if !self.half_close {
                client.write_all(TRAILER).await.unwrap();
                client.shutdown().await.unwrap();
            }
        });

        let start = Instant::now();
        let (protocol, prefix) = detect(&mut server, &config).await.unwrap();
        let elapsed = start.elapsed();
        assert!(prefix.len() <= config.max_bytes, "{} bytes", prefix.len());
        let _ = detected_tx.send(());

        let mut replayed = Vec::new();
        let mut io = PrefixedIo::new(prefix.clone(), server);
        io.read_to_end(&mut replayed).await.unwrap();
        writer.await.unwrap();
        assert_eq!(replayed, sent, "replay of {protocol:?}");
        Detected {
            protocol,
            prefix,
            elapsed,
        }
    }
}

// === detection from a complete first write ===

#[tokio::test(start_paused = true)]
async fn complete_first_writes_are_detected_at_once() {
    let hello = rustls_client_hello(SNI);
    let cases: Vec<(&str, Vec<u8>, Protocol)> = vec![
        ("HTTP/1.1 GET", GET.to_vec(), Protocol::Http1),
        ("HTTP/1.0", GET_10.to_vec(), Protocol::Http1),
        ("POST with body", POST.to_vec(), Protocol::Http1),
        ("h2 + SETTINGS", h2_preface_and_settings(), Protocol::Http2),
        ("TLS with SNI", hello.clone(), tls(Some(SNI))),
        ("TLS to an IP", rustls_client_hello("10.96.0.20"), tls(None)),
        ("random binary", random_binary(), Protocol::Opaque),
        ("Redis PING", REDIS_PING.to_vec(), Protocol::Opaque),
    ];
    for (name, input, expected) in cases {
        let detected = Client::whole(&input).detect(DetectConfig::default()).await;
        assert_eq!(detected.protocol, expected, "{name}");
        // One read took the whole write, and no time passed: nothing waited for the timeout.
        assert_eq!(detected.prefix, input, "{name}");
        assert_eq!(detected.elapsed, Duration::ZERO, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_hello_in_two_records_is_decided_on_the_first() {
    let records = HelloBuilder::new()
        .server_name(0, SNI.as_bytes())
        .padding(20_000)
        .build_records(1 << 14);
    let detected = Client::whole(&records)
        .detect(DetectConfig::default())
        .await;
    assert_eq!(detected.protocol, tls(Some(SNI)));
    assert!(detected.elapsed < DEFAULT_TIMEOUT);
}

// === slow and partial first bytes ===

#[tokio::test(start_paused = true)]
async fn trickled_first_bytes_are_decided_as_soon_as_they_can_be() {
    let hello = rustls_client_hello(SNI);
    let ip_hello = rustls_client_hello("10.96.0.20");
    let request_line = |input: &[u8]| find(input, b"\r\n").expect("a CRLF") + 2;
    // (name, input, expected protocol, how many bytes decide it)
    let cases: Vec<(&str, Vec<u8>, Protocol, usize)> = vec![
        (
            "HTTP/1.1 GET",
            GET.to_vec(),
            Protocol::Http1,
            request_line(GET),
        ),
        (
            "HTTP/1.0",
            GET_10.to_vec(),
            Protocol::Http1,
            request_line(GET_10),
        ),
        ("POST", POST.to_vec(), Protocol::Http1, request_line(POST)),
        ("h2", h2_preface_and_settings(), Protocol::Http2, 24),
        ("TLS", hello.clone(), tls(Some(SNI)), hello.len()),
        ("TLS to IP", ip_hello.clone(), tls(None), ip_hello.len()),
        // `*1` could be a method token; `\r` cannot follow one.
        ("Redis", REDIS_PING.to_vec(), Protocol::Opaque, 3),
    ];
    for (name, input, expected, decided_at) in cases {
        let detected = Client::trickle(&input).detect(patient()).await;
        assert_eq!(detected.protocol, expected, "{name}");
        assert_eq!(detected.prefix, input[..decided_at], "{name}");
        assert!(detected.elapsed < patient().timeout, "{name}");
    }
    let detected = Client::trickle(&random_binary()).detect(patient()).await;
    assert_eq!(detected.protocol, Protocol::Opaque);
}

#[tokio::test(start_paused = true)]
async fn h2_preface_split_after_its_version_is_h2() {
    let input = h2_preface_and_settings();
    let split = b"PRI * HTTP/2".len();
    let detected = Client::chunks(&[&input[..split], &input[split..]])
        .detect(DetectConfig::default())
        .await;
    assert_eq!(detected.protocol, Protocol::Http2);
    assert_eq!(detected.prefix, input);
}

#[tokio::test(start_paused = true)]
async fn client_hello_split_across_writes_gives_sni() {
    let hello = rustls_client_hello(SNI);
    let mid_sni = find(&hello, SNI.as_bytes()).expect("the SNI is in the hello") + 5;
    let detected = Client::chunks(&[&hello[..3], &hello[3..mid_sni], &hello[mid_sni..]])
        .detect(DetectConfig::default())
        .await;
    assert_eq!(detected.protocol, tls(Some(SNI)));
    assert_eq!(detected.prefix, hello);
}

// === timeout and end of stream ===

#[tokio::test(start_paused = true)]
async fn silent_client_is_opaque_after_the_timeout() {
    let detected = Client::chunks(&[]).detect(DetectConfig::default()).await;
    assert_eq!(detected.protocol, Protocol::Opaque);
    assert!(detected.prefix.is_empty());
    assert_eq!(detected.elapsed, DEFAULT_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn stalled_request_line_is_opaque_after_the_timeout() {
    let detected = Client::whole(b"GE").detect(DetectConfig::default()).await;
    assert_eq!(detected.protocol, Protocol::Opaque);
    assert_eq!(detected.prefix, &b"GE"[..]);
    assert_eq!(detected.elapsed, DEFAULT_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn stalled_client_hello_is_tls_with_the_sni_it_sent() {
    let hello = HelloBuilder::new()
        .server_name(0, SNI.as_bytes())
        .padding(1_000)
        .build();
    let sent = find(&hello, SNI.as_bytes()).expect("the SNI is in the hello") + SNI.len();
    let detected = Client::whole(&hello[..sent])
        .detect(DetectConfig::default())
        .await;
    assert_eq!(detected.protocol, tls(Some(SNI)));
    assert_eq!(detected.elapsed, DEFAULT_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn half_close_decides_on_the_bytes_read() {
    let detected = Client::whole(b"GE")
        .half_closing()
        .detect(DetectConfig::default())
        .await;
    assert_eq!(detected.protocol, Protocol::Opaque);
    assert_eq!(detected.prefix, &b"GE"[..]);
    assert!(detected.elapsed < DEFAULT_TIMEOUT);

    let detected = Client::whole(b"GET / HTTP/1.1\r\n")
        .half_closing()
        .detect(DetectConfig::default())
        .await;
    assert_eq!(detected.protocol, Protocol::Http1);
}

#[tokio::test(start_paused = true)]
async fn read_errors_are_returned() {
    let mut io = Source::failing();
    let result = detect(&mut io, &DetectConfig::default()).await;
    assert_eq!(
        result.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionReset)
    );
}

// === bounds ===

#[tokio::test(start_paused = true)]
async fn long_line_is_capped_at_max_bytes_and_opaque() {
    // A method token in progress that never ends.
    let line = vec![b'A'; 100 * 1024];
    let detected = Client::whole(&line).detect(DetectConfig::default()).await;
    assert_eq!(detected.protocol, Protocol::Opaque);
    assert_eq!(detected.prefix.len(), DEFAULT_MAX_BYTES);
    assert!(detected.elapsed < DEFAULT_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn endless_client_is_read_in_chunks_up_to_max_bytes() {
    let mut io = Source::endless(b'A');
    let (protocol, prefix) = detect(&mut io, &DetectConfig::default()).await.unwrap();
    assert_eq!(protocol, Protocol::Opaque);
    assert_eq!(prefix.len(), DEFAULT_MAX_BYTES);
    assert_eq!(io.handed_out, DEFAULT_MAX_BYTES);
    assert!(
        io.reads <= DEFAULT_MAX_BYTES.div_ceil(READ_CHUNK),
        "{} reads",
        io.reads
    );

    let mut io = Source::endless(b'A');
    let config = DetectConfig {
        max_bytes: 0,
        ..DetectConfig::default()
    };
    let (protocol, prefix) = detect(&mut io, &config).await.unwrap();
    assert_eq!((protocol, prefix.len(), io.reads), (Protocol::Opaque, 0, 0));
}

#[test]
fn buffer_doubles_up_to_max_bytes_and_never_past() {
    let mut buf = BytesMut::new();
    let mut capacities = Vec::new();
    while buf.len() < DEFAULT_MAX_BYTES {
        grow(&mut buf, DEFAULT_MAX_BYTES);
        capacities.push(buf.capacity());
        let spare = buf.capacity() - buf.len();
        buf.put_bytes(b'A', spare);
    }
    assert_eq!(capacities, [4096, 8192, 16384, DEFAULT_MAX_BYTES]);
}

#[tokio::test(start_paused = true)]
async fn client_hello_cut_by_max_bytes_is_judged_on_its_start() {
    let hello = HelloBuilder::new()
        .server_name(0, SNI.as_bytes())
        .padding(1_000)
        .build();
    let config = DetectConfig {
        max_bytes: 120,
        ..DetectConfig::default()
    };
    let detected = Client::whole(&hello).detect(config).await;
    assert_eq!(detected.protocol, tls(Some(SNI)));
    assert_eq!(detected.prefix, hello[..120]);
}

// === replay ===

#[tokio::test]
async fn replay_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(GET).await.unwrap();
        stream.write_all(b"second request").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        response
    });

    let (mut stream, _) = listener.accept().await.unwrap();
    let config = DetectConfig {
        timeout: Duration::from_secs(30),
        ..DetectConfig::default()
    };
    let (protocol, prefix) = detect(&mut stream, &config).await.unwrap();
    assert_eq!(protocol, Protocol::Http1);
    let mut io = PrefixedIo::new(prefix, stream);
    assert_eq!(io.get_ref().local_addr().unwrap(), addr);
    // TCP streams write vectors natively; the wrapper must not hide that.
    assert!(io.is_write_vectored());
    let mut request = Vec::new();
    io.read_to_end(&mut request).await.unwrap();
    assert_eq!(request, [GET, b"second request"].concat());
    io.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
        .await
        .unwrap();
    io.shutdown().await.unwrap();
    assert_eq!(client.await.unwrap(), b"HTTP/1.1 204 No Content\r\n\r\n");
}

#[tokio::test]
async fn prefixed_io_reads_its_prefix_in_pieces_then_the_inner_io() {
    let (mut client, server) = io::duplex(1024);
    client.write_all(b" world").await.unwrap();
    drop(client);
    let mut io = PrefixedIo::new(Bytes::from_static(b"hello"), server);
    let mut piece = [0; 2];
    let mut pieces = Vec::new();
    loop {
        let n = io.read(&mut piece).await.unwrap();
        if n == 0 {
            break;
        }
        pieces.push(piece[..n].to_vec());
    }
    assert_eq!(pieces, [&b"he"[..], b"ll", b"o", b" w", b"or", b"ld"]);

    let mut io = PrefixedIo::new(Bytes::from_static(b"hello"), io::empty());
    io.read_exact(&mut piece).await.unwrap();
    let (rest, _inner) = io.into_parts();
    assert_eq!(rest, &b"llo"[..]);
}

#[tokio::test]
async fn prefixed_io_writes_and_shutdown_reach_the_peer() {
    let (mut client, server) = io::duplex(1024);
    let mut io = PrefixedIo::new(Bytes::from_static(b"ignored"), server);
    io.write_all(b"one ").await.unwrap();
    // A vectored write may take only part of its slices; the rest goes in plain writes.
    let bufs = [
        std::io::IoSlice::new(b"two "),
        std::io::IoSlice::new(b"three"),
    ];
    let n = io.write_vectored(&bufs).await.unwrap();
    assert!(n > 0);
    io.write_all(&b"two three"[n..]).await.unwrap();
    assert_eq!(io.is_write_vectored(), io.get_ref().is_write_vectored());
    io.flush().await.unwrap();
    io.shutdown().await.unwrap();
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, b"one two three");
}

/// An in-memory reader: endless bytes, or an error.
struct Source {
    byte: Option<u8>,
    reads: usize,
    handed_out: usize,
}

impl Source {
    fn endless(byte: u8) -> Self {
        Self {
            byte: Some(byte),
            reads: 0,
            handed_out: 0,
        }
    }

    fn failing() -> Self {
        Self {
            byte: None,
            reads: 0,
            handed_out: 0,
        }
    }
}

impl AsyncRead for Source {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let Some(byte) = self.byte else {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        };
        let n = buf.remaining();
        buf.put_slice(&vec![byte; n]);
        self.reads += 1;
        self.handed_out += n;
        Poll::Ready(Ok(()))
    }
}
