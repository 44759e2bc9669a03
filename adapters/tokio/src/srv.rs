//! Proxy-service endpoints discovered from DNS SRV records
//! (`external_service.srv_name`), looked up again when the records' TTL runs
//! out.
//!
//! [`SrvDiscovery`] asks for the SRV records of one name and turns them into
//! [`EndpointConfig`]s; [`Discovered::refresh_at`] says when to ask again. The
//! driver calls [`SrvDiscovery::lookup`] at start-up and again at
//! `refresh_at` (or [`SrvDiscovery::retry_after`] after a failure), and
//! replaces its endpoints with the answer.
//!
//! # From records to endpoints
//!
//! * **Scheme**: the SRV name's first label names it. `_http._tcp.<domain>`
//!   gives `http://` endpoints, `_https._tcp.<domain>` gives `https://`, and
//!   any other service label (`_proxy-delegate._tcp.<domain>`, ...) gives
//!   `https://`: plain HTTP is used only when the name asks for it.
//! * **URL**: each record becomes `scheme://target:port`, the target without
//!   its trailing dot, in lower case, with no base path.
//! * **Order**: SRV priority ascending, then weight descending (the heavier
//!   record first), then target and port, so the same records always give
//!   the same list. A target:port named twice is kept once, with its best
//!   priority.
//! * **Priority**: the SRV priority becomes [`EndpointConfig::priority`],
//!   clamped to 255 (priorities above 255 share the last tier).
//! * **Skipped records**: a target of `.` ("service decidedly not available",
//!   RFC 2782), port 0, or a target that is not a valid service host. An
//!   answer with no usable record is an error naming the SRV name.
//! * **Refresh**: the smallest TTL of the SRV records, kept between
//!   [`SrvOptions::min_refresh`] (5 s: a TTL of 0 cannot make the client spin)
//!   and [`SrvOptions::max_refresh`] (1 h: a huge TTL cannot freeze
//!   discovery). Every lookup asks the DNS server again; no SRV answer is
//!   served from a cache.
//!
//! The SRV name is always taken as a fully qualified name: search domains
//! from `/etc/resolv.conf` are not appended to it.
//!
//! # DNS servers
//!
//! [`DnsConfig::System`] uses the system's resolver configuration
//! (`/etc/resolv.conf` on Unix); [`DnsConfig::Servers`] asks the given name
//! servers only (split-horizon DNS, tests). The targets of the SRV records
//! often exist only in that DNS view, so [`SrvDiscovery::http_resolver`]
//! gives the HTTP client a resolver that uses the same servers.
//!
//! ```no_run
//! use proxy_delegate_tokio::srv::{DnsConfig, SrvDiscovery};
//!
//! # async fn demo() -> Result<(), proxy_delegate_tokio::srv::SrvError> {
//! let discovery = SrvDiscovery::new("_https._tcp.proxy-service.internal", &DnsConfig::System)?;
//! let found = discovery.lookup().await?;
//! for endpoint in &found.endpoints {
//!     println!("{} (priority {})", endpoint.url, endpoint.priority);
//! }
//! let client = reqwest::Client::builder()
//!     .dns_resolver(discovery.http_resolver())
//!     .build();
//! tokio::time::sleep_until(found.refresh_at).await; // then look up again
//! # Ok(()) }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use proxy_delegate_core::endpoints::{EndpointConfig, ServiceScheme, ServiceUrl};
use tokio::time::Instant;

/// Where DNS questions go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DnsConfig {
    /// The system's resolver configuration (`/etc/resolv.conf` on Unix),
    /// read once when the [`SrvDiscovery`] or [`HttpDnsResolver`] is built.
    #[default]
    System,
    /// Only these name servers, asked over UDP (TCP for truncated answers),
    /// in order: for split-horizon DNS and tests. No search domains apply.
    Servers(Vec<SocketAddr>),
}

