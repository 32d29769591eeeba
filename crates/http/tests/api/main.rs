//! The HTTP API in-process: the app is built with `gatehouse_http::configure`, exactly as
//! the binary builds it, over the domain's in-memory store and fast fake hasher, and called
//! through `actix_web::test` without a socket.

// Tests panic on purpose: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod auth;
mod bad_input;
mod helpers;
mod service;
