// dnsmasq.rs names the dns-srv feature's types; the other fixtures need
// only the default features.
#[cfg(feature = "dns-srv")]
pub mod dnsmasq;
pub mod proxies;
pub mod ssh_socks;
pub mod targets;