/// Timeouts and refresh bounds of DNS lookups. [`Default`] gives the values
/// documented on each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrvOptions {
    /// Timeout of one DNS query to one server. Default 2 s. Replaces the
    /// `timeout` option of `/etc/resolv.conf`.
    pub query_timeout: Duration,
    /// How many times a failed query is retried. Default 1. Replaces the
    /// `attempts` option of `/etc/resolv.conf`.
    pub attempts: usize,
    /// The longest a whole lookup (SRV, or a host's addresses for the HTTP
    /// client) may take, retries included. Default 5 s.
    pub lookup_timeout: Duration,
    /// The soonest a successful lookup is repeated, whatever the TTL.
    /// Default 5 s.
    pub min_refresh: Duration,
    /// The latest a successful lookup is repeated, whatever the TTL; also
    /// the longest the HTTP resolver caches an address. Default 1 h.
    pub max_refresh: Duration,
    /// When to try again after a failed lookup. Default 10 s.
    pub retry_after: Duration,
}

impl Default for SrvOptions {
    fn default() -> Self {
        Self {
            query_timeout: Duration::from_secs(2),
            attempts: 1,
            lookup_timeout: Duration::from_secs(5),
            min_refresh: Duration::from_secs(5),
            max_refresh: Duration::from_secs(3600),
            retry_after: Duration::from_secs(10),
        }
    }
}

/// The answer of one SRV lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The endpoints, best first (see the [module documentation](self)).
    /// Never empty.
    pub endpoints: Vec<EndpointConfig>,
    /// The records' TTL, kept between [`SrvOptions::min_refresh`] and
    /// [`SrvOptions::max_refresh`].
    pub ttl: Duration,
    /// When to look again: when the lookup started plus `ttl`.
    pub refresh_at: Instant,
}

/// What kind of failure a [`SrvError`] is. Every kind is a DNS failure;
/// the kind says whether waiting can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrvErrorKind {
    /// The SRV name or the DNS configuration is wrong; retrying cannot help
    /// until the configuration is fixed.
    Config,
    /// The DNS server answered, but with no usable record.
    NoRecords,
    /// No answer in time.
    Timeout,
    /// The lookup failed otherwise (server unreachable, refused, SERVFAIL...).
    Failed,
}

proxy_delegate_core::labels! {
    /// Lower-case name for logs and metrics labels.
    SrvErrorKind {
        Config => "config",
        NoRecords => "no_records",
        Timeout => "timeout",
        Failed => "failed",
    }
}

/// Why SRV discovery, or a host lookup for the HTTP client, failed. The
/// message names the name looked up and what to check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SrvError {
    /// `srv_name` is not a DNS name.
    InvalidName {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`DnsConfig::Servers`] named no server.
    NoServers,
    /// The system's DNS configuration could not be read.
    SystemConfig {
        /// The resolver's error.
        reason: String,
    },
    /// The name does not exist, or has no SRV records.
    NoRecords {
        /// The SRV name.
        name: String,
    },
    /// Every SRV record was skipped (target `.`, port 0 or an invalid target).
    NoUsableRecords {
        /// The SRV name.
        name: String,
        /// How many records were skipped.
        skipped: usize,
    },
    /// A host name (an SRV target, for the HTTP client) has no address.
    HostNotFound {
        /// The host name.
        host: String,
    },
    /// No answer: every query timed out, or the lookup took longer than
    /// [`SrvOptions::lookup_timeout`].
    Timeout {
        /// What was looked up, e.g. `SRV _https._tcp.example.com`.
        query: String,
        /// How long the lookup ran.
        after: Duration,
    },
    /// The lookup failed otherwise.
    Lookup {
        /// What was looked up, e.g. `SRV _https._tcp.example.com`.
        query: String,
        /// The resolver's error.
        reason: String,
    },
}

impl SrvError {
    /// The kind of failure, to map onto the client's failure classes (all
    /// of them DNS failures).
    pub fn kind(&self) -> SrvErrorKind {
        match self {
            SrvError::InvalidName { .. } | SrvError::NoServers | SrvError::SystemConfig { .. } => {
                SrvErrorKind::Config
            }
            SrvError::NoRecords { .. }
            | SrvError::NoUsableRecords { .. }
            | SrvError::HostNotFound { .. } => SrvErrorKind::NoRecords,
            SrvError::Timeout { .. } => SrvErrorKind::Timeout,
            SrvError::Lookup { .. } => SrvErrorKind::Failed,
        }
    }
}

