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
//! * `soak [--config <config.yaml>] --exchanges <a,b,c|N> --duration <D>
//!   --concurrency <C> --target <url> [--json]`: keeps resolving and
//!   connecting at that concurrency for the duration, a status line each
//!   second, then the summary (see `soak.rs`).
//!
//! Exit status: 0 on success, 2 on an invalid configuration or invalid
//! arguments, 1 on any other failure (for `connect`: the connection did not
//! open), 130 when SIGINT ended a `soak` early (after its summary). An error
//! is one line on stderr, `error: ...` (naming the path and the reason, for a
//! configuration), often followed by one line `hint: ...` saying what to
//! check.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use proxy_delegate_config::{Loaded, Loader};
use proxy_delegate_core::model::{ConnectionType, ExchangeId};
use serde::Serialize;

mod connect;
mod demo;
mod soak;
mod summary;

use connect::ConnectArgs;

/// Status for an invalid configuration or invalid arguments.
const EXIT_INVALID: u8 = 2;

/// `proxy-delegate --help`'s examples.
const EXAMPLES: &str = "\
Examples:
  # Which proxy does binance's WebSocket get (from the service, or the embedded config)?
  proxy-delegate resolve --exchange binance --type websocket --config config.yaml
  # One real connection through it, reported to the proxy service
  proxy-delegate connect wss://stream.binance.com:9443/ws --exchange binance --config config.yaml
  # The effective settings, redacted, and where each value came from
  proxy-delegate check-config config.yaml
  # The reference proxy service on 127.0.0.1:8080 (demo inventory, loopback only)
  proxy-delegate serve
  # Delegation, failover and fallback end to end, on loopback (about 15 s)
  proxy-delegate demo
  # 50 connections at a time for 30 s, with a status line each second
  proxy-delegate soak --config config.yaml --exchanges binance,coinbase --duration 30s \\
      --concurrency 50 --target wss://stream.binance.com:9443/ws

Exit status: 0 success, 1 failure, 2 invalid arguments or configuration.
Errors are one line `error: ...` on stderr, often followed by `hint: ...`.";

const RESOLVE_EXAMPLES: &str = "\
Examples:
  proxy-delegate resolve --exchange binance --type websocket --config config.yaml
  # Five picks in a row (pools advance), one JSON object per line
  proxy-delegate resolve --exchange binance --type http --repeat 5 --json
  # The embedded configuration alone, even with external_service.enabled
  proxy-delegate resolve --exchange kraken --type http --config config.yaml --embedded-only";

const CONNECT_EXAMPLES: &str = "\
Examples:
  proxy-delegate connect wss://stream.binance.com:9443/ws --exchange binance --config config.yaml
  proxy-delegate connect https://api.binance.com/api/v3/time --exchange binance --json
  # A target with a private CA, at most 3 s
  proxy-delegate connect wss://feed.internal:8443/ws --exchange okx --ca-file ca.pem --timeout 3";

const CHECK_CONFIG_EXAMPLES: &str = "\
Examples:
  proxy-delegate check-config config.yaml
  # As JSON: {\"config\", \"settings\": {\"<path>\": {\"value\", \"source\"}}, \"warnings\"}
  proxy-delegate check-config config.yaml --json";

const SERVE_EXAMPLES: &str = "\
Examples:
  # Demo inventory, no authentication, 127.0.0.1:8080
  proxy-delegate serve
  proxy-delegate serve --config service.toml
  # Any free port (the address is printed: `listening on http://...`)
  proxy-delegate serve --config service.toml --listen 127.0.0.1:0";

const DEMO_EXAMPLES: &str = "\
Examples:
  # About 15 s: delegation, a proxy moved, the service stopped and back
  proxy-delegate demo
  # Only the summary, as one JSON object on stdout
  proxy-delegate demo --json";

const SOAK_EXAMPLES: &str = "\
Examples:
  proxy-delegate soak --config config.yaml --exchanges binance,coinbase --duration 30s \\
      --concurrency 50 --target wss://stream.binance.com:9443/ws
  # 20 exchanges (ex1..ex20), 2 minutes, HTTP GETs, the summary as JSON on stdout
  proxy-delegate soak --config config.yaml --exchanges 20 --duration 2m --concurrency 200 \\
      --target https://api.binance.com/api/v3/time --json > soak.json

