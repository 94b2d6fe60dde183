//! AWS SDK errors as people read them, for both AWS backends (the DynamoDB
//! database and the Kinesis metric sink).
//!
//! The SDK's own rendering says too little or far too much: the top-level
//! message is `dispatch failure` or `service error`, the useful part sits
//! several causes down, and `DisplayErrorContext` (which aws-config's own
//! warnings use) appends a Debug dump of the whole tree
//! (`ProviderError(ProviderError { source: FailedToLoadToken(...`).
//! `describe` turns one error into one sentence that says what failed and
//! what to do about it: where credentials are looked up when there are
//! none, which key sets the region, which endpoint could not be reached and
//! the key that changes it, or the service's error code and message. The
//! full Debug form goes to the log at debug level (target `cimaa::aws`),
//! for whoever needs the SDK's detail.
//!
//! `LOG_DIRECTIVES` quiets the aws-config warnings that repeat those dumps
//! on every failed request (logging sets them unless the operator's own
//! directives name `aws_config`). What each backend does with a failure
//! (retry, drop, report) stays with the backend.

use std::error::Error;
use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Log filter directives added to the user's: aws-config logs a warning
/// with a Debug dump each time a credentials provider or the instance
/// metadata region lookup fails, which `describe` already says in one line.
pub(crate) const LOG_DIRECTIVES: &[&str] = &[
    "aws_config::meta::credentials::chain=error",
    "aws_config::imds::region=error",
];

/// Longest cause quoted in a sentence, in characters.
const CAUSE_CHARS: usize = 300;

/// Where an AWS client sends its requests, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The service as people name it: `DynamoDB`, `Kinesis`.
    pub service: &'static str,
    /// The service's endpoint prefix: `dynamodb`, `kinesis`.
    pub prefix: &'static str,
    /// The configuration section of the client: `database`, `metrics`.
    pub section: &'static str,
    /// The configured `endpoint_url`, if any.
    pub endpoint_url: Option<String>,
    /// The region the client signs for, if any.
    pub region: Option<String>,
}

impl Target {
    /// The endpoint requests go to: `endpoint_url`, else AWS's endpoint of
    /// the service in the region.
    #[must_use]
    pub(crate) fn endpoint(&self) -> String {
        if let Some(url) = &self.endpoint_url {
            return url.clone();
        }
        match &self.region {
            Some(region) if region.starts_with("cn-") => {
                format!("https://{}.{region}.amazonaws.com.cn", self.prefix)
            }
            Some(region) => format!("https://{}.{region}.amazonaws.com", self.prefix),
            None => format!("the AWS {} endpoint", self.service),
        }
    }

    /// What to do when the endpoint cannot be reached.
    fn endpoint_hint(&self) -> String {
        if self.endpoint_url.is_some() {
            format!("check `{}.endpoint_url`", self.section)
        } else {
            format!(
                "check the network, or set `{}.endpoint_url` when {} is reached through \
                 another endpoint (a VPC endpoint, a local server)",
                self.section, self.service
            )
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at `{}`", self.service, self.endpoint())
    }
}

/// Where the default credentials chain looks, in its order.
const CREDENTIALS_HINT: &str = "they are looked up in the environment variables \
    `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, then in the profile that `AWS_PROFILE` \
    names (else `default`) in `~/.aws/credentials` and `~/.aws/config`, then through a web \
    identity token, the ECS task role and the EC2 instance role";

/// One SDK error as one sentence with a hint, the Debug detail logged at
/// debug level.
#[must_use]
pub(crate) fn describe<E>(error: &SdkError<E, HttpResponse>, target: &Target) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    tracing::debug!(service = target.service, endpoint = %target.endpoint(), error = ?error, "AWS SDK error in full");
    if let Some(credentials) = find::<CredentialsError>(error) {
        return no_credentials(credentials);
    }
    if target.region.is_none() {
        return format!(
            "no AWS region for {}: set `{}.region` or the `AWS_REGION` environment variable",
            target.service, target.section
        );
    }
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            service_error(error.code(), error.message(), status, target)
        }
        SdkError::TimeoutError(_) => format!(
            "{target} did not answer in time; {}",
            target.endpoint_hint()
        ),
        SdkError::DispatchFailure(dispatch) if dispatch.is_timeout() => format!(
            "cannot connect to {target}: timed out; {}",
            target.endpoint_hint()
        ),
        SdkError::DispatchFailure(dispatch) if dispatch.is_io() => {
            format!(
                "cannot connect to {target}: {}; {}",
                connection_problem(error),
                target.endpoint_hint()
            )
        }
        SdkError::ResponseError(_) => format!(
            "{target} sent an answer that cannot be read: {}",
            innermost(error)
        ),
        SdkError::ConstructionFailure(_) => format!(
            "cannot build the {} request: {}",
            target.service,
            innermost(error)
        ),
        _ => format!("{} request failed: {}", target.service, innermost(error)),
    }
}

