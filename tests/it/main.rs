//! The integration tests: one binary (one link on 2 cores), one module per area. Every test
//! starts a real callhook on 127.0.0.1:0 with a real SQLite file and talks HTTP to it.

mod at_rest;
mod crash;
mod helpers;
mod layers;
mod migrations;
mod multinode;
mod nodes;
mod receiver;
mod spec;
mod verifier;

mod alerts;
mod click_to_call;
mod connectors;
mod delivery;
mod handoff;
mod openapi;
mod reliability;
mod resources;
mod security;
mod shaping;
mod store;
mod team;
mod tools;
mod web;
