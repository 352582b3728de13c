//! The WebSocket side of the server.

use std::time::Duration;

use futures_util::SinkExt;
use gun_net_ws::{Direction, LinkError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::hub::{Event, WAIT, local_opts, next_data, raw_ws, send_text, start};

#[tokio::test]
async fn query_string_on_the_gun_path_is_accepted() {
    let (server, hub) = start(local_opts());
    let mut ws = raw_ws(&format!("{}?x=1&y=%20", server.url())).await;
    let (peer, dir) = hub.attached(0).await;
    assert_eq!(dir, Direction::Incoming);
    send_text(&mut ws, r##"{"#":"a"}"##).await;
    hub.received(peer, r##"{"#":"a"}"##).await;
    server.shutdown().await;
}

#[tokio::test]
async fn upgrade_on_another_path_is_refused() {
    let (server, hub) = start(local_opts());
    let url = format!("ws://{}/other", server.local_addr());
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("expected a 404, got {other:?}"),
    }
    let url = format!("ws://{}/gun/", server.local_addr());
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());
    assert!(hub.events().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn keepalive_frames_are_sent_and_can_be_turned_off() {
    let mut opts = local_opts();
    opts.keepalive = Some(Duration::from_millis(100));
    let (server, _hub) = start(opts);
    let mut ws = raw_ws(&server.url()).await;
    assert_eq!(next_data(&mut ws).await, Some(Message::text("[]")));
    assert_eq!(next_data(&mut ws).await, Some(Message::text("[]")));
    server.shutdown().await;

    let mut opts = local_opts();
    opts.keepalive = None;
    let (server, _hub) = start(opts);
    let mut ws = raw_ws(&server.url()).await;
    let quiet = tokio::time::timeout(Duration::from_millis(400), next_data(&mut ws)).await;
    assert!(quiet.is_err(), "unexpected frame {quiet:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn pings_are_answered() {
    let (server, _hub) = start(local_opts());
    let mut ws = raw_ws(&server.url()).await;
    ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    loop {
        use futures_util::StreamExt;
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Pong(p))) => {
                assert_eq!(&p[..], b"hi");
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("no pong: {other:?}"),
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_message_closes_only_that_connection() {
    let mut opts = local_opts();
    opts.max_message_bytes = 1024;
    let (server, hub) = start(opts);
    let mut big = raw_ws(&server.url()).await;
    let (big_peer, _) = hub.attached(0).await;
    let mut small = raw_ws(&server.url()).await;
    let (small_peer, _) = hub.attached(1).await;

    send_text(&mut big, &"x".repeat(1024)).await; // at the limit: fine
    hub.received(big_peer, &"x".repeat(1024)).await;
    send_text(&mut big, &"y".repeat(4096)).await;
    match next_data(&mut big).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        None => {}
        other => panic!("expected a close, got {other:?}"),
    }
    hub.detached(big_peer).await;

    send_text(&mut small, "still here").await;
    hub.received(small_peer, "still here").await;
    hub.send(small_peer, "and back").unwrap();
    assert_eq!(next_data(&mut small).await, Some(Message::text("and back")));
    assert_eq!(server.stats().oversize_closes, 1);
    assert_eq!(server.stats().connections_open, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_peer_is_disconnected_when_its_queue_is_full() {
    let mut opts = local_opts();
    opts.send_queue = 8;
    opts.keepalive = None;
    let (server, hub) = start(opts);
    // Handshakes, then never reads again.
    let _stalled = raw_ws(&server.url()).await;
    let (slow, _) = hub.attached(0).await;
    let mut good = raw_ws(&server.url()).await;
    let (fast, _) = hub.attached(1).await;

    let chunk = "z".repeat(64 << 10);
    let began = std::time::Instant::now();
    let mut sent = 0usize;
    let full = loop {
        match hub.send(slow, &chunk) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 4096, "256 MiB queued without the queue filling up");
        if sent.is_multiple_of(8) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    assert_eq!(full, LinkError::Full);
    eprintln!(
        "queue full after {sent} frames of 64 KiB in {:?}",
        began.elapsed()
    );
    hub.detached(slow).await;
    assert!(matches!(hub.link(fast).send("after".into()), Ok(())));
    assert_eq!(next_data(&mut good).await, Some(Message::text("after")));
    send_text(&mut good, "ping?").await;
    hub.received(fast, "ping?").await;
    let stats = server.stats();
    assert_eq!(stats.slow_peer_closes, 1);
    assert_eq!(stats.connections_open, 1);
    server.shutdown().await;
}

/// Answers sent by tasks that were woken together (the acks of one group commit) go out
/// in one array frame, not one frame and one syscall each: the connection's driver lets
/// the other ready tasks run before it writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn answers_of_tasks_woken_together_share_a_frame() {
    const N: usize = 32;
    let mut opts = local_opts();
    opts.keepalive = None;
    let (server, hub) = start(opts);
    let mut ws = raw_ws(&server.url()).await;
    let (peer, _) = hub.attached(0).await;
    let link = hub.link(peer);
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let waiting = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..N {
        let (go, waiting, link) = (go.clone(), waiting.clone(), link.clone());
        tokio::spawn(async move {
            let woken = go.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            woken.await;
            link.send(format!(r#"{{"n":{i}}}"#).into()).unwrap();
        });
    }
    while waiting.load(std::sync::atomic::Ordering::SeqCst) < N {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Woken from a worker, as a store's flush wakes the puts waiting for it.
    let trigger = go.clone();
    tokio::spawn(async move { trigger.notify_waiters() });
    let (mut frames, mut messages) = (0, Vec::new());
    while messages.len() < N {
        let Some(Message::Text(text)) = next_data(&mut ws).await else {
            panic!("connection ended after {} of {N} messages", messages.len());
        };
        frames += 1;
        // One message `{"n":i}`, or several as `[{"n":i},{"n":j},…]`.
        let inner = match text.strip_prefix('[') {
            Some(rest) => rest.strip_suffix(']').expect("a whole array frame"),
            None => text.as_str(),
        };
        for m in inner.split(',') {
            let n = m.strip_prefix(r#"{"n":"#).and_then(|m| m.strip_suffix('}'));
            messages.push(n.expect("a message as sent").parse::<u64>().unwrap());
        }
    }
    let mut ns = messages;
    ns.sort_unstable();
    assert_eq!(ns, (0..N as u64).collect::<Vec<_>>());
    assert!(frames <= 2, "{N} answers took {frames} frames");
    server.shutdown().await;
}

#[tokio::test]
async fn binary_frames_are_delivered_as_text_or_dropped() {
    let (server, hub) = start(local_opts());
    let mut ws = raw_ws(&server.url()).await;
    let (peer, _) = hub.attached(0).await;
    ws.send(Message::binary(b"{\"#\":\"bin\"}".to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(vec![0xff, 0xfe, 0x00]))
        .await
        .unwrap();
    ws.send(Message::binary(Vec::new())).await.unwrap();
    send_text(&mut ws, "after").await;
    hub.received(peer, "after").await;
    assert_eq!(hub.frames_from(peer), vec![r##"{"#":"bin"}"##, "", "after"]);
    assert_eq!(server.stats().traffic.frames_in, 4);
    server.shutdown().await;
}

/// Raw bytes of a masked client frame.
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut out = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

async fn raw_handshake(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /gun HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    tcp
}

/// Reads until EOF (or reset); panics if the server keeps the socket open.
async fn read_until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("server closes")
        {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn invalid_frames_close_the_connection_not_the_server() {
    let (server, hub) = start(local_opts());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "text frame with invalid UTF-8",
            masked_frame(0x1, &[b'{', 0xff, 0xfe]),
        ),
        ("unmasked frame", vec![0x81, 0x02, b'h', b'i']),
        ("reserved opcode", masked_frame(0x3, b"x")),
        ("continuation without start", masked_frame(0x0, b"x")),
        ("control frame too long", {
            let mut f = vec![0x89, 0x80 | 126, 0, 200, 1, 2, 3, 4];
            f.extend(vec![0u8; 200]);
            f
        }),
        ("garbage", b"\x00\x01\x02\x03 not a frame at all".to_vec()),
    ];
    for (i, (name, bytes)) in cases.iter().enumerate() {
        let mut tcp = raw_handshake(server.local_addr()).await;
        let (peer, _) = hub.attached(i).await;
        tcp.write_all(bytes).await.unwrap();
        read_until_closed(&mut tcp).await;
        hub.detached(peer).await;
        assert!(
            hub.frames_from(peer).is_empty(),
            "{name}: delivered something"
        );
    }
    // And a well-behaved peer still works, including frames split across TCP writes.
    let mut tcp = raw_handshake(server.local_addr()).await;
    let (peer, _) = hub.attached(cases.len()).await;
    let frame = masked_frame(0x1, b"{\"ok\":1}");
    tcp.write_all(&frame[..3]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    tcp.write_all(&frame[3..]).await.unwrap();
    hub.received(peer, r#"{"ok":1}"#).await;
    server.shutdown().await;
}

#[tokio::test]
async fn frames_sent_with_the_upgrade_request_are_not_lost() {
    let (server, hub) = start(local_opts());
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut req = b"GET /gun HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        .to_vec();
    req.extend(masked_frame(0x1, b"early"));
    tcp.write_all(&req).await.unwrap();
    let (peer, _) = hub.attached(0).await;
    hub.received(peer, "early").await;
    server.shutdown().await;
}

#[tokio::test]
async fn hub_close_sends_a_close_frame_with_the_reason() {
    let (server, hub) = start(local_opts());
    let mut ws = raw_ws(&server.url()).await;
    let (peer, _) = hub.attached(0).await;
    let link = hub.link(peer);
    hub.send(peer, "first").unwrap();
    link.close("duplicate connection");
    assert_eq!(next_data(&mut ws).await, Some(Message::text("first")));
    match next_data(&mut ws).await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(frame.reason.as_str(), "duplicate connection");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    hub.detached(peer).await;
    assert_eq!(link.send("late".into()), Err(LinkError::Closed));
    server.shutdown().await;
}

#[tokio::test]
async fn stats_count_frames_and_bytes() {
    let mut opts = local_opts();
    opts.keepalive = None;
    let (server, hub) = start(opts);
    let mut ws = raw_ws(&server.url()).await;
    let (peer, _) = hub.attached(0).await;
    send_text(&mut ws, "12345").await;
    send_text(&mut ws, "678").await;
    hub.received(peer, "678").await;
    hub.send(peer, "abcd").unwrap();
    assert_eq!(next_data(&mut ws).await, Some(Message::text("abcd")));
    let conns = server.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].peer, peer);
    assert_eq!(
        (conns[0].traffic.frames_in, conns[0].traffic.bytes_in),
        (2, 8)
    );
    assert_eq!(
        (conns[0].traffic.frames_out, conns[0].traffic.bytes_out),
        (1, 4)
    );
    drop(ws);
    hub.detached(peer).await;
    let stats = server.stats();
    assert_eq!(stats.connections_open, 0);
    assert_eq!(stats.connections_total, 1);
    assert_eq!(
        (
            stats.traffic.frames_in,
            stats.traffic.bytes_in,
            stats.traffic.frames_out,
            stats.traffic.bytes_out
        ),
        (2, 8, 1, 4)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_and_detaches_everyone() {
    let (server, hub) = start(local_opts());
    let mut a = raw_ws(&server.url()).await;
    let mut b = raw_ws(&server.url()).await;
    hub.attached(1).await;
    let addr = server.local_addr();
    server.shutdown().await;
    assert_eq!(hub.count(|e| matches!(e, Event::Detach(_))), 2);
    for ws in [&mut a, &mut b] {
        match next_data(ws).await {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[tokio::test]
async fn bad_options_are_refused() {
    let hub = crate::hub::TestHub::new();
    let http = std::sync::Arc::new(gun_net_ws::NotFound);
    let tweaks: Vec<fn(&mut gun_net_ws::ServerOptions)> = vec![
        |o| o.send_queue = 0,
        |o| o.keepalive = Some(Duration::ZERO),
        |o| o.path = "gun".into(),
        |o| o.max_connections = 0,
    ];
    for tweak in tweaks {
        let mut opts = local_opts();
        tweak(&mut opts);
        assert!(matches!(
            gun_net_ws::Server::bind(opts, hub.clone(), http.clone()),
            Err(gun_net_ws::Error::InvalidOption { .. })
        ));
    }
    let (server, _) = start(local_opts());
    let mut opts = local_opts();
    opts.addr = server.local_addr();
    assert!(matches!(
        gun_net_ws::Server::bind(opts, hub, http),
        Err(gun_net_ws::Error::Bind { .. })
    ));
}

#[test]
fn bind_outside_a_runtime_is_an_error() {
    let hub = crate::hub::TestHub::new();
    let r = gun_net_ws::Server::bind(local_opts(), hub, std::sync::Arc::new(gun_net_ws::NotFound));
    assert!(matches!(r, Err(gun_net_ws::Error::NoRuntime)));
}
