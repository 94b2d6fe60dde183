//! One backend section of the agent file (`database:`, `alerter:`, an
//! entry of `alerters:`, `metrics:`) read as the struct its `type:` names,
//! with `type` hidden so that the struct can deny unknown keys, and errors
//! kept at their line (see `sections`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::alerters::{AlerterConfig, CommandConfig, FileConfig, PagerDutyConfig, SlackConfig};
use crate::db::{DbConfig, DynamoDbConfig, MemoryConfig, PostgresConfig, SqliteConfig};
use crate::sinks::{KinesisConfig, LogConfig, SinkConfig};

/// A backend enum whose variant is chosen by the section's `type:`.
pub(super) trait Backend: Sized {
    const TYPES: &'static [&'static str];
    /// Deserializes the section (with `type` already skipped) as variant `kind`.
    fn from_section<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error>;
}

impl Backend for DbConfig {
    const TYPES: &'static [&'static str] = &["sqlite", "memory", "dynamodb", "postgres"];
    fn from_section<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        match kind {
            "sqlite" => SqliteConfig::deserialize(d).map(DbConfig::Sqlite),
            "memory" => MemoryConfig::deserialize(d).map(DbConfig::Memory),
            "dynamodb" => DynamoDbConfig::deserialize(d).map(DbConfig::DynamoDb),
            "postgres" => PostgresConfig::deserialize(d).map(DbConfig::Postgres),
            other => Err(de::Error::unknown_variant(other, Self::TYPES)),
        }
    }
}

impl Backend for AlerterConfig {
    const TYPES: &'static [&'static str] = AlerterConfig::TYPES;
    fn from_section<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        match kind {
            "pagerduty" => PagerDutyConfig::deserialize(d).map(AlerterConfig::PagerDuty),
            "slack" => SlackConfig::deserialize(d).map(AlerterConfig::Slack),
            "file" => FileConfig::deserialize(d).map(AlerterConfig::File),
            "command" => CommandConfig::deserialize(d).map(AlerterConfig::Command),
            other => Err(de::Error::unknown_variant(other, Self::TYPES)),
        }
    }
}

impl Backend for SinkConfig {
    const TYPES: &'static [&'static str] = SinkConfig::TYPES;
    fn from_section<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        match kind {
            "log" => LogConfig::deserialize(d).map(SinkConfig::Log),
            "kinesis" => KinesisConfig::deserialize(d).map(SinkConfig::Kinesis),
            other => Err(de::Error::unknown_variant(other, Self::TYPES)),
        }
    }
}

pub(super) struct Section<'a, T> {
    kind: Option<&'a str>,
    _marker: std::marker::PhantomData<T>,
}

impl<'a, T> Section<'a, T> {
    pub(super) fn new(kind: Option<&'a str>) -> Self {
        Section {
            kind,
            _marker: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Backend> DeserializeSeed<'de> for Section<'_, T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Backend> Visitor<'de> for Section<'_, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping with `type` (one of {})", T::TYPES.join(", "))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let Some(kind) = self.kind else {
            return Err(de::Error::missing_field("type"));
        };
        T::from_section(kind, de::value::MapAccessDeserializer::new(SkipType(map)))
    }
}

/// A map with its `type` entry hidden, so backend structs can deny unknown fields.
struct SkipType<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipType<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.0.next_key::<String>()? else {
                return Ok(None);
            };
            if key == "type" {
                self.0.next_value::<IgnoredAny>()?;
                continue;
            }
            return seed
                .deserialize(de::value::StringDeserializer::<A::Error>::new(key))
                .map(Some);
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}
