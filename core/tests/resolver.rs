//! The Resolver's rules (`support/resolver_rules.rs`) with its messages
//! kept whole, the default.

/// The form the Resolver under test keeps its messages in.
type Keeping = proxy_delegate_core::keep::Whole;

#[path = "support/resolver_rules.rs"]
mod rules;
