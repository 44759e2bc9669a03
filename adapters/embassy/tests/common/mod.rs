//! The fixtures of the host tests: the REAL `proxy-delegate serve` binary
//! on 127.0.0.1 (`proxy-delegate-test-support`'s `ServeProcess`: killed and
//! reaped on drop, a plain HTTP GET for its `/metrics`) with this client's
//! configuration, and embassy's std executor on a thread of its own.
//!
//! The binary is the workspace's: `cargo test --workspace` builds it (the
//! CLI's own tests need it); `cargo test -p proxy-delegate-embassy` alone
//! needs `cargo build -p proxy-delegate` first, or `PROXY_DELEGATE_BIN`
//! naming one.

#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

use proxy_delegate_test_support::{ServeProcess, workspace_binary};

/// The service's bearer token for this client.
pub(crate) const TOKEN: &str = "tok-embassy-3c9d41f2";

/// The service's inventory: (id, URL).
pub(crate) const INVENTORY: [(&str, &str); 2] = [
    ("px-1", "socks5://192.0.2.21:1080"),
    ("px-2", "http://192.0.2.22:3128"),
];

/// Starts the workspace's `proxy-delegate serve` on 127.0.0.1 (a free port)
/// with one client (bearer [`TOKEN`]) and the [`INVENTORY`], and waits for
/// its `listening on` line.
pub(crate) fn start_service() -> ServeProcess {
    let text = format!(
        "[[clients]]\nname = \"gateway\"\nbearer_tokens = [\"{TOKEN}\"]\n\n\
         [[proxies]]\nid = \"{}\"\nurl = \"{}\"\n\n\
         [[proxies]]\nid = \"{}\"\nurl = \"{}\"\n",
        INVENTORY[0].0, INVENTORY[0].1, INVENTORY[1].0, INVENTORY[1].1
    );
    ServeProcess::with_toml_config(workspace_binary(), &text)
}

/// Runs `start` on a fresh embassy std executor on a thread of its own
/// (the executor never returns; the thread ends with the test process),
/// and waits at most `bound` for what the spawned task sends back.
pub(crate) fn on_embassy<T: Send + 'static>(
    bound: Duration,
    start: impl FnOnce(embassy_executor::Spawner, mpsc::Sender<T>) + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let executor = Box::leak(Box::new(embassy_executor::Executor::new()));
        executor.run(move |spawner| start(spawner, tx));
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|e| panic!("the embassy task gave no result within {bound:?}: {e}"))
}
