//! `HttpTransport` against real servers on 127.0.0.1: the reference service
//! (in process, plain HTTP and TLS, with certificates made here by rcgen),
//! small axum / hyper servers for the odd answers, and raw TCP servers for
//! the broken ones. No mock of the transport; no traffic leaves loopback (a
//! `.invalid` name fails in the transport's resolver without a query).
//!
//! Every wait is bounded: each call has a timeout, and the tests that prove
//! "never hangs" assert only a generous upper bound.
#![cfg(feature = "reqwest")]

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Version};
use axum::routing::{get, post};
use embassy_time::Instant as CoreInstant;
use proxy_delegate_core::codec;
use proxy_delegate_core::contract::{
    self, API_KEY_HEADER, CORRELATION_HEADER, FEEDBACK_PATH, HEALTH_PATH, MAX_BODY, REQUEST_PATH,
    WireFormat,
};
use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::feedback::{FeedbackConfig, FeedbackQueue};
use proxy_delegate_core::model::{ProxyFeedback, ProxyResponse};
use proxy_delegate_core::resolver::{CorrelationId, TransmitKind};
use proxy_delegate_core::settings::{AuthCredentials, AuthMethod, FilePath, Secret};
use proxy_delegate_service::{Running, Service, ServiceConfig};
use proxy_delegate_tokio::{
    BuildError, FailureKind, HttpTransport, ServiceAnswer, ServiceCall, ServiceError,
    Transport as _, TransportConfig,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The published request body (root `src/lib.rs` `REQUEST_JSON`).
const REQUEST_JSON: &str = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123","metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}}"#;

/// The published feedback event, about proxy A.
const FEEDBACK_JSON: &str = r#"{"proxy_url":"socks5://feeduser:Pw-7f3kq9@192.0.2.10:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

/// The credentials the reference service knows; they must never show in a
/// message.
const TOKEN: &str = "tok-feed-S3CRET-1";
const API_KEY: &str = "key-ops-S3CRET-2";
const READER_TOKEN: &str = "tok-reader-S3CRET-3";
const WRONG_TOKEN: &str = "tok-wrong-S3CRET-4";
const WRONG_KEY: &str = "key-wrong-S3CRET-5";

/// Timeout of a call expected to be answered.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for "gives up rather than hangs" (machines are noisy).
const NEVER_HANGS: Duration = Duration::from_secs(20);

const PROXIES: &str = r#"
[[proxies]]
id = "px-a"
url = "socks5://feeduser:Pw-7f3kq9@192.0.2.10:1080"
regions = ["us-east-1"]

[[proxies]]
id = "px-b"
url = "http://198.51.100.20:3128"
regions = ["eu-west-1"]
"#;

fn clients() -> String {
    format!(
        "[[clients]]\nname = \"feed\"\nbearer_tokens = [\"{TOKEN}\"]\n\n\
         [[clients]]\nname = \"ops\"\napi_keys = [\"{API_KEY}\"]\n\n\
         [[clients]]\nname = \"reader\"\nbearer_tokens = [\"{READER_TOKEN}\"]\nscopes = [\"read\"]\n\n\
         [[clients]]\nname = \"desk\"\ntls_names = [\"desk.client\"]\n"
    )
}

/// The reference service with `extra` (a `[tls]` section, or nothing).
async fn start_service(extra: &str) -> Running {
    let toml = format!(
        "{extra}\n[rate_limit]\nenabled = false\n\n{}{PROXIES}",
        clients()
    );
    let config = ServiceConfig::parse(&toml, false).expect("the test configuration is valid");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    Service::new(config)
        .expect("service builds")
        .start(listener)
        .expect("service starts")
}

async fn stop(running: Running) {
    tokio::time::timeout(NEVER_HANGS, running.shutdown())
        .await
        .expect("the service stops");
}

fn url(s: &str) -> ServiceUrl {
    s.parse().expect("a valid service URL")
}

fn secret(s: &str) -> Secret {
    Secret::new(s).expect("a valid secret")
}

fn file_path(p: &Path) -> FilePath {
    let mut f = FilePath::new();
    f.push_str(p.to_str().unwrap()).expect("a short path");
    f
}

/// A transport that trusts only `ca` (when given).
fn config(auth: Option<AuthMethod>, credentials: AuthCredentials) -> TransportConfig {
    TransportConfig {
        auth,
        credentials,
        ..TransportConfig::default()
    }
}

