//! `${VAR}` substitution in the agent configuration (SPEC §2), inside
//! parsed scalar values only.
//!
//! Substitution used to run on the text before YAML read it, so a value was
//! YAML source: a `#` in a token started a comment and cut it short, and a
//! newline injected keys (#18). Now the YAML is parsed first and a
//! deserializer wrapper (`Subst`) replaces `${VAR}` inside each scalar value
//! as serde asks for it: the variable's text becomes that scalar's value and
//! nothing else, read as the key's type (`base_interval: ${BI}` is still a
//! number). Comments are never scalars, so a `${VAR}` in one is left alone;
//! mapping keys are not substituted; `$${` is a literal `${`.
//!
//! The wrapper forwards every call to the real deserializer (serde_yaml's,
//! in `load`), so its key paths and line numbers stay in every error: an
//! unset variable is an error at the scalar that uses it. The alternative,
//! scanning the YAML text and re-quoting substituted scalars, would have to
//! re-implement YAML's scalar rules to keep `${BI}` a number; here serde_yaml
//! keeps them. This module knows nothing of the configuration's keys.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

/// Looks up an environment variable (`None` when unset).
pub(super) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Replaces `${VAR}` in one scalar's text; `$${` is a literal `${`, and a
/// `${` without a closing `}` is kept as written. `None` when nothing is to
/// be replaced, so the caller can pass the original through untouched.
///
/// # Errors
/// The first unset variable, by name.
pub(super) fn substitute(text: &str, lookup: Lookup<'_>) -> Option<Result<String, String>> {
    if !text.contains("${") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if at > 0 && rest.as_bytes()[at - 1] == b'$' {
            // `$${`: the escape for a literal `${`.
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let var = &after[..end];
        match lookup(var) {
            Some(value) => out.push_str(&value),
            None => {
                return Some(Err(format!(
                    "environment variable `{}` is not set",
                    super::load::excerpt(var)
                )));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(Ok(out))
}

/// A deserializer that substitutes `${VAR}` in the scalar values it reads.
pub(super) struct Subst<'a, D> {
    inner: D,
    lookup: Lookup<'a>,
}

impl<'a, D> Subst<'a, D> {
    pub(super) fn new(inner: D, lookup: Lookup<'a>) -> Self {
        Subst { inner, lookup }
    }
}

/// What the value is read as: a string takes the substituted text as is;
/// anything else (a number, a bool) reads it as YAML reads a plain scalar.
#[derive(Clone, Copy)]
enum Want {
    Text,
    Scalar,
}

struct SubstVisitor<'a, V> {
    target: V,
    lookup: Lookup<'a>,
    want: Want,
}

/// Deserializer methods that read a string: forwarded as they are.
macro_rules! forward_text {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.inner.$method(text_visitor(visitor, self.lookup))
            }
        )*
    };
}

/// Deserializer methods that read a number or a bool: forwarded as
/// `deserialize_any`, because serde_yaml refuses a plain `${BI}` as a number
/// itself, without showing it to the visitor; through `deserialize_any` the
/// visitor sees the text, substitutes it and reads the result as a number.
/// A value without `${` reaches the target visitor as serde_yaml read it.
macro_rules! forward_scalar {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.inner.deserialize_any(SubstVisitor { target: visitor, lookup: self.lookup, want: Want::Scalar })
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Subst<'_, D> {
    type Error = D::Error;

    forward_text! {
        deserialize_any,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
    }

    forward_scalar! {
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_unit_struct(name, text_visitor(visitor, self.lookup))
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_newtype_struct(name, text_visitor(visitor, self.lookup))
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_tuple(len, text_visitor(visitor, self.lookup))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_tuple_struct(name, len, text_visitor(visitor, self.lookup))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_struct(name, fields, text_visitor(visitor, self.lookup))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_enum(name, variants, text_visitor(visitor, self.lookup))
    }
    /// Ignored values are not substituted: an unset variable in a value
    /// nobody reads (the first pass's other keys) is no error there.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_ignored_any(visitor)
    }
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor that takes substituted text as a string.
fn text_visitor<V>(target: V, lookup: Lookup<'_>) -> SubstVisitor<'_, V> {
    SubstVisitor {
        target,
        lookup,
        want: Want::Text,
    }
}

impl<V> SubstVisitor<'_, V> {
    /// The substituted text of a scalar handed to the target visitor.
    fn visit_text<'de, E: de::Error>(self, text: String) -> Result<V::Value, E>
    where
        V: Visitor<'de>,
    {
        match self.want {
            Want::Text => self.target.visit_string(text),
            Want::Scalar => visit_plain(self.target, text),
        }
    }
}

