//! [`HttpTransport`]: the [`Transport`] that speaks HTTP to the proxy
//! service through one pooled reqwest client.
//!
//! * **Connections.** One `reqwest::Client`, built once: connections are
//!   kept alive and reused, HTTP/2 is used when the service offers it (ALPN
//!   `h2` over TLS; plain `http://` endpoints speak HTTP/1.1). Redirects are
//!   never followed (they could carry the credentials elsewhere) and no
//!   `HTTP(S)_PROXY` environment proxy is used: the service is reached
//!   directly.
//! * **TLS.** rustls with the `ring` provider; certificates are always
//!   verified, there is no way to turn that off. Trusted: the CAs in
//!   `ca_file`, plus the platform's store (`/etc/ssl/certs` and the like)
//!   unless [`TransportConfig::system_roots`] is off.
//! * **Authentication.** `bearer_token` sends `Authorization: Bearer
//!   <token>`, `api_key` sends [`API_KEY_HEADER`]; both values are marked
//!   sensitive. `mutual_tls` presents the client certificate of `cert_file`
//!   with the key of `key_file`.
//! * **Answers.** Any status is an answer ([`ServiceAnswer`]); classify it
//!   with [`HttpTransport::classify`]. The body is read as it arrives and
//!   refused ([`FailureKind::Oversized`](crate::FailureKind::Oversized)) as
//!   soon as it would pass [`MAX_BODY`], or at once when its
//!   `Content-Length` says it will. `Retry-After` is read in its
//!   delta-seconds form; the HTTP-date form is ignored (`retry_after` is
//!   then `None`).
//! * **Names.** Host names resolve through the system resolver, except that
//!   names under `.invalid` fail at once without a query (RFC 6761 §6.4).

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use proxy_delegate_core::contract::{API_KEY_HEADER, CORRELATION_HEADER, MAX_BODY, Method};
use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::resolver::TransmitKind;
use proxy_delegate_core::settings::{
    AuthCredentials, AuthMethod, ExternalService, Secret, ServiceTimeoutSeconds,
};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
    RETRY_AFTER,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{BuildError, ServiceError, causes};
use crate::transport::{BoxFuture, ServiceAnswer, ServiceCall, Transport};

const TOKEN_KEY: &str = "external_service.auth_credentials.token";
const API_KEY_KEY: &str = "external_service.auth_credentials.api_key";
const CERT_KEY: &str = "external_service.auth_credentials.cert_file";
const KEY_KEY: &str = "external_service.auth_credentials.key_file";
const CA_KEY: &str = "external_service.auth_credentials.ca_file";

/// Largest certificate, key or CA file read, in bytes.
const MAX_PEM_FILE: u64 = 1 << 20;

/// How an [`HttpTransport`] connects and authenticates. Build one with
/// [`TransportConfig::from_settings`] or start from `Default` and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Give up connecting (TCP and TLS) after this long. Default
    /// [`DEFAULT_CONNECT_TIMEOUT`](Self::DEFAULT_CONNECT_TIMEOUT) (5 s).
    pub connect_timeout: Duration,
    /// Upper bound of every call: a call's own timeout
    /// ([`ServiceCall::timeout`]) is cut to this. Default 10 s
    /// (`external_service.timeout_seconds`).
    pub request_timeout: Duration,
    /// How to authenticate (default none).
    pub auth: Option<AuthMethod>,
    /// The credentials `auth` needs: `token` for `bearer_token`, `api_key`
    /// for `api_key`, `cert_file` and `key_file` for `mutual_tls`; `ca_file`
    /// (an extra trusted CA) for any. Credentials of another method are
    /// ignored.
    pub credentials: AuthCredentials,
    /// Send feedback batches gzip-compressed (`Content-Encoding: gzip`).
    /// Default true.
    pub gzip_feedback: bool,
    /// The `User-Agent` header. Default `proxy-delegate-tokio/<version>`.
    pub user_agent: String,
    /// Close a pooled connection left unused this long. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Also trust the platform's CA store (besides `ca_file`). Default true;
    /// turn it off to trust only `ca_file`. Certificates are verified either
    /// way.
    pub system_roots: bool,
}