fn bearer(token: &str) -> TransportConfig {
    config(
        Some(AuthMethod::BearerToken),
        AuthCredentials {
            token: Some(secret(token)),
            ..AuthCredentials::default()
        },
    )
}

fn api_key(key: &str) -> TransportConfig {
    config(
        Some(AuthMethod::ApiKey),
        AuthCredentials {
            api_key: Some(secret(key)),
            ..AuthCredentials::default()
        },
    )
}

fn transport(config: TransportConfig) -> HttpTransport {
    HttpTransport::new(config).expect("the transport builds")
}

const ID: CorrelationId = CorrelationId::from_raw(0x0123_4567_89ab_cdef);

fn call<'a>(endpoint: &'a ServiceUrl, kind: TransmitKind, body: &'a [u8]) -> ServiceCall<'a> {
    ServiceCall {
        endpoint,
        kind,
        id: ID,
        body,
        wire: WireFormat::Json,
        timeout: CALL_TIMEOUT,
    }
}

async fn send(t: &HttpTransport, c: ServiceCall<'_>) -> Result<ServiceAnswer, ServiceError> {
    tokio::time::timeout(NEVER_HANGS, t.send(c))
        .await
        .expect("the transport honours the call's timeout")
}

async fn resolve(t: &HttpTransport, endpoint: &ServiceUrl) -> Result<ServiceAnswer, ServiceError> {
    send(
        t,
        call(endpoint, TransmitKind::Resolve, REQUEST_JSON.as_bytes()),
    )
    .await
}

async fn health(t: &HttpTransport, endpoint: &ServiceUrl) -> Result<ServiceAnswer, ServiceError> {
    send(t, call(endpoint, TransmitKind::HealthCheck, &[])).await
}

/// A real feedback batch from the core's queue: its kind (with its BatchId)
/// and its JSON body.
fn feedback_batch() -> (TransmitKind, Vec<u8>) {
    let event: ProxyFeedback =
        codec::json::decode(FEEDBACK_JSON.as_bytes()).expect("the published feedback decodes");
    let mut queue = FeedbackQueue::<4>::new(FeedbackConfig {
        batch_size: 1,
        ..FeedbackConfig::default()
    })
    .unwrap();
    let now = CoreInstant::from_secs(1);
    queue.report(now, event);
    let mut buf = vec![0u8; 4096];
    let t = queue
        .poll_transmit(now, &mut buf)
        .expect("a batch of one is due");
    buf.truncate(t.len);
    (TransmitKind::Feedback(t.id), buf)
}

fn assert_secret_free(text: &str) {
    for s in [
        TOKEN,
        API_KEY,
        READER_TOKEN,
        WRONG_TOKEN,
        WRONG_KEY,
        "S3CRET",
    ] {
        assert!(!text.contains(s), "a secret shows in: {text}");
    }
}

/// Asserts the failure's kind and that its message names the endpoint, says
/// `says`, and holds no secret (in `Display` or `Debug`).
fn expect_failure(e: &ServiceError, kind: FailureKind, endpoint: &ServiceUrl, says: &str) {
    let text = e.to_string();
    assert_eq!(e.kind(), kind, "{text}");
    assert_eq!(e.endpoint(), endpoint.to_string());
    assert!(
        text.contains(&endpoint.to_string()),
        "names the endpoint: {text}"
    );
    assert!(text.contains(says), "says {says:?}: {text}");
    assert_secret_free(&text);
    assert_secret_free(&format!("{e:?}"));
}

// ------------------------------------------------------------------ PKI

/// A CA, the service certificates it signed (good, wrong host, expired),
/// client certificates (known name, unknown name, from another CA), all as
/// PEM files in `dir`.
struct Pki {
    dir: tempfile::TempDir,
    server_der: (Vec<u8>, Vec<u8>),
}

impl Pki {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn ca_file(&self) -> FilePath {
        file_path(&self.path("ca.pem"))
    }

    /// A `[tls]` section serving `name`.pem / `name`.key, with the client CA
    /// when `mtls`.
    fn tls_section(&self, name: &str, mtls: bool) -> String {
        let d = self.dir.path().display();
        let client_ca = if mtls {
            format!("client_ca_file = \"{d}/ca.pem\"\n")
        } else {
            String::new()
        };
        format!("[tls]\ncert_file = \"{d}/{name}.pem\"\nkey_file = \"{d}/{name}.key\"\n{client_ca}")
    }

