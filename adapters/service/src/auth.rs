//! Who is calling: bearer tokens, API keys (`X-API-Key`) and client
//! certificates (mutual TLS), each mapped to a named client with scopes.
//! Secrets are compared in constant time and never logged.

use std::sync::Arc;

use axum::http::{HeaderMap, header};

use crate::config::{ClientConfig, Scope, secret_matches};
use crate::error::ApiError;

/// The names a verified client certificate carries (its subject's common
/// name and its DNS names), put on every request of a mutual-TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsIdentity(pub(crate) Vec<String>);

/// A set of scopes, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scopes(u8);

impl Scopes {
    const ALL: Self = Self(0b111);

    fn bit(s: Scope) -> u8 {
        match s {
            Scope::Request => 1,
            Scope::Feedback => 2,
            Scope::Read => 4,
        }
    }

    fn of(list: &[Scope]) -> Self {
        Self(list.iter().fold(0, |m, s| m | Self::bit(*s)))
    }

    fn contains(self, s: Scope) -> bool {
        self.0 & Self::bit(s) != 0
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The client's configured name; `anonymous` when authentication is off.
    pub(crate) name: Arc<str>,
    scopes: Scopes,
}

impl Caller {
    /// The caller when authentication is off, or of an open route: every
    /// scope. Build it once and clone it (a clone allocates nothing).
    pub(crate) fn anonymous() -> Self {
        Self {
            name: Arc::from("anonymous"),
            scopes: Scopes::ALL,
        }
    }

    /// 403 unless the caller has `scope`.
    pub(crate) fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "client {:?} may not call this route (it needs the {:?} scope)",
            &*self.name,
            scope_name(scope)
        )))
    }
}

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Request => "request",
        Scope::Feedback => "feedback",
        Scope::Read => "read",
    }
}

/// The known clients.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    entries: Vec<(Caller, ClientConfig)>,
}

/// Why credentials were refused (the `reason` label of the auth-failure metric).
pub(crate) type Refusal = (&'static str, ApiError);

impl Clients {
    pub(crate) fn new(clients: &[ClientConfig]) -> Self {
        Self {
            entries: clients
                .iter()
                .map(|c| {
                    let caller = Caller {
                        name: Arc::from(c.name.as_str()),
                        scopes: Scopes::of(&c.scopes),
                    };
                    (caller, c.clone())
                })
                .collect(),
        }
    }

    /// The caller named by the request's credentials: a header credential
    /// (bearer token or API key) when one is present, else the client
    /// certificate. `Ok(None)`: no credential at all.
    pub(crate) fn identify(
        &self,
        headers: &HeaderMap,
        tls: Option<&TlsIdentity>,
    ) -> Result<Option<Caller>, Refusal> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let bytes = value.as_bytes();
            let token = bytes
                .get(..7)
                .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
                .and_then(|_| bytes.get(7..))
                .map(<[u8]>::trim_ascii)
                .ok_or((
                    "unsupported_scheme",
                    ApiError::unauthorized(
                        "Authorization must be \"Bearer <token>\" (or send X-API-Key)",
                    ),
                ))?;
            return self
                .find(|c| c.bearer_tokens.iter().any(|s| secret_matches(s, token)))
                .map(Some)
                .ok_or((
                    "unknown_token",
                    ApiError::unauthorized("unknown bearer token"),
                ));
        }
        if let Some(value) = headers.get("x-api-key") {
            let key = value.as_bytes().trim_ascii();
            return self
                .find(|c| c.api_keys.iter().any(|s| secret_matches(s, key)))
                .map(Some)
                .ok_or(("unknown_api_key", ApiError::unauthorized("unknown API key")));
        }
        if let Some(TlsIdentity(names)) = tls {
            return self
                .find(|c| c.tls_names.iter().any(|n| names.contains(n)))
                .map(Some)
                .ok_or((
                    "unknown_certificate",
                    ApiError::unauthorized(
                        "the client certificate names no configured client (clients[].tls_names)",
                    ),
                ));
        }
        Ok(None)
    }

    /// Every entry is tested (no early exit), so the time taken does not
    /// tell which client, if any, holds the secret.
    fn find(&self, mut matches: impl FnMut(&ClientConfig) -> bool) -> Option<Caller> {
        let mut found = None;
        for (caller, c) in &self.entries {
            if matches(c) && found.is_none() {
                found = Some(caller.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn secret(s: &str) -> Secret {
        Secret::new(s).unwrap()
    }
    use axum::http::HeaderValue;

    fn clients() -> Clients {
        Clients::new(&[
            ClientConfig {
                name: "feed".into(),
                bearer_tokens: vec![secret("t1"), secret("t2")],
                api_keys: vec![],
                tls_names: vec![],
                scopes: vec![Scope::Request, Scope::Feedback],
            },
            ClientConfig {
                name: "ops".into(),
                bearer_tokens: vec![],
                api_keys: vec![secret("k1")],
                tls_names: vec!["ops.example".into()],
                scopes: vec![Scope::Read],
            },
        ])
    }

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn each_credential_names_its_client() {
        let c = clients();
        let who = |h: &HeaderMap, tls: Option<&TlsIdentity>| {
            c.identify(h, tls).map(|x| x.map(|x| x.name.to_string()))
        };
        assert_eq!(
            who(&with("authorization", "Bearer t2"), None).unwrap(),
            Some("feed".into())
        );
        assert_eq!(
            who(&with("authorization", "bearer  t1 "), None).unwrap(),
            Some("feed".into())
        );
        assert_eq!(
            who(&with("x-api-key", "k1"), None).unwrap(),
            Some("ops".into())
        );
        let tls = TlsIdentity(vec!["ops.example".into()]);
        assert_eq!(
            who(&HeaderMap::new(), Some(&tls)).unwrap(),
            Some("ops".into())
        );
        assert_eq!(who(&HeaderMap::new(), None).unwrap(), None);
    }

    #[test]
    fn wrong_credentials_are_refused_with_a_reason() {
        let c = clients();
        let reason = |h: &HeaderMap| c.identify(h, None).unwrap_err().0;
        assert_eq!(reason(&with("authorization", "Bearer t3")), "unknown_token");
        assert_eq!(
            reason(&with("authorization", "Basic dTpw")),
            "unsupported_scheme"
        );
        assert_eq!(reason(&with("x-api-key", "t1")), "unknown_api_key");
        let tls = TlsIdentity(vec!["stranger".into()]);
        assert_eq!(
            c.identify(&HeaderMap::new(), Some(&tls)).unwrap_err().0,
            "unknown_certificate"
        );
    }

    #[test]
    fn scopes_are_enforced() {
        let c = clients();
        let ops = c.identify(&with("x-api-key", "k1"), None).unwrap().unwrap();
        assert!(ops.require(Scope::Read).is_ok());
        let e = ops.require(Scope::Request).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::FORBIDDEN);
        assert!(e.message.contains("ops"));
    }
}
