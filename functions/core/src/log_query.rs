//! The delivery log's filters and replay by time range (SPEC §10): what a request asks for,
//! checked, and which logged events a range replay re-sends. Pure: the adapters read the log
//! (always bounded by its keys: the sort key starts with the attempt's time) and queue the
//! re-sends.
//!
//! Like the rest of the core, this module must not depend on the AWS SDK, on Lambda, or on an
//! HTTP client.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalog::{HEALTH_CHECK, subscribable};
use crate::resources::log_status;
use crate::validation::FieldError;

/// The fields of a `POST /v1/webhooks/{id}/replay` body.
pub const REPLAY_FIELDS: [&str; 3] = ["since", "until", "status"];

/// Events a range replay names per queue message: the delivery function loads each one's kept
/// payload (up to 256 KiB) and queues it, so a page finishes well within its timeout, like a
/// page of the parked replay.
pub const RESEND_PAGE: usize = 25;

/// The filters of `GET /v1/webhooks/{id}/deliveries`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub status: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// Entries attempted at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Entries attempted before this instant.
    pub until: Option<OffsetDateTime>,
}

/// The filters as the query string gave them (absent = no filter; an empty `event_id` too, as
/// before; an empty type or time is refused like any other value that names none).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogQuery<'a> {
    pub status: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
}

/// An RFC 3339 instant, or a 400 about `field`.
fn instant(field: &str, v: &str) -> Result<OffsetDateTime, FieldError> {
    OffsetDateTime::parse(v, &Rfc3339)
        .map_err(|_| FieldError::new(field, format!("`{field}` must be an RFC 3339 time, like 2026-11-28T10:00:00Z")))
}

/// Checks the log's filters: `status` one of the statuses, `event_type` a subscribable type or
/// `WEBHOOK_HEALTH_CHECK`, `since` and `until` RFC 3339 with `since` not after `until`.
pub fn parse_log_filter(q: LogQuery<'_>) -> Result<LogFilter, FieldError> {
    if let Some(s) = q.status
        && !log_status::ALL.contains(&s)
    {
        return Err(FieldError::new("status", "status must be succeeded, pending, failed or parked"));
    }
    let event_type = q.event_type;
    if let Some(t) = event_type
        && t != HEALTH_CHECK
        && subscribable(t).is_none()
    {
        return Err(FieldError::new(
            "event_type",
            "event_type must be a type of GET /v1/event-types or WEBHOOK_HEALTH_CHECK",
        ));
    }
    let since = q.since.map(|v| instant("since", v)).transpose()?;
    let until = q.until.map(|v| instant("until", v)).transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(FieldError::new("since", "`since` must not be after `until`"));
    }
    Ok(LogFilter {
        status: q.status.map(str::to_owned),
        event_id: q.event_id.filter(|e| !e.is_empty()).map(str::to_owned),
        event_type: event_type.map(str::to_owned),
        since,
        until,
    })
}

/// Which events of the range a replay re-sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplayStatus {
    /// Those not delivered to the webhook (the default).
    #[default]
    Failed,
    /// Every one.
    All,
}

/// A checked `POST /v1/webhooks/{id}/replay`: re-send the events logged with an attempt in
/// [`since`, `until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeReplay {
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    pub status: ReplayStatus,
}

