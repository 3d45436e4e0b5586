//! # Switchboard
//!
//! An admin-platform server whose heart is a WebSocket hub: users log in (JWT) and hold a
//! WebSocket behind one auth middleware with a login-exemption list; addons register event
//! handlers and OpenAPI endpoints; operators and services push to everyone, one connection,
//! one user's devices or a tag; operators list online users and kick them.
//!
//! Layout by concern: [`config`], [`db`], [`auth`], [`websocket`], [`api`], [`web`],
//! [`addons`] (the one list of addons), [`app`] (the composition root).

// Nested `if let`s read more plainly than long let-chains in the auth and index code.
#![allow(clippy::collapsible_if)]

pub mod addons;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod node;
pub mod random;
pub mod web;
pub mod websocket;

pub use app::Application;
pub use config::Config;