    /// mutual TLS with client certificate `name` (`desk`, `stranger`, `alien`).
    fn mtls(&self, name: &str) -> TransportConfig {
        config(
            Some(AuthMethod::MutualTls),
            AuthCredentials {
                cert_file: Some(file_path(&self.path(&format!("{name}.pem")))),
                key_file: Some(file_path(&self.path(&format!("{name}.key")))),
                ca_file: Some(self.ca_file()),
                ..AuthCredentials::default()
            },
        )
    }
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, date_time_ymd,
    };
    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    }
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let leaf = |issuer: &CertifiedIssuer<'static, KeyPair>,
                name: &str,
                sans: &[&str],
                cn: &str,
                usage: ExtendedKeyUsagePurpose,
                expired: bool| {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        if expired {
            p.not_before = date_time_ymd(2000, 1, 1);
            p.not_after = date_time_ymd(2001, 1, 1);
        }
        let cert = p.signed_by(&key, &**issuer).unwrap();
        write(&format!("{name}.pem"), &cert.pem());
        write(&format!("{name}.key"), &key.serialize_pem());
        (cert.der().to_vec(), key.serialize_der())
    };
    let ca_a = ca("proxy-delegate test CA");
    let ca_b = ca("some other CA");
    write("ca.pem", &ca_a.pem());
    let local = ["127.0.0.1", "localhost"];
    let server_der = leaf(
        &ca_a,
        "server",
        &local,
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    leaf(
        &ca_a,
        "wrong-host",
        &["other.example"],
        "other.example",
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    leaf(
        &ca_a,
        "expired",
        &local,
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
        true,
    );
    leaf(
        &ca_a,
        "desk",
        &[],
        "desk.client",
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    leaf(
        &ca_a,
        "stranger",
        &[],
        "stranger.client",
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    leaf(
        &ca_b,
        "alien",
        &[],
        "desk.client",
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    Pki { dir, server_der }
}

// ------------------------------------------------------------------ small servers

/// Serves `router` over plain HTTP/1.1 on 127.0.0.1.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// What a raw TCP server does once it has read a request's head.
#[derive(Clone, Copy)]
enum Raw {
    /// Nothing: it holds the connection open and never answers.
    Silent,
    /// A head declaring a 10 MB body, then nothing.
    HugeContentLength,
    /// A chunked answer that never ends (8 KiB chunks, at most 16 MiB).
    EndlessChunked,
    /// An answer delimited by the connection's close that never ends.
    EndlessUntilClose,
}

/// A raw TCP server on 127.0.0.1 that answers every connection as `plan`
/// says; it counts the bytes of body it managed to write.
async fn raw_server(plan: Raw) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = counter.clone();
            held.push(tokio::spawn(async move {
                read_head(&mut s).await;
                let head: &[u8] = match plan {
                    Raw::Silent => b"",
                    Raw::HugeContentLength => {
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\n\r\n"
                    }
                    Raw::EndlessChunked => {
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                    }
                    Raw::EndlessUntilClose => {
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
                    }
                };
                if s.write_all(head).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 8192];
                for _ in 0..2048 {
                    let ok = match plan {
                        Raw::EndlessChunked => {
                            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                            framed.extend_from_slice(&chunk);
                            framed.extend_from_slice(b"\r\n");
                            s.write_all(&framed).await.is_ok()
                        }
                        Raw::EndlessUntilClose => s.write_all(&chunk).await.is_ok(),
                        Raw::Silent | Raw::HugeContentLength => break,
                    };
                    if !ok {
                        return;
                    }
                    counter.fetch_add(chunk.len(), Ordering::Relaxed);
                }
                // Hold the connection: a client still waiting for the rest
                // would wait until its timeout.
                let mut sink = [0u8; 1024];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            }));
        }
    });
    (addr, written)
}

