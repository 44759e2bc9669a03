//! `proxy-delegate`: the command line of proxy-delegate.
//!
//! Subcommands:
//!
//! * `resolve --exchange <ID> --type <http|websocket> [--region <R>] [--config
//!   <config.yaml>] [--embedded-only] [--repeat <N>] [--json]`: which proxy
//!   this exchange connection gets.
//! * `connect <url> --exchange <ID> [--type <http|websocket>] [--config
//!   <config.yaml>] [--json] [--timeout <seconds>] [--ca-file <pem>]`: opens
//!   one real connection to `url` through the exchange's proxy, as a
//!   `ProxyInjector` does (a GET for `http://` / `https://`, a WebSocket
//!   handshake then a clean close for `ws://` / `wss://`), prints the route,
//!   the latency and, for HTTP, the status, and reports the feedback to the
//!   proxy service when delegation is on. A failed connection exits 1 with
//!   one line `error: ...` on stderr naming the category in parentheses.
//! * `check-config <config.yaml>`: the effective settings (redacted) and where
//!   each value came from.
//! * `serve [--config <service.toml>] [--listen <addr>]`: the reference proxy
//!   service. Without --config it runs on an embedded demo inventory, without
//!   authentication, on loopback only. SIGHUP reloads the file; SIGINT or
//!   SIGTERM drain and stop.
//!
//! Exit status: 0 on success, 2 on an invalid configuration or invalid
//! arguments (the message, naming the path and the reason, is on stderr), 1 on
//! any other failure (for `connect`: the connection did not open).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use proxy_delegate_config::{Loaded, Loader};
use proxy_delegate_core::model::{ConnectionType, ExchangeId};
use serde::Serialize;

mod connect;
mod summary;

use connect::ConnectArgs;

/// Status for an invalid configuration or invalid arguments.
const EXIT_INVALID: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "proxy-delegate",
    version,
    about = "Per-exchange proxy resolution with cryptofeed-compatible embedded configuration"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Resolve the proxy for one exchange connection.
    ///
    /// Settings come from the `proxy:` block of --config and the
    /// CRYPTOFEED_PROXY_* environment variables (which apply on top). When
    /// `external_service.enabled` is true and --embedded-only is not given,
    /// the proxy service is asked, and the source says where the route came
    /// from: service, cache, stale, embedded or direct.
    Resolve(ResolveArgs),
    /// Open one connection to an exchange URL through its proxy, and report it.
    ///
    /// The route comes from the same settings as `resolve` (and from the
    /// proxy service when `external_service.enabled` is true). An http:// or
    /// https:// URL gets a GET (the status is printed); a ws:// or wss:// URL
    /// gets a WebSocket handshake, then a clean close. Prints the route
    /// (passwords as ***), where it came from and how long connecting took;
    /// the feedback (connect_start, success or failure, disconnect) goes to
    /// the proxy service before the command exits. A connection that fails,
    /// or an HTTP status 403, 407, 429, 451 or 5xx, exits 1 with one line on
    /// stderr: `error: <what happened> (<category>)`.
    Connect(ConnectArgs),
    /// Print the effective settings (secrets redacted) and where each value
    /// came from: file, environment or default.
    CheckConfig(CheckArgs),
    /// Run the reference proxy service.
    ///
    /// With --config, everything comes from the file (TOML, or YAML by
    /// extension; see docs/service.md). Without it, the service runs on an
    /// embedded demo inventory, WITHOUT authentication, and only on a loopback
    /// address. SIGHUP reloads the inventory and clients from the file;
    /// SIGINT / SIGTERM stop it after the requests in flight finish.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The service configuration file (service.toml or service.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, overriding the file's `listen`
    /// (default 127.0.0.1:8080; port 0 picks a free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TypeArg {
    /// REST / plain HTTP(S).
    Http,
    /// WebSocket streams.
    Websocket,
}

impl From<TypeArg> for ConnectionType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::Http => ConnectionType::Http,
            TypeArg::Websocket => ConnectionType::Websocket,
        }
    }
}

