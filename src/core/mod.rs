//! The pure heart of callhook: triggers, call events, webhooks, rendering, signing and the
//! retry schedule. Nothing here does I/O, awaits or touches a database, so every rule of the
//! product can be tested as a plain function.

pub mod alert;
pub mod audit;
pub mod click_to_call;
pub mod credentials;
pub mod delivery_state;
pub mod event;
pub mod failure;
pub mod id;
pub mod number;
pub mod render;
pub mod retry;
pub mod role;
pub mod sample;
pub mod seal;
pub mod secret;
pub mod shape;
pub mod sign;
pub mod target;
pub mod template;
pub mod trigger;
pub mod validate;
pub mod webhook;
