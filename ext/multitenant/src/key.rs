//! `MultiTenant::Key`: a 256-bit group or site key. Its secret never appears in `inspect`.

use magnus::{function, method, prelude::*, Error, RModule, Ruby};

use crate::error::IntoRuby;

#[magnus::wrap(class = "MultiTenant::Key", free_immediately, size)]
pub struct Key(pub multitenant_core::Key);

impl Key {
    fn generate() -> Result<Key, Error> {
        multitenant_core::Key::generate().rb().map(Key)
    }

    fn from_line(line: String) -> Result<Key, Error> {
        multitenant_core::Key::from_line(&line)
            .map(Key)
            .map_err(|why| crate::error::to_ruby(multitenant_core::Error::Invalid(format!("key line: {why}"))))
    }

    fn id(&self) -> String {
        self.0.id_hex()
    }

    fn to_line(&self) -> String {
        self.0.to_line()
    }

    fn inspect(&self) -> String {
        format!("#<MultiTenant::Key {}>", self.0.id_hex())
    }

    fn eq(&self, other: &Key) -> bool {
        self.0 == other.0
    }
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Key", ruby.class_object())?;
    class.define_singleton_method("generate", function!(Key::generate, 0))?;
    class.define_singleton_method("from_line", function!(Key::from_line, 1))?;
    class.define_method("id", method!(Key::id, 0))?;
    class.define_method("to_line", method!(Key::to_line, 0))?;
    class.define_method("inspect", method!(Key::inspect, 0))?;
    class.define_method("==", method!(Key::eq, 1))?;
    Ok(())
}