impl fmt::Display for SrvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SrvError::InvalidName { name, reason } => write!(
                f,
                "invalid SRV name {name:?}: {reason}: check external_service.srv_name \
                 (a DNS name such as _https._tcp.example.com)"
            ),
            SrvError::NoServers => f.write_str(
                "no DNS servers given: name at least one, or use the system's DNS configuration",
            ),
            SrvError::SystemConfig { reason } => write!(
                f,
                "cannot read the system's DNS configuration (/etc/resolv.conf): {reason}: \
                 fix it or name the DNS servers explicitly"
            ),
            SrvError::NoRecords { name } => write!(
                f,
                "no SRV records for {name}: check external_service.srv_name and the DNS zone"
            ),
            SrvError::NoUsableRecords { name, skipped } => write!(
                f,
                "no usable SRV records for {name} ({skipped} skipped: target \".\" means the \
                 service is not available; port 0 and invalid targets are ignored): check the \
                 SRV records of external_service.srv_name"
            ),
            SrvError::HostNotFound { host } => write!(
                f,
                "no address (A or AAAA records) for host {host}: check the SRV target and the \
                 DNS servers"
            ),
            SrvError::Timeout { query, after } => write!(
                f,
                "DNS lookup of {query} timed out after {after:?}: check that the DNS servers \
                 are reachable"
            ),
            SrvError::Lookup { query, reason } => write!(
                f,
                "DNS lookup of {query} failed: {reason}: check the DNS servers and that they \
                 serve this name"
            ),
        }
    }
}

impl StdError for SrvError {}

/// Builds a resolver for `dns` with `options`.
fn build_resolver(dns: &DnsConfig, options: &SrvOptions) -> Result<TokioResolver, SrvError> {
    let mut builder = match dns {
        DnsConfig::System => {
            TokioResolver::builder_tokio().map_err(|e| SrvError::SystemConfig {
                reason: e.to_string(),
            })?
        }
        DnsConfig::Servers(servers) => {
            if servers.is_empty() {
                return Err(SrvError::NoServers);
            }
            let name_servers = servers
                .iter()
                .map(|server| {
                    let mut config = NameServerConfig::udp_and_tcp(server.ip());
                    for connection in &mut config.connections {
                        connection.port = server.port();
                    }
                    config
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            )
        }
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = options.query_timeout;
    opts.attempts = options.attempts;
    opts.positive_max_ttl = Some(options.max_refresh);
    opts.negative_max_ttl = Some(options.retry_after);
    builder.build().map_err(|e| SrvError::SystemConfig {
        reason: e.to_string(),
    })
}

/// Turns a resolver error into a [`SrvError`]; `not_found` is the error for
/// "no such name / no such records", `elapsed` the time the lookup took.
fn classify(error: &NetError, query: String, not_found: SrvError, elapsed: Duration) -> SrvError {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(_)) => not_found,
        NetError::Timeout => SrvError::Timeout {
            query,
            // Whole milliseconds read better than nanoseconds.
            after: Duration::from_millis(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)),
        },
        other => SrvError::Lookup {
            query,
            reason: other.to_string(),
        },
    }
}

/// Endpoints discovered from the SRV records of one name. See the
/// [module documentation](self).
#[derive(Clone)]
pub struct SrvDiscovery {
    srv_name: String,
    name: Name,
    scheme: ServiceScheme,
    dns: DnsConfig,
    options: SrvOptions,
    resolver: TokioResolver,
}