/// Checks a replay request at `now`: `since` required; `until` defaults to `now`; `status`
/// `failed` (default) or `all`; `since` may be neither after `until` nor older than the log
/// keeps entries (`retention_seconds`: what it names could not be found any more). Unknown
/// fields are refused.
pub fn parse_replay_request(
    body: Option<&Value>,
    now: OffsetDateTime,
    retention_seconds: i64,
) -> Result<RangeReplay, FieldError> {
    let empty = serde_json::Map::new();
    let body = match body {
        None => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err(FieldError::new("", "the body must be a JSON object")),
    };
    if let Some(unknown) = body.keys().find(|k| !REPLAY_FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(unknown.clone(), format!("unknown field `{unknown}`")));
    }
    let text = |field: &str| text_field(body, field);
    let since = text("since")?.ok_or_else(|| FieldError::new("since", "`since` is required"))?;
    let since = instant("since", since)?;
    let until = text("until")?.map(|u| instant("until", u)).transpose()?.unwrap_or(now);
    let status = match text("status")? {
        None | Some("failed") => ReplayStatus::Failed,
        Some("all") => ReplayStatus::All,
        Some(_) => return Err(FieldError::new("status", "`status` must be failed or all")),
    };
    if since > until {
        return Err(FieldError::new("since", "`since` must not be after `until`"));
    }
    if since < now - time::Duration::seconds(retention_seconds) {
        let message = format!("`since` is older than the delivery log keeps entries ({retention_seconds} s)");
        return Err(FieldError::new("since", message));
    }
    Ok(RangeReplay { since, until, status })
}

/// A string field of a body: `None` when left out or `null`.
fn text_field<'a>(body: &'a serde_json::Map<String, Value>, field: &str) -> Result<Option<&'a str>, FieldError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(FieldError::new(field, format!("`{field}` must be a string"))),
    }
}

/// What a range replay reads of one log entry from `since` on (never its payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedAttempt {
    pub webhook_message_id: String,
    /// The delivery that made the attempt (or was parked).
    pub delivery_id: String,
    pub status: String,
    pub attempted_at: OffsetDateTime,
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// An event a range replay may re-send, with the deliveries of it the log shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCandidate {
    pub webhook_message_id: String,
    pub delivery_ids: BTreeSet<String>,
}

impl ReplayCandidate {
    /// Whether one of its deliveries is recorded delivered (a 2xx), also when the log keeps no
    /// successes (`WEBHOOKS_LOG_SUCCESSES=false`).
    pub fn delivered(&self, delivered: &BTreeSet<String>) -> bool {
        self.delivery_ids.iter().any(|d| delivered.contains(d))
    }
}