/// Reads up to the end of a request's head (bounded).
async fn read_head(s: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match s.read(&mut buf).await {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
}

// ------------------------------------------------------------------ the reference service

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_feedback_and_health_against_the_reference_service() {
    let running = start_service("").await;
    let ep = url(&format!("http://{}", running.local_addr()));
    let t = transport(bearer(TOKEN));

    let answer = resolve(&t, &ep).await.expect("an answer");
    assert_eq!(answer.status, 200);
    assert_eq!(t.classify(&ep, &answer), None);
    let response: ProxyResponse = codec::json::decode(&answer.body).expect("a ProxyResponse");
    let proxy = response.proxy_url.expect("a proxy is chosen");
    assert_eq!(proxy.host(), "192.0.2.10", "the only us-east-1 proxy");

    // A gzip batch from the core's feedback queue: accepted and applied.
    let (kind, body) = feedback_batch();
    let answer = send(&t, call(&ep, kind, &body)).await.expect("an answer");
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let ack: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        (ack["received"].as_u64(), ack["applied"].as_u64()),
        (Some(1), Some(1))
    );

    // The same batch uncompressed.
    let plain = transport(TransportConfig {
        gzip_feedback: false,
        ..bearer(TOKEN)
    });
    let answer = send(&plain, call(&ep, kind, &body))
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200);

    let answer = health(&t, &ep).await.expect("an answer");
    assert!(contract::is_healthy(answer.status), "{}", answer.status);
    let h: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(h["status"], "ok");

    // The API key works as well as the token.
    let answer = resolve(&transport(api_key(API_KEY)), &ep).await.unwrap();
    assert_eq!(answer.status, 200);
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_answers_that_name_what_to_check() {
    let running = start_service("").await;
    let ep = url(&format!("http://{}", running.local_addr()));

    let t = transport(bearer(WRONG_TOKEN));
    let answer = resolve(&t, &ep).await.expect("a 401 is an answer");
    assert_eq!(answer.status, 401);
    let e = t.classify(&ep, &answer).expect("401 is a failure");
    expect_failure(
        &e,
        FailureKind::Unauthorized,
        &ep,
        "external_service.auth_credentials.token",
    );
    assert!(e.to_string().contains("check the bearer token"), "{e}");
    assert_eq!(e.status(), Some(401));
    // Without knowing the method, still actionable.
    let generic = ServiceError::from_status(&ep, answer.status, answer.retry_after).unwrap();
    expect_failure(
        &generic,
        FailureKind::Unauthorized,
        &ep,
        "bearer token, API key or client certificate",
    );

    let t = transport(api_key(WRONG_KEY));
    let answer = resolve(&t, &ep).await.unwrap();
    assert_eq!(answer.status, 401);
    let e = t.classify(&ep, &answer).unwrap();
    expect_failure(
        &e,
        FailureKind::Unauthorized,
        &ep,
        "external_service.auth_credentials.api_key",
    );

    // No credentials at all.
    let t = transport(TransportConfig::default());
    let answer = resolve(&t, &ep).await.unwrap();
    assert_eq!(answer.status, 401);
    let e = t.classify(&ep, &answer).unwrap();
    expect_failure(&e, FailureKind::Unauthorized, &ep, "none are configured");

    // A known client without the scope: 403.
    let t = transport(bearer(READER_TOKEN));
    let answer = resolve(&t, &ep).await.unwrap();
    assert_eq!(answer.status, 403);
    let e = t.classify(&ep, &answer).unwrap();
    expect_failure(&e, FailureKind::Unauthorized, &ep, "scopes");
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_the_reference_service() {
    let pki = pki();
    let running = start_service(&pki.tls_section("server", true)).await;
    let port = running.local_addr().port();
    let ep = url(&format!("https://localhost:{port}"));

    let desk = transport(pki.mtls("desk"));
    let answer = resolve(&desk, &ep).await.expect("mutual TLS works");
    assert_eq!(answer.status, 200);
    let response: ProxyResponse = codec::json::decode(&answer.body).unwrap();
    assert!(response.proxy_url.is_some());
    let (kind, body) = feedback_batch();
    assert_eq!(
        send(&desk, call(&ep, kind, &body)).await.unwrap().status,
        200
    );

    // Signed by the right CA, but a name the service does not know: 401.
    let stranger = transport(pki.mtls("stranger"));
    let answer = resolve(&stranger, &ep)
        .await
        .expect("TLS works, the API refuses");
    assert_eq!(answer.status, 401);
    let e = stranger.classify(&ep, &answer).unwrap();
    expect_failure(&e, FailureKind::Unauthorized, &ep, "client certificate");
    assert!(e.to_string().contains("cert_file"), "{e}");

    // Signed by another CA: the handshake fails, and the message says so,
    // whether the rustls alert is read or (TLS 1.3, the request written
    // first) only the closed connection is seen.
    let alien = transport(pki.mtls("alien"));
    let e = resolve(&alien, &ep)
        .await
        .expect_err("the service refuses the certificate");
    expect_failure(&e, FailureKind::Tls, &ep, "refused the client certificate");
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_certificate_is_verified_and_problems_are_named() {
    let pki = pki();
    let with_ca = || TransportConfig {
        credentials: AuthCredentials {
            token: Some(secret(TOKEN)),
            ca_file: Some(pki.ca_file()),
            ..AuthCredentials::default()
        },
        ..bearer(TOKEN)
    };

    let good = start_service(&pki.tls_section("server", false)).await;
    let ep = url(&format!("https://127.0.0.1:{}", good.local_addr().port()));
    let answer = resolve(&transport(with_ca()), &ep)
        .await
        .expect("the CA is trusted");
    assert_eq!(answer.status, 200);
    // Without the CA (the platform's store does not hold the test CA).
    let e = resolve(&transport(bearer(TOKEN)), &ep)
        .await
        .expect_err("untrusted");
    expect_failure(&e, FailureKind::Tls, &ep, "not signed by a trusted CA");
    assert!(e.to_string().contains("ca_file"), "{e}");
    stop(good).await;

    let wrong_host = start_service(&pki.tls_section("wrong-host", false)).await;
    let ep = url(&format!(
        "https://127.0.0.1:{}",
        wrong_host.local_addr().port()
    ));
    let e = resolve(&transport(with_ca()), &ep)
        .await
        .expect_err("wrong host");
    expect_failure(&e, FailureKind::Tls, &ep, "not valid for host 127.0.0.1");
    assert!(e.to_string().contains("other.example"), "{e}");
    stop(wrong_host).await;

    let expired = start_service(&pki.tls_section("expired", false)).await;
    let ep = url(&format!(
        "https://127.0.0.1:{}",
        expired.local_addr().port()
    ));
    let e = resolve(&transport(with_ca()), &ep)
        .await
        .expect_err("expired");
    expect_failure(&e, FailureKind::Tls, &ep, "has expired");
    stop(expired).await;

    // https:// to a plain HTTP server.
    let plain = start_service("").await;
    let ep = url(&format!("https://127.0.0.1:{}", plain.local_addr().port()));
    let e = resolve(&transport(with_ca()), &ep)
        .await
        .expect_err("not TLS");
    expect_failure(&e, FailureKind::Tls, &ep, "does not speak TLS");
    stop(plain).await;
}

// ------------------------------------------------------------------ HTTP/2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_negotiated_when_offered_and_the_connection_is_reused() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let pki = pki();
    let versions = Arc::new(Mutex::new(Vec::<Version>::new()));
    let seen = versions.clone();
    let router = Router::new().route(
        HEALTH_PATH,
        get(move |req: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(req.version());
                r#"{"status":"ok"}"#
            }
        }),
    );
    let (cert, key) = pki.server_der.clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                    .await;
            });
        }
    });

    let t = transport(config(
        None,
        AuthCredentials {
            ca_file: Some(pki.ca_file()),
            ..AuthCredentials::default()
        },
    ));
    let ep = url(&format!("https://127.0.0.1:{port}"));
    for _ in 0..3 {
        let answer = health(&t, &ep).await.expect("an answer over TLS");
        assert_eq!(answer.status, 200);
    }
    assert_eq!(*versions.lock().unwrap(), vec![Version::HTTP_2; 3]);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one pooled connection"
    );
}

