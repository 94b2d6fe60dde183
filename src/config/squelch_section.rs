//! The agent file's `squelch:` section (SPEC §12): the limits on new
//! squelches, read into `squelch::Policy`.
//!
//! Durations are read as squelch durations (`90s`, `30m`, `2h`, `1d`). A
//! `default_expiry` longer than `max_duration` is refused while the second
//! of the two is read, so the error names that key and its line whichever
//! order the file writes them in.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use crate::meta::duration;
use crate::squelch::{self, Policy};

/// The section's keys, read as identifiers so an unknown one is refused
/// with its line.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    MaxDuration,
    RequireExpiry,
    DefaultExpiry,
}

/// `squelch:` as written: a mapping of the three options, each optional;
/// `squelch:` alone (null) is every default.
///
/// # Errors
/// An unknown key, a key given twice, a value that is not a duration, or a
/// `default_expiry` longer than `max_duration`.
pub(super) fn section<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Policy, D::Error> {
    Ok(Option::<SectionVisitorOutput>::deserialize(deserializer)?
        .map(|output| output.0)
        .unwrap_or_default())
}

/// Reads the section as the value of the top-level key `squelch`.
pub(super) struct Seed;

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Policy;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Policy, D::Error> {
        section(deserializer)
    }
}

/// The section read (a newtype so `Option` handles `null`).
struct SectionVisitorOutput(Policy);

impl<'de> Deserialize<'de> for SectionVisitorOutput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SectionVisitor)
    }
}

struct SectionVisitor;

impl<'de> Visitor<'de> for SectionVisitor {
    type Value = SectionVisitorOutput;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping with `max_duration`, `require_expiry` and `default_expiry`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut policy = Policy::default();
        let mut seen_require = false;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::MaxDuration => {
                    if policy.max_duration.is_some() {
                        return Err(de::Error::duplicate_field("max_duration"));
                    }
                    policy.max_duration = Some(map.next_value_seed(Lifetime {
                        limit: Bound::AtLeast(policy.default_expiry),
                    })?);
                }
                Key::DefaultExpiry => {
                    if policy.default_expiry.is_some() {
                        return Err(de::Error::duplicate_field("default_expiry"));
                    }
                    policy.default_expiry = Some(map.next_value_seed(Lifetime {
                        limit: Bound::AtMost(policy.max_duration),
                    })?);
                }
                Key::RequireExpiry => {
                    if seen_require {
                        return Err(de::Error::duplicate_field("require_expiry"));
                    }
                    seen_require = true;
                    policy.require_expiry = map.next_value()?;
                }
            }
        }
        Ok(SectionVisitorOutput(policy))
    }
}

/// How a duration must compare with the other one already read.
#[derive(Clone, Copy)]
enum Bound {
    /// `max_duration`: at least the `default_expiry` read before it.
    AtLeast(Option<i64>),
    /// `default_expiry`: at most the `max_duration` read before it.
    AtMost(Option<i64>),
}

/// Reads one duration, checked against the other inside the visitor so the
/// error keeps its key path and line.
struct Lifetime {
    limit: Bound,
}

impl<'de> DeserializeSeed<'de> for Lifetime {
    type Value = i64;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<i64, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for Lifetime {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration: a number and a unit, e.g. `30m`, `4h`, `1d`")
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<i64, E> {
        let seconds = squelch::parse_duration(value).map_err(E::custom)?;
        match self.limit {
            Bound::AtLeast(Some(default)) if seconds < default => Err(E::custom(format_args!(
                "`{value}` is shorter than `squelch.default_expiry` ({}): the default would be refused by the limit",
                duration(default)
            ))),
            Bound::AtMost(Some(max)) if seconds > max => Err(E::custom(format_args!(
                "`{value}` is longer than `squelch.max_duration` ({}): the default would be refused by the limit",
                duration(max)
            ))),
            _ => Ok(seconds),
        }
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
        Err(E::custom(format_args!(
            "`{value}` has no unit; write a duration such as `{value}s`, `{value}m` or `{value}h`"
        )))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
        Err(E::custom(format_args!(
            "`{value}` is not a duration; write one such as `30m`, `4h` or `1d`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Policy, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(deserialize_with = "section")]
            squelch: Policy,
        }
        serde_yaml::from_str::<File>(text)
            .map(|file| file.squelch)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_section_reads_durations_and_the_flag() {
        let policy =
            read("squelch:\n  max_duration: 1d\n  require_expiry: true\n  default_expiry: 4h\n")
                .unwrap();
        assert_eq!(
            policy,
            Policy {
                max_duration: Some(86_400),
                require_expiry: true,
                default_expiry: Some(14_400),
            }
        );
        assert_eq!(read("squelch:\n").unwrap(), Policy::default());
    }

    #[test]
    fn a_default_expiry_beyond_the_limit_is_refused_at_the_second_key() {
        assert_eq!(
            read("squelch:\n  max_duration: 2h\n  default_expiry: 4h\n").unwrap_err(),
            "squelch.default_expiry: `4h` is longer than `squelch.max_duration` (2h): the default would be refused by the limit at line 3 column 19"
        );
        assert_eq!(
            read("squelch:\n  default_expiry: 4h\n  max_duration: 2h\n").unwrap_err(),
            "squelch.max_duration: `2h` is shorter than `squelch.default_expiry` (4h): the default would be refused by the limit at line 3 column 17"
        );
    }

    #[test]
    fn bad_values_and_keys_are_refused_with_their_line() {
        let cases = [
            (
                "squelch:\n  max_duration: 3600\n",
                "squelch.max_duration: `3600` has no unit; write a duration such as `3600s`, `3600m` or `3600h` at line 2 column 17",
            ),
            (
                "squelch:\n  max_duration: soon\n",
                "squelch.max_duration: invalid duration `soon`: use a number and a unit, e.g. `90s`, `30m`, `2h`, `1d` at line 2 column 17",
            ),
            (
                "squelch:\n  max_durations: 1h\n",
                "squelch: unknown field `max_durations`, expected one of `max_duration`, `require_expiry`, `default_expiry` at line 2 column 3",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(read(text).unwrap_err(), want, "{text}");
        }
    }
}