impl TransportConfig {
    /// Default [`connect_timeout`](Self::connect_timeout): 5 s (never more
    /// than the request timeout).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default [`pool_idle_timeout`](Self::pool_idle_timeout): 90 s.
    pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

    /// The transport configuration of an `external_service` block: its
    /// timeout, method and credentials; the other fields at their defaults.
    pub fn from_settings(es: &ExternalService) -> Self {
        let request_timeout = Duration::from_secs(es.timeout_seconds.get().into());
        Self {
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT.min(request_timeout),
            request_timeout,
            auth: es.auth_method,
            credentials: es.auth_credentials.clone(),
            ..Self::default()
        }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        let request_timeout = Duration::from_secs(ServiceTimeoutSeconds::DEFAULT.get().into());
        Self {
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT.min(request_timeout),
            request_timeout,
            auth: None,
            credentials: AuthCredentials::default(),
            gzip_feedback: true,
            user_agent: concat!("proxy-delegate-tokio/", env!("CARGO_PKG_VERSION")).to_owned(),
            pool_idle_timeout: Self::DEFAULT_POOL_IDLE_TIMEOUT,
            system_roots: true,
        }
    }
}

/// The HTTP [`Transport`]: one pooled reqwest client (rustls, HTTP/2 when
/// offered), with the configured credentials. Cheap to share (`Arc` it);
/// `Debug` shows the method and timeouts, never a credential.
pub struct HttpTransport {
    client: reqwest::Client,
    auth: Option<AuthMethod>,
    /// The credential header, marked sensitive.
    auth_header: Option<(HeaderName, HeaderValue)>,
    gzip_feedback: bool,
    request_timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("auth", &self.auth.map(AuthMethod::as_str))
            .field("gzip_feedback", &self.gzip_feedback)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// Builds the client: reads the CA, certificate and key files (regular
    /// files of at most 1 MiB) and checks the credentials `config.auth`
    /// needs. The error names the key and the file and what is wrong with
    /// it, never a secret or a file's contents.
    pub fn new(config: TransportConfig) -> Result<Self, BuildError> {
        Self::with_resolver(config, Arc::new(SystemResolver))
    }