// ------------------------------------------------------------------ what arrives

#[derive(Debug, Clone, Default)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_path_headers_and_body_arrive_as_sent() {
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let record = |seen: Arc<Mutex<Vec<Seen>>>| {
        move |req: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                let headers = parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
                    .collect();
                seen.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    headers,
                    body: body.to_vec(),
                });
                "{}"
            }
        }
    };
    let router = Router::new()
        .route(&format!("/pd{REQUEST_PATH}"), post(record(seen.clone())))
        .route(&format!("/pd{FEEDBACK_PATH}"), post(record(seen.clone())))
        .route(&format!("/pd{HEALTH_PATH}"), get(record(seen.clone())));
    let addr = serve(router).await;
    let ep = url(&format!("http://{addr}/pd/"));
    let t = transport(bearer(TOKEN));

    let (kind, batch) = feedback_batch();
    assert_eq!(resolve(&t, &ep).await.unwrap().status, 200);
    assert_eq!(send(&t, call(&ep, kind, &batch)).await.unwrap().status, 200);
    assert_eq!(health(&t, &ep).await.unwrap().status, 200);
    let postcard_body = [1u8, 2, 3];
    let postcard = ServiceCall {
        wire: WireFormat::Postcard,
        ..call(&ep, TransmitKind::Resolve, &postcard_body)
    };
    assert_eq!(send(&t, postcard).await.unwrap().status, 200);

    // The API key travels in its own header, marked sensitive like the token.
    let keyed = transport(api_key(API_KEY));
    assert_eq!(resolve(&keyed, &ep).await.unwrap().status, 200);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    let [request, feedback, check, binary] = [&seen[0], &seen[1], &seen[2], &seen[3]];
    assert_eq!(seen[4].header(API_KEY_HEADER), Some(API_KEY));
    assert_eq!(seen[4].header("authorization"), None);
    for (s, method, path) in [
        (request, "POST", REQUEST_PATH),
        (feedback, "POST", FEEDBACK_PATH),
        (check, "GET", HEALTH_PATH),
    ] {
        assert_eq!(s.method, method);
        assert_eq!(s.path, format!("/pd{path}"), "joined under the base path");
        assert_eq!(s.header(CORRELATION_HEADER), Some("0123456789abcdef"));
        assert_eq!(s.header("accept"), Some(contract::JSON));
        assert_eq!(
            s.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert!(
            s.header("user-agent")
                .unwrap()
                .starts_with("proxy-delegate-tokio/")
        );
    }
    assert_eq!(request.header("content-type"), Some(contract::JSON));
    assert_eq!(request.header("content-encoding"), None);
    assert_eq!(request.body, REQUEST_JSON.as_bytes());

    assert_eq!(feedback.header("content-type"), Some(contract::JSON));
    assert_eq!(feedback.header("content-encoding"), Some("gzip"));
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(feedback.body.as_slice())
        .read_to_end(&mut inflated)
        .expect("a gzip body");
    assert_eq!(inflated, batch);

    assert_eq!(check.header("content-type"), None);
    assert!(check.body.is_empty());

    assert_eq!(binary.header("content-type"), Some(contract::POSTCARD));
    assert_eq!(binary.header("accept"), Some(contract::POSTCARD));
    assert_eq!(binary.body, postcard_body);
}