/// Hands `text` to `visitor` as YAML would read it as a plain scalar in a
/// number or bool position: an integer, a float (`.inf` and `.nan` included,
/// which validation then refuses), `true`/`false`, else the string itself
/// (which the visitor then refuses with "invalid type: string ...").
fn visit_plain<'de, V: Visitor<'de>, E: de::Error>(
    visitor: V,
    text: String,
) -> Result<V::Value, E> {
    let trimmed = text.trim();
    if let Ok(n) = trimmed.parse::<u64>() {
        return visitor.visit_u64(n);
    }
    if let Ok(n) = trimmed.parse::<i64>() {
        return visitor.visit_i64(n);
    }
    match trimmed {
        "true" => return visitor.visit_bool(true),
        "false" => return visitor.visit_bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return visitor.visit_f64(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return visitor.visit_f64(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return visitor.visit_f64(f64::NAN),
        _ => {}
    }
    // Rust's float syntax is YAML's but for words (`inf`, `nan`), which YAML
    // reads as strings: keep them strings.
    let numeric = trimmed
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric
        && !trimmed.is_empty()
        && let Ok(n) = trimmed.parse::<f64>()
    {
        return visitor.visit_f64(n);
    }
    visitor.visit_string(text)
}

impl<'de, V: Visitor<'de>> Visitor<'de> for SubstVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.target.expecting(f)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<V::Value, E> {
        self.target.visit_bool(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<V::Value, E> {
        self.target.visit_i64(v)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<V::Value, E> {
        self.target.visit_i128(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<V::Value, E> {
        self.target.visit_u64(v)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<V::Value, E> {
        self.target.visit_u128(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<V::Value, E> {
        self.target.visit_f64(v)
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<V::Value, E> {
        self.target.visit_char(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        match substitute(v, self.lookup) {
            None => self.target.visit_str(v),
            Some(Ok(text)) => self.visit_text(text),
            Some(Err(message)) => Err(E::custom(message)),
        }
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        match substitute(v, self.lookup) {
            None => self.target.visit_borrowed_str(v),
            Some(Ok(text)) => self.visit_text(text),
            Some(Err(message)) => Err(E::custom(message)),
        }
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        match substitute(&v, self.lookup) {
            None => self.target.visit_string(v),
            Some(Ok(text)) => self.visit_text(text),
            Some(Err(message)) => Err(E::custom(message)),
        }
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
        self.target.visit_bytes(v)
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        self.target.visit_borrowed_bytes(v)
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<V::Value, E> {
        self.target.visit_byte_buf(v)
    }
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.target.visit_none()
    }
    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.target.visit_some(Subst::new(d, self.lookup))
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.target.visit_unit()
    }
    fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.target.visit_newtype_struct(Subst::new(d, self.lookup))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.target.visit_seq(Subst::new(seq, self.lookup))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.target.visit_map(Subst::new(map, self.lookup))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.target.visit_enum(Subst::new(data, self.lookup))
    }
}

/// A seed whose deserializer substitutes.
struct SubstSeed<'a, S> {
    seed: S,
    lookup: Lookup<'a>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for SubstSeed<'_, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Subst::new(d, self.lookup))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Subst<'_, A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(SubstSeed {
            seed,
            lookup: self.lookup,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Subst<'_, A> {
    type Error = A::Error;
    /// Keys are names, not values: they are read as written.
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(seed)
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(SubstSeed {
            seed,
            lookup: self.lookup,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Subst<'_, A> {
    type Error = A::Error;
    type Variant = VariantOnly<A::Variant>;
    /// The variant's name may come from a variable (`log_format: ${FORMAT}`).
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.inner.variant_seed(SubstSeed {
            seed,
            lookup: self.lookup,
        })?;
        Ok((value, VariantOnly(variant)))
    }
}

/// The variant of an enum; its contents are not substituted (the agent
/// configuration has no enum with contents).
pub(super) struct VariantOnly<A>(A);

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for VariantOnly<A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(seed)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(var: &str) -> Option<String> {
        match var {
            "KEY" => Some("secret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitution_in_one_scalar() {
        let cases: &[(&str, Option<Result<&str, &str>>)] = &[
            ("plain", None),
            ("${KEY}", Some(Ok("secret"))),
            ("a-${KEY}-${KEY}", Some(Ok("a-secret-secret"))),
            ("$${KEY}", Some(Ok("${KEY}"))),
            ("x$${KEY}${KEY}", Some(Ok("x${KEY}secret"))),
            ("${EMPTY}", Some(Ok(""))),
            ("${open", Some(Ok("${open"))),
            (
                "${UNSET}",
                Some(Err("environment variable `UNSET` is not set")),
            ),
        ];
        for (text, want) in cases {
            let got = substitute(text, &lookup);
            let want = want.map(|w| w.map(str::to_string).map_err(str::to_string));
            assert_eq!(got, want, "{text}");
        }
    }
}
