//! The injector tests' fixtures (tests/common/proxies.rs, targets.rs) work:
//! real tinyproxy and microsocks on 127.0.0.1 forward to the local targets,
//! refuse bad credentials, and the WebSocket echo server echoes over TLS and
//! refuses `/status/NNN`. reqwest is the independent client here.
#![cfg(feature = "injector")]

mod common;

use std::time::Duration;

use common::proxies::{Microsocks, Tinyproxy};
use common::targets::{TestPki, black_hole, closed_port, http_target, tls_front, ws_echo};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const USER: &str = "desk";
const PASS: &str = "s3cret";

fn client(proxy: &str, pki: Option<&TestPki>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(proxy).expect("proxy URL"))
        .timeout(Duration::from_secs(5));
    if let Some(pki) = pki {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("CA PEM"),
        );
    }
    builder.build().expect("reqwest client")
}

async fn status(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"))
        .status()
        .as_u16()
}

#[tokio::test]
async fn tinyproxy_forwards_http_and_tunnels_tls_with_credentials() {
    let pki = TestPki::new();
    let plain = http_target(None).await;
    let tls = http_target(Some(&pki)).await;
    let proxy = Tinyproxy::start(Some((USER, PASS)));
    let client = client(&proxy.url(), Some(&pki));

    assert_eq!(status(&client, &plain.url("/status/451")).await, 451);
    assert_eq!(
        status(&client, &tls.url_for_host("localhost", "/")).await,
        200
    );
    assert_eq!(status(&client, &tls.url("/status/451")).await, 451);
    assert_eq!(plain.paths(), ["/status/451"]);
    assert_eq!(tls.paths(), ["/", "/status/451"]);
    // Through the proxy: it saw the CONNECT.
    assert!(proxy.log_text().contains("CONNECT"), "{}", proxy.log_text());
}

#[tokio::test]
async fn tinyproxy_refuses_missing_or_wrong_credentials() {
    let target = http_target(None).await;
    let mut proxy = Tinyproxy::start(Some((USER, PASS)));
    let url = target.url("/");

    assert_eq!(
        status(&client(&proxy.url_without_auth(), None), &url).await,
        407
    );
    // A wrong password is 401 Unauthorized, not 407, in tinyproxy 1.11.
    assert_eq!(
        status(&client(&proxy.url_with(USER, "nope"), None), &url).await,
        401
    );
    assert_eq!(target.opened(), 0);

    // Killed, it refuses connections.
    proxy.kill();
    let killed = client(&proxy.url(), None).get(&url).send().await;
    assert!(killed.is_err(), "{killed:?}");
}

#[tokio::test]
async fn microsocks_socks5h_with_credentials() {
    let pki = TestPki::new();
    let target = http_target(Some(&pki)).await;
    let proxy = Microsocks::start(Some((USER, PASS)));

    let through = client(&proxy.url("socks5h"), Some(&pki));
    assert_eq!(
        status(&through, &target.url_for_host("localhost", "/status/451")).await,
        451
    );
    let through = client(&proxy.url("socks5"), Some(&pki));
    assert_eq!(status(&through, &target.url("/status/403")).await, 403);

    let wrong = client(&proxy.url_with("socks5h", USER, "nope"), Some(&pki));
    let refused = wrong.get(target.url("/")).send().await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(target.paths(), ["/status/451", "/status/403"]);
}

#[tokio::test]
async fn tls_front_makes_tinyproxy_an_https_proxy() {
    let pki = TestPki::new();
    let target = http_target(None).await;
    let proxy = Tinyproxy::start(None);
    let front = tls_front(proxy.addr(), &pki).await;

    let client = client(&format!("https://localhost:{}", front.port()), Some(&pki));
    assert_eq!(status(&client, &target.url("/status/429")).await, 429);
    assert_eq!(target.paths(), ["/status/429"]);
}

#[tokio::test]
async fn ws_echo_over_tls() {
    let pki = TestPki::new();
    let target = ws_echo(Some(&pki)).await;
    let tcp = TcpStream::connect(target.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = pki
        .connector()
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (mut ws, response) =
        tokio_tungstenite::client_async(target.url_for_host("localhost", "/feed"), tls)
            .await
            .expect("WebSocket handshake");
    assert_eq!(response.status().as_u16(), 101);

    ws.send(Message::text("ping 1")).await.expect("send");
    let echoed = ws.next().await.expect("an echo").expect("a message");
    assert_eq!(echoed, Message::text("ping 1"));
    ws.send(Message::binary(vec![1, 2, 3])).await.expect("send");
    let echoed = ws.next().await.expect("an echo").expect("a message");
    assert_eq!(echoed, Message::binary(vec![1, 2, 3]));

    ws.close(None).await.expect("close");
    target.wait_closed(1).await;
    assert_eq!(
        (target.opened(), target.upgraded(), target.open_now()),
        (1, 1, 0)
    );
    assert_eq!(target.paths(), ["/feed"]);
}

#[tokio::test]
async fn ws_handshake_to_status_path_is_refused_with_that_status() {
    let target = ws_echo(None).await;
    let tcp = TcpStream::connect(target.addr).await.expect("connect");
    let refused = tokio_tungstenite::client_async(target.url("/status/451"), tcp).await;
    let Err(WsError::Http(response)) = refused else {
        panic!("expected an HTTP refusal: {refused:?}");
    };
    assert_eq!(response.status().as_u16(), 451);
    assert_eq!(response.body().as_deref(), Some(&b"status 451"[..]));
    assert_eq!(target.upgraded(), 0);

    // kick drops open connections; the server goes on accepting.
    let tcp = TcpStream::connect(target.addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(target.url("/"), tcp)
        .await
        .expect("WebSocket handshake");
    target.wait_open_now(1).await;
    target.kick();
    let after_kick = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    assert!(
        matches!(after_kick, Ok(None | Some(Err(_)))),
        "{after_kick:?}"
    );
    target.wait_open_now(0).await;
}

#[tokio::test]
async fn black_hole_never_answers_and_closed_port_refuses() {
    let hole = black_hole().await;
    let mut stream = TcpStream::connect(hole.addr).await.expect("connect");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
    assert!(read.is_err(), "the black hole answered: {read:?}");

    let refused = TcpStream::connect(closed_port()).await;
    let kind = refused.expect_err("nobody listens").kind();
    assert_eq!(kind, std::io::ErrorKind::ConnectionRefused);
}