// ------------------------------------------------------------------ odd answers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_over_64_kib_are_refused_without_reading_the_rest() {
    let router = Router::new()
        .route("/exact/health", get(|| async { vec![b' '; MAX_BODY] }))
        .route("/over/health", get(|| async { vec![b' '; MAX_BODY + 1] }));
    let addr = serve(router).await;
    let t = transport(TransportConfig::default());

    let exact = url(&format!("http://{addr}/exact"));
    let answer = health(&t, &exact).await.expect("64 KiB is allowed");
    assert_eq!(answer.body.len(), MAX_BODY);

    let over = url(&format!("http://{addr}/over"));
    let e = health(&t, &over).await.expect_err("over 64 KiB");
    expect_failure(&e, FailureKind::Oversized, &over, "larger than 65536 bytes");

    // A Content-Length over the limit is refused from the head alone: the
    // server sends no body and holds the connection.
    let (addr, _) = raw_server(Raw::HugeContentLength).await;
    let ep = url(&format!("http://{addr}"));
    let e = health(&t, &ep).await.expect_err("declared too large");
    assert_eq!(e.kind(), FailureKind::Oversized, "{e}");

    // Bodies with no length that never end: refused once past the limit
    // (reading to the end would run into the call's timeout instead).
    for plan in [Raw::EndlessChunked, Raw::EndlessUntilClose] {
        let (addr, written) = raw_server(plan).await;
        let ep = url(&format!("http://{addr}"));
        let e = health(&t, &ep).await.expect_err("endless body");
        assert_eq!(e.kind(), FailureKind::Oversized, "{e}");
        assert!(written.load(Ordering::Relaxed) > MAX_BODY);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_status_is_an_answer_with_its_retry_after() {
    let followed = Arc::new(AtomicUsize::new(0));
    let hits = followed.clone();
    let router = Router::new()
        .route(
            "/limited/health",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "7")],
                    "slow down",
                )
            }),
        )
        .route(
            "/dated/health",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
                    "draining",
                )
            }),
        )
        .route(
            "/moved/health",
            get(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [("location", "/target/health")],
                )
            }),
        )
        .route(
            "/target/health",
            get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async { "{}" }
            }),
        );
    let addr = serve(router).await;
    let t = transport(bearer(TOKEN));

    let ep = url(&format!("http://{addr}/limited"));
    let answer = health(&t, &ep).await.expect("429 is an answer");
    assert_eq!(answer.status, 429);
    assert_eq!(answer.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(&answer.body[..], b"slow down");
    let e = t.classify(&ep, &answer).unwrap();
    expect_failure(&e, FailureKind::RateLimited, &ep, "retry after 7 s");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));

    // The HTTP-date form is not read.
    let ep = url(&format!("http://{addr}/dated"));
    let answer = health(&t, &ep).await.unwrap();
    assert_eq!((answer.status, answer.retry_after), (503, None));
    let e = t.classify(&ep, &answer).unwrap();
    expect_failure(&e, FailureKind::ServerError, &ep, "server error");

    // Redirects are not followed (they could carry the token elsewhere).
    let ep = url(&format!("http://{addr}/moved"));
    let answer = health(&t, &ep).await.unwrap();
    assert_eq!(answer.status, 307);
    assert_eq!(followed.load(Ordering::SeqCst), 0);
    let e = t.classify(&ep, &answer).unwrap();
    expect_failure(&e, FailureKind::Other, &ep, "redirect");
}

