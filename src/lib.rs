//! Fixtures shared by the workspace's end-to-end tests (`tests/`) and benches
//! (`benches/`). This package is never published.

/// The published request body (from the API documentation).
pub const REQUEST_JSON: &str = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123","metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}}"#;

/// The published response body.
pub const RESPONSE_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections","ttl_seconds":300,"fallback_policy":"direct_connection","metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}}"#;

/// The published feedback body (its credentials are stripped on decode).
pub const FEEDBACK_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;