#[derive(Debug, clap::Args)]
struct ResolveArgs {
    /// Exchange id, e.g. binance (matched case-insensitively).
    #[arg(long)]
    exchange: String,
    /// Connection type.
    #[arg(long = "type", value_enum)]
    connection_type: TypeArg,
    /// Region to ask the proxy service for (sent to the service; the embedded
    /// configuration has no regions).
    #[arg(long)]
    region: Option<String>,
    /// A cryptofeed config.yaml (settings under `proxy:`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Never contact a proxy service; answer from the embedded configuration.
    #[arg(long)]
    embedded_only: bool,
    /// Resolve this many times in one process (pools advance between picks).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    repeat: u32,
    /// One JSON object per resolution, one per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// A cryptofeed config.yaml (settings under `proxy:`).
    config: PathBuf,
}

/// One resolution, as printed with --json. Field order is the contract's.
#[derive(Debug, Serialize)]
struct Resolution<'a> {
    exchange: &'a str,
    #[serde(rename = "type")]
    connection_type: &'static str,
    proxy_url: Option<String>,
    source: &'static str,
    timeout_seconds: Option<u16>,
}

fn main() -> ExitCode {
    // clap's messages quote the offending argument, which may be a proxy URL
    // with its password: they are printed through the same redaction as
    // every other message.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            let text = proxy_delegate_config::redact_text(&text);
            // Help and version go to stdout, errors to stderr, as clap does.
            let written = if e.use_stderr() {
                std::io::stderr().write_all(text.as_bytes())
            } else {
                std::io::stdout().write_all(text.as_bytes())
            };
            // A failed write to stdout or stderr has nowhere else to go.
            drop(written);
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_INVALID));
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match cli.command {
        Command::Resolve(args) => resolve(&args, &mut out),
        Command::Connect(args) => connect::connect(&args, &mut out),
        Command::CheckConfig(args) => check_config(&args, &mut out),
        Command::Serve(args) => serve(&args),
    };
    match result.and_then(|()| out.flush().map_err(Failure::from)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Io(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
enum Failure {
    /// Invalid configuration or arguments: exit status 2.
    Invalid(String),
    /// Writing the output failed.
    Io(std::io::Error),
    /// The operation was tried and failed (`connect`: the connection did not
    /// open); the message is one complete line. Exit status 1.
    Failed(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

fn load(config: Option<&PathBuf>) -> Result<Loaded, Failure> {
    let mut loader = Loader::new();
    if let Some(path) = config {
        loader = loader.yaml_file(path);
    }
    let loaded = loader
        .process_env()
        .load()
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded)
}

fn resolve(args: &ResolveArgs, out: &mut impl Write) -> Result<(), Failure> {
    let exchange = ExchangeId::new(&args.exchange)
        .map_err(|e| Failure::Invalid(format!("--exchange: {}", e.reason)))?;
    let connection_type = ConnectionType::from(args.connection_type);
    let mut loaded = load(args.config.as_ref())?;
    if loaded.settings.external_service.enabled && !args.embedded_only {
        return resolve_with_service(args, &loaded, exchange, connection_type, out);
    }
    for _ in 0..args.repeat {
        let pick = loaded
            .settings
            .resolve(&exchange, connection_type)
            .map(|p| (p.proxy_url.clone(), p.timeout_seconds, p.lease));
        // No connection is made: a least_connections pick gives its lease
        // back at once, so every pick sees the pool as cryptofeed would.
        let pick = pick.map(|(url, timeout, lease)| {
            if let Some(lease) = lease {
                loaded.settings.release(lease);
            }
            (url, timeout)
        });
        // Printed as configured (password as ***), not normalised.
        let (proxy_url, source, timeout_seconds) = match pick {
            Some((url, timeout)) => (Some(loaded.written_url(&url)), "embedded", Some(timeout)),
            None => (None, "direct", None),
        };
        let r = Resolution {
            exchange: &args.exchange,
            connection_type: connection_type.as_str(),
            proxy_url,
            source,
            timeout_seconds,
        };
        print_resolution(&r, args.json, out)?;
    }
    Ok(())
}

/// `resolve` through the proxy service: the client's routes, with their
/// real source.
fn resolve_with_service(
    args: &ResolveArgs,
    loaded: &Loaded,
    exchange: ExchangeId,
    connection_type: ConnectionType,
    out: &mut impl Write,
) -> Result<(), Failure> {
    use proxy_delegate_tokio::ProxyServiceClient;
    init_logging("warn");
    let region = match &args.region {
        Some(r) => Some(
            proxy_delegate_core::model::Region::new(r)
                .map_err(|e| Failure::Invalid(format!("--region: {}", e.reason)))?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = ProxyServiceClient::from_settings(&loaded.settings, &loaded.client_id())
            .await
            .map_err(|e| match e {
                proxy_delegate_tokio::ClientError::Discovery(_) => {
                    Failure::Io(std::io::Error::other(e.to_string()))
                }
                _ => Failure::Invalid(e.to_string()),
            })?;
        let mut request = client.request(exchange, connection_type);
        if region.is_some() {
            request.region = region;
        }
        let mut result = Ok(());
        for _ in 0..args.repeat {
            let route = match client.get_proxy(&request).await {
                Ok(route) => route,
                Err(e) => {
                    result = Err(Failure::Io(std::io::Error::other(e.to_string())));
                    break;
                }
            };
            let (proxy_url, timeout_seconds) = match (&route.proxy_url, route.source) {
                // An embedded route is printed as configured, like --embedded-only.
                (Some(url), proxy_delegate_core::resolver::Source::Embedded) => {
                    (Some(loaded.written_url(url)), None)
                }
                (Some(url), _) => (Some(url.to_string()), None),
                (None, _) => (None, None),
            };
            let r = Resolution {
                exchange: &args.exchange,
                connection_type: connection_type.as_str(),
                proxy_url,
                source: route.source.as_str(),
                timeout_seconds,
            };
            if let Err(e) = print_resolution(&r, args.json, out) {
                result = Err(e);
                break;
            }
        }
        let report = client.shutdown(std::time::Duration::from_secs(1)).await;
        if report.undelivered > 0 {
            eprintln!(
                "warning: {} feedback event(s) not delivered to the proxy service",
                report.undelivered
            );
        }
        result
    })
}

fn print_resolution(r: &Resolution<'_>, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    if json {
        let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
        return Ok(());
    }
    match (&r.proxy_url, r.timeout_seconds) {
        (Some(url), Some(t)) => writeln!(
            out,
            "{} {}: {url} (source {}, timeout {t}s)",
            r.exchange, r.connection_type, r.source
        )?,
        (Some(url), None) => writeln!(
            out,
            "{} {}: {url} (source {})",
            r.exchange, r.connection_type, r.source
        )?,
        _ => writeln!(
            out,
            "{} {}: direct (source {})",
            r.exchange, r.connection_type, r.source
        )?,
    }
    Ok(())
}

/// Logs to stderr, filtered by RUST_LOG (default `default`).
fn init_logging(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn check_config(args: &CheckArgs, out: &mut impl Write) -> Result<(), Failure> {
    let loaded = load(Some(&args.config))?;
    writeln!(out, "# effective proxy settings (secrets shown as ***)")?;
    writeln!(
        out,
        "# <path> = <value>  (<source>: file, environment or default)"
    )?;
    let provenance = loaded.provenance();
    let width = provenance
        .iter()
        .map(|p| p.path.len() + p.value.len() + 3)
        .max()
        .unwrap_or(0);
    for p in &provenance {
        let entry = format!("{} = {}", p.path, p.value);
        writeln!(out, "{entry:<width$}  ({})", p.source)?;
    }
    Ok(())
}

fn serve(args: &ServeArgs) -> Result<(), Failure> {
    use proxy_delegate_service::{Service, ServiceConfig};
    init_logging("info");
    let mut config = match &args.config {
        Some(path) => ServiceConfig::load(path).map_err(|e| Failure::Invalid(e.to_string()))?,
        None => ServiceConfig::embedded_default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.config.is_none() {
        if !config.listen.ip().is_loopback() {
            return Err(Failure::Invalid(format!(
                "--listen {}: without --config the service has no authentication and only \
                 listens on a loopback address (127.0.0.1 or ::1); give a configuration file \
                 with clients to listen elsewhere",
                config.listen
            )));
        }
        eprintln!(
            "notice: no --config given: serving the embedded demo inventory ({} made-up proxies on \
             documentation addresses), WITHOUT authentication, on loopback only",
            config.proxies.len()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listen = config.listen;
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"))
        })?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let service = Service::new(config).map_err(|e| Failure::Invalid(e.to_string()))?;
        proxy_delegate_service::run_until_signal(service, listener, |running| {
            // The one line scripts wait for: the address actually bound,
            // printed once signals are handled.
            eprintln!("listening on {scheme}://{}", running.local_addr());
        })
        .await
        .map_err(|e| Failure::Io(std::io::Error::other(e.to_string())))
    })
}
