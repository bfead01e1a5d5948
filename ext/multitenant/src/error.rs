//! The one place core errors become Ruby exceptions. The class tree is declared in
//! `lib/multitenant/error.rb`; here we only look classes up by name.

use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};

fn class_name(e: &multitenant_core::Error) -> &'static str {
    match e.kind() {
        "malformed" => "FormatError",
        "unsupported_version" => "VersionError",
        "legacy_disabled" => "LegacyError",
        "unknown_key" => "UnknownKeyError",
        "bad_seal" => "SealError",
        "invalid" => "InputError",
        "too_large" => "TooLargeError",
        "key_file" => "KeyFileError",
        "command" => "SchedulerError",
        _ => "Error",
    }
}

pub fn to_ruby(e: multitenant_core::Error) -> Error {
    let ruby = Ruby::get().expect("called from Ruby");
    let class = ruby
        .class_object()
        .const_get::<_, RModule>("MultiTenant")
        .and_then(|m| m.const_get::<_, ExceptionClass>(class_name(&e)))
        .unwrap_or_else(|_| ruby.exception_runtime_error());
    Error::new(class, e.to_string())
}

pub trait IntoRuby<T> {
    fn rb(self) -> Result<T, Error>;
}

impl<T> IntoRuby<T> for multitenant_core::Result<T> {
    fn rb(self) -> Result<T, Error> {
        self.map_err(to_ruby)
    }
}