Exit status: 0 when it ran for the duration (failures are counted, not fatal),
1 when nothing could be done at all, 2 for invalid arguments or configuration,
130 when Ctrl-C ended it early (the summary is printed first).";

#[derive(Debug, Parser)]
#[command(
    name = "proxy-delegate",
    version,
    about = "Per-exchange proxy resolution with cryptofeed-compatible embedded configuration",
    after_help = EXAMPLES
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
    #[command(after_help = RESOLVE_EXAMPLES)]
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
    /// stderr: `error: <what happened> (<category>)`, then a `hint:` line
    /// saying what to check.
    #[command(after_help = CONNECT_EXAMPLES)]
    Connect(ConnectArgs),
    /// Print the effective settings (secrets redacted) and where each value
    /// came from: file, environment or default.
    #[command(after_help = CHECK_CONFIG_EXAMPLES)]
    CheckConfig(CheckArgs),
    /// Run the reference proxy service.
    ///
    /// With --config, everything comes from the file (TOML, or YAML by
    /// extension; see docs/configuration.md). Without it, the service runs on an
    /// embedded demo inventory, WITHOUT authentication, and only on a loopback
    /// address. SIGHUP reloads the inventory and clients from the file;
    /// SIGINT / SIGTERM stop it after the requests in flight finish.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Keep resolving and connecting to a target at a given concurrency for
    /// a given time, and measure it.
    ///
    /// Each of --concurrency workers loops over the exchanges: it resolves
    /// the route (its source and the resolve latency are counted), then
    /// connects to --target through it as `connect` does (a WebSocket
    /// handshake and a clean close for ws:// and wss://, a GET for http://
    /// and https://) and counts a success or the failure's category. A
    /// failure is counted, never fatal: the run goes on whatever the proxy
    /// service does. A status line every second (on stderr with --json);
    /// at the end, or on Ctrl-C, the summary: attempts, successes, failures
    /// by category, resolutions by source, resolve latency, the longest wait
    /// for a fallback and the feedback sent, dropped and still queued.
    #[command(after_help = SOAK_EXAMPLES)]
    Soak(soak::SoakArgs),
    /// Show delegation, failover and fallback end to end, on 127.0.0.1 only.
    ///
    /// Starts, in this process, a WebSocket "exchange" (binance, coinbase,
    /// kraken), an HTTP CONNECT and a SOCKS5 proxy, and the reference proxy
    /// service, then: 1. connects each exchange through the proxy the service
    /// chose; 2. stops that proxy for one exchange and shows the service
    /// moving it to the other; 3. stops the service and keeps connecting from
    /// cache, stale cache and the embedded configuration; 4. restarts the
    /// service and shows the client returning to it; 5. prints the summary.
    /// Takes about 15 s; exits 1 if a phase does not show what it should.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo(demo::DemoArgs),
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
    /// One JSON object: `config` (the path), `settings` (each effective
    /// value by its dotted path, with its `value` and `source`; secrets as
    /// `***`) and `warnings`.
    #[arg(long)]
    json: bool,
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
            let text = clap_text(&e);
            // Help and version go to stdout, errors to stderr, as clap does;
            // an error as one line and a hint, like every other error.
            let written = if !e.use_stderr() {
                std::io::stdout().write_all(text.as_bytes())
            } else if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                std::io::stderr().write_all(text.as_bytes())
            } else {
                std::io::stderr().write_all(clap_error(&text).as_bytes())
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
        Command::Soak(args) => soak::soak(&args, &mut out),
        Command::Demo(args) => demo::demo(&args, &mut out),
    };
    match result.and_then(|()| out.flush().map_err(Failure::from)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

/// What clap has to say: the program's own help and version as written;
/// an error (which quotes the arguments given, a proxy URL with its password
/// among them) through the same redaction as every other message. Redacting
/// a help text would mangle what it documents (`user[:password@]host`).
fn clap_text(e: &clap::Error) -> String {
    use clap::error::ErrorKind;
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        | ErrorKind::DisplayVersion => text,
        _ => proxy_delegate_config::redact_text(&text),
    }
}

