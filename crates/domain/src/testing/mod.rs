//! Test support for stores and for services built on this crate: an in-memory store, the
//! repository contract suite every store must pass, and fast fakes.

// Test support panics on purpose: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod blocking;
pub mod contract;
mod fakes;
mod in_memory;

pub use blocking::{block_on, CurrentUserBlocking};
pub use contract::new_user;
pub use fakes::PlainHasher;
pub use in_memory::InMemoryStore;
