//! What the unit tests of the body modules share.

/// A feedback event, as JSON.
pub(super) const FEEDBACK: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;
