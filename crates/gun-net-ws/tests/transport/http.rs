//! The plain-HTTP side of the server port.

use std::sync::Arc;
use std::time::Duration;

use gun_net_ws::{HttpRequest, HttpResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::hub::{WAIT, http_get, http_raw, local_opts, raw_ws, send_text, start, start_with};

fn health(req: &HttpRequest) -> HttpResponse {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/") => HttpResponse::json(200, r#"{"ok":true,"peers":0}"#),
        ("POST", "/echo") => {
            let q = req.query.clone().unwrap_or_default();
            let mut resp = HttpResponse::new(201);
            resp.body = [q.as_bytes(), b"|", &req.body].concat();
            resp.with_header("X-Agent", req.header("user-agent").unwrap_or("-"))
        }
        ("GET", "/panic") => panic!("handler bug"),
        _ => HttpResponse::not_found(),
    }
}

#[tokio::test]
async fn get_root_is_answered_by_the_handler() {
    let (server, hub) = start_with(local_opts(), Arc::new(health));
    let resp = http_get(server.local_addr(), "/").await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(
        resp.contains("Content-Type: application/json\r\n"),
        "{resp}"
    );
    assert!(
        resp.contains("Access-Control-Allow-Origin: *\r\n"),
        "{resp}"
    );
    assert!(resp.contains("Connection: close\r\n"), "{resp}");
    assert!(resp.contains("Content-Length: 21\r\n"), "{resp}");
    assert!(
        resp.ends_with("\r\n\r\n{\"ok\":true,\"peers\":0}"),
        "{resp}"
    );

    let head = http_raw(server.local_addr(), b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(head.contains("Content-Length: 21\r\n"), "{head}");

    // A plain GET of the websocket path is HTTP too (Gun.serve answers /gun/... with files).
    let gun = http_get(server.local_addr(), "/gun").await;
    assert!(gun.starts_with("HTTP/1.1 404"), "{gun}");
    assert!(hub.events().is_empty());
    assert_eq!(server.stats().http_requests, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn other_paths_get_404_from_the_default_handler() {
    let (server, _hub) = start(local_opts());
    for path in ["/", "/gun.js", "/x?y=1", "/gun/lib/radix.js"] {
        let resp = http_get(server.local_addr(), path).await;
        assert!(
            resp.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{path}: {resp}"
        );
        assert!(
            resp.contains("Access-Control-Allow-Origin: *\r\n"),
            "{resp}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bodies_queries_and_headers_reach_the_handler() {
    let (server, _hub) = start_with(local_opts(), Arc::new(health));
    let resp = http_raw(
        server.local_addr(),
        b"POST /echo?a=b HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 201 Created\r\n"), "{resp}");
    assert!(resp.contains("X-Agent: t/1\r\n"), "{resp}");
    assert!(resp.ends_with("a=b|hello"), "{resp}");

    // Expect: 100-continue gets the interim answer, then the body is read.
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 25];
    tcp.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    tcp.write_all(b"abc").await.unwrap();
    let mut rest = String::new();
    tcp.read_to_string(&mut rest).await.unwrap();
    assert!(rest.ends_with("|abc"), "{rest}");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_error_statuses() {
    let mut opts = local_opts();
    opts.max_http_body_bytes = 10;
    opts.max_http_head_bytes = 1024;
    opts.handshake_timeout = Duration::from_millis(300);
    let (server, _hub) = start_with(opts, Arc::new(health));
    let addr = server.local_addr();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world".to_vec(), "413"),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), "411"),
        (b"POST /echo HTTP/1.1\r\nContent-Length: nope\r\n\r\n".to_vec(), "400"),
        (format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(2000)).into_bytes(), "431"),
        (b"\x16\x03\x01\x02\x00 tls hello to a plain port\r\n\r\n".to_vec(), "400"),
        (b"GET http://elsewhere/ HTTP/1.1\r\n\r\n".to_vec(), "400"),
        (b"GET /panic HTTP/1.1\r\n\r\n".to_vec(), "500"),
        // An incomplete head times out.
        (b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec(), "408"),
        // An upgrade with a wrong version.
        (
            b"GET /gun HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: x\r\n\r\n".to_vec(),
            "426",
        ),
        (
            b"GET /gun HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec(),
            "400",
        ),
    ];
    for (req, status) in cases {
        let resp = http_raw(addr, &req).await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?} -> {resp:?}",
            String::from_utf8_lossy(&req[..req.len().min(60)])
        );
    }
    // A client that connects and sends nothing is dropped after the timeout.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, idle.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    // The server is still fine.
    let resp = http_get(addr, "/").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_and_http_share_the_port() {
    let (server, hub) = start_with(local_opts(), Arc::new(health));
    let mut ws = raw_ws(&server.url()).await;
    let (peer, _) = hub.attached(0).await;
    let resp = http_get(server.local_addr(), "/").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    send_text(&mut ws, "x").await;
    hub.received(peer, "x").await;
    server.shutdown().await;
}

#[tokio::test]
async fn connection_limit_refuses_extra_sockets() {
    let mut opts = local_opts();
    opts.max_connections = 2;
    let (server, hub) = start(opts);
    let _a = raw_ws(&server.url()).await;
    let _b = raw_ws(&server.url()).await;
    hub.attached(1).await;
    // A third socket is answered 503 with the reason, before any upgrade.
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let _ = tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let resp = String::from_utf8_lossy(&out);
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.contains("Retry-After: 5"), "{resp}");
    assert!(
        resp.ends_with(&gun_net_ws::max_connections_refusal(2)),
        "{resp}"
    );
    assert_eq!(server.stats().refused, 1);
    server.shutdown().await;
}

/// `/ok` streams two chunks and finishes; `/cut` sends one and gives up.
fn streaming(req: &HttpRequest) -> HttpResponse {
    let (sender, body) = gun_net_ws::HttpBodyStream::channel(1);
    let complete = req.path == "/ok";
    tokio::runtime::Handle::current().spawn(async move {
        // A HEAD request drops the body: `send` says so.
        if sender.send(b"hello ".to_vec()).await && complete && sender.send(b"world".to_vec()).await
        {
            sender.finish().await;
        }
    });
    HttpResponse::new(200).with_stream("text/plain", body)
}

#[tokio::test]
async fn streamed_bodies_are_chunked_and_a_cut_one_has_no_last_chunk() {
    let (server, _hub) = start_with(local_opts(), Arc::new(streaming));
    let ok = http_get(server.local_addr(), "/ok").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("Transfer-Encoding: chunked\r\n"), "{ok}");
    assert!(!ok.contains("Content-Length"), "{ok}");
    assert!(
        ok.ends_with("\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"),
        "{ok}"
    );
    let cut = http_get(server.local_addr(), "/cut").await;
    assert!(cut.ends_with("\r\n\r\n6\r\nhello \r\n"), "{cut}");
    let head = http_raw(server.local_addr(), b"HEAD /ok HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        head.ends_with("chunked\r\nConnection: close\r\n\r\n"),
        "{head}"
    );
    server.shutdown().await;
}
