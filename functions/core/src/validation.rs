//! Input rules of the configuration API (SPEC §7): the syntax of webhook and API key bodies.
//!
//! Each parser takes the request body as JSON and either returns a typed value or the first
//! [`FieldError`], whose `field` is a path into the body (`url`, `events[2]`,
//! `scopes[1].company_id`, `headers.X-Foo`; empty for the body itself). Unknown fields, wrong
//! types and `null` where it means nothing are refused.
//!
//! Only syntax lives here. Whether the URL's host resolves to a permitted address (`ssrf`) and
//! whether the key holds a scope's company (a 403, checked after every 400) are decided by the
//! caller, which has the resolver and the key.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use url::Url;

use crate::catalog;
use crate::event::is_identifier;
use crate::filters::{Filter, parse_filters};
use crate::model::{Permission, Scope, SignatureScheme};
use crate::rate_limit::MAX_RATE_LIMIT;

/// Longest accepted webhook URL, before and after normalisation.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest webhook name: a label, not a document.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest webhook description.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Most scopes per webhook: each is one match-index item to write.
pub const MAX_SCOPES: usize = 100;
/// Most custom headers per webhook.
pub const MAX_HEADERS: usize = 10;
/// Longest custom header name.
pub const MAX_HEADER_NAME_CHARS: usize = 64;
/// Longest custom header value.
pub const MAX_HEADER_VALUE_CHARS: usize = 1024;
/// Longest API key name.
pub const MAX_KEY_NAME_CHARS: usize = 100;
/// Most companies one API key may hold.
pub const MAX_KEY_COMPANIES: usize = 100;
/// How long the old secret keeps signing after a rotation, unless the request says otherwise.
pub const DEFAULT_GRACE_SECONDS: u32 = 86_400;
/// Longest grace period: a week is enough to deploy a new secret anywhere.
pub const MAX_GRACE_SECONDS: u32 = 604_800;

/// Header names the service sets itself, or that change how HTTP carries the request.
const FORBIDDEN_HEADER_NAMES: [&str; 9] =
    ["host", "user-agent", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"];
/// Header name prefixes reserved for the body's framing, the signature and proxies.
const FORBIDDEN_HEADER_PREFIXES: [&str; 3] = ["content-", "webhook-", "proxy-"];

pub const WEBHOOK_FIELDS: [&str; 9] =
    ["url", "name", "description", "events", "scopes", "headers", "rate_limit", "filters", "signature_scheme"];
pub const SCOPE_FIELDS: [&str; 2] = ["company_id", "project_id"];
pub const KEY_FIELDS: [&str; 3] = ["name", "companies", "permissions"];
pub const ROTATE_FIELDS: [&str; 1] = ["grace_seconds"];

/// A refused input: where (`field`, a path into the body; empty for the body as a whole) and
/// why (`message`, a sentence naming the field that a user can act on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Which URL schemes are accepted: `https` always, `http` only when `WEBHOOKS_ALLOW_HTTP=true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    pub allow_http: bool,
}

/// A valid `POST /v1/webhooks` body. Lists are de-duplicated, first occurrence kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookCreate {
    pub url: Url,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Empty = every subscribable type.
    pub events: Vec<String>,
    /// Empty = every company of the owner key.
    pub scopes: Vec<Scope>,
    /// Names as given; unique case-insensitively.
    pub headers: BTreeMap<String, String>,
    /// Requests per second at most (SPEC §10); `None`: no limit.
    pub rate_limit: Option<u32>,
    /// Empty = every event the selection picks (`filters`).
    pub filters: Vec<Filter>,
    /// Left out: `v1`.
    pub signature_scheme: SignatureScheme,
}

/// A valid `PATCH /v1/webhooks/{id}` body: `None` leaves a field unchanged; lists and `headers`
/// replace the current ones whole; `Some(None)` clears `name` or `description`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookPatch {
    pub url: Option<Url>,
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub events: Option<Vec<String>>,
    pub scopes: Option<Vec<Scope>>,
    pub headers: Option<BTreeMap<String, String>>,
    /// `Some(None)` removes the limit.
    pub rate_limit: Option<Option<u32>>,
    pub filters: Option<Vec<Filter>>,
    pub signature_scheme: Option<SignatureScheme>,
}

impl WebhookPatch {
    /// Whether the patch changes nothing (an empty object is a valid no-op).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A valid `POST /v1/api-keys` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCreate {
    pub name: String,
    pub companies: Vec<String>,
    pub permissions: Vec<Permission>,
}

/// A valid `PATCH /v1/api-keys/{id}` body: `None` leaves a field unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub companies: Option<Vec<String>>,
    pub permissions: Option<Vec<Permission>>,
}

