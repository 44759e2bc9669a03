//! Property tests: resolution never panics, whatever the settings and the
//! sequence of picks, releases and health changes.

use proptest::prelude::*;
use proxy_delegate_core::model::{ConnectionType, ExchangeId, ProxyUrl};
use proxy_delegate_core::settings::*;

type S = ProxySettings<3, 3>;

fn arb_url() -> impl Strategy<Value = ProxyUrl> {
    (
        0u8..5,
        prop::sample::select(vec!["http", "socks5", "https"]),
        1u16..4,
    )
        .prop_map(|(h, scheme, port)| format!("{scheme}://p{h}:{port}").parse().unwrap())
}

fn arb_strategy() -> impl Strategy<Value = PoolStrategy> {
    prop::sample::select(PoolStrategy::ALL.to_vec())
}

fn arb_pool() -> impl Strategy<Value = ProxyPool<3>> {
    (
        prop::collection::vec((arb_url(), 1u32..=100, any::<bool>()), 1..=3),
        arb_strategy(),
    )
        .prop_map(|(members, strategy)| {
            let proxies = members.into_iter().map(|(url, w, enabled)| PoolProxy {
                url,
                weight: Weight::new(f64::from(w) / 10.0).unwrap(),
                enabled,
            });
            ProxyPool::new(proxies, strategy).unwrap()
        })
}

fn arb_config() -> impl Strategy<Value = Option<ProxyConfig<3>>> {
    prop::option::of(
        (
            prop::option::of(arb_url()),
            1u64..=300,
            prop::option::of(arb_pool()),
        )
            .prop_map(|(url, t, pool)| ProxyConfig {
                url,
                timeout_seconds: TimeoutSeconds::new(t).unwrap(),
                pool,
            }),
    )
}

fn arb_conn() -> impl Strategy<Value = ConnectionProxies<3>> {
    (arb_config(), arb_config()).prop_map(|(http, websocket)| ConnectionProxies { http, websocket })
}

fn arb_settings() -> impl Strategy<Value = S> {
    (
        any::<bool>(),
        arb_conn(),
        prop::collection::vec((0u8..4, arb_conn()), 0..=3),
        any::<u64>(),
    )
        .prop_map(|(enabled, default, exchanges, seed)| {
            let mut s = S::default();
            s.enabled = enabled;
            s.default = default;
            s.set_seed(seed);
            for (i, c) in exchanges {
                let _ = s.insert_exchange(ExchangeId::new(&format!("ex{i}")).unwrap(), c);
            }
            s
        })
}

#[derive(Debug, Clone)]
enum Op {
    Resolve(u8, bool),
    Release(u8, bool, ProxyUrl),
    Health(ProxyUrl, bool),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5, any::<bool>()).prop_map(|(e, w)| Op::Resolve(e, w)),
        1 => (0u8..5, any::<bool>(), arb_url()).prop_map(|(e, w, u)| Op::Release(e, w, u)),
        1 => (arb_url(), any::<bool>()).prop_map(|(u, h)| Op::Health(u, h)),
    ]
}

fn ct(ws: bool) -> ConnectionType {
    if ws {
        ConnectionType::Websocket
    } else {
        ConnectionType::Http
    }
}

proptest! {
    #[test]
    fn resolution_never_panics_and_follows_the_rules(mut s in arb_settings(), ops in prop::collection::vec(arb_op(), 0..60)) {
        let mut leases = Vec::new();
        for op in ops {
            match op {
                Op::Resolve(e, ws) => {
                    let ex = ExchangeId::new(&format!("EX{e}")).unwrap();
                    let entry = s.entry(&ex, ct(ws)).cloned();
                    let enabled = s.enabled;
                    let pick = s.resolve(&ex, ct(ws)).map(|p| (p.proxy_url.clone(), p.timeout_seconds, p.lease));
                    match (&entry, &pick) {
                        (None, Some(_)) => prop_assert!(false, "a pick without an entry"),
                        (Some(e), Some((url, t, lease))) => {
                            prop_assert!(enabled);
                            prop_assert_eq!(*t, e.timeout_seconds.get());
                            match &e.pool {
                                Some(pool) => {
                                    prop_assert!(
                                        pool.proxies().iter().any(|m| &m.url == url && m.enabled),
                                        "picked a member that is not an enabled member of the pool"
                                    );
                                    prop_assert_eq!(lease.is_some(), pool.strategy() == PoolStrategy::LeastConnections);
                                }
                                None => prop_assert_eq!(Some(url), e.url.as_ref()),
                            }
                            if let Some(l) = lease { leases.push(*l); }
                        }
                        (Some(e), None) => {
                            let all_disabled = e.pool.as_ref().is_some_and(|p| p.proxies().iter().all(|m| !m.enabled));
                            prop_assert!(e.is_direct() || all_disabled);
                        }
                        (None, None) => {}
                    }
                }
                Op::Release(e, ws, url) => {
                    let ex = ExchangeId::new(&format!("ex{e}")).unwrap();
                    s.release_url(&ex, ct(ws), &url);
                    if let Some(l) = leases.pop() { s.release(l); s.release(l); }
                }
                Op::Health(url, h) => { s.set_health(&url, h); }
            }
        }
    }
}
