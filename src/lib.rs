//! callhook: real-time call webhooks for cloud telephony.
//!
//! A call event enters through the API ([`api`]), is validated and matched by the pure
//! [`core`], stored with its deliveries in one transaction ([`store`]), then claimed, rendered,
//! signed, sent and recorded by the dispatcher ([`delivery`]).

pub mod core;
pub mod store;