/// Checks a webhook URL's syntax: at most 2048 characters (as given and once normalised), no
/// whitespace or control characters (URL parsers silently drop some), parses, scheme `https`
/// (or `http` when allowed), a host, no user name or password, no fragment.
///
/// Returns the normalised URL; IPv4 hosts written in decimal, octal or hex are already in
/// dotted form, ready for `ssrf::host_literal`.
pub fn validate_url(s: &str, p: UrlPolicy) -> Result<Url, FieldError> {
    let refuse = |message: &str| Err(FieldError::new("url", format!("`url` {message}")));
    if s.chars().count() > MAX_URL_CHARS {
        return refuse("must be at most 2048 characters");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("must not contain spaces or control characters");
    }
    let Ok(url) = Url::parse(s) else {
        return refuse("must be an absolute URL like https://example.com/hooks");
    };
    match url.scheme() {
        "https" => {}
        "http" if p.allow_http => {}
        _ if p.allow_http => return refuse("must use http or https"),
        _ => return refuse("must use https"),
    }
    if url.host().is_none() {
        return refuse("must have a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("must not contain a user name or password");
    }
    if url.fragment().is_some() {
        return refuse("must not contain a fragment (#...)");
    }
    if url.as_str().chars().count() > MAX_URL_CHARS {
        return refuse("must be at most 2048 characters once normalised");
    }
    Ok(url)
}

/// Parses a `POST /v1/webhooks` body: `{url, name?, description?, events?, scopes?, headers?,
/// rate_limit?, filters?, signature_scheme?}` (`filters`: `filters::parse_filters`).
///
/// `name` and `description` may be `null` (= none); the lists and `headers` may be omitted but
/// not `null`.
pub fn parse_webhook_create(v: &Value, p: UrlPolicy) -> Result<WebhookCreate, FieldError> {
    let body = body_object(v, &WEBHOOK_FIELDS)?;
    let url = match body.get("url") {
        Some(v) => validate_url(string(v, "url")?, p)?,
        None => return Err(required("url")),
    };
    Ok(WebhookCreate {
        url,
        name: body.get("name").map(|v| nullable(v, |v| name(v, "name"))).transpose()?.flatten(),
        description: body
            .get("description")
            .map(|v| nullable(v, |v| description(v, "description")))
            .transpose()?
            .flatten(),
        events: body.get("events").map(events).transpose()?.unwrap_or_default(),
        scopes: body.get("scopes").map(scopes).transpose()?.unwrap_or_default(),
        headers: body.get("headers").map(headers).transpose()?.unwrap_or_default(),
        rate_limit: body.get("rate_limit").map(|v| nullable(v, rate_limit)).transpose()?.flatten(),
        filters: body.get("filters").map(parse_filters).transpose()?.unwrap_or_default(),
        signature_scheme: body.get("signature_scheme").map(signature_scheme).transpose()?.unwrap_or_default(),
    })
}

/// Parses a `PATCH /v1/webhooks/{id}` body: every field optional; `null` clears `name`,
/// `description` or `rate_limit` and is refused for `url`, `events`, `scopes`, `headers` and
/// `filters`.
pub fn parse_webhook_patch(v: &Value, p: UrlPolicy) -> Result<WebhookPatch, FieldError> {
    let body = body_object(v, &WEBHOOK_FIELDS)?;
    Ok(WebhookPatch {
        url: body
            .get("url")
            .map(|v| not_null(v, "url").and_then(|v| validate_url(string(v, "url")?, p)))
            .transpose()?,
        name: body.get("name").map(|v| nullable(v, |v| name(v, "name"))).transpose()?,
        description: body.get("description").map(|v| nullable(v, |v| description(v, "description"))).transpose()?,
        events: body.get("events").map(|v| not_null(v, "events").and_then(events)).transpose()?,
        scopes: body.get("scopes").map(|v| not_null(v, "scopes").and_then(scopes)).transpose()?,
        headers: body.get("headers").map(|v| not_null(v, "headers").and_then(headers)).transpose()?,
        rate_limit: body.get("rate_limit").map(|v| nullable(v, rate_limit)).transpose()?,
        filters: body.get("filters").map(|v| not_null(v, "filters").and_then(parse_filters)).transpose()?,
        signature_scheme: body.get("signature_scheme").map(signature_scheme).transpose()?,
    })
}

/// Parses a `POST /v1/api-keys` body: `name` (1–100 characters), `companies` (1–100
/// identifiers) and `permissions` (a non-empty subset of `manage`, `publish`), all required.
pub fn parse_key_create(v: &Value) -> Result<KeyCreate, FieldError> {
    let body = body_object(v, &KEY_FIELDS)?;
    let field = |name: &str| body.get(name).ok_or_else(|| required(name));
    Ok(KeyCreate {
        name: key_name(field("name")?)?,
        companies: companies(field("companies")?)?,
        permissions: permissions(field("permissions")?)?,
    })
}

/// Parses a `PATCH /v1/api-keys/{id}` body: the fields of [`parse_key_create`], each optional,
/// none `null`.
pub fn parse_key_patch(v: &Value) -> Result<KeyPatch, FieldError> {
    let body = body_object(v, &KEY_FIELDS)?;
    Ok(KeyPatch {
        name: body.get("name").map(|v| not_null(v, "name").and_then(key_name)).transpose()?,
        companies: body.get("companies").map(|v| not_null(v, "companies").and_then(companies)).transpose()?,
        permissions: body.get("permissions").map(|v| not_null(v, "permissions").and_then(permissions)).transpose()?,
    })
}

/// Parses a `POST /v1/webhooks/{id}/rotate-secret` body (`None` = no body): `{grace_seconds?}`,
/// a whole number from 0 to 604800, default 86400. Returns the grace period in seconds.
pub fn parse_rotate_secret(v: Option<&Value>) -> Result<u32, FieldError> {
    let Some(v) = v else { return Ok(DEFAULT_GRACE_SECONDS) };
    let body = body_object(v, &ROTATE_FIELDS)?;
    let Some(grace) = body.get("grace_seconds") else { return Ok(DEFAULT_GRACE_SECONDS) };
    // JSON has one number type: `60.0` is the whole number 60 (as JSON Schema's `integer` says).
    let whole = grace.as_u64().or_else(|| {
        grace
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(MAX_GRACE_SECONDS)).contains(f))
            .map(|f| f as u64)
    });
    whole.and_then(|n| u32::try_from(n).ok()).filter(|n| *n <= MAX_GRACE_SECONDS).ok_or_else(|| {
        let message = format!("`grace_seconds` must be a whole number from 0 to {MAX_GRACE_SECONDS}");
        FieldError::new("grace_seconds", message)
    })
}

/// The body as an object with only `known` fields.
fn body_object<'a>(v: &'a Value, known: &[&str]) -> Result<&'a Map<String, Value>, FieldError> {
    let Value::Object(body) = v else {
        return Err(FieldError::new("", "the body must be a JSON object"));
    };
    refuse_unknown(body, known, "")?;
    Ok(body)
}

/// Refuses the first field of `object` not in `known`; `prefix` locates the object.
fn refuse_unknown(object: &Map<String, Value>, known: &[&str], prefix: &str) -> Result<(), FieldError> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => {
            let field = if prefix.is_empty() { unknown.clone() } else { format!("{prefix}.{unknown}") };
            Err(FieldError::new(&field, format!("`{field}` is not a known field")))
        }
        None => Ok(()),
    }
}

fn required(field: &str) -> FieldError {
    FieldError::new(field, format!("`{field}` is required"))
}

/// `v`, unless it is `null` (which means nothing for `field`: omit it to keep the value).
fn not_null<'a>(v: &'a Value, field: &str) -> Result<&'a Value, FieldError> {
    if v.is_null() {
        Err(FieldError::new(field, format!("`{field}` cannot be null; omit it to leave it unchanged")))
    } else {
        Ok(v)
    }
}