// ------------------------------------------------------------------ no answer

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failures_are_classified() {
    let t = transport(bearer(TOKEN));

    // A server that accepts and never answers: Timeout, within the call's
    // timeout (checked only against a generous bound).
    let (addr, _) = raw_server(Raw::Silent).await;
    let ep = url(&format!("http://{addr}"));
    let started = Instant::now();
    let e = send(
        &t,
        ServiceCall {
            timeout: Duration::from_millis(300),
            ..call(&ep, TransmitKind::Resolve, REQUEST_JSON.as_bytes())
        },
    )
    .await
    .expect_err("no answer");
    assert!(started.elapsed() < NEVER_HANGS);
    expect_failure(&e, FailureKind::Timeout, &ep, "no answer within 300 ms");

    // The configured request timeout caps a longer call timeout.
    let capped = transport(TransportConfig {
        request_timeout: Duration::from_millis(200),
        ..bearer(TOKEN)
    });
    let e = resolve(&capped, &ep).await.expect_err("no answer");
    expect_failure(&e, FailureKind::Timeout, &ep, "no answer within 200 ms");

    // A closed port.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let ep = url(&format!("http://{addr}"));
    let e = resolve(&t, &ep).await.expect_err("refused");
    expect_failure(
        &e,
        FailureKind::ConnectionRefused,
        &ep,
        "nothing is listening at 127.0.0.1",
    );

    // A name that cannot resolve (refused by the transport's resolver
    // without a query: no traffic leaves the machine).
    let ep = url("http://something.invalid:8080");
    let e = resolve(&t, &ep).await.expect_err("no such host");
    expect_failure(
        &e,
        FailureKind::Dns,
        &ep,
        "cannot resolve host something.invalid",
    );
}

// ------------------------------------------------------------------ secrets and building

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_shows_in_debug_or_in_any_error() {
    for config in [bearer(TOKEN), api_key(API_KEY)] {
        assert_secret_free(&format!("{config:?}"));
        let t = transport(config);
        let text = format!("{t:?}");
        assert_secret_free(&text);
        assert!(text.contains("HttpTransport"), "{text}");

        let (addr, _) = raw_server(Raw::Silent).await;
        let ep = url(&format!("http://{addr}"));
        let timeout = ServiceCall {
            timeout: Duration::from_millis(100),
            ..call(&ep, TransmitKind::Resolve, REQUEST_JSON.as_bytes())
        };
        let mut errors = vec![send(&t, timeout).await.unwrap_err()];
        errors.push(
            resolve(&t, &url("https://something.invalid"))
                .await
                .unwrap_err(),
        );
        for status in [401, 403, 429, 500, 404] {
            errors.push(ServiceError::from_status(&ep, status, None).unwrap());
            errors.push(
                t.classify(
                    &ep,
                    &ServiceAnswer {
                        status,
                        body: Bytes::from_static(b"tok-feed-S3CRET-1"),
                        retry_after: None,
                    },
                )
                .unwrap(),
            );
        }
        for e in &errors {
            assert_secret_free(&e.to_string());
            assert_secret_free(&format!("{e:?}"));
        }
    }
}

