//! Cache keys: the [`KeyPart`] trait that turns a placeholder's value into
//! key text, the escaping that keeps keys injective, and the builder the
//! macros use to assemble `namespace:vN:` + template.
//!
//! # Encoding
//!
//! Literal template text is copied as written. A placeholder's value is
//! escaped so that it never contains the template separator `:`, the escape
//! character `\`, or the Redis Cluster hash-tag braces `{` `}`:
//!
//! | in the value | in the key |
//! |---|---|
//! | `\` | `\\` |
//! | `:` | `\:` |
//! | `{` | `\[` |
//! | `}` | `\]` |
//!
//! `None` is written as `\0`, a sequence no escaped value produces. The macro
//! requires a `:` between any two placeholders, so the unescaped `:` of a key
//! are exactly the template's own, every placeholder sits alone between them,
//! and two different argument tuples can never produce the same key.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

/// A value that can fill a placeholder of a key template (`"user:<id>"`).
///
/// Implemented for integers, `bool`, `char`, strings (`str`, `String`,
/// `Cow<str>`), `Option<T>`, and references and smart pointers to those.
/// Implement it for your own types by writing their identity through the
/// [`KeyWriter`], which escapes what it is given:
///
/// ```
/// use cache_runtime::{KeyPart, KeyWriter};
///
/// struct TenantId(u32);
///
/// impl KeyPart for TenantId {
///     fn write_key_part(&self, out: &mut KeyWriter<'_>) {
///         out.write_u64(u64::from(self.0));
///     }
/// }
/// ```
///
/// Two values that are different must write different text, or they share
/// one cache entry.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "this value of type `{Self}` is part of the cache key",
    note = "keys take integers, bool, char, strings, and `Option`s and references of them",
    note = "name a field of it in `key = \"...\"` (`<arg.id>`), or implement `cache_runtime::KeyPart` for `{Self}`"
)]
pub trait KeyPart {
    /// Writes this value's key text. Everything written through `out` is
    /// escaped, so the value cannot forge a separator.
    fn write_key_part(&self, out: &mut KeyWriter<'_>);

    /// `true` only for `Option`, so that `Some(None)` and `None` differ.
    #[doc(hidden)]
    const IS_OPTION: bool = false;
}

/// Receives the text of one placeholder value and escapes it into the key.
#[derive(Debug)]
pub struct KeyWriter<'a> {
    out: &'a mut String,
}

impl KeyWriter<'_> {
    /// Appends text, escaping `\`, `:`, `{` and `}`.
    pub fn write_str(&mut self, s: &str) {
        escape_into(self.out, s);
    }

    /// Appends an unsigned integer in decimal.
    pub fn write_u64(&mut self, n: u64) {
        self.out.push_str(itoa::Buffer::new().format(n));
    }

    /// Appends a signed integer in decimal.
    pub fn write_i64(&mut self, n: i64) {
        self.out.push_str(itoa::Buffer::new().format(n));
    }
}

/// Escapes `value` into `out` (see the module docs for the table).
pub(crate) fn escape_into(out: &mut String, value: &str) {
    let special = |b: u8| matches!(b, b'\\' | b':' | b'{' | b'}');
    if !value.bytes().any(special) {
        out.push_str(value);
        return;
    }
    out.reserve(value.len() + 4);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ':' => out.push_str("\\:"),
            '{' => out.push_str("\\["),
            '}' => out.push_str("\\]"),
            c => out.push(c),
        }
    }
}

macro_rules! int_key_part {
    ($write:ident as $wide:ty: $($t:ty),*) => {$(
        impl KeyPart for $t {
            #[inline]
            fn write_key_part(&self, out: &mut KeyWriter<'_>) {
                out.$write(*self as $wide);
            }
        }
    )*};
}
int_key_part!(write_u64 as u64: u8, u16, u32, u64, usize);
int_key_part!(write_i64 as i64: i8, i16, i32, i64, isize);

impl KeyPart for u128 {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.out.push_str(itoa::Buffer::new().format(*self));
    }
}

impl KeyPart for i128 {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.out.push_str(itoa::Buffer::new().format(*self));
    }
}

