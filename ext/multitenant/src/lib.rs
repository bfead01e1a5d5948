//! The Ruby face of multitenant-core: thin wrappers, one file per Ruby-facing type.

mod convert;
mod discovery;
mod envelope;
mod error;
mod key;
mod key_dir;

use magnus::{Error, Ruby};

#[magnus::init(name = "multitenant")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let module = ruby.define_module("MultiTenant")?;
    key::init(ruby, module)?;
    key_dir::init(ruby, module)?;
    envelope::init(ruby, module)?;
    discovery::init(ruby, module)?;
    Ok(())
}