/// `signature_scheme`: `v1` or `v1a` (never `null`: omit it for the default or to keep it).
fn signature_scheme(v: &Value) -> Result<SignatureScheme, FieldError> {
    v.as_str()
        .and_then(SignatureScheme::from_name)
        .ok_or_else(|| FieldError::new("signature_scheme", "`signature_scheme` must be `v1` or `v1a`"))
}

/// `None` for `null`, else what `parse` makes of `v`.
fn nullable<T>(v: &Value, parse: impl FnOnce(&Value) -> Result<T, FieldError>) -> Result<Option<T>, FieldError> {
    if v.is_null() { Ok(None) } else { parse(v).map(Some) }
}

fn string<'a>(v: &'a Value, field: &str) -> Result<&'a str, FieldError> {
    v.as_str().ok_or_else(|| FieldError::new(field, format!("`{field}` must be a string")))
}

fn array<'a>(v: &'a Value, field: &str) -> Result<&'a [Value], FieldError> {
    v.as_array().map(Vec::as_slice).ok_or_else(|| FieldError::new(field, format!("`{field}` must be an array")))
}

/// A single-line label: at most `max` characters, no control characters.
fn label(v: &Value, field: &str, min: usize, max: usize) -> Result<String, FieldError> {
    let s = string(v, field)?;
    let chars = s.chars().count();
    if chars < min || chars > max {
        let range = if min == 0 { format!("at most {max}") } else { format!("{min} to {max}") };
        return Err(FieldError::new(field, format!("`{field}` must be {range} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(field, format!("`{field}` must not contain control characters")));
    }
    Ok(s.to_owned())
}

fn name(v: &Value, field: &str) -> Result<String, FieldError> {
    label(v, field, 0, MAX_NAME_CHARS)
}

/// Free text: at most 1000 characters; line breaks and tabs allowed, other controls not.
fn description(v: &Value, field: &str) -> Result<String, FieldError> {
    let s = string(v, field)?;
    if s.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(FieldError::new(field, format!("`{field}` must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    if s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(FieldError::new(field, format!("`{field}` must not contain control characters")));
    }
    Ok(s.to_owned())
}

fn key_name(v: &Value) -> Result<String, FieldError> {
    label(v, "name", 1, MAX_KEY_NAME_CHARS)
}

/// Pushes `item` unless already present: de-duplication that keeps the first occurrence.
fn push_unique<T: PartialEq>(items: &mut Vec<T>, item: T) {
    if !items.contains(&item) {
        items.push(item);
    }
}

/// `events`: subscribable types from the catalog.
/// `rate_limit`: a whole number of requests per second, 1 to 1000.
fn rate_limit(v: &Value) -> Result<u32, FieldError> {
    v.as_u64().filter(|n| (1..=u64::from(MAX_RATE_LIMIT)).contains(n)).and_then(|n| u32::try_from(n).ok()).ok_or_else(
        || {
            FieldError::new(
                "rate_limit",
                format!(
                    "`rate_limit` must be a whole number of requests per second from 1 to {MAX_RATE_LIMIT}, or null"
                ),
            )
        },
    )
}

fn events(v: &Value) -> Result<Vec<String>, FieldError> {
    let mut out = Vec::new();
    for (i, item) in array(v, "events")?.iter().enumerate() {
        let field = format!("events[{i}]");
        let event_type = string(item, &field)?;
        if catalog::subscribable(event_type).is_none() {
            return Err(FieldError::new(
                &field,
                format!("`{field}`: `{event_type}` is not a subscribable event type (see GET /v1/event-types)"),
            ));
        }
        push_unique(&mut out, event_type.to_owned());
    }
    Ok(out)
}

fn identifier(v: &Value, field: &str) -> Result<String, FieldError> {
    let s = string(v, field)?;
    if is_identifier(s) {
        Ok(s.to_owned())
    } else {
        Err(FieldError::new(field, format!("`{field}` must match [A-Za-z0-9_-]{{1,64}}")))
    }
}

/// `scopes`: at most 100 (as sent) `{company_id, project_id?}` objects.
fn scopes(v: &Value) -> Result<Vec<Scope>, FieldError> {
    let items = array(v, "scopes")?;
    if items.len() > MAX_SCOPES {
        return Err(FieldError::new("scopes", format!("`scopes` must have at most {MAX_SCOPES} entries")));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("scopes[{i}]");
        let Value::Object(scope) = item else {
            return Err(FieldError::new(&field, format!("`{field}` must be an object")));
        };
        refuse_unknown(scope, &SCOPE_FIELDS, &field)?;
        let company_field = format!("{field}.company_id");
        let company_id = identifier(scope.get("company_id").ok_or_else(|| required(&company_field))?, &company_field)?;
        let project_field = format!("{field}.project_id");
        let project_id =
            scope.get("project_id").map(|v| nullable(v, |v| identifier(v, &project_field))).transpose()?.flatten();
        push_unique(&mut out, Scope { company_id, project_id });
    }
    Ok(out)
}

/// RFC 9110 `tchar`: what a header name (a `token`) is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether the service must own this header (compared case-insensitively).
fn is_forbidden_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    FORBIDDEN_HEADER_NAMES.contains(&lower.as_str()) || FORBIDDEN_HEADER_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// A header value: at most 1024 visible ASCII characters (0x21–0x7E) and spaces, no space at
/// either end (HTTP would strip it). Tabs, other controls and non-ASCII are refused. Empty is
/// allowed.
fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) && !s.starts_with(' ') && !s.ends_with(' ')
}

/// `headers`: at most 10 names (tokens, ≤ 64 characters, not reserved, unique ignoring case)
/// with string values.
fn headers(v: &Value) -> Result<BTreeMap<String, String>, FieldError> {
    let Value::Object(items) = v else {
        return Err(FieldError::new("headers", "`headers` must be an object of header names to values"));
    };
    if items.len() > MAX_HEADERS {
        return Err(FieldError::new("headers", format!("`headers` must have at most {MAX_HEADERS} entries")));
    }
    let mut out = BTreeMap::new();
    for (name, value) in items {
        let field = format!("headers.{name}");
        if name.is_empty() || name.len() > MAX_HEADER_NAME_CHARS || !name.bytes().all(is_tchar) {
            return Err(FieldError::new(
                &field,
                format!("`{field}`: a header name is 1 to {MAX_HEADER_NAME_CHARS} letters, digits or !#$%&'*+-.^_`|~"),
            ));
        }
        if is_forbidden_header(name) {
            return Err(FieldError::new(&field, format!("`{field}`: the service sets this header itself")));
        }
        if out.keys().any(|seen: &String| seen.eq_ignore_ascii_case(name)) {
            return Err(FieldError::new(&field, format!("`{field}` repeats a header name (names ignore case)")));
        }
        let value = string(value, &field)?;
        if value.len() > MAX_HEADER_VALUE_CHARS || !is_header_value(value) {
            return Err(FieldError::new(
                &field,
                format!(
                    "`{field}` must be at most {MAX_HEADER_VALUE_CHARS} visible ASCII characters \
                     (inner spaces allowed)"
                ),
            ));
        }
        out.insert(name.clone(), value.to_owned());
    }
    Ok(out)
}

/// `companies`: 1 to 100 (as sent) identifiers.
fn companies(v: &Value) -> Result<Vec<String>, FieldError> {
    let items = array(v, "companies")?;
    if items.is_empty() || items.len() > MAX_KEY_COMPANIES {
        return Err(FieldError::new("companies", format!("`companies` must have 1 to {MAX_KEY_COMPANIES} entries")));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        push_unique(&mut out, identifier(item, &format!("companies[{i}]"))?);
    }
    Ok(out)
}

/// `permissions`: a non-empty list of `manage` and `publish`.
fn permissions(v: &Value) -> Result<Vec<Permission>, FieldError> {
    let items = array(v, "permissions")?;
    if items.is_empty() {
        return Err(FieldError::new("permissions", "`permissions` must not be empty"));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("permissions[{i}]");
        let permission = Permission::from_name(string(item, &field)?)
            .ok_or_else(|| FieldError::new(&field, format!("`{field}` must be `manage` or `publish`")))?;
        push_unique(&mut out, permission);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const HTTPS_ONLY: UrlPolicy = UrlPolicy { allow_http: false };
    const HTTP_ALLOWED: UrlPolicy = UrlPolicy { allow_http: true };

    fn field_of<T>(r: Result<T, FieldError>) -> Result<T, String> {
        r.map_err(|e| {
            assert!(!e.message.is_empty());
            e.field
        })
    }

    #[test]
    fn url_table() {
        let long_path = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS - 20));
        let too_long = format!("{long_path}a");
        // Within 2048 as given, longer once non-ASCII path characters are percent-encoded.
        let grows = format!("https://example.com/{}", "é".repeat(MAX_URL_CHARS - 20));
        // (input, policy, accepted normalised URL or refused)
        #[rustfmt::skip]
        let cases: Vec<(&str, UrlPolicy, Option<&str>)> = vec![
            ("https://example.com/hooks", HTTPS_ONLY, Some("https://example.com/hooks")),
            ("https://example.com", HTTPS_ONLY, Some("https://example.com/")),
            ("HTTPS://EXAMPLE.com:8443/a?b=c", HTTPS_ONLY, Some("https://example.com:8443/a?b=c")),
            ("https://example.com:443/", HTTPS_ONLY, Some("https://example.com/")),
            ("https://bücher.example/", HTTPS_ONLY, Some("https://xn--bcher-kva.example/")),
            ("https://[2606:4700::1111]/x", HTTPS_ONLY, Some("https://[2606:4700::1111]/x")),
            ("http://example.com/", HTTP_ALLOWED, Some("http://example.com/")),
            ("https://example.com/", HTTP_ALLOWED, Some("https://example.com/")),
            (long_path.as_str(), HTTPS_ONLY, Some(long_path.as_str())),
            ("http://example.com/", HTTPS_ONLY, None),
            ("ftp://example.com/", HTTP_ALLOWED, None),
            ("ws://example.com/", HTTP_ALLOWED, None),
            ("file:///etc/passwd", HTTP_ALLOWED, None),
            ("data:text/plain,hi", HTTP_ALLOWED, None),
            ("mailto:a@example.com", HTTPS_ONLY, None),
            ("example.com/hooks", HTTPS_ONLY, None),
            ("//example.com/hooks", HTTPS_ONLY, None),
            ("/hooks", HTTPS_ONLY, None),
            ("", HTTPS_ONLY, None),
            ("https://", HTTPS_ONLY, None),
            ("https://user@example.com/", HTTPS_ONLY, None),
            ("https://user:pw@example.com/", HTTPS_ONLY, None),
            ("https://:pw@example.com/", HTTPS_ONLY, None),
            ("https://example.com/#frag", HTTPS_ONLY, None),
            ("https://example.com/#", HTTPS_ONLY, None),
            ("https://exa mple.com/", HTTPS_ONLY, None),
            (" https://example.com/", HTTPS_ONLY, None),
            ("https://example.com/\n", HTTPS_ONLY, None),
            ("https://exa\tmple.com/", HTTPS_ONLY, None),
            ("https://example.com:99999/", HTTPS_ONLY, None),
            ("https://[::1/", HTTPS_ONLY, None),
            ("https://[fe80::1%25eth0]/", HTTPS_ONLY, None),
            (too_long.as_str(), HTTPS_ONLY, None),
            (grows.as_str(), HTTPS_ONLY, None),
        ];
        for (input, policy, expected) in cases {
            // GIVEN a candidate URL and policy WHEN validated THEN normalised or refused on `url`
            let got = validate_url(input, policy);
            match (got, expected) {
                (Ok(url), Some(normalised)) => assert_eq!(url.as_str(), normalised, "{input:?}"),
                (Err(e), None) => assert_eq!(e.field, "url", "{input:?}"),
                (got, _) => panic!("{input:?}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn minimal_webhook_create() -> TestResult {
        // GIVEN only a URL WHEN parsed THEN everything else is empty (= all)
        let got = parse_webhook_create(&json!({"url": "https://example.com/h"}), HTTPS_ONLY)?;
        assert_eq!(got.url.as_str(), "https://example.com/h");
        assert_eq!((got.name, got.description), (None, None));
        assert!(got.events.is_empty() && got.scopes.is_empty() && got.headers.is_empty());
        Ok(())
    }

    #[test]
    fn full_webhook_create_is_normalised() -> TestResult {
        // GIVEN every field, with duplicates
        let body = json!({
            "url": "https://example.com/h",
            "name": "Orders",
            "description": "line one\nline two\ttabbed",
            "events": ["TODO_DELETED", "TODO_CREATED", "TODO_DELETED"],
            "scopes": [
                {"company_id": "acme", "project_id": "p1"},
                {"company_id": "globex"},
                {"company_id": "acme", "project_id": "p1"},
                {"company_id": "initech", "project_id": null}
            ],
            "headers": {"Authorization": "Bearer abc def", "X-Empty": ""}
        });
        // WHEN parsed
        let got = parse_webhook_create(&body, HTTPS_ONLY)?;
        // THEN duplicates collapse in first-seen order and null project means whole company
        assert_eq!(got.name.as_deref(), Some("Orders"));
        assert_eq!(got.description.as_deref(), Some("line one\nline two\ttabbed"));
        assert_eq!(got.events, ["TODO_DELETED", "TODO_CREATED"]);
        assert_eq!(got.scopes, [Scope::project("acme", "p1"), Scope::company("globex"), Scope::company("initech")]);
        assert_eq!(got.headers.get("Authorization").map(String::as_str), Some("Bearer abc def"));
        assert_eq!(got.headers.get("X-Empty").map(String::as_str), Some(""));
        // AND null name and description mean none
        let nulls = parse_webhook_create(
            &json!({"url": "https://example.com/h", "name": null, "description": null}),
            HTTPS_ONLY,
        )?;
        assert_eq!((nulls.name, nulls.description), (None, None));
        // AND a left-out scheme is `v1`, a given one is kept
        assert_eq!(nulls.signature_scheme, SignatureScheme::V1);
        let v1a = parse_webhook_create(&create_with("signature_scheme", json!("v1a")), HTTPS_ONLY)?;
        assert_eq!(v1a.signature_scheme, SignatureScheme::V1a);
        Ok(())
    }

    /// A create body: a valid URL plus `field: value`.
    fn create_with(field: &str, value: Value) -> Value {
        let mut body = json!({"url": "https://example.com/h"});
        body[field] = value;
        body
    }

    fn err(field: &str) -> Result<(), String> {
        Err(field.to_owned())
    }

    fn headers_of(n: usize) -> Value {
        Value::Object((0..n).map(|i| (format!("X-H{i}"), json!("v"))).collect())
    }

    fn scopes_of(n: usize) -> Value {
        Value::Array((0..n).map(|i| json!({"company_id": format!("c{i}")})).collect())
    }

    #[test]
    fn webhook_create_refusals_name_their_field() {
        // (case, body, expected field; "ok" rows mark the accepted side of a boundary)
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, Result<(), String>)> = vec![
            // The body.
            ("not an object", json!([]), err("")),
            ("string body", json!("https://example.com"), err("")),
            ("unknown field", create_with("secret", json!("x")), err("secret")),
            ("camelCase field", create_with("companyId", json!("x")), err("companyId")),
            ("url missing", json!({"name": "x"}), err("url")),
            ("url not a string", json!({"url": 5}), err("url")),
            ("url null", json!({"url": null}), err("url")),
            ("url http refused", json!({"url": "http://example.com"}), err("url")),
            // filters (their own rules: `filters`' tests).
            ("filters", create_with("filters", json!([{"path": "data.status", "op": "eq", "value": "open"}])), Ok(())),
            ("filters empty", create_with("filters", json!([])), Ok(())),
            ("filters null", create_with("filters", Value::Null), err("filters")),
            ("filters object", create_with("filters", json!({"path": "type"})), err("filters")),
            ("filter op", create_with("filters", json!([{"path": "type", "op": "exists"}, {"path": "type", "op": "is"}])), err("filters[1].op")),
            // name and description.
            ("name 100", create_with("name", json!("n".repeat(100))), Ok(())),
            ("name 100 multibyte", create_with("name", json!("é".repeat(100))), Ok(())),
            ("name empty", create_with("name", json!("")), Ok(())),
            ("name 101", create_with("name", json!("n".repeat(101))), err("name")),
            ("name number", create_with("name", json!(1)), err("name")),
            ("name newline", create_with("name", json!("a\nb")), err("name")),
            ("description 1000", create_with("description", json!("d".repeat(1000))), Ok(())),
            ("description 1001", create_with("description", json!("d".repeat(1001))), err("description")),
            ("description bool", create_with("description", json!(true)), err("description")),
            ("description NUL", create_with("description", json!("a\u{0}b")), err("description")),
            // signature_scheme.
            ("scheme v1", create_with("signature_scheme", json!("v1")), Ok(())),
            ("scheme v1a", create_with("signature_scheme", json!("v1a")), Ok(())),
            ("scheme v2", create_with("signature_scheme", json!("v2")), err("signature_scheme")),
            ("scheme uppercase", create_with("signature_scheme", json!("V1A")), err("signature_scheme")),
            ("scheme ed25519", create_with("signature_scheme", json!("ed25519")), err("signature_scheme")),
            ("scheme null", create_with("signature_scheme", Value::Null), err("signature_scheme")),
            ("scheme number", create_with("signature_scheme", json!(1)), err("signature_scheme")),
            // events.
            ("events empty", create_with("events", json!([])), Ok(())),
            ("events all 37", create_with("events", json!(catalog::SUBSCRIBABLE.map(|t| t.name).to_vec())), Ok(())),
            ("events null", create_with("events", Value::Null), err("events")),
            ("events string", create_with("events", json!("TODO_CREATED")), err("events")),
            ("event unknown", create_with("events", json!(["TODO_CREATED", "TAG_CREATED", "NOPE"])), err("events[2]")),
            ("event lowercase", create_with("events", json!(["todo_created"])), err("events[0]")),
            ("event health check", create_with("events", json!(["WEBHOOK_HEALTH_CHECK"])), err("events[0]")),
            ("event not a string", create_with("events", json!(["TODO_CREATED", 7])), err("events[1]")),
            // scopes.
            ("scopes 100", create_with("scopes", scopes_of(100)), Ok(())),
            ("scopes 101", create_with("scopes", scopes_of(101)), err("scopes")),
            ("scopes null", create_with("scopes", Value::Null), err("scopes")),
            ("scopes object", create_with("scopes", json!({"company_id": "a"})), err("scopes")),
            ("scope not an object", create_with("scopes", json!([{"company_id": "a"}, "b"])), err("scopes[1]")),
            ("scope company missing", create_with("scopes", json!([{"company_id": "a"}, {"project_id": "p"}])), err("scopes[1].company_id")),
            ("scope company invalid", create_with("scopes", json!([{"company_id": "a"}, {"company_id": "a b"}])), err("scopes[1].company_id")),
            ("scope company 64", create_with("scopes", json!([{"company_id": "c".repeat(64)}])), Ok(())),
            ("scope company 65", create_with("scopes", json!([{"company_id": "c".repeat(65)}])), err("scopes[0].company_id")),
            ("scope company empty", create_with("scopes", json!([{"company_id": ""}])), err("scopes[0].company_id")),
            ("scope company number", create_with("scopes", json!([{"company_id": 1}])), err("scopes[0].company_id")),
            ("scope project invalid", create_with("scopes", json!([{"company_id": "a", "project_id": "p#1"}])), err("scopes[0].project_id")),
            ("scope project number", create_with("scopes", json!([{"company_id": "a", "project_id": 1}])), err("scopes[0].project_id")),
            ("scope unknown field", create_with("scopes", json!([{"company_id": "a"}, {"company_id": "a", "projectId": "p"}])), err("scopes[1].projectId")),
            // headers.
            ("headers 10", create_with("headers", headers_of(10)), Ok(())),
            ("headers 11", create_with("headers", headers_of(11)), err("headers")),
            ("headers null", create_with("headers", Value::Null), err("headers")),
            ("headers array", create_with("headers", json!([["X-A", "b"]])), err("headers")),
            ("authorization allowed", create_with("headers", json!({"authorization": "Basic eA=="})), Ok(())),
            ("token punctuation", create_with("headers", json!({"X-!#$%&'*+-.^_`|~9": "v"})), Ok(())),
            ("header name 64", create_with("headers", json!({"x".repeat(64): "v"})), Ok(())),
            ("header name 65", create_with("headers", json!({"x".repeat(65): "v"})), Err(format!("headers.{}", "x".repeat(65)))),
            ("header name empty", create_with("headers", json!({"": "v"})), err("headers.")),
            ("header name space", create_with("headers", json!({"X Foo": "v"})), err("headers.X Foo")),
            ("header name colon", create_with("headers", json!({"X-Foo:": "v"})), err("headers.X-Foo:")),
            ("header name non-ASCII", create_with("headers", json!({"X-Föo": "v"})), err("headers.X-Föo")),
            ("header name separator", create_with("headers", json!({"X(Foo)": "v"})), err("headers.X(Foo)")),
            ("header value 1024", create_with("headers", json!({"X-Foo": "v".repeat(1024)})), Ok(())),
            ("header value 1025", create_with("headers", json!({"X-Foo": "v".repeat(1025)})), err("headers.X-Foo")),
            ("header value inner space", create_with("headers", json!({"X-Foo": "a b"})), Ok(())),
            ("header value leading space", create_with("headers", json!({"X-Foo": " a"})), err("headers.X-Foo")),
            ("header value trailing space", create_with("headers", json!({"X-Foo": "a "})), err("headers.X-Foo")),
            ("header value tab", create_with("headers", json!({"X-Foo": "a\tb"})), err("headers.X-Foo")),
            ("header value CRLF", create_with("headers", json!({"X-Foo": "a\r\nX-Evil: 1"})), err("headers.X-Foo")),
            ("header value DEL", create_with("headers", json!({"X-Foo": "a\u{7f}"})), err("headers.X-Foo")),
            ("header value non-ASCII", create_with("headers", json!({"X-Foo": "café"})), err("headers.X-Foo")),
            ("header value number", create_with("headers", json!({"X-Foo": 1})), err("headers.X-Foo")),
            ("header value null", create_with("headers", json!({"X-Foo": null})), err("headers.X-Foo")),
            ("header names ignore case", create_with("headers", json!({"X-Foo": "a", "x-foo": "b"})), err("headers.x-foo")),
            // rate_limit.
            ("rate limit 1", create_with("rate_limit", json!(1)), Ok(())),
            ("rate limit 1000", create_with("rate_limit", json!(1000)), Ok(())),
            ("rate limit null", create_with("rate_limit", Value::Null), Ok(())),
            ("rate limit 0", create_with("rate_limit", json!(0)), err("rate_limit")),
            ("rate limit 1001", create_with("rate_limit", json!(1001)), err("rate_limit")),
            ("rate limit negative", create_with("rate_limit", json!(-5)), err("rate_limit")),
            ("rate limit fraction", create_with("rate_limit", json!(2.5)), err("rate_limit")),
            ("rate limit string", create_with("rate_limit", json!("5")), err("rate_limit")),
        ];
        for (case, body, expected) in cases {
            // GIVEN a create body WHEN parsed THEN accepted, or refused naming the field
            let got = field_of(parse_webhook_create(&body, HTTPS_ONLY)).map(|_| ());
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn forbidden_header_names_are_refused_in_any_case() {
        // GIVEN reserved names, in several spellings
        let forbidden = [
            "host",
            "Host",
            "USER-AGENT",
            "content-type",
            "Content-Length",
            "content-encoding",
            "content-",
            "webhook-id",
            "Webhook-Signature",
            "webhook-timestamp",
            "connection",
            "Keep-Alive",
            "transfer-encoding",
            "TE",
            "trailer",
            "upgrade",
            "proxy-authorization",
            "Proxy-Connection",
            "expect",
        ];
        let allowed =
            ["authorization", "X-Api-Key", "content", "contents", "webhook", "hostname", "x-host", "tea", "expects"];
        for name in forbidden {
            // WHEN used as a custom header THEN refused on that header
            let got = field_of(parse_webhook_create(&create_with("headers", json!({name: "v"})), HTTPS_ONLY));
            assert_eq!(got.map(|_| ()), Err(format!("headers.{name}")), "{name}");
        }
        for name in allowed {
            // WHEN a merely similar name is used THEN it is accepted
            let got = parse_webhook_create(&create_with("headers", json!({name: "v"})), HTTPS_ONLY);
            assert!(got.is_ok(), "{name}: {got:?}");
        }
    }

    #[test]
    fn http_urls_follow_the_policy() {
        // GIVEN an http URL WHEN parsed under each policy THEN only allowed with allow_http
        let body = json!({"url": "http://localhost:8080/h"});
        assert!(parse_webhook_create(&body, HTTP_ALLOWED).is_ok());
        assert_eq!(field_of(parse_webhook_create(&body, HTTPS_ONLY)).map(|_| ()), Err("url".to_owned()));
    }

    #[test]
    fn webhook_patch_table() {
        // (case, body, expected patch or refused field)
        let url = Url::parse("https://example.com/new").ok();
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, Result<WebhookPatch, &str>)> = vec![
            ("empty is a no-op", json!({}), Ok(WebhookPatch::default())),
            ("url", json!({"url": "https://example.com/new"}), Ok(WebhookPatch { url: url.clone(), ..WebhookPatch::default() })),
            ("name set", json!({"name": "n"}), Ok(WebhookPatch { name: Some(Some("n".to_owned())), ..WebhookPatch::default() })),
            ("name cleared", json!({"name": null}), Ok(WebhookPatch { name: Some(None), ..WebhookPatch::default() })),
            ("description cleared", json!({"description": null}), Ok(WebhookPatch { description: Some(None), ..WebhookPatch::default() })),
            ("events emptied", json!({"events": []}), Ok(WebhookPatch { events: Some(vec![]), ..WebhookPatch::default() })),
            ("scopes emptied", json!({"scopes": []}), Ok(WebhookPatch { scopes: Some(vec![]), ..WebhookPatch::default() })),
            ("headers emptied", json!({"headers": {}}), Ok(WebhookPatch { headers: Some(BTreeMap::new()), ..WebhookPatch::default() })),
            (
                "events replaced, deduplicated",
                json!({"events": ["TAG_CREATED", "TAG_CREATED"]}),
                Ok(WebhookPatch { events: Some(vec!["TAG_CREATED".to_owned()]), ..WebhookPatch::default() }),
            ),
            ("rate limit set", json!({"rate_limit": 5}), Ok(WebhookPatch { rate_limit: Some(Some(5)), ..WebhookPatch::default() })),
            ("rate limit removed", json!({"rate_limit": null}), Ok(WebhookPatch { rate_limit: Some(None), ..WebhookPatch::default() })),
            ("rate limit 0", json!({"rate_limit": 0}), Err("rate_limit")),
            ("scheme switched", json!({"signature_scheme": "v1a"}), Ok(WebhookPatch { signature_scheme: Some(SignatureScheme::V1a), ..WebhookPatch::default() })),
            ("scheme null", json!({"signature_scheme": null}), Err("signature_scheme")),
            ("scheme unknown", json!({"signature_scheme": "v2"}), Err("signature_scheme")),
            ("url null", json!({"url": null}), Err("url")),
            ("events null", json!({"events": null}), Err("events")),
            ("filters null", json!({"filters": null}), Err("filters")),
            ("filters emptied", json!({"filters": []}), Ok(WebhookPatch { filters: Some(vec![]), ..WebhookPatch::default() })),
            ("filter path", json!({"filters": [{"path": "data..x", "op": "exists"}]}), Err("filters[0].path")),
            ("scopes null", json!({"scopes": null}), Err("scopes")),
            ("headers null", json!({"headers": null}), Err("headers")),
            ("url invalid", json!({"url": "https://u:p@example.com/"}), Err("url")),
            ("name too long", json!({"name": "n".repeat(101)}), Err("name")),
            ("description too long", json!({"description": "d".repeat(1001)}), Err("description")),
            ("unknown field", json!({"status": "active"}), Err("status")),
            ("id is not patchable", json!({"id": "wh_1"}), Err("id")),
            ("scope path", json!({"scopes": [{"company_id": "a"}, {"company_id": "b", "extra": 1}]}), Err("scopes[1].extra")),
            ("header path", json!({"headers": {"Content-Type": "text/plain"}}), Err("headers.Content-Type")),
            ("not an object", json!(null), Err("")),
        ];
        for (case, body, expected) in cases {
            // GIVEN a patch body WHEN parsed THEN this patch, or refused naming the field
            let got = parse_webhook_patch(&body, HTTPS_ONLY).map_err(|e| e.field);
            assert_eq!(got, expected.map_err(str::to_owned), "{case}");
        }
    }

    #[test]
    fn webhook_patch_is_empty_only_without_changes() -> TestResult {
        // GIVEN an empty patch and a clearing patch WHEN asked THEN only the first is empty
        assert!(parse_webhook_patch(&json!({}), HTTPS_ONLY)?.is_empty());
        assert!(!parse_webhook_patch(&json!({"name": null}), HTTPS_ONLY)?.is_empty());
        Ok(())
    }

    fn key_body(name: Value, companies: Value, permissions: Value) -> Value {
        json!({"name": name, "companies": companies, "permissions": permissions})
    }

    fn companies_of(n: usize) -> Value {
        Value::Array((0..n).map(|i| json!(format!("c{i}"))).collect())
    }

    #[test]
    fn key_create_table() {
        let ok = |companies: &[&str], permissions: &[Permission]| {
            Ok(KeyCreate {
                name: "k".to_owned(),
                companies: companies.iter().map(|c| (*c).to_owned()).collect(),
                permissions: permissions.to_vec(),
            })
        };
        // (case, body, expected key or refused field)
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, Result<KeyCreate, &str>)> = vec![
            ("minimal", key_body(json!("k"), json!(["acme"]), json!(["manage"])), ok(&["acme"], &[Permission::Manage])),
            (
                "duplicates collapse, order kept",
                key_body(json!("k"), json!(["b", "a", "b"]), json!(["publish", "manage", "publish"])),
                ok(&["b", "a"], &[Permission::Publish, Permission::Manage]),
            ),
            ("not an object", json!([]), Err("")),
            ("unknown field", json!({"name": "k", "companies": ["a"], "permissions": ["manage"], "admin": true}), Err("admin")),
            ("name missing", json!({"companies": ["a"], "permissions": ["manage"]}), Err("name")),
            ("companies missing", json!({"name": "k", "permissions": ["manage"]}), Err("companies")),
            ("permissions missing", json!({"name": "k", "companies": ["a"]}), Err("permissions")),
            ("name empty", key_body(json!(""), json!(["a"]), json!(["manage"])), Err("name")),
            ("name 100", key_body(json!("n".repeat(100)), json!(["a"]), json!(["manage"])), Ok(KeyCreate { name: "n".repeat(100), companies: vec!["a".to_owned()], permissions: vec![Permission::Manage] })),
            ("name 101", key_body(json!("n".repeat(101)), json!(["a"]), json!(["manage"])), Err("name")),
            ("name null", key_body(Value::Null, json!(["a"]), json!(["manage"])), Err("name")),
            ("name control", key_body(json!("a\u{1b}b"), json!(["a"]), json!(["manage"])), Err("name")),
            ("companies empty", key_body(json!("k"), json!([]), json!(["manage"])), Err("companies")),
            ("companies 101", key_body(json!("k"), companies_of(101), json!(["manage"])), Err("companies")),
            ("companies string", key_body(json!("k"), json!("acme"), json!(["manage"])), Err("companies")),
            ("company invalid", key_body(json!("k"), json!(["a", "b", "c/d"]), json!(["manage"])), Err("companies[2]")),
            ("company 65", key_body(json!("k"), json!(["c".repeat(65)]), json!(["manage"])), Err("companies[0]")),
            ("company number", key_body(json!("k"), json!([1]), json!(["manage"])), Err("companies[0]")),
            ("permissions empty", key_body(json!("k"), json!(["a"]), json!([])), Err("permissions")),
            ("permission unknown", key_body(json!("k"), json!(["a"]), json!(["manage", "admin"])), Err("permissions[1]")),
            ("permission uppercase", key_body(json!("k"), json!(["a"]), json!(["MANAGE"])), Err("permissions[0]")),
            ("permission number", key_body(json!("k"), json!(["a"]), json!([1])), Err("permissions[0]")),
            ("permissions string", key_body(json!("k"), json!(["a"]), json!("manage")), Err("permissions")),
        ];
        for (case, body, expected) in cases {
            // GIVEN a key body WHEN parsed THEN this key, or refused naming the field
            let got = parse_key_create(&body).map_err(|e| e.field);
            assert_eq!(got, expected.map_err(str::to_owned), "{case}");
        }
        // AND exactly 100 companies is accepted
        assert_eq!(
            parse_key_create(&key_body(json!("k"), companies_of(100), json!(["manage"]))).map(|k| k.companies.len()),
            Ok(100)
        );
    }

    #[test]
    fn key_patch_table() {
        // (case, body, expected patch or refused field)
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, Result<KeyPatch, &str>)> = vec![
            ("empty", json!({}), Ok(KeyPatch::default())),
            ("name", json!({"name": "new"}), Ok(KeyPatch { name: Some("new".to_owned()), ..KeyPatch::default() })),
            ("companies", json!({"companies": ["a", "a"]}), Ok(KeyPatch { companies: Some(vec!["a".to_owned()]), ..KeyPatch::default() })),
            ("permissions", json!({"permissions": ["publish"]}), Ok(KeyPatch { permissions: Some(vec![Permission::Publish]), ..KeyPatch::default() })),
            ("name null", json!({"name": null}), Err("name")),
            ("companies null", json!({"companies": null}), Err("companies")),
            ("permissions null", json!({"permissions": null}), Err("permissions")),
            ("name empty", json!({"name": ""}), Err("name")),
            ("companies empty", json!({"companies": []}), Err("companies")),
            ("permissions empty", json!({"permissions": []}), Err("permissions")),
            ("company invalid", json!({"companies": ["ok", ""]}), Err("companies[1]")),
            ("unknown", json!({"key": "whk_x"}), Err("key")),
            ("not an object", json!("x"), Err("")),
        ];
        for (case, body, expected) in cases {
            // GIVEN a key patch WHEN parsed THEN this patch, or refused naming the field
            let got = parse_key_patch(&body).map_err(|e| e.field);
            assert_eq!(got, expected.map_err(str::to_owned), "{case}");
        }
    }

    #[test]
    fn rotate_secret_table() {
        // (case, body, expected grace seconds or refused field)
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<Value>, Result<u32, &str>)> = vec![
            ("no body", None, Ok(86_400)),
            ("empty object", Some(json!({})), Ok(86_400)),
            ("zero", Some(json!({"grace_seconds": 0})), Ok(0)),
            ("one hour", Some(json!({"grace_seconds": 3600})), Ok(3600)),
            ("a week", Some(json!({"grace_seconds": 604_800})), Ok(604_800)),
            ("a week and a second", Some(json!({"grace_seconds": 604_801})), Err("grace_seconds")),
            ("huge", Some(json!({"grace_seconds": u64::MAX})), Err("grace_seconds")),
            ("negative", Some(json!({"grace_seconds": -1})), Err("grace_seconds")),
            ("fraction", Some(json!({"grace_seconds": 1.5})), Err("grace_seconds")),
            ("whole float literal", Some(json!({"grace_seconds": 60.0})), Ok(60)),
            ("float beyond a week", Some(json!({"grace_seconds": 604_801.0})), Err("grace_seconds")),
            ("negative float", Some(json!({"grace_seconds": -60.0})), Err("grace_seconds")),
            ("string", Some(json!({"grace_seconds": "60"})), Err("grace_seconds")),
            ("null", Some(json!({"grace_seconds": null})), Err("grace_seconds")),
            ("unknown field", Some(json!({"grace": 60})), Err("grace")),
            ("not an object", Some(json!(60)), Err("")),
            ("null body", Some(Value::Null), Err("")),
        ];
        for (case, body, expected) in cases {
            // GIVEN a rotate-secret body WHEN parsed THEN this grace period, or refused
            let got = parse_rotate_secret(body.as_ref()).map_err(|e| e.field);
            assert_eq!(got, expected.map_err(str::to_owned), "{case}");
        }
    }

    #[test]
    fn field_error_displays_its_message() {
        // GIVEN a field error WHEN displayed THEN it is its message, which names the field
        let e = required("url");
        assert_eq!(e.to_string(), "`url` is required");
        assert_eq!(e.field, "url");
    }
}