    /// Like [`new`](Self::new), with host names resolved by `resolver`
    /// (for example the DNS configuration SRV discovery uses, so that SRV
    /// targets only that name server knows resolve for HTTP too).
    pub fn with_resolver<R: reqwest::dns::Resolve + 'static>(
        config: TransportConfig,
        resolver: Arc<R>,
    ) -> Result<Self, BuildError> {
        let auth_header = auth_header(config.auth, &config.credentials)?;
        let tls = tls_config(&config)?;
        let user_agent = HeaderValue::from_str(&config.user_agent).map_err(|_| {
            BuildError::invalid(
                "user_agent",
                "not a valid HTTP header value (control characters?)",
            )
        })?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .dns_resolver(resolver)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(config.pool_idle_timeout)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(user_agent)
            .build()
            .map_err(|e| {
                BuildError::invalid("http client", format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            client,
            auth: config.auth,
            auth_header,
            gzip_feedback: config.gzip_feedback,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
        })
    }

    /// The authentication method in use.
    pub fn auth_method(&self) -> Option<AuthMethod> {
        self.auth
    }

    /// The failure `answer` means (`None` for a 2xx):
    /// [`ServiceError::from_status_with_auth`] with this transport's method,
    /// so that a 401 names the credential to check.
    pub fn classify(&self, endpoint: &ServiceUrl, answer: &ServiceAnswer) -> Option<ServiceError> {
        ServiceError::from_status_with_auth(endpoint, answer.status, answer.retry_after, self.auth)
    }

    async fn exchange(&self, call: ServiceCall<'_>) -> Result<ServiceAnswer, ServiceError> {
        let limit = call.timeout.min(self.request_timeout);
        match tokio::time::timeout(limit, self.exchange_unbounded(&call)).await {
            Ok(result) => result,
            Err(_) => Err(ServiceError::timeout(call.endpoint, limit)),
        }
    }

    async fn exchange_unbounded(
        &self,
        call: &ServiceCall<'_>,
    ) -> Result<ServiceAnswer, ServiceError> {
        let endpoint = call.endpoint;
        let url = format!("{endpoint}{}", call.kind.path());
        let method = match call.kind.method() {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut request = self
            .client
            .request(method.clone(), url)
            .header(ACCEPT, call.wire.content_type())
            .header(CORRELATION_HEADER, call.id.to_string());
        if let Some((name, value)) = &self.auth_header {
            request = request.header(name.clone(), value.clone());
        }
        if method == reqwest::Method::POST {
            request = request.header(CONTENT_TYPE, call.wire.content_type());
            if self.gzip_feedback && matches!(call.kind, TransmitKind::Feedback(_)) {
                let body = gzip(call.body).map_err(|e| {
                    ServiceError::other(endpoint, &format!("cannot compress the body: {e}"))
                })?;
                request = request.header(CONTENT_ENCODING, "gzip").body(body);
            } else {
                request = request.body(call.body.to_vec());
            }
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.classify_error(endpoint, &e, false))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let declared = response.content_length();
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(ServiceError::oversized(endpoint, MAX_BODY));
        }
        let capacity = declared.map_or(4096, |n| n as usize);
        let mut body = BytesMut::with_capacity(capacity);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.classify_error(endpoint, &e, true))?
        {
            if chunk.len() > MAX_BODY - body.len() {
                return Err(ServiceError::oversized(endpoint, MAX_BODY));
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(
            endpoint = %endpoint,
            correlation_id = %call.id,
            kind = call.kind.as_str(),
            status,
            version = ?response.version(),
            bytes = body.len(),
            "proxy service answered"
        );
        Ok(ServiceAnswer {
            status,
            body: body.freeze(),
            retry_after,
        })
    }

    /// The failure behind a reqwest error, from its cause chain; never its
    /// `Display` (which holds the URL and a generic text). `answered`: the
    /// response head had arrived (the error came while its body was read).
    fn classify_error(
        &self,
        endpoint: &ServiceUrl,
        error: &reqwest::Error,
        answered: bool,
    ) -> ServiceError {
        let stage = if error.is_connect() {
            Stage::Connect
        } else if answered || error.is_body() || error.is_decode() {
            Stage::Body
        } else {
            Stage::Request
        };
        let facts = Facts {
            stage,
            timeout: error.is_timeout(),
            mtls: self.auth == Some(AuthMethod::MutualTls),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
        };
        failure_of(endpoint, error, &facts)
    }
}

/// How far a failed exchange got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Connecting: name, TCP, TLS handshake.
    Connect,
    /// Connected, no byte of the response yet: the request was written, or
    /// was about to be.
    Request,
    /// The response head arrived; its body was being read.
    Body,
}

/// What [`failure_of`] knows of a failed exchange besides its error chain.
#[derive(Debug, Clone, Copy)]
struct Facts {
    stage: Stage,
    /// reqwest says the call or the connection timed out.
    timeout: bool,
    /// The transport presents a client certificate (`mutual_tls`).
    mtls: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// The failure an error chain means, the chain walked through
/// ([`causes`]), `io::Error`s included, so that a rustls error or alert
/// nested in hyper's and I/O errors is found.
///
/// With TLS 1.3 a service refuses a client certificate after the client has
/// finished its handshake; when the client writes its request first, hyper
/// may report only the closed connection and the rustls alert is lost. So,
/// with `mutual_tls`, a connection closed after the handshake and before
/// any byte of the response is reported as a
/// [`Tls`](crate::FailureKind::Tls) failure, a likely refused client
/// certificate. Without
/// a client certificate the same closure stays an
/// [`Other`](crate::FailureKind::Other) failure.
fn failure_of(
    endpoint: &ServiceUrl,
    error: &(dyn StdError + 'static),
    facts: &Facts,
) -> ServiceError {
    let chain = causes(error);
    if let Some(dns) = chain.iter().find_map(|e| e.downcast_ref::<DnsFailure>()) {
        return ServiceError::dns(endpoint, &dns.reason);
    }
    if let Some(tls) = chain.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return ServiceError::tls(endpoint, &describe_tls(tls, endpoint, facts.mtls));
    }
    let io = chain.iter().find_map(|e| e.downcast_ref::<io::Error>());
    let io_kind = io.map(io::Error::kind);
    if facts.timeout || io_kind == Some(io::ErrorKind::TimedOut) {
        return if facts.stage == Stage::Connect {
            ServiceError::connect_timeout(endpoint, facts.connect_timeout)
        } else {
            ServiceError::timeout(endpoint, facts.request_timeout)
        };
    }
    if io_kind == Some(io::ErrorKind::ConnectionRefused) {
        return ServiceError::connection_refused(endpoint);
    }
    // The innermost cause that is not reqwest's own error: an I/O error
    // kind, or hyper's / h2's fixed description. None of them holds a
    // header or a body.
    let cause = match io {
        Some(io) => io.kind().to_string(),
        None => chain
            .iter()
            .rev()
            .find(|e| e.downcast_ref::<reqwest::Error>().is_none())
            .map_or_else(|| "no cause given".to_owned(), ToString::to_string),
    };
    if facts.mtls && facts.stage == Stage::Request && closed_early(&chain) {
        return ServiceError::tls(endpoint, &closed_after_handshake(&cause));
    }
    let phase = match facts.stage {
        Stage::Connect => "cannot connect",
        Stage::Body => "the connection failed while the answer was read",
        Stage::Request => "the HTTP exchange failed",
    };
    ServiceError::other(endpoint, &format!("{phase}: {cause}"))
}

/// The chain says the connection closed under the request: hyper's
/// "connection was not ready" (canceled), "connection closed before message
/// completed" (incomplete message) or "channel closed", or an I/O error of
/// a closed connection.
fn closed_early(chain: &[&(dyn StdError + 'static)]) -> bool {
    chain.iter().any(|e| {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return h.is_canceled() || h.is_incomplete_message() || h.is_closed();
        }
        e.downcast_ref::<io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::BrokenPipe
            )
        })
    })
}

