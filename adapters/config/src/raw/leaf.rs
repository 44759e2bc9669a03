//! The validated single values of a layer: booleans, numbers, timeouts,
//! strategy, authentication method, endpoints, region, client id, SRV name,
//! file paths and exchange names. Each is checked while it is read, so its
//! error carries its path and line.

use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::model::{ClientId, ExchangeId, Region};
use proxy_delegate_core::settings::{
    AuthMethod, CacheTtlSeconds, HedgeDelayMs, MAX_SRV_NAME_LEN, PoolStrategy, ResolveDeadlineMs,
    ServiceTimeoutSeconds, StaleGraceSeconds, TimeoutSeconds, Weight,
};
use serde::{Deserialize, Deserializer};

use super::de::scalar;
use super::references::expand;
use crate::quoted;

/// A boolean: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub(crate) bool);

/// Parses the boolean spellings cryptofeed (pydantic) accepts.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "1", "yes", "on"];
    const FALSE: [&str; 4] = ["false", "0", "no", "off"];
    let s = s.trim();
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Some(true)
    } else if FALSE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Some(false)
    } else {
        None
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            parse_bool(s).map(Flag).ok_or_else(|| {
                format!(
                    "invalid boolean{} (expected true/false, 1/0, yes/no, on/off)",
                    quoted(s)
                )
            })
        })
    }
}

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("invalid number{}", quoted(s)))
}

/// A whole, non-negative number, from a number or numeric text.
fn whole(s: &str) -> Result<u64, String> {
    if let Ok(v) = s.trim().parse::<u64>() {
        return Ok(v);
    }
    let v = number(s)?;
    if v.fract() != 0.0 || !(0.0..=u64::MAX as f64).contains(&v) {
        return Err(format!(
            "invalid value{} (expected a whole, non-negative number)",
            quoted(s)
        ));
    }
    Ok(v as u64)
}

macro_rules! leaf {
    ($name:ident($inner:ty), |$s:ident| $parse:expr) => {
        #[doc = concat!("A validated `", stringify!($inner), "` read from configuration.")]
        #[derive(Debug, Clone, PartialEq)]
        pub(crate) struct $name(pub(crate) $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                scalar(d, |$s: &str| -> Result<$name, String> { $parse.map($name) })
            }
        }
    };
}

pub(super) fn reason(e: proxy_delegate_core::ValidationError) -> String {
    e.reason.to_string()
}
leaf!(Timeout(TimeoutSeconds), |s| TimeoutSeconds::new(whole(s)?)
    .map_err(reason));
leaf!(ServiceTimeout(ServiceTimeoutSeconds), |s| {
    ServiceTimeoutSeconds::new(whole(s)?).map_err(reason)
});
leaf!(CacheTtl(CacheTtlSeconds), |s| CacheTtlSeconds::new(whole(
    s
)?)
.map_err(reason));
leaf!(Deadline(ResolveDeadlineMs), |s| ResolveDeadlineMs::new(
    whole(s)?
)
.map_err(reason));
leaf!(Hedge(HedgeDelayMs), |s| HedgeDelayMs::new(whole(s)?)
    .map_err(reason));
leaf!(StaleGrace(StaleGraceSeconds), |s| StaleGraceSeconds::new(
    whole(s)?
)
.map_err(reason));
leaf!(Seed(u64), |s| whole(s));
leaf!(WeightValue(Weight), |s| Weight::new(number(s)?)
    .map_err(reason));
leaf!(Strategy(PoolStrategy), |s| PoolStrategy::parse(s)
    .map_err(reason));
leaf!(Auth(AuthMethod), |s| AuthMethod::parse(s).map_err(reason));
leaf!(EndpointValue(ServiceUrl), |s| {
    expand(s, false).and_then(|s| ServiceUrl::parse(&s).map_err(reason))
});
leaf!(RegionValue(Region), |s| Region::new(s).map_err(reason));
leaf!(ClientIdValue(ClientId), |s| ClientId::new(s)
    .map_err(reason));
leaf!(SrvName(heapless::String<MAX_SRV_NAME_LEN>), |s| {
    if s.is_empty() {
        Err("must not be empty".to_owned())
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        Err("invalid character (expected a DNS name such as _proxy._tcp.example.com)".to_owned())
    } else {
        heapless::String::try_from(s).map_err(|_| {
            format!(
                "too long: {} bytes (at most {MAX_SRV_NAME_LEN} allowed)",
                s.len()
            )
        })
    }
});
leaf!(
    FilePathValue(proxy_delegate_core::settings::FilePath),
    |s| {
        expand(s, false).and_then(|s| {
            if s.is_empty() {
                Err("must not be empty".to_owned())
            } else {
                proxy_delegate_core::settings::FilePath::try_from(s.as_str())
                    .map_err(|_| format!("too long: {} bytes (at most 256 allowed)", s.len()))
            }
        })
    }
);

/// An exchange name from configuration, validated and case-folded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ExchangeName(pub(crate) String);

impl<'de> Deserialize<'de> for ExchangeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            ExchangeId::new(s)
                .map(|id| ExchangeName(id.as_str().to_owned()))
                .map_err(|e| format!("exchange name{}: {}", quoted(s), e.reason))
        })
    }
}
