//! multitenant's core: the sealed job-name envelope, group keys and the scheduler call site.
//! The Ruby extension and the `mtshare` binary are thin layers over this crate.

pub mod cards;
mod dataroot;
pub mod discover;
pub mod envelope;
pub mod error;
pub mod form_safe;
pub mod hostlist;
pub mod keys;
pub mod legacy;
#[doc(hidden)] // public for the fuzz targets only (`manifest::parse`)
pub mod manifest;
pub mod message;
pub mod secrets;
pub mod slurm;
pub mod specs;

pub use envelope::{open, parse, seal, Binding, Format, Share, DEFAULT_PREFIX, NAME_LIMIT};
pub use error::{Error, Result};
pub use keys::{Key, KeyDir, KeyFile, KeyTarget};
pub use legacy::open_legacy;
pub use message::{Message, Method};
pub use secrets::looks_secret;
pub use slurm::Scheduler;