impl KeyPart for bool {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.out.push_str(if *self { "true" } else { "false" });
    }
}

impl KeyPart for char {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_str(self.encode_utf8(&mut [0; 4]));
    }
}

impl KeyPart for str {
    #[inline]
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_str(self);
    }
}

impl KeyPart for String {
    #[inline]
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_str(self);
    }
}

impl KeyPart for Cow<'_, str> {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_str(self);
    }
}

impl<T: KeyPart> KeyPart for Option<T> {
    const IS_OPTION: bool = true;

    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        match self {
            None => out.out.push_str("\\0"),
            Some(inner) => {
                if T::IS_OPTION {
                    // `Some(None)` must not read as `None`.
                    out.out.push_str("\\1");
                }
                inner.write_key_part(out);
            }
        }
    }
}

macro_rules! deref_key_part {
    ($($ptr:ty),*) => {$(
        impl<T: KeyPart + ?Sized> KeyPart for $ptr {
            const IS_OPTION: bool = T::IS_OPTION;

            #[inline]
            fn write_key_part(&self, out: &mut KeyWriter<'_>) {
                (**self).write_key_part(out);
            }
        }
    )*};
}
deref_key_part!(&T, &mut T, Box<T>, Rc<T>, Arc<T>);

/// Assembles one key: the cache's prefix, then the template's literal text
/// and escaped placeholder values, in order. Used by generated code.
#[doc(hidden)]
#[derive(Debug)]
pub struct KeyBuilder {
    key: String,
}

impl KeyBuilder {
    /// Starts a key with `prefix` (the cache's `namespace:vN:`).
    #[inline]
    pub fn new(prefix: &str) -> Self {
        let mut key = String::with_capacity(prefix.len() + 48);
        key.push_str(prefix);
        KeyBuilder { key }
    }

    /// Appends literal template text, unescaped.
    #[inline]
    pub fn lit(mut self, text: &str) -> Self {
        self.key.push_str(text);
        self
    }

    /// Appends one placeholder value, escaped.
    #[inline]
    pub fn part<P: KeyPart + ?Sized>(mut self, value: &P) -> Self {
        value.write_key_part(&mut KeyWriter { out: &mut self.key });
        self
    }

    /// Appends the identity of a function for a default key. `probe_name`
    /// is the type name of a closure declared in the function's body, which
    /// rustc prints as the function's path with every generic argument
    /// (of the function, of its `impl` block, of `impl Trait` arguments),
    /// then `::{{closure}}` segments, which are dropped. Braces left in the
    /// path (a function declared inside a closure) become parentheses so
    /// that they cannot act as a Redis Cluster hash tag.
    pub fn function(mut self, probe_name: &str) -> Self {
        let mut path = probe_name;
        while let Some(outer) = path.strip_suffix("::{{closure}}") {
            path = outer;
        }
        // The path is fixed text like a template literal: it never holds a
        // lone `:`, so the `:` that follows it starts the arguments.
        if path.contains(['{', '}']) {
            self.key.extend(path.chars().map(|c| match c {
                '{' => '(',
                '}' => ')',
                c => c,
            }));
        } else {
            self.key.push_str(path);
        }
        self
    }

    /// The finished key.
    #[inline]
    pub fn finish(self) -> String {
        self.key
    }
}