/// The events of a range replay, oldest first, each once, from the log's entries with a
/// payload attempted from `since` on (`window`, any order): those with an entry before
/// `until`. With [`ReplayStatus::Failed`], leaves out those with a `succeeded` entry in the
/// window (a success after `until` counts too), and those whose latest attempt is `pending`
/// with its retry still due after `now` (their own retries are under way). The caller then
/// leaves out the candidates recorded delivered, and those with a success before `since`.
pub fn replay_candidates(
    window: &[LoggedAttempt],
    until: OffsetDateTime,
    status: ReplayStatus,
    now: OffsetDateTime,
) -> Vec<ReplayCandidate> {
    struct Seen<'a> {
        first_in_range: Option<OffsetDateTime>,
        latest: &'a LoggedAttempt,
        succeeded: bool,
        deliveries: BTreeSet<String>,
    }
    let mut by_message: BTreeMap<&str, Seen<'_>> = BTreeMap::new();
    for a in window {
        let seen = by_message.entry(a.webhook_message_id.as_str()).or_insert_with(|| Seen {
            first_in_range: None,
            latest: a,
            succeeded: false,
            deliveries: BTreeSet::new(),
        });
        if a.attempted_at < until {
            seen.first_in_range = Some(seen.first_in_range.map_or(a.attempted_at, |f| f.min(a.attempted_at)));
        }
        if a.attempted_at >= seen.latest.attempted_at {
            seen.latest = a;
        }
        seen.succeeded |= a.status == log_status::SUCCEEDED;
        seen.deliveries.insert(a.delivery_id.clone());
    }
    let mut chosen: Vec<(OffsetDateTime, ReplayCandidate)> = by_message
        .into_iter()
        .filter_map(|(message, seen)| {
            let first = seen.first_in_range?;
            let retrying =
                seen.latest.status == log_status::PENDING && seen.latest.next_attempt_at.is_some_and(|n| n > now);
            let keep = match status {
                ReplayStatus::All => true,
                ReplayStatus::Failed => !seen.succeeded && !retrying,
            };
            keep.then(|| {
                (first, ReplayCandidate { webhook_message_id: message.to_owned(), delivery_ids: seen.deliveries })
            })
        })
        .collect();
    chosen.sort_by(|a, b| (a.0, &a.1.webhook_message_id).cmp(&(b.0, &b.1.webhook_message_id)));
    chosen.into_iter().map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn field(r: Result<impl std::fmt::Debug, FieldError>) -> String {
        r.err().map(|e| e.field).unwrap_or_else(|| "ok".into())
    }

    #[test]
    fn log_filters_are_checked_field_by_field() {
        let q = |f: fn(&mut LogQuery<'static>)| {
            let mut q = LogQuery::default();
            f(&mut q);
            field(parse_log_filter(q))
        };
        assert_eq!(q(|_| {}), "ok");
        assert_eq!(q(|q| q.event_type = Some("TODO_CREATED")), "ok");
        assert_eq!(q(|q| q.event_type = Some("WEBHOOK_HEALTH_CHECK")), "ok");
        assert_eq!(q(|q| q.event_type = Some("todo_created")), "event_type");
        assert_eq!(q(|q| q.since = Some("2026-11-28T10:00:00+01:00")), "ok");
        assert_eq!(q(|q| q.since = Some("yesterday")), "since");
        assert_eq!(q(|q| q.until = Some("2026-11-28")), "until");
        assert_eq!(q(|q| q.status = Some("lost")), "status");
        assert_eq!(
            q(|q| {
                q.since = Some("2026-11-28T10:00:01Z");
                q.until = Some("2026-11-28T10:00:00Z");
            }),
            "since"
        );
        // AND an empty type or time names none
        assert_eq!(q(|q| q.event_type = Some("")), "event_type");
        assert_eq!(q(|q| q.since = Some("")), "since");
        assert_eq!(q(|q| q.event_id = Some("")), "ok");
    }

    #[test]
    fn a_replay_request_is_checked_against_now_and_the_retention() {
        let now = at("2026-12-01T12:00:00Z");
        let day = 86_400;
        let parse = |v: Value| parse_replay_request(Some(&v), now, 3 * day);
        // GIVEN only `since` THEN until is now and the status `failed`
        assert_eq!(
            parse(json!({"since": "2026-12-01T10:00:00Z"})).ok(),
            Some(RangeReplay { since: at("2026-12-01T10:00:00Z"), until: now, status: ReplayStatus::Failed })
        );
        assert_eq!(
            parse(json!({"since": "2026-12-01T10:00:00Z", "until": "2026-12-01T11:00:00Z", "status": "all"}))
                .map(|r| (r.until, r.status))
                .ok(),
            Some((at("2026-12-01T11:00:00Z"), ReplayStatus::All))
        );
        let cases = [
            (json!({}), "since"),
            (json!({"since": 5}), "since"),
            (json!({"since": "noon"}), "since"),
            (json!({"since": "2026-12-01T10:00:00Z", "until": "2026-12-01T09:00:00Z"}), "since"),
            (json!({"since": "2026-11-28T11:59:59Z"}), "since"),
            (json!({"since": "2026-12-01T10:00:00Z", "until": "later"}), "until"),
            (json!({"since": "2026-12-01T10:00:00Z", "status": "succeeded"}), "status"),
            (json!({"since": "2026-12-01T10:00:00Z", "webhook_id": "wh_1"}), "webhook_id"),
            (json!(["2026-12-01T10:00:00Z"]), ""),
        ];
        for (body, expected) in cases {
            assert_eq!(field(parse(body.clone())), expected, "{body}");
        }
        // AND a since exactly at the retention's edge is still kept
        assert_eq!(field(parse(json!({"since": "2026-11-28T12:00:00Z"}))), "ok");
        assert_eq!(field(parse_replay_request(None, now, 3 * day)), "since");
    }

    fn attempt(message: &str, delivery: &str, status: &str, when: &str) -> LoggedAttempt {
        LoggedAttempt {
            webhook_message_id: message.into(),
            delivery_id: delivery.into(),
            status: status.into(),
            attempted_at: at(when),
            next_attempt_at: None,
        }
    }

    fn messages(c: &[ReplayCandidate]) -> Vec<&str> {
        c.iter().map(|c| c.webhook_message_id.as_str()).collect()
    }

    #[test]
    fn a_failed_replay_leaves_out_what_succeeded_even_after_the_range() {
        let now = at("2026-12-01T13:00:00Z");
        let until = at("2026-12-01T12:00:00Z");
        let window = [
            // msg_b failed for good; msg_a failed then succeeded on a retry after `until`
            attempt("msg_b", "d_b", log_status::FAILED, "2026-12-01T11:00:00Z"),
            attempt("msg_a", "d_a", log_status::PENDING, "2026-12-01T10:00:00Z"),
            attempt("msg_a", "d_a", log_status::SUCCEEDED, "2026-12-01T12:30:00Z"),
            // msg_c was parked; msg_d only tried after the range
            attempt("msg_c", "d_c", log_status::PARKED, "2026-12-01T10:30:00Z"),
            attempt("msg_d", "d_d", log_status::FAILED, "2026-12-01T12:10:00Z"),
            // msg_e succeeded in the range
            attempt("msg_e", "d_e", log_status::SUCCEEDED, "2026-12-01T11:30:00Z"),
        ];
        // WHEN the failed ones are chosen THEN they come oldest first, each once
        let failed = replay_candidates(&window, until, ReplayStatus::Failed, now);
        assert_eq!(messages(&failed), ["msg_c", "msg_b"]);
        // AND `all` takes every event with an attempt in the range
        let all = replay_candidates(&window, until, ReplayStatus::All, now);
        assert_eq!(messages(&all), ["msg_a", "msg_c", "msg_b", "msg_e"]);
    }

    #[test]
    fn an_event_still_retrying_is_left_to_its_retries() {
        let now = at("2026-12-01T13:00:00Z");
        let mut due = attempt("msg_a", "d_a", log_status::PENDING, "2026-12-01T12:59:00Z");
        due.next_attempt_at = Some(at("2026-12-01T13:00:30Z"));
        let mut overdue = attempt("msg_b", "d_b", log_status::PENDING, "2026-12-01T11:00:00Z");
        overdue.next_attempt_at = Some(at("2026-12-01T11:00:30Z"));
        // GIVEN a retry still due, and one whose time passed with no attempt since (dropped)
        let failed = replay_candidates(&[due.clone(), overdue], now, ReplayStatus::Failed, now);
        // THEN only the second is re-sent; `all` re-sends both
        assert_eq!(messages(&failed), ["msg_b"]);
        assert_eq!(replay_candidates(&[due], now, ReplayStatus::All, now).len(), 1);
    }

    #[test]
    fn a_candidate_is_delivered_when_one_of_its_deliveries_is() {
        // GIVEN an event logged with two deliveries (a retry's failure, then a redelivery)
        let window = [
            attempt("msg_a", "d_1", log_status::PENDING, "2026-12-01T10:00:00Z"),
            attempt("msg_a", "d_2", log_status::FAILED, "2026-12-01T10:05:00Z"),
        ];
        let now = at("2026-12-01T11:00:00Z");
        let c = replay_candidates(&window, now, ReplayStatus::Failed, now);
        assert_eq!(c.len(), 1);
        // WHEN the log keeps no successes, the attempt records tell
        assert!(c[0].delivered(&BTreeSet::from(["d_1".to_owned()])));
        assert!(!c[0].delivered(&BTreeSet::from(["d_3".to_owned()])));
    }
}
