//! Test support for stores and for services built on this crate: an in-memory store, the
//! repository contract suite every store must pass, and fast fakes.

pub mod contract;
mod fakes;
mod in_memory;

pub use fakes::PlainHasher;
pub use in_memory::InMemoryStore;