/// The message of a `mutual_tls` connection closed before the response:
/// the same "refused the client certificate" words as the alert's.
fn closed_after_handshake(cause: &str) -> String {
    format!(
        "the service closed the connection right after the TLS handshake ({cause}): it may have \
         refused the client certificate (check that external_service.auth_credentials.cert_file \
         is signed by a CA the service trusts for clients, and is not expired)"
    )
}

impl Transport for HttpTransport {
    fn send<'a>(
        &'a self,
        call: ServiceCall<'a>,
    ) -> BoxFuture<'a, Result<ServiceAnswer, ServiceError>> {
        Box::pin(self.exchange(call))
    }
}

/// What went wrong in a TLS handshake, and what to do.
fn describe_tls(error: &rustls::Error, endpoint: &ServiceUrl, mtls: bool) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as E};
    let host = endpoint.host();
    match error {
        E::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => "the service's certificate is not signed by a trusted CA \
                (unknown issuer): add the CA that signed it with \
                external_service.auth_credentials.ca_file"
                .to_owned(),
            Cert::BadSignature => "the service's certificate has a bad signature: it was not \
                signed by the CA it names; add the right CA with \
                external_service.auth_credentials.ca_file"
                .to_owned(),
            Cert::Expired | Cert::ExpiredContext { .. } => {
                "the service's certificate has expired: renew it on the service".to_owned()
            }
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                "the service's certificate is not valid yet: check the clocks of this machine and \
                 the service"
                    .to_owned()
            }
            Cert::NotValidForName => format!(
                "the service's certificate is not valid for host {host}: use a host name the \
                 certificate names in external_service.endpoints, or reissue it"
            ),
            Cert::NotValidForNameContext { presented, .. } => {
                let names = presented
                    .iter()
                    .take(8)
                    .map(|n| presented_name(n))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "the service's certificate is not valid for host {host} (it names {names}): \
                     use a host name the certificate names in external_service.endpoints, or \
                     reissue it"
                )
            }
            Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => {
                "the service's certificate is not one for a TLS server (extended key usage): \
                 reissue it for server authentication"
                    .to_owned()
            }
            Cert::Revoked => "the service's certificate has been revoked".to_owned(),
            other => format!("the service's certificate was refused: {other:?}"),
        },
        E::AlertReceived(alert) => {
            let refused_certificate = matches!(
                alert,
                Alert::BadCertificate
                    | Alert::UnknownCA
                    | Alert::CertificateRequired
                    | Alert::CertificateUnknown
                    | Alert::CertificateExpired
                    | Alert::CertificateRevoked
                    | Alert::UnsupportedCertificate
                    | Alert::AccessDenied
            );
            if refused_certificate && mtls {
                format!(
                    "the service refused the client certificate (TLS alert {alert:?}): check that \
                     external_service.auth_credentials.cert_file is signed by a CA the service \
                     trusts for clients, and is not expired"
                )
            } else if refused_certificate {
                format!(
                    "the service requires a client certificate (TLS alert {alert:?}): set \
                     external_service.auth_method to mutual_tls with cert_file and key_file"
                )
            } else {
                format!("the service ended the handshake (TLS alert {alert:?})")
            }
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "the other side does not speak TLS: if the service is plain HTTP, write its endpoint \
             as http://"
                .to_owned()
        }
        E::PeerIncompatible(why) => format!(
            "this client and the service have no TLS version or cipher suite in common ({why:?})"
        ),
        E::NoCertificatesPresented => "the service presented no certificate".to_owned(),
        other => format!("the handshake failed: {other}"),
    }
}