/// The first error of type `T` in the chain from `error` down.
fn find<'a, T: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a T> {
    crate::error::causes(Some(error)).find_map(|cause| cause.downcast_ref::<T>())
}

/// The sentence for credentials that could not be loaded.
fn no_credentials(error: &CredentialsError) -> String {
    let why = match error {
        // Its cause lists every provider of the chain on lines of its own:
        // the debug log has it, and the hint says the same in order.
        CredentialsError::CredentialsNotLoaded(_) => {
            return format!("no AWS credentials found; {CREDENTIALS_HINT}");
        }
        CredentialsError::ProviderTimedOut(timeout) => format!(
            "the credentials provider timed out after {}s",
            timeout.timeout_duration().as_secs_f64()
        ),
        CredentialsError::InvalidConfiguration(_) => format!(
            "their configuration is invalid: {}",
            causes_text(error.source())
        ),
        _ => format!("loading them failed: {}", causes_text(error.source())),
    };
    format!("no usable AWS credentials: {why}; {CREDENTIALS_HINT}")
}

/// What a connection failure came down to: refused, a name that does not
/// resolve, or the innermost cause.
fn connection_problem(error: &(dyn Error + 'static)) -> String {
    if let Some(io) = find::<std::io::Error>(error)
        && io.kind() == std::io::ErrorKind::ConnectionRefused
    {
        return "connection refused".into();
    }
    let dns = crate::error::causes(Some(error)).any(|cause| {
        let text = cause.to_string();
        text.contains("dns error") || text.contains("failed to lookup address")
    });
    if dns {
        return format!("the host name does not resolve ({})", innermost(error));
    }
    innermost(error)
}

/// A service's refusal: its code and message, with a hint for the codes
/// that mean the credentials are wrong or lack a permission.
fn service_error(
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
    target: &Target,
) -> String {
    let message = message.map(one_line).filter(|m| !m.is_empty());
    let Some(code) = code else {
        return match message {
            Some(message) => format!("{target} answered HTTP {status}: {message}"),
            None => format!("{target} answered HTTP {status}"),
        };
    };
    let hint = match code {
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch" => " (the AWS credentials are not valid: check them)",
        "ExpiredTokenException" | "ExpiredToken" => " (the AWS credentials have expired)",
        "AccessDeniedException" | "AccessDenied" => {
            " (the AWS credentials lack an IAM permission this needs)"
        }
        _ => "",
    };
    match message {
        Some(message) => format!("{code}: {message}{hint}"),
        None => format!("{code} (HTTP {status}){hint}"),
    }
}

/// The innermost cause's text on one line (the outer ones, such as
/// `dispatch failure` or `io error`, say less), cut to `CAUSE_CHARS`.
fn innermost(error: &(dyn Error + 'static)) -> String {
    let last = crate::error::causes(Some(error))
        .last()
        .map(ToString::to_string)
        .unwrap_or_default();
    shorten(&one_line(&last))
}

/// The causes from `first` down, joined by `: ` on one line.
fn causes_text(first: Option<&(dyn Error + 'static)>) -> String {
    let mut text = String::new();
    crate::error::push_causes(&mut text, first);
    let text = one_line(text.trim_start_matches(": "));
    shorten(text.trim_end_matches('.'))
}

/// `text` with its line breaks and runs of spaces folded into one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `CAUSE_CHARS` characters of `text`.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(CAUSE_CHARS) {
        Some((cut, _)) => format!("{} ...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// A service error as the SDKs' operation errors carry it.
    #[derive(Debug)]
    struct Service(ErrorMetadata);

    impl fmt::Display for Service {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("service error")
        }
    }

    impl Error for Service {}

    impl ProvideErrorMetadata for Service {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    type Failure = SdkError<Service, HttpResponse>;

    fn target(endpoint_url: Option<&str>) -> Target {
        Target {
            service: "DynamoDB",
            prefix: "dynamodb",
            section: "database",
            endpoint_url: endpoint_url.map(str::to_string),
            region: Some("eu-west-1".into()),
        }
    }

    /// A credentials failure as the SDK reports it: a dispatch failure
    /// whose cause is the credentials chain's error.
    fn credentials_failure(error: CredentialsError) -> Failure {
        SdkError::dispatch_failure(ConnectorError::other(Box::new(error), None))
    }

    #[test]
    fn missing_credentials_say_where_they_are_looked_up() {
        let error = credentials_failure(CredentialsError::not_loaded(
            "no credentials found in chain. Attempted:\n  Environment: not set\n  Profile: not set",
        ));
        let text = describe(&error, &target(None));
        assert!(
            text.starts_with("no AWS credentials found; they are looked up in "),
            "{text}"
        );
        for word in [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "~/.aws/credentials",
            "instance role",
        ] {
            assert!(text.contains(word), "{word}: {text}");
        }
        assert!(!text.contains('\n'), "{text}");
        assert!(!text.contains("Attempted"), "{text}");
    }

    #[test]
    fn credentials_that_fail_to_load_say_why_on_one_line() {
        let error = credentials_failure(CredentialsError::provider_error(
            "failed to load IMDS session token:\n request forbidden.",
        ));
        let text = describe(&error, &target(None));
        assert!(
            text.starts_with(
                "no usable AWS credentials: loading them failed: failed to load IMDS session token: request forbidden; they are looked up in"
            ),
            "{text}"
        );
        let error =
            credentials_failure(CredentialsError::provider_timed_out(Duration::from_secs(5)));
        let text = describe(&error, &target(None));
        assert!(
            text.starts_with(
                "no usable AWS credentials: the credentials provider timed out after 5s;"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_missing_region_names_both_places_to_set_it() {
        let mut target = target(None);
        target.region = None;
        let error: Failure =
            SdkError::construction_failure("Invalid Configuration: Missing Region");
        assert_eq!(
            describe(&error, &target),
            "no AWS region for DynamoDB: set `database.region` or the `AWS_REGION` environment variable"
        );
    }

    #[test]
    fn a_refused_connection_names_the_endpoint_and_its_key() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error: Failure = SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        assert_eq!(
            describe(&error, &target(Some("http://127.0.0.1:9"))),
            "cannot connect to DynamoDB at `http://127.0.0.1:9`: connection refused; check `database.endpoint_url`"
        );
        assert_eq!(
            describe(&error, &target(None)),
            "cannot connect to DynamoDB at `https://dynamodb.eu-west-1.amazonaws.com`: connection refused; check the network, or set `database.endpoint_url` when DynamoDB is reached through another endpoint (a VPC endpoint, a local server)"
        );
    }

    #[test]
    fn a_name_that_does_not_resolve_is_said_so() {
        let lookup = std::io::Error::other("dns error: failed to lookup address information");
        let error: Failure = SdkError::dispatch_failure(ConnectorError::io(Box::new(lookup)));
        assert_eq!(
            describe(&error, &target(Some("http://dynamo.invalid:8000"))),
            "cannot connect to DynamoDB at `http://dynamo.invalid:8000`: the host name does not resolve (dns error: failed to lookup address information); check `database.endpoint_url`"
        );
    }

    #[test]
    fn timeouts_name_the_endpoint() {
        let error: Failure =
            SdkError::dispatch_failure(ConnectorError::timeout("connect timed out".into()));
        assert_eq!(
            describe(&error, &target(Some("http://10.0.0.1:8000"))),
            "cannot connect to DynamoDB at `http://10.0.0.1:8000`: timed out; check `database.endpoint_url`"
        );
        let error: Failure = SdkError::timeout_error("operation attempt timed out");
        assert_eq!(
            describe(&error, &target(Some("http://10.0.0.1:8000"))),
            "DynamoDB at `http://10.0.0.1:8000` did not answer in time; check `database.endpoint_url`"
        );
    }

    fn service_failure(code: Option<&str>, message: &str, status: u16) -> Failure {
        let mut meta = ErrorMetadata::builder().message(message);
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(Service(meta.build()), raw)
    }

    #[test]
    fn service_errors_are_their_code_and_message() {
        let error = service_failure(
            Some("ResourceNotFoundException"),
            "Requested resource not found",
            400,
        );
        assert_eq!(
            describe(&error, &target(None)),
            "ResourceNotFoundException: Requested resource not found"
        );
        let error = service_failure(
            Some("UnrecognizedClientException"),
            "The security token included in the request is invalid.",
            400,
        );
        assert_eq!(
            describe(&error, &target(None)),
            "UnrecognizedClientException: The security token included in the request is invalid. (the AWS credentials are not valid: check them)"
        );
        let error = service_failure(None, "", 503);
        assert_eq!(
            describe(&error, &target(Some("http://127.0.0.1:8000"))),
            "DynamoDB at `http://127.0.0.1:8000` answered HTTP 503"
        );
    }

    #[test]
    fn other_failures_keep_only_their_innermost_cause() {
        let error: Failure = SdkError::construction_failure("bad\nrequest   input");
        assert_eq!(
            describe(&error, &target(None)),
            "cannot build the DynamoDB request: bad request input"
        );
        let long = "x".repeat(400);
        let error: Failure = SdkError::construction_failure(long);
        assert_eq!(
            describe(&error, &target(None)),
            format!("cannot build the DynamoDB request: {} ...", "x".repeat(300))
        );
    }

    #[test]
    fn china_regions_have_their_own_domain() {
        let mut target = target(None);
        target.region = Some("cn-north-1".into());
        assert_eq!(
            target.endpoint(),
            "https://dynamodb.cn-north-1.amazonaws.com.cn"
        );
    }
}
