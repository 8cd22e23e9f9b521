//! callhook: real-time call webhooks for cloud telephony.
//!
//! A call event enters through the API ([`api`]) or a PBX connector ([`connectors`]), is
//! validated and matched by the pure [`core`] on its way through [`ingest`], stored with its
//! deliveries in one transaction ([`store`]), then claimed, rendered, signed, sent and
//! recorded by the dispatcher ([`delivery`]). The REST API and the web page ([`web`]) both
//! work through the operations in [`service`]; [`app`] assembles it all.

pub mod alloc;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod core;
pub mod delivery;
pub mod edge;
pub mod ingest;
pub mod listen;
pub mod retention;
pub mod secrets;
pub mod service;
pub mod shutdown;
pub mod simulate;
pub mod store;
pub mod web;

/// Installs the TLS crypto provider (ring) once per process; every HTTP client needs it.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