/// A name of a certificate as rustls reports it (`DnsName("svc.example")`,
/// `IpAddress(10.0.0.1)`), as a person writes it (`svc.example`).
fn presented_name(name: &str) -> &str {
    let inner = match (name.find('('), name.rfind(')')) {
        (Some(open), Some(close)) if close > open => &name[open + 1..close],
        _ => name,
    };
    inner.trim_matches('"')
}

/// The credential header `auth` sends, marked sensitive.
fn auth_header(
    auth: Option<AuthMethod>,
    credentials: &AuthCredentials,
) -> Result<Option<(HeaderName, HeaderValue)>, BuildError> {
    let value = |key: &'static str, method: AuthMethod, secret: Option<&Secret>, prefix: &str| {
        let secret = secret.ok_or(BuildError::missing(key, method))?;
        let mut value =
            HeaderValue::try_from(format!("{prefix}{}", secret.expose())).map_err(|_| {
                BuildError::invalid(
                    key,
                    "not usable in an HTTP header (it holds a control character or a line break)",
                )
            })?;
        value.set_sensitive(true);
        Ok::<_, BuildError>(value)
    };
    Ok(match auth {
        None | Some(AuthMethod::MutualTls) => None,
        Some(m @ AuthMethod::BearerToken) => Some((
            AUTHORIZATION,
            value(TOKEN_KEY, m, credentials.token.as_ref(), "Bearer ")?,
        )),
        Some(m @ AuthMethod::ApiKey) => Some((
            HeaderName::from_static(API_KEY_HEADER),
            value(API_KEY_KEY, m, credentials.api_key.as_ref(), "")?,
        )),
        Some(other) => {
            return Err(BuildError::invalid(
                "external_service.auth_method",
                format!("{other} is not supported by this transport"),
            ));
        }
    })
}

/// The rustls configuration: the trusted CAs, the client certificate for
/// `mutual_tls`, ALPN `h2` then `http/1.1`.
fn tls_config(config: &TransportConfig) -> Result<rustls::ClientConfig, BuildError> {
    let roots = root_store(
        config.system_roots,
        config
            .credentials
            .ca_file
            .as_ref()
            .map(|p| Path::new(p.as_str())),
        CA_KEY,
    )?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError::invalid("tls", format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots);
    let mut tls = if config.auth == Some(AuthMethod::MutualTls) {
        let creds = &config.credentials;
        let missing = |key| BuildError::missing(key, AuthMethod::MutualTls);
        let cert_path = Path::new(creds.cert_file.as_ref().ok_or(missing(CERT_KEY))?.as_str());
        let key_path = Path::new(creds.key_file.as_ref().ok_or(missing(KEY_KEY))?.as_str());
        let chain = read_certs(CERT_KEY, cert_path)?;
        let key = read_key(key_path)?;
        builder.with_client_auth_cert(chain, key).map_err(|e| {
            let problem = match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the key in key_file does not belong to the certificate in cert_file".to_owned()
                }
                other => format!("the certificate and key cannot be used: {other}"),
            };
            BuildError::file(KEY_KEY, key_path, problem)
        })?
    } else {
        builder.with_no_client_auth()
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// The CAs a TLS client trusts: the platform's store (when `system_roots`)
/// and the certificates of `ca_file`; `key` names the setting in errors.
pub(crate) fn root_store(
    system_roots: bool,
    ca_file: Option<&Path>,
    key: &'static str,
) -> Result<rustls::RootCertStore, BuildError> {
    let mut roots = rustls::RootCertStore::empty();
    if system_roots {
        let native = rustls_native_certs::load_native_certs();
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(
            added,
            ignored,
            errors = native.errors.len(),
            "platform CA store loaded"
        );
    }
    if let Some(path) = ca_file {
        let certs = read_certs(key, path)?;
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                BuildError::file(
                    key,
                    path,
                    format!("certificate {} is not a usable CA certificate: {e}", i + 1),
                )
            })?;
        }
    }
    Ok(roots)
}

