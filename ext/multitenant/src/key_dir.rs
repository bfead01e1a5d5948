//! `MultiTenant::KeyDir`: the key directory, with every ownership and mode check of the core.

use magnus::{function, method, prelude::*, Error, RArray, RModule, Ruby};
use multitenant_core::KeyTarget;

use crate::error::IntoRuby;
use crate::key::Key;

#[magnus::wrap(class = "MultiTenant::KeyDir", free_immediately, size)]
struct KeyDir(multitenant_core::KeyDir);

fn target(group: &Option<String>) -> KeyTarget<'_> {
    group.as_deref().map_or(KeyTarget::Site, KeyTarget::Group)
}

impl KeyDir {
    fn new(path: String, owner_uid: u32) -> KeyDir {
        KeyDir(multitenant_core::KeyDir::new(path).with_owner(owner_uid))
    }

    fn path(&self) -> String {
        self.0.path().display().to_string()
    }

    /// The key new shares for `group` are sealed with.
    fn sealing_key(&self, group: String, allow_site: bool) -> Result<Key, Error> {
        self.0.sealing_key(&group, allow_site).rb().map(|(k, _)| Key(k))
    }

    fn opening_keys(ruby: &Ruby, rb_self: &Self, group: String) -> Result<RArray, Error> {
        let keys = rb_self.0.opening_keys(&group).rb()?;
        Ok(ruby.ary_from_iter(keys.into_iter().map(Key)))
    }

    /// `nil` as the group means the site-wide key. Returns the file's path.
    fn generate(&self, group: Option<String>, rotate: bool) -> Result<String, Error> {
        self.0.generate(target(&group), rotate).rb().map(|f| f.path.display().to_string())
    }

    /// Keeps only the newest key of an existing file: `[path, kept key, how many older keys were dropped]`.
    fn drop_old(&self, group: Option<String>) -> Result<(String, Key, usize), Error> {
        let (mut file, dropped) = self.0.drop_old(target(&group)).rb()?;
        Ok((file.path.display().to_string(), Key(file.keys.swap_remove(0)), dropped))
    }

    fn file_path(&self, group: Option<String>) -> Result<String, Error> {
        self.0.file_path(target(&group)).rb().map(|p| p.display().to_string())
    }
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("KeyDir", ruby.class_object())?;
    class.define_singleton_method("_new", function!(KeyDir::new, 2))?;
    class.define_method("path", method!(KeyDir::path, 0))?;
    class.define_method("_sealing_key", method!(KeyDir::sealing_key, 2))?;
    class.define_method("opening_keys", method!(KeyDir::opening_keys, 1))?;
    class.define_method("_generate", method!(KeyDir::generate, 2))?;
    class.define_method("_drop_old", method!(KeyDir::drop_old, 1))?;
    class.define_method("_file_path", method!(KeyDir::file_path, 1))?;
    Ok(())
}