fn build_error(config: TransportConfig) -> BuildError {
    let e = HttpTransport::new(config).expect_err("the transport must not build");
    assert_secret_free(&e.to_string());
    assert_secret_free(&format!("{e:?}"));
    e
}

#[test]
fn build_errors_name_the_key_and_the_file_never_the_contents() {
    let e = build_error(config(
        Some(AuthMethod::BearerToken),
        AuthCredentials::default(),
    ));
    assert_eq!(e.key(), "external_service.auth_credentials.token");
    assert!(
        e.to_string()
            .contains("required by auth_method bearer_token"),
        "{e}"
    );
    let e = build_error(config(Some(AuthMethod::ApiKey), AuthCredentials::default()));
    assert_eq!(e.key(), "external_service.auth_credentials.api_key");
    let e = build_error(config(
        Some(AuthMethod::MutualTls),
        AuthCredentials::default(),
    ));
    assert_eq!(e.key(), "external_service.auth_credentials.cert_file");

    let e = build_error(bearer("tok-S3CRET\nInjected: yes"));
    assert_eq!(e.key(), "external_service.auth_credentials.token");
    assert!(
        e.to_string().contains("not usable in an HTTP header"),
        "{e}"
    );

    let pki = pki();
    let with_ca = |path: &Path| {
        config(
            None,
            AuthCredentials {
                ca_file: Some(file_path(path)),
                ..AuthCredentials::default()
            },
        )
    };
    let missing = pki.path("absent.pem");
    let e = build_error(with_ca(&missing));
    assert_eq!(e.key(), "external_service.auth_credentials.ca_file");
    assert_eq!(e.path(), Some(missing.as_path()));
    assert!(e.to_string().contains("absent.pem"), "{e}");
    // A device that never ends is not read.
    let e = build_error(with_ca(Path::new("/dev/zero")));
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // Not PEM: said, not quoted.
    let junk = pki.path("junk.pem");
    std::fs::write(&junk, "tok-feed-S3CRET-1 is not a certificate\n").unwrap();
    let e = build_error(with_ca(&junk));
    assert!(e.to_string().contains("no certificate in it"), "{e}");

    // mutual TLS: a key file without a key, and a key of another certificate.
    let mut c = pki.mtls("desk");
    c.credentials.key_file = Some(file_path(&junk));
    let e = build_error(c);
    assert_eq!(e.key(), "external_service.auth_credentials.key_file");
    assert!(e.to_string().contains("no private key in it"), "{e}");
    let mut c = pki.mtls("desk");
    c.credentials.key_file = Some(file_path(&pki.path("stranger.key")));
    let e = build_error(c);
    assert!(
        e.to_string().contains("does not belong to the certificate"),
        "{e}"
    );
    let key_text = std::fs::read_to_string(pki.path("stranger.key")).unwrap();
    let key_body: String = key_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!e.to_string().contains(&key_body[..24]));

    // What builds: every form with its credentials, and no credentials.
    for c in [
        bearer(TOKEN),
        api_key(API_KEY),
        pki.mtls("desk"),
        TransportConfig::default(),
    ] {
        HttpTransport::new(c).expect("builds");
    }
}

#[test]
fn settings_give_the_transport_config() {
    let es = proxy_delegate_core::settings::ExternalService {
        auth_method: Some(AuthMethod::ApiKey),
        auth_credentials: AuthCredentials {
            api_key: Some(secret(API_KEY)),
            ..AuthCredentials::default()
        },
        timeout_seconds: proxy_delegate_core::settings::ServiceTimeoutSeconds::new(3).unwrap(),
        ..Default::default()
    };
    let c = TransportConfig::from_settings(&es);
    assert_eq!(c.request_timeout, Duration::from_secs(3));
    assert_eq!(
        c.connect_timeout,
        Duration::from_secs(3),
        "never above the request timeout"
    );
    assert_eq!(c.auth, Some(AuthMethod::ApiKey));
    assert_eq!(c.credentials, es.auth_credentials);
    assert!(c.gzip_feedback);
    let t = transport(c);
    assert_eq!(t.auth_method(), Some(AuthMethod::ApiKey));
}