/// Prints the failure (`error: ...`, then its `hint: ...`) and gives the
/// exit status.
fn report(failure: Failure) -> ExitCode {
    match failure {
        Failure::Invalid(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_INVALID)
        }
        Failure::Failed(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
        Failure::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Failure::Io(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Failure::Interrupted => ExitCode::from(soak::EXIT_INTERRUPTED),
        Failure::Hinted(inner, hint) => match *inner {
            // Nothing was said: no hint either.
            Failure::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            inner => {
                let code = report(inner);
                eprintln!("hint: {hint}");
                code
            }
        },
    }
}

/// `proxy-delegate <subcommand>` as invoked (the first argument that names
/// a subcommand), or `proxy-delegate`.
fn invoked() -> String {
    let cli = <Cli as clap::CommandFactory>::command();
    let named = std::env::args_os().skip(1).find_map(|arg| {
        let arg = arg.to_str()?;
        cli.get_subcommands()
            .find(|c| c.get_name() == arg)
            .map(|c| c.get_name().to_owned())
    });
    match named {
        Some(name) => format!("proxy-delegate {name}"),
        None => "proxy-delegate".to_owned(),
    }
}

/// clap's error text as one line `error: ...` (its indented continuation
/// lines joined to it, its usage left out) and one line `hint: ...` (clap's
/// tip, if any, and where the usage is).
fn clap_error(text: &str) -> String {
    let mut message = String::new();
    let mut tip = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") {
            break;
        }
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        }
        if let Some(t) = line.strip_prefix("tip:") {
            tip = Some(t.trim().to_owned());
            continue;
        }
        if !message.is_empty() {
            message.push(' ');
        }
        message.push_str(line);
    }
    let message = message.strip_prefix("error:").unwrap_or(&message).trim();
    let help = format!("`{} --help` shows the options and examples", invoked());
    let hint = match tip {
        Some(tip) => format!("{tip}; {help}"),
        None => help,
    };
    format!("error: {message}\nhint: {hint}\n")
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
    /// SIGINT ended the command early, its output complete (`soak`): exit
    /// status 130, nothing more printed.
    Interrupted,
    /// A failure and what to check, printed as a second line `hint: ...`.
    Hinted(Box<Failure>, String),
}

impl Failure {
    /// This failure with a `hint:` line (replacing any hint it had).
    fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            Failure::Hinted(inner, _) => Failure::Hinted(inner, hint.into()),
            other => Failure::Hinted(Box::new(other), hint.into()),
        }
    }
}

/// The hint for a configuration that does not load or does not work.
fn config_hint(config: Option<&Path>) -> String {
    match config {
        Some(path) if !path.exists() => missing_file_hint(path),
        Some(path) => format!(
            "run `proxy-delegate check-config {}` to see the effective settings and where each \
             comes from (file, environment or default)",
            path.display()
        ),
        None => "check the CRYPTOFEED_PROXY_* environment variables; `proxy-delegate \
                 check-config <config.yaml>` shows the effective settings"
            .to_owned(),
    }
}

/// The hint for a configuration path where there is no file.
fn missing_file_hint(path: &Path) -> String {
    format!(
        "there is no file at {}: check the path (relative paths start from the current \
         directory)",
        path.display()
    )
}