impl fmt::Debug for SrvDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrvDiscovery")
            .field("srv_name", &self.srv_name)
            .field("scheme", &self.scheme)
            .field("dns", &self.dns)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SrvDiscovery {
    /// Discovery of `srv_name` (e.g. `_https._tcp.example.com`, a trailing
    /// dot is allowed) through `dns`, with the default [`SrvOptions`].
    ///
    /// Fails when the name is not a DNS name, when `dns` names no server, or
    /// when the system's DNS configuration cannot be read. Sends nothing.
    pub fn new(srv_name: &str, dns: &DnsConfig) -> Result<Self, SrvError> {
        Self::with_options(srv_name, dns, SrvOptions::default())
    }

    /// Like [`new`](Self::new), with the given timeouts and refresh bounds.
    pub fn with_options(
        srv_name: &str,
        dns: &DnsConfig,
        options: SrvOptions,
    ) -> Result<Self, SrvError> {
        let invalid = |reason: &str| SrvError::InvalidName {
            name: srv_name.to_owned(),
            reason: reason.to_owned(),
        };
        if srv_name.is_empty() {
            return Err(invalid("it is empty"));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if !srv_name.bytes().all(allowed) {
            return Err(invalid(
                "only ASCII letters, digits, '-', '_' and '.' are allowed",
            ));
        }
        let mut name = Name::from_ascii(srv_name).map_err(|e| invalid(&e.to_string()))?;
        if name.is_root() {
            return Err(invalid("it is the DNS root"));
        }
        name.set_fqdn(true);
        let scheme = match name.iter().next() {
            Some(label) if label.eq_ignore_ascii_case(b"_http") => ServiceScheme::Http,
            _ => ServiceScheme::Https,
        };
        let resolver = build_resolver(dns, &options)?;
        Ok(Self {
            srv_name: srv_name.trim_end_matches('.').to_owned(),
            name,
            scheme,
            dns: dns.clone(),
            options,
            resolver,
        })
    }

    /// The SRV name, without a trailing dot.
    pub fn srv_name(&self) -> &str {
        &self.srv_name
    }

    /// The scheme of the discovered endpoints (from the name's first label).
    pub fn scheme(&self) -> ServiceScheme {
        self.scheme
    }

    /// The timeouts and refresh bounds.
    pub fn options(&self) -> &SrvOptions {
        &self.options
    }

    /// How long to wait after a failed [`lookup`](Self::lookup) before the
    /// next ([`SrvOptions::retry_after`]).
    pub fn retry_after(&self) -> Duration {
        self.options.retry_after
    }

    /// Asks the DNS servers for the SRV records (never from a cache) and
    /// returns the endpoints, best first, and when to look again.
    ///
    /// Gives up after [`SrvOptions::lookup_timeout`].
    pub async fn lookup(&self) -> Result<Discovered, SrvError> {
        let started = Instant::now();
        let query = || format!("SRV {}", self.srv_name);
        // Each lookup reaches the server: the driver already waits the TTL.
        self.resolver
            .clear_lookup_cache(self.name.clone(), RecordType::SRV);
        let timeout = self.options.lookup_timeout;
        let lookup = match tokio::time::timeout(
            timeout,
            self.resolver.srv_lookup(self.name.clone()),
        )
        .await
        {
            Ok(Ok(lookup)) => lookup,
            Ok(Err(e)) => {
                let not_found = SrvError::NoRecords {
                    name: self.srv_name.clone(),
                };
                let error = classify(&e, query(), not_found, started.elapsed());
                tracing::debug!(srv_name = %self.srv_name, error = %e, "SRV lookup failed");
                return Err(error);
            }
            Err(_) => {
                return Err(SrvError::Timeout {
                    query: query(),
                    after: timeout,
                });
            }
        };

        let mut records = Vec::new();
        let mut ttl: Option<u32> = None;
        let mut skipped = 0usize;
        for record in lookup.answers() {
            let RData::SRV(srv) = &record.data else {
                continue;
            };
            ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
            if srv.target.is_root() {
                tracing::debug!(
                    srv_name = %self.srv_name,
                    "SRV record with target \".\" skipped: service not available"
                );
                skipped += 1;
                continue;
            }
            let target = srv.target.to_ascii();
            let host = target.trim_end_matches('.');
            if srv.port == 0 {
                tracing::warn!(
                    srv_name = %self.srv_name,
                    target = host,
                    "SRV record with port 0 skipped"
                );
                skipped += 1;
                continue;
            }
            let url = format!("{}://{}:{}", self.scheme.as_str(), host, srv.port);
            match ServiceUrl::parse(&url) {
                Ok(url) => records.push((srv.priority, srv.weight, url)),
                Err(e) => {
                    tracing::warn!(
                        srv_name = %self.srv_name,
                        target = host,
                        error = %e,
                        "SRV record with an invalid target skipped"
                    );
                    skipped += 1;
                }
            }
        }
        if records.is_empty() {
            return Err(if skipped == 0 {
                SrvError::NoRecords {
                    name: self.srv_name.clone(),
                }
            } else {
                SrvError::NoUsableRecords {
                    name: self.srv_name.clone(),
                    skipped,
                }
            });
        }
        records.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then_with(|| a.2.host().cmp(b.2.host()))
                .then(a.2.port().cmp(&b.2.port()))
        });
        let mut endpoints: Vec<EndpointConfig> = Vec::with_capacity(records.len());
        for (priority, _, url) in records {
            if endpoints.iter().any(|e| e.url == url) {
                continue;
            }
            let priority = u8::try_from(priority).unwrap_or(u8::MAX);
            endpoints.push(EndpointConfig::new(url, priority));
        }
        // Not `clamp`: it panics when the bounds are crossed; then max wins.
        let ttl = Duration::from_secs(u64::from(ttl.unwrap_or(0)))
            .max(self.options.min_refresh)
            .min(self.options.max_refresh);
        tracing::debug!(
            srv_name = %self.srv_name,
            endpoints = endpoints.len(),
            skipped,
            ttl_secs = ttl.as_secs(),
            "SRV records looked up"
        );
        Ok(Discovered {
            endpoints,
            ttl,
            refresh_at: started + ttl,
        })
    }

    /// A resolver for the HTTP client (`reqwest::ClientBuilder::dns_resolver`)
    /// that asks the same DNS servers, so SRV targets that only they know
    /// resolve for the client too. It shares this discovery's connections;
    /// addresses are cached for their TTL, at most
    /// [`SrvOptions::max_refresh`].
    pub fn http_resolver(&self) -> Arc<HttpDnsResolver> {
        Arc::new(HttpDnsResolver {
            resolver: self.resolver.clone(),
            lookup_timeout: self.options.lookup_timeout,
        })
    }
}

