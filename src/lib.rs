//! callhook: real-time call webhooks for cloud telephony.
//!
//! A call event enters through the API ([`api`]), is validated and matched by the pure
//! [`core`], stored with its deliveries in one transaction ([`store`]), then claimed, rendered,
//! signed, sent and recorded by the dispatcher.

pub mod accounts;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod core;
pub mod delivery;
pub mod ingest;
pub mod listen;
pub mod retention;
pub mod shutdown;
pub mod simulate;
pub mod store;
pub mod web;

/// Installs the TLS crypto provider (ring) once per process; every HTTP client needs it.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
