//! The checks of the API, module by module: each an `async fn` of a [`NewStore`](super::NewStore), run by
//! [`api_suite_tests!`](crate::api_suite_tests) as one test each.
//!
//! A new check is a `pub async fn` here and a line in the list of `__api_suite!` (in
//! `testing/mod.rs`); this crate's `every_check_is_in_the_list` test fails on a check left
//! out of it.

pub mod admin;
pub mod approval;
pub mod auth;
pub mod bad_input;
pub mod emails;
pub mod hardening;
pub mod listings;
pub mod mfa;
pub mod observe;
pub mod passkeys;
pub mod recovery;
pub mod security;
pub mod service;
pub mod sessions;
pub mod webhooks;

/// Every check of the list, as `module::check`.
pub const CHECKS: &[&str] = crate::__api_suite!(__api_suite_names!());
