//! A schema registry's REST API, as Confluent defines it (and Apicurio,
//! Karapace and Redpanda serve it): the schema of an id, the latest schema
//! of a subject, and registering a schema under a subject. Three calls, run
//! to their end on the engine's runtime (`transform::block_on`). What was
//! fetched is kept by the caller (`avro::ConfluentShape`).
//!
//! Errors by kind: a registry that can't be reached or answers 5xx is
//! retriable (the query loop retries within `retryTimeoutMs`); 401/403 is
//! the credentials (`schema.registry.basic.auth.user.info`); a missing id
//! or subject is said as such. The credentials are never printed.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::kafka::config::Options;
use crate::transform::block_on;

pub(crate) const URL_OPTION: &str = "schema.registry.url";
pub(crate) const AUTH_OPTION: &str = "schema.registry.basic.auth.user.info";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A registry's answer that says the thing asked for is not there.
#[derive(Debug)]
pub(crate) enum Lookup<T> {
    Found(T),
    Missing,
}

pub(crate) struct Registry {
    url: String,
    /// `user:password`, from `schema.registry.basic.auth.user.info`.
    auth: Option<(String, String)>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("url", &self.url).field("auth", &self.auth.as_ref().map(|_| "<redacted>")).finish()
    }
}

impl PartialEq for Registry {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Registry {
    /// The registry the options name; an error naming `schema.registry.url` without one.
    pub(crate) fn from_options(options: &Options, needed_by: &str) -> Result<Self> {
        let Some(url) = options.get(URL_OPTION).map(|u| u.trim().trim_end_matches('/')) else {
            return Err(Error::option(URL_OPTION, format!("`{needed_by}` needs `{URL_OPTION}`, the schema registry's address"))
                .with_hint(format!("for example `{URL_OPTION} = \"http://localhost:8081\"`")));
        };
        // Credentials in the address would be printed with it: refused, and the address not repeated.
        let parsed = reqwest::Url::parse(url).ok();
        if url.contains('@') || parsed.as_ref().is_some_and(|u| !u.username().is_empty() || u.password().is_some()) {
            return Err(Error::option(URL_OPTION, format!("`{URL_OPTION}` must not hold credentials"))
                .with_hint(format!("give them as `{AUTH_OPTION} = \"user:password\"`, which is never printed")));
        }
        if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
            return Err(Error::option(URL_OPTION, format!("`{URL_OPTION}` must be an http:// or https:// address, not \"{url}\"")));
        }
        let url = url.to_string();
        let auth = match options.get(AUTH_OPTION) {
            None => None,
            Some(info) => match info.split_once(':') {
                Some((user, password)) => Some((user.to_string(), password.to_string())),
                None => return Err(Error::option(AUTH_OPTION, format!("`{AUTH_OPTION}` must be \"user:password\""))),
            },
        };
        // No idle connections kept: the first calls run on R's thread's
        // runtime, later ones on the engine's, and a pooled connection
        // belongs to the runtime that opened it. Registry calls are rare.
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| Error::internal(format!("can't make an HTTP client: {e}")))?;
        Ok(Registry { url, auth, client })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The schema (Avro JSON) registered under `id`.
    pub(crate) fn schema_by_id(&self, id: u32) -> Result<Lookup<String>> {
        let found = self.call(reqwest::Method::GET, &format!("/schemas/ids/{id}"), None)?;
        let Lookup::Found(answer) = found else { return Ok(Lookup::Missing) };
        Ok(Lookup::Found(schema_field(&answer, &format!("schema id {id}"))?))
    }

    /// The latest schema of `subject`, and its id.
    pub(crate) fn latest(&self, subject: &str) -> Result<Lookup<(u32, String)>> {
        let found = self.call(reqwest::Method::GET, &format!("/subjects/{}/versions/latest", encode(subject)), None)?;
        let Lookup::Found(answer) = found else { return Ok(Lookup::Missing) };
        Ok(Lookup::Found((id_field(&answer)?, schema_field(&answer, &format!("subject {subject}"))?)))
    }

    /// The id of `schema` under `subject`, registering it if it is new.
    pub(crate) fn register(&self, subject: &str, schema: &str) -> Result<u32> {
        let body = serde_json::json!({ "schema": schema });
        match self.call(reqwest::Method::POST, &format!("/subjects/{}/versions", encode(subject)), Some(body))? {
            Lookup::Found(answer) => id_field(&answer),
            Lookup::Missing => Err(Error::execution(format!("the schema registry at {} has no subject endpoint for {subject}", self.url))),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> Result<Lookup<serde_json::Value>> {
        let mut request = self.client.request(method, format!("{}{path}", self.url)).header("Accept", "application/vnd.schemaregistry.v1+json, application/json");
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/vnd.schemaregistry.v1+json").body(body.to_string());
        }
        let at = format!("the schema registry at {}", self.url);
        let (status, text) = block_on(async {
            let response = request.send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        })
        .map_err(|e| Error::execution(format!("can't reach {at}: {e}")).with_arg("options").retriable())?;
        let message = || serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["message"].as_str().map(String::from)).unwrap_or(text.clone());
        match status.as_u16() {
            200..=299 => serde_json::from_str(&text)
                .map(Lookup::Found)
                .map_err(|e| Error::execution(format!("{at} answered {path} with something other than JSON: {e}"))),
            404 => Ok(Lookup::Missing),
            401 | 403 => Err(Error::option(AUTH_OPTION, format!("{at} refused the credentials ({status}): {}", message()))),
            // Only registering (the sink's `value.schema`) meets these.
            409 => Err(Error::option("value.schema", format!("{at} refused the schema as incompatible with the subject's: {}", message()))),
            422 => Err(Error::option("value.schema", format!("{at} says the schema is not valid: {}", message()))),
            408 | 429 | 500..=599 => Err(Error::execution(format!("{at} failed ({status}): {}", message())).retriable()),
            _ => Err(Error::execution(format!("{at} answered {status} to {path}: {}", message()))),
        }
    }
}

fn schema_field(answer: &serde_json::Value, what: &str) -> Result<String> {
    answer["schema"].as_str().map(String::from).ok_or_else(|| Error::execution(format!("the schema registry's answer for {what} has no schema")))
}

fn id_field(answer: &serde_json::Value) -> Result<u32> {
    answer["id"].as_u64().and_then(|i| u32::try_from(i).ok()).ok_or_else(|| Error::execution("the schema registry's answer has no schema id"))
}

/// A subject as one segment of a URL path.
fn encode(subject: &str) -> String {
    subject.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
