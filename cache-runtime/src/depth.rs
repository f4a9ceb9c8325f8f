//! A nesting limit for decoding. Serde deserializes recursively, so bytes
//! that nest a recursive type (`enum Tree { Leaf, Node(Box<Tree>) }`)
//! deeply enough overflow the stack and abort the process; the size limit of
//! the envelope bounds memory, not depth. These wrappers count nesting on
//! the way down and fail with an ordinary decode error past [`MAX_DEPTH`].
//!
//! Every wrapper forwards to the wrapped one; the only logic is in
//! [`Limited`], which spends one level per value it deserializes.

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, Error as _, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use std::fmt;
use std::marker::PhantomData;

/// How many values may nest inside one another (a struct in a `Vec` in an
/// `Option` is three levels; a `Box<Tree>` node is about two).
pub const MAX_DEPTH: usize = 256;

/// The seed that decodes a `T` under the limit.
pub(crate) struct Root<T>(pub(crate) PhantomData<T>);

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for Root<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(Limited {
            inner: d,
            remaining: MAX_DEPTH,
        })
    }
}

struct Limited<D> {
    inner: D,
    remaining: usize,
}

struct LimitedVisitor<V> {
    inner: V,
    remaining: usize,
}

struct LimitedSeed<S> {
    inner: S,
    remaining: usize,
}

struct LimitedAccess<A> {
    inner: A,
    remaining: usize,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for LimitedSeed<S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Limited {
            inner: d,
            remaining: self.remaining,
        })
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let remaining = self.descend()?;
            self.inner.$method($($arg,)* LimitedVisitor { inner: visitor, remaining })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Limited<D> {
    fn descend(&self) -> Result<usize, D::Error> {
        self.remaining.checked_sub(1).ok_or_else(|| {
            D::Error::custom(format_args!("values nest deeper than {MAX_DEPTH} levels"))
        })
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Limited<D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any(),
        deserialize_bool(),
        deserialize_i8(),
        deserialize_i16(),
        deserialize_i32(),
        deserialize_i64(),
        deserialize_i128(),
        deserialize_u8(),
        deserialize_u16(),
        deserialize_u32(),
        deserialize_u64(),
        deserialize_u128(),
        deserialize_f32(),
        deserialize_f64(),
        deserialize_char(),
        deserialize_str(),
        deserialize_bytes(),
        deserialize_option(),
        deserialize_unit(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_seq(),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map(),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(),
        deserialize_ignored_any(),
    );

    /// Asks for a borrowed `str`, which the visitor copies into its
    /// `String`: bincode's owned path would first fill a zeroed buffer
    /// (`calloc`), then copy it. Visitors that take `visit_string` accept
    /// `visit_str` too (serde's default forwards one to the other).
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.deserialize_str(visitor)
    }

    /// As [`deserialize_string`](Self::deserialize_string), for bytes.
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.deserialize_bytes(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for LimitedVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Limited {
            inner: d,
            remaining: self.remaining,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Limited {
            inner: d,
            remaining: self.remaining,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(LimitedAccess {
            inner: seq,
            remaining: self.remaining,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(LimitedAccess {
            inner: map,
            remaining: self.remaining,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(LimitedAccess {
            inner: data,
            remaining: self.remaining,
        })
    }
}

impl<A> LimitedAccess<A> {
    fn seed<S>(&self, inner: S) -> LimitedSeed<S> {
        LimitedSeed {
            inner,
            remaining: self.remaining,
        }
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for LimitedAccess<A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_element_seed(seed)
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for LimitedAccess<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_key_seed(seed)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_value_seed(seed)
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for LimitedAccess<A> {
    type Error = A::Error;
    type Variant = LimitedAccess<A::Variant>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let seed = self.seed(seed);
        let remaining = self.remaining;
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            LimitedAccess {
                inner: variant,
                remaining,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for LimitedAccess<A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.newtype_variant_seed(seed)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let remaining = self.remaining;
        self.inner.tuple_variant(
            len,
            LimitedVisitor {
                inner: visitor,
                remaining,
            },
        )
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let remaining = self.remaining;
        self.inner.struct_variant(
            fields,
            LimitedVisitor {
                inner: visitor,
                remaining,
            },
        )
    }
}