/// The proxy-service client could not be built: a discovery failure exits
/// 1, a configuration or transport problem 2.
fn client_build_failure(e: &proxy_delegate_tokio::ClientError, config: Option<&Path>) -> Failure {
    match e {
        proxy_delegate_tokio::ClientError::Discovery(_) => Failure::Failed(e.to_string())
            .with_hint(
                "check external_service.srv_name and that its SRV records resolve from this host",
            ),
        _ => Failure::Invalid(e.to_string()).with_hint(config_hint(config)),
    }
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
    let loaded = loader.process_env().load().map_err(|e| {
        Failure::Invalid(e.to_string()).with_hint(config_hint(config.map(PathBuf::as_path)))
    })?;
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
            .map_err(|e| client_build_failure(&e, args.config.as_deref()))?;
        let mut request = client.request(exchange, connection_type);
        if region.is_some() {
            request.region = region;
        }
        let mut result = Ok(());
        for _ in 0..args.repeat {
            let route = match client.get_proxy(&request).await {
                Ok(route) => route,
                Err(e) => {
                    result = Err(Failure::Failed(e.to_string()).with_hint(
                        "the proxy service gave no route and its fallback_policy for this \
                         exchange is `fail`: check that the service is up and reachable",
                    ));
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
    let loaded = load(Some(&args.config)).map_err(|e| {
        if args.config.exists() {
            e.with_hint(
                "fix the value named above; docs/configuration.md lists every key, its type \
                 and its range",
            )
        } else {
            e.with_hint(missing_file_hint(&args.config))
        }
    })?;
    if args.json {
        return check_config_json(args, &loaded, out);
    }
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

/// `check-config --json`: one object, `config`, `settings` (by dotted path:
/// `value` and `source`), `warnings`.
fn check_config_json(
    args: &CheckArgs,
    loaded: &Loaded,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let settings: serde_json::Map<String, serde_json::Value> = loaded
        .provenance()
        .into_iter()
        .map(|p| {
            // The value is YAML/JSON text (strings quoted, secrets `***`).
            let value = serde_json::from_str(&p.value)
                .unwrap_or_else(|_| serde_json::Value::String(p.value.clone()));
            let entry = serde_json::json!({ "value": value, "source": p.source.to_string() });
            (p.path, entry)
        })
        .collect();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let document = serde_json::json!({
        "config": args.config.display().to_string(),
        "settings": settings,
        "warnings": warnings,
    });
    let line = serde_json::to_string(&document).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")?;
    Ok(())
}

fn serve(args: &ServeArgs) -> Result<(), Failure> {
    use proxy_delegate_service::{Service, ServiceConfig};
    init_logging("info");
    let mut config = match &args.config {
        Some(path) => ServiceConfig::load(path).map_err(|e| {
            Failure::Invalid(e.to_string())
                .with_hint("docs/configuration.md lists every key of the service's configuration")
        })?,
        None => ServiceConfig::embedded_default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
        config.listen_overridden = true;
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
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "another process listens there: stop it, or give another --listen \
                     address (port 0 picks a free one)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need privileges: give a port above 1023 with --listen"
                }
                _ => "check the --listen address (or the file's `listen`)",
            };
            Failure::Failed(format!("cannot listen on {listen}: {e}")).with_hint(hint)
        })?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let service = Service::new(config).map_err(|e| {
            Failure::Invalid(e.to_string())
                .with_hint("docs/configuration.md lists every key of the service's configuration")
        })?;
        proxy_delegate_service::run_until_signal(service, listener, |running| {
            // The one line scripts wait for: the address actually bound,
            // printed once signals are handled.
            eprintln!("listening on {scheme}://{}", running.local_addr());
        })
        .await
        .map_err(|e| Failure::Io(std::io::Error::other(e.to_string())))
    })
}

#[cfg(test)]
mod tests {
    use super::clap_text;

    fn command() -> clap::Command {
        clap::Command::new("proxy-delegate")
            .version("1.0")
            .about("Proxy URLs are scheme://[user[:password@]]host:port")
            .subcommand(clap::Command::new("resolve").arg(clap::Arg::new("url").long("url")))
    }

    /// The program's help is printed as written; what an error quotes from
    /// the arguments is redacted.
    #[test]
    fn help_is_printed_as_written_and_errors_redacted() {
        for args in [
            &["proxy-delegate", "--help"][..],
            &["proxy-delegate"][..],
            &["proxy-delegate", "help"][..],
        ] {
            let e = command()
                .subcommand_required(true)
                .arg_required_else_help(true)
                .try_get_matches_from(args)
                .unwrap_err();
            let text = clap_text(&e);
            assert!(
                text.contains("scheme://[user[:password@]]host:port"),
                "{args:?}: {text}"
            );
        }
        let e = command()
            .try_get_matches_from(["proxy-delegate", "socks5://alice:s3cret@proxy:1080"])
            .unwrap_err();
        let text = clap_text(&e);
        assert!(text.contains("alice:***@proxy"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
