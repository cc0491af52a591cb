//! Metrics in CloudWatch Embedded Metric Format (SPEC §6): one JSON object per stdout line,
//! `_aws` at the root as an object, each metric's value and each dimension's value as root
//! members. CloudWatch Logs extracts such lines into metrics with no extra set-up.
//!
//! The lines are written to stdout directly, not through `tracing`: its JSON formatter nests
//! every field under `fields`, where CloudWatch does not look.

use std::io::Write;

use time::OffsetDateTime;
use webhooks_core::model::DropReason;

/// The namespace of every metric of the service.
pub const NAMESPACE: &str = "Webhooks";

/// A count of `count`, with one dimension, as one EMF line (no trailing newline).
pub fn count_line(metric: &str, dimension: &str, value: &str, count: u64, at: OffsetDateTime) -> String {
    let timestamp_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut line = serde_json::Map::new();
    line.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[dimension]],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        }),
    );
    line.insert(dimension.into(), serde_json::Value::String(value.into()));
    line.insert(metric.into(), serde_json::json!(count));
    serde_json::Value::Object(line).to_string()
}

/// Writes one EMF line to stdout (the function's log stream).
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    // A metric that cannot be written is not worth failing a delivery for; the log line that
    // goes with it (tracing) still says what happened.
    let _ = writeln!(out, "{line}");
}

/// One event refused at the door of the matcher (`RejectedEvents`, by `reason`).
pub fn rejected_event(reason: &str) {
    emit(&count_line("RejectedEvents", "reason", reason, 1, OffsetDateTime::now_utc()));
}

/// One (event, webhook) pair dropped for a stated reason (`DroppedDeliveries`, by `reason`).
pub fn dropped_delivery(reason: DropReason) {
    dropped_deliveries(reason, 1);
}

/// `count` pairs dropped together (a sweep, a purge) for one reason: one line.
pub fn dropped_deliveries(reason: DropReason, count: u64) {
    if count > 0 {
        emit(&count_line("DroppedDeliveries", "reason", reason.as_str(), count, OffsetDateTime::now_utc()));
    }
}

/// An extracted metric: namespace, name, value and dimensions (name, value).
pub type ExtractedMetric = (String, String, f64, Vec<(String, String)>);

/// What CloudWatch does with a log line (its EMF specification): the line is a JSON object
/// with an `_aws` object at the root; for each directive, every metric name and every
/// dimension name must be a root member (numbers and strings respectively). Returns the
/// extracted (namespace, metric, value, dimensions) or why the line would be ignored.
pub fn cloudwatch_extract(line: &str) -> Result<Vec<ExtractedMetric>, String> {
    let root: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let root = root.as_object().ok_or("not an object")?;
    let aws = root.get("_aws").and_then(serde_json::Value::as_object).ok_or("no root `_aws` object")?;
    aws.get("Timestamp").and_then(serde_json::Value::as_i64).ok_or("no integer Timestamp")?;
    let directives =
        aws.get("CloudWatchMetrics").and_then(serde_json::Value::as_array).ok_or("no CloudWatchMetrics array")?;
    let mut out = Vec::new();
    for d in directives {
        let namespace = d["Namespace"].as_str().ok_or("no Namespace")?.to_owned();
        let dimension_sets = d["Dimensions"].as_array().ok_or("no Dimensions")?;
        let mut dims = Vec::new();
        for set in dimension_sets {
            for name in set.as_array().ok_or("a dimension set is an array")? {
                let name = name.as_str().ok_or("a dimension name is a string")?;
                let value = root
                    .get(name)
                    .and_then(serde_json::Value::as_str)
                    .ok_or(format!("dimension `{name}` is no root string"))?;
                dims.push((name.to_owned(), value.to_owned()));
            }
        }
        for m in d["Metrics"].as_array().ok_or("no Metrics")? {
            let name = m["Name"].as_str().ok_or("no metric Name")?;
            let value = root
                .get(name)
                .and_then(serde_json::Value::as_f64)
                .ok_or(format!("metric `{name}` is no root number"))?;
            out.push((namespace.clone(), name.to_owned(), value, dims.clone()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_count_line_is_extracted_by_cloudwatch() {
        // GIVEN a drop counted at a known time
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let line = count_line("DroppedDeliveries", "reason", DropReason::ParkFull.as_str(), 1, at);
        // THEN it is one line, and CloudWatch extracts one count of 1 with its reason
        assert!(!line.contains('\n'));
        let got = cloudwatch_extract(&line);
        assert_eq!(
            got,
            Ok(vec![(
                "Webhooks".to_owned(),
                "DroppedDeliveries".to_owned(),
                1.0,
                vec![("reason".to_owned(), "park_full".to_owned())]
            )])
        );
        let root: Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(root["_aws"]["Timestamp"], 1_800_000_000_000_i64);
    }

    #[test]
    fn drops_counted_together_are_one_line_with_their_count() {
        let line = count_line("DroppedDeliveries", "reason", "park_expired", 7, OffsetDateTime::UNIX_EPOCH);
        let got = cloudwatch_extract(&line)
            .map(|m| m.into_iter().map(|(_, name, value, _)| (name, value)).collect::<Vec<_>>());
        assert_eq!(got, Ok(vec![("DroppedDeliveries".to_owned(), 7.0)]));
    }

    #[test]
    fn the_old_nested_shape_is_not_extracted() {
        // The shape the functions used to log through tracing: `_aws` a string under `fields`.
        let nested =
            r#"{"level":"INFO","fields":{"message":"event rejected","_aws":"{\"Timestamp\":1}","RejectedEvents":1}}"#;
        assert!(cloudwatch_extract(nested).is_err());
    }
}
