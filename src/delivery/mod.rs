//! Getting deliveries out: the HTTP client with its SSRF guard ([`client`]), one attempt from
//! claim to record ([`attempt`]), and the dispatcher that claims due work, keeps per-webhook
//! limits ([`lanes`], its bookkeeping as plain data) and records outcomes in batches
//! ([`dispatcher`]).

pub mod alerts;
pub mod attempt;
pub mod client;
pub mod dispatcher;
pub mod handoff;
pub mod lanes;