/// Resolves host names for a `reqwest` client through a [`DnsConfig`]
/// (a [`reqwest::dns::Resolve`]). Get one from
/// [`SrvDiscovery::http_resolver`] or [`HttpDnsResolver::new`].
#[derive(Clone)]
pub struct HttpDnsResolver {
    resolver: TokioResolver,
    lookup_timeout: Duration,
}

impl fmt::Debug for HttpDnsResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpDnsResolver")
            .field("lookup_timeout", &self.lookup_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpDnsResolver {
    /// A resolver asking `dns`, with `options`' timeouts. Host names are
    /// resolved like the system does: `/etc/hosts` first, then the DNS
    /// servers (with search domains for [`DnsConfig::System`]).
    pub fn new(dns: &DnsConfig, options: SrvOptions) -> Result<Arc<Self>, SrvError> {
        Ok(Arc::new(Self {
            resolver: build_resolver(dns, &options)?,
            lookup_timeout: options.lookup_timeout,
        }))
    }

    /// The addresses of `host`, or why there are none (an IP address is
    /// returned as it is).
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<std::net::IpAddr>, SrvError> {
        let started = Instant::now();
        let query = || format!("A/AAAA {host}");
        let timeout = self.lookup_timeout;
        match tokio::time::timeout(timeout, self.resolver.lookup_ip(host)).await {
            Ok(Ok(lookup)) => {
                let addrs: Vec<_> = lookup.iter().collect();
                if addrs.is_empty() {
                    Err(SrvError::HostNotFound {
                        host: host.to_owned(),
                    })
                } else {
                    Ok(addrs)
                }
            }
            Ok(Err(e)) => {
                let not_found = SrvError::HostNotFound {
                    host: host.to_owned(),
                };
                Err(classify(&e, query(), not_found, started.elapsed()))
            }
            Err(_) => Err(SrvError::Timeout {
                query: query(),
                after: timeout,
            }),
        }
    }
}

impl reqwest::dns::Resolve for HttpDnsResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.resolve_host(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}