/// Escapes one value the way a placeholder would, for code that builds keys
/// by hand for [`Cache::get`](crate::Cache::get) and friends.
///
/// ```
/// let key = format!("user:{}:{}", cache_runtime::key_part(&"1:admin"), cache_runtime::key_part(&7));
/// assert_eq!(key, r"user:1\:admin:7");
/// ```
pub fn key_part<P: KeyPart + ?Sized>(value: &P) -> String {
    KeyBuilder::new("").part(value).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn two(a: &str, b: &str) -> String {
        KeyBuilder::new("ns:v1:")
            .lit("user:")
            .part(a)
            .lit(":")
            .part(b)
            .finish()
    }

    #[test]
    fn separators_in_values_are_escaped() {
        assert_eq!(two("1:admin", "x"), r"ns:v1:user:1\:admin:x");
        assert_eq!(two("1", "admin:x"), r"ns:v1:user:1:admin\:x");
        assert_eq!(two(r"a\", ":b"), r"ns:v1:user:a\\:\:b");
        assert_eq!(two("{tag}", ""), r"ns:v1:user:\[tag\]:");
    }

    #[test]
    fn options_are_distinct_from_their_contents() {
        let k = |v: &Option<Option<&str>>| key_part(v);
        assert_eq!(k(&None), r"\0");
        assert_eq!(k(&Some(None)), r"\1\0");
        assert_eq!(k(&Some(Some(""))), r"\1");
        assert_ne!(key_part(&None::<&str>), key_part(&Some(r"\0")));
        assert_eq!(key_part(&Some(&5u8)), "5");
    }

    #[test]
    fn integers_and_scalars() {
        assert_eq!(key_part(&-42i32), "-42");
        assert_eq!(
            key_part(&u128::MAX),
            "340282366920938463463374607431768211455"
        );
        assert_eq!(key_part(&true), "true");
        assert_eq!(key_part(&':'), r"\:");
        assert_eq!(key_part(&Arc::new(String::from("a{b"))), r"a\[b");
    }

    #[test]
    fn function_identity_drops_the_probe() {
        let key = |probe: &str| KeyBuilder::new("p:").function(probe).finish();
        assert_eq!(
            key("<app::Orders<u8> as app::Repo>::get::{{closure}}::{{closure}}"),
            "p:<app::Orders<u8> as app::Repo>::get"
        );
        assert_eq!(key("app::n<3, u16>::{{closure}}"), "p:app::n<3, u16>");
        assert_eq!(
            key("app::main::{{closure}}::f::{{closure}}"),
            "p:app::main::((closure))::f"
        );
    }

    /// What rustc names a closure inside an async fn: the probe the macro
    /// emits. Checks the compiler still prints generic arguments there.
    #[test]
    fn closure_probes_name_the_instantiated_function() {
        struct Repo<T>(T);
        impl<T> Repo<T> {
            fn probe(&self) -> &'static str {
                std::any::type_name_of_val(&|| ())
            }
        }
        fn generic<const N: usize>(_: impl Sized) -> &'static str {
            std::any::type_name_of_val(&|| ())
        }
        let a = KeyBuilder::new("").function(Repo(1u8).probe()).finish();
        let b = KeyBuilder::new("").function(Repo(1u16).probe()).finish();
        assert_ne!(a, b);
        assert!(a.ends_with("Repo<u8>::probe"), "{a}");
        let c = KeyBuilder::new("").function(generic::<3>(1u8)).finish();
        let d = KeyBuilder::new("").function(generic::<3>(1u16)).finish();
        let e = KeyBuilder::new("").function(generic::<4>(1u8)).finish();
        assert!(c != d && c != e && d != e, "{c} {d} {e}");
    }

    /// Over random tuples of strings drawn from an alphabet dense in special
    /// characters, no two different tuples give one key.
    #[test]
    fn keys_are_injective_over_random_inputs() {
        let alphabet = ['a', ':', '\\', '{', '}', '0', '1', 'x'];
        let mut rng = fastrand::Rng::with_seed(7);
        let word = |rng: &mut fastrand::Rng| -> String {
            let len = rng.usize(0..5);
            (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect()
        };
        let mut seen: HashMap<String, (String, String, Option<String>)> = HashMap::new();
        for _ in 0..200_000 {
            let a = word(&mut rng);
            let b = word(&mut rng);
            let c = if rng.bool() {
                Some(word(&mut rng))
            } else {
                None
            };
            let key = KeyBuilder::new("app:v1:")
                .lit("t:")
                .part(&a)
                .lit(":")
                .part(&b)
                .lit(":")
                .part(&c)
                .finish();
            let tuple = (a, b, c);
            if let Some(previous) = seen.insert(key.clone(), tuple.clone()) {
                assert_eq!(previous, tuple, "two tuples share the key {key}");
            }
        }
        assert!(
            seen.len() > 50_000,
            "the generator must produce many distinct tuples"
        );
    }
}