fn read_pem(key: &'static str, path: &Path) -> Result<Vec<u8>, BuildError> {
    proxy_delegate_config::read_bounded(path, MAX_PEM_FILE)
        .map_err(|e| BuildError::file(key, path, format!("cannot read it: {e}")))
}

/// The certificates of a PEM file (at least one).
fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let pem = read_pem(key, path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| BuildError::file(key, path, "not valid PEM"))?;
    if certs.is_empty() {
        return Err(BuildError::file(
            key,
            path,
            "no certificate in it (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, BuildError> {
    let pem = read_pem(KEY_KEY, path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|_| BuildError::file(KEY_KEY, path, "not valid PEM"))?
        .ok_or_else(|| {
            BuildError::file(
                KEY_KEY,
                path,
                "no private key in it (expected a PEM block \"-----BEGIN PRIVATE KEY-----\", \
                 \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")",
            )
        })
}

fn gzip(body: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2 + 64), Default::default());
    encoder.write_all(body)?;
    encoder.finish()
}

/// `Retry-After` in its delta-seconds form.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    text.parse::<u64>().ok().map(Duration::from_secs)
}

/// A host name that did not resolve: the marker the classifier finds in a
/// reqwest error's cause chain.
#[derive(Debug)]
struct DnsFailure {
    reason: String,
}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl StdError for DnsFailure {}

/// The system resolver (`getaddrinfo` on a blocking thread, as reqwest's
/// default), with failures marked as [`DnsFailure`], and `.invalid` names
/// refused without a query.
#[derive(Debug)]
struct SystemResolver;

/// Whether `host` is under the special-use `.invalid` domain (RFC 6761 §6.4:
/// name resolution APIs should report such names as nonexistent at once).
fn is_invalid_domain(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let tail = host.len().saturating_sub(".invalid".len());
    host.eq_ignore_ascii_case("invalid")
        || (host.is_char_boundary(tail) && host[tail..].eq_ignore_ascii_case(".invalid"))
}

