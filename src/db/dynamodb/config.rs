//! The `database: {type: dynamodb}` options: region, table prefix, endpoint,
//! the table names they give and their validation (pure).

use serde::Deserialize;

/// `database: {type: dynamodb}` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbConfig {
    /// AWS region (e.g. `us-east-1`); default: the standard chain
    /// (`AWS_REGION`, the profile, instance metadata).
    pub region: Option<String>,
    /// Table name prefix: the tables are `PREFIX.faults` and
    /// `PREFIX.squelches` (a prefix ending in `.` gets no second one).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Another endpoint, e.g. a local DynamoDB-compatible server for tests;
    /// default: AWS's endpoint for the region. An absolute http(s) URL,
    /// checked as the file is read (`http_url`).
    #[serde(default, deserialize_with = "crate::http_url::deserialize_option")]
    pub endpoint_url: Option<String>,
    /// `history: {retention: 30d}` (SPEC §12): the TTL given to each record.
    #[serde(default)]
    pub history: crate::history::HistoryConfig,
}

fn default_prefix() -> String {
    "cimaa".to_owned()
}

impl DynamoDbConfig {
    /// The name of table `kind` (`faults` or `squelches`), as zc.cimaa names it.
    #[must_use]
    pub fn table(&self, kind: &str) -> String {
        if self.prefix.ends_with('.') {
            format!("{}{kind}", self.prefix)
        } else {
            format!("{}.{kind}", self.prefix)
        }
    }

    /// Problems of the options, one sentence each (pure).
    #[must_use]
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        // DynamoDB table names: 3-255 characters of `a-z A-Z 0-9 _ - .`.
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if self.prefix.is_empty() || !self.prefix.chars().all(allowed) {
            problems.push(format!(
                "database.prefix: `{}` must be letters, digits, `_`, `-` or `.`",
                self.prefix
            ));
        } else if self.table("squelches").len() > 255 {
            problems.push("database.prefix: too long for a DynamoDB table name".to_owned());
        }
        if let Some(region) = &self.region
            && region.trim().is_empty()
        {
            problems.push("database.region: must not be empty".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_zc_cimaa() {
        let mut config = DynamoDbConfig {
            region: Some("us-east-1".into()),
            prefix: "cimaa".into(),
            endpoint_url: None,
            history: crate::history::HistoryConfig::default(),
        };
        assert_eq!(config.table("faults"), "cimaa.faults");
        config.prefix = "prod.".into();
        assert_eq!(config.table("squelches"), "prod.squelches");
        config.prefix = "bad prefix".into();
        assert_eq!(
            config.validate(),
            ["database.prefix: `bad prefix` must be letters, digits, `_`, `-` or `.`"]
        );
    }
}