impl reqwest::dns::Resolve for SystemResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let fail = |reason: String| -> Box<dyn StdError + Send + Sync> {
                Box::new(DnsFailure { reason })
            };
            if is_invalid_domain(&host) {
                return Err(fail(
                    "names under .invalid never resolve (RFC 6761)".to_owned(),
                ));
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| fail(e.to_string()))?
                .collect();
            if addrs.is_empty() {
                return Err(fail("the name has no address".to_owned()));
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn invalid_domain_is_recognised() {
        for name in ["invalid", "x.invalid", "A.B.INVALID", "x.invalid."] {
            assert!(is_invalid_domain(name), "{name}");
        }
        for name in ["invalid.example", "xinvalid", "localhost", "é"] {
            assert!(!is_invalid_domain(name), "{name}");
        }
    }

    #[test]
    fn presented_names_read_as_written() {
        assert_eq!(presented_name(r#"DnsName("svc.example")"#), "svc.example");
        assert_eq!(presented_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(presented_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn default_config_is_documented() {
        let c = TransportConfig::default();
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert!(c.gzip_feedback && c.system_roots);
        assert!(c.user_agent.starts_with("proxy-delegate-tokio/"));
        assert_eq!(c.auth, None);
    }

    use crate::error::FailureKind;

    /// An error whose source is `inner`, as reqwest and hyper-util wrap
    /// the errors beneath them.
    #[derive(Debug)]
    struct Wrapped(Box<dyn StdError + Send + Sync>);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("error sending request")
        }
    }

    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    fn facts(stage: Stage, mtls: bool) -> Facts {
        Facts {
            stage,
            timeout: false,
            mtls,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }

    fn endpoint() -> ServiceUrl {
        "https://svc.example:8443".parse().unwrap()
    }

    const REFUSED: &str = "refused the client certificate";

    #[test]
    fn a_rustls_alert_inside_io_errors_is_found() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
        let io = io::Error::other(alert);
        let chain = Wrapped(Box::new(Wrapped(Box::new(io))));
        let e = failure_of(&endpoint(), &chain, &facts(Stage::Request, true));
        assert_eq!(e.kind(), FailureKind::Tls, "{e}");
        assert!(e.to_string().contains(REFUSED), "{e}");
        assert!(e.to_string().contains("UnknownCA"), "{e}");
    }

    #[test]
    fn with_mutual_tls_a_connection_closed_before_the_answer_is_a_refused_certificate() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::BrokenPipe,
        ] {
            let chain = Wrapped(Box::new(io::Error::from(kind)));
            let e = failure_of(&endpoint(), &chain, &facts(Stage::Request, true));
            assert_eq!(e.kind(), FailureKind::Tls, "{kind:?}: {e}");
            let text = e.to_string();
            assert!(text.contains(REFUSED), "{text}");
            assert!(text.contains("right after the TLS handshake"), "{text}");
            assert!(text.contains("cert_file"), "{text}");
            assert!(text.contains(&kind.to_string()), "{text}");

            // Without a client certificate it stays what it was.
            let e = failure_of(&endpoint(), &chain, &facts(Stage::Request, false));
            assert_eq!(e.kind(), FailureKind::Other, "{kind:?}: {e}");
            assert!(
                e.to_string()
                    .ends_with(&format!("the HTTP exchange failed: {kind}")),
                "{e}"
            );
            // Once the answer has begun, or before the handshake is done,
            // it is no sign of a refused certificate.
            let e = failure_of(&endpoint(), &chain, &facts(Stage::Body, true));
            assert_eq!(e.kind(), FailureKind::Other, "{kind:?}: {e}");
            assert!(e.to_string().contains("while the answer was read"), "{e}");
            let e = failure_of(&endpoint(), &chain, &facts(Stage::Connect, true));
            assert_eq!(e.kind(), FailureKind::Other, "{kind:?}: {e}");
            assert!(e.to_string().contains("cannot connect"), "{e}");
        }
    }

    #[test]
    fn other_io_errors_are_no_refused_certificate() {
        let chain = Wrapped(Box::new(io::Error::from(io::ErrorKind::InvalidData)));
        let e = failure_of(&endpoint(), &chain, &facts(Stage::Request, true));
        assert_eq!(e.kind(), FailureKind::Other, "{e}");
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = failure_of(&endpoint(), &refused, &facts(Stage::Connect, true));
        assert_eq!(e.kind(), FailureKind::ConnectionRefused, "{e}");
    }

    /// hyper's own "connection was not ready": a request sent on an HTTP/1
    /// connection that has already ended (its peer closed it).
    #[tokio::test]
    async fn hypers_connection_was_not_ready_is_a_refused_certificate_with_mutual_tls() {
        let (ours, theirs) = tokio::io::duplex(64);
        drop(theirs);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, String>(hyper_util::rt::TokioIo::new(ours))
                .await
                .unwrap();
        // The peer is gone: the connection ends at its first read.
        let _ = connection.await;
        let closed = sender
            .send_request(hyper::Request::new(String::new()))
            .await
            .expect_err("the connection has ended");
        assert!(closed.is_canceled(), "{closed:?}");
        let chain = Wrapped(Box::new(closed));

        let e = failure_of(&endpoint(), &chain, &facts(Stage::Request, true));
        assert_eq!(e.kind(), FailureKind::Tls, "{e}");
        assert!(e.to_string().contains(REFUSED), "{e}");
        assert!(e.to_string().contains("connection was not ready"), "{e}");

        let e = failure_of(&endpoint(), &chain, &facts(Stage::Request, false));
        assert_eq!(e.kind(), FailureKind::Other, "{e}");
        assert!(
            e.to_string()
                .ends_with("the HTTP exchange failed: connection was not ready"),
            "{e}"
        );
    }
}
