//! Payload filters (SPEC §10, §4 rule 4): conditions on the delivery body of §5 that must all
//! hold for an event to be for a webhook, their input rules and their stored form.
//!
//! A filter is `{"path","op","value"?}`. `path` is a dot path into the delivery body: `type`,
//! `company_id`, `project_id`, or `data` followed by up to 7 names (a name of digits also
//! indexes an array: `data.tags.0`). `op` is `eq` (a JSON scalar), `in` (1–100 scalars),
//! `prefix` (a string) or `exists` (no value). A path that leads nowhere fails `eq`, `in` and
//! `prefix`; a `null` found there is a value (it `exists`, and equals `null`). Numbers compare
//! by value (`1` equals `1.0`), never equal to a string (`"1"`); strings compare exactly.
//!
//! Evaluation reads the event as the body is built from it, without serializing the body. Pure:
//! no storage, no clock, no I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::event::Event;
use crate::validation::FieldError;

/// Most filters per webhook: each is evaluated for every candidate event, after the cheaper
/// rules.
pub const MAX_FILTERS: usize = 10;
/// Most names in a path, its root included.
pub const MAX_PATH_SEGMENTS: usize = 8;
/// Most values of an `in`: beyond that a list of values belongs on the receiver's side.
pub const MAX_IN_VALUES: usize = 100;
/// The fields of one filter object.
pub const FILTER_FIELDS: [&str; 3] = ["path", "op", "value"];
/// The operators, as the API spells them.
pub const OPS: [&str; 4] = ["eq", "in", "prefix", "exists"];
/// What a path is, as a JSON Schema pattern (the parser checks the same, with clearer errors).
pub const PATH_PATTERN: &str = "^(type|company_id|project_id|data(\\.[A-Za-z0-9_-]{1,64}){0,7})$";

/// The roots of a path that are strings of the body, with nothing below them.
const TEXT_ROOTS: [&str; 3] = ["type", "company_id", "project_id"];
/// The root of a path into the event's own data.
const DATA_ROOT: &str = "data";

/// One condition on the delivery body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// A dot path into the delivery body, e.g. `data.currentValue.status`.
    pub path: String,
    #[serde(flatten)]
    pub condition: Condition,
}

/// What must hold for the value at a filter's path: the `op` and its `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "value", rename_all = "snake_case")]
pub enum Condition {
    /// Equal to this scalar.
    Eq(Value),
    /// Equal to one of these scalars.
    In(Vec<Value>),
    /// A string starting with this one.
    Prefix(String),
    /// Any value, `null` included.
    Exists,
}

impl Filter {
    /// Whether the filter holds for the delivery body of `event`.
    pub fn holds(&self, event: &Event) -> bool {
        let found = resolve(&self.path, event);
        match (&self.condition, found) {
            (Condition::Exists, found) => found.is_some(),
            (_, None) => false,
            (Condition::Eq(want), Some(found)) => found.equals(want),
            (Condition::In(wanted), Some(found)) => wanted.iter().any(|want| found.equals(want)),
            (Condition::Prefix(prefix), Some(found)) => found.as_str().is_some_and(|s| s.starts_with(prefix.as_str())),
        }
    }
}

/// Rule 4 of SPEC §4: every filter holds (no filters: nothing to hold).
pub fn all_hold(filters: &[Filter], event: &Event) -> bool {
    filters.iter().all(|f| f.holds(event))
}

/// A value found in the body: one of its string fields, or a part of `data`.
#[derive(Debug, Clone, Copy)]
enum Found<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl Found<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Found::Text(s) => Some(s),
            Found::Json(v) => v.as_str(),
        }
    }

    /// The same scalar: same JSON type, numbers by value.
    fn equals(&self, want: &Value) -> bool {
        match (self, want) {
            (Found::Text(s), want) => want.as_str() == Some(*s),
            (Found::Json(Value::Number(a)), Value::Number(b)) => same_number(a, b),
            (Found::Json(found), want) => *found == want,
        }
    }
}

/// Numbers compare exactly while both are integers, else as doubles (as JSON readers do).
fn same_number(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

/// The value at `path` in the delivery body of `event`, if there is one.
fn resolve<'a>(path: &str, event: &'a Event) -> Option<Found<'a>> {
    let mut segments = path.split('.');
    let text = match segments.next()? {
        "type" => &event.event_type,
        "company_id" => &event.company_id,
        "project_id" => &event.project_id,
        DATA_ROOT => {
            let mut at = &event.data;
            for segment in segments {
                at = child(at, segment)?;
            }
            return Some(Found::Json(at));
        }
        _ => return None,
    };
    segments.next().is_none().then_some(Found::Text(text))
}

/// A member of an object, or an element of an array by its index written in decimal (`0`, `12`;
/// not `012`).
fn child<'a>(v: &'a Value, segment: &str) -> Option<&'a Value> {
    match v {
        Value::Object(members) => members.get(segment),
        Value::Array(items) => {
            let canonical =
                segment == "0" || (!segment.starts_with('0') && segment.bytes().all(|b| b.is_ascii_digit()));
            if canonical { segment.parse::<usize>().ok().and_then(|i| items.get(i)) } else { None }
        }
        _ => None,
    }
}

// ------------------------------------------------------------------------------ input rules

/// Parses `filters`: at most 10 `{path, op, value?}` objects, each refused with the path of
/// the field at fault (`filters[2].op`, `filters[0].value[3]`).
pub fn parse_filters(v: &Value) -> Result<Vec<Filter>, FieldError> {
    let Value::Array(items) = v else {
        return Err(FieldError::new("filters", "`filters` must be an array"));
    };
    if items.len() > MAX_FILTERS {
        return Err(FieldError::new("filters", format!("`filters` must have at most {MAX_FILTERS} entries")));
    }
    items.iter().enumerate().map(|(i, item)| parse_filter(item, &format!("filters[{i}]"))).collect()
}

fn parse_filter(v: &Value, field: &str) -> Result<Filter, FieldError> {
    let Value::Object(filter) = v else {
        return Err(FieldError::new(field, format!("`{field}` must be an object with `path` and `op`")));
    };
    if let Some(unknown) = filter.keys().find(|k| !FILTER_FIELDS.contains(&k.as_str())) {
        let field = format!("{field}.{unknown}");
        return Err(FieldError::new(&field, format!("`{field}` is not a known field")));
    }
    let path = parse_path(filter, &format!("{field}.path"))?;
    let condition = parse_condition(filter, field)?;
    Ok(Filter { path, condition })
}

fn parse_path(filter: &Map<String, Value>, field: &str) -> Result<String, FieldError> {
    let refuse = |message: &str| Err(FieldError::new(field, format!("`{field}` {message}")));
    let Some(path) = filter.get("path") else { return refuse("is required") };
    let Some(path) = path.as_str() else { return refuse("must be a string") };
    let segments: Vec<&str> = path.split('.').collect();
    if !segments.iter().all(|s| crate::event::is_identifier(s)) {
        return refuse("must be names of letters, digits, _ and - (1 to 64 each) joined by dots, like data.status");
    }
    if segments.len() > MAX_PATH_SEGMENTS {
        return refuse(&format!("must have at most {MAX_PATH_SEGMENTS} names"));
    }
    match segments[0] {
        DATA_ROOT => Ok(path.to_owned()),
        root if TEXT_ROOTS.contains(&root) && segments.len() == 1 => Ok(path.to_owned()),
        root if TEXT_ROOTS.contains(&root) => refuse(&format!("goes below `{root}`, which is a string")),
        _ => refuse("must start with type, company_id, project_id or data"),
    }
}

fn parse_condition(filter: &Map<String, Value>, field: &str) -> Result<Condition, FieldError> {
    let op_field = format!("{field}.op");
    let op = match filter.get("op") {
        None => return Err(FieldError::new(&op_field, format!("`{op_field}` is required"))),
        Some(op) => op.as_str().filter(|op| OPS.contains(op)).ok_or_else(|| {
            FieldError::new(&op_field, format!("`{op_field}` must be one of eq, in, prefix or exists"))
        })?,
    };
    let value_field = format!("{field}.value");
    let refuse = |message: String| Err(FieldError::new(&value_field, format!("`{value_field}` {message}")));
    let value = filter.get("value");
    if op == "exists" {
        return match value {
            None => Ok(Condition::Exists),
            Some(_) => refuse("must be left out for `exists`".to_owned()),
        };
    }
    let Some(value) = value else { return refuse(format!("is required for `{op}`")) };
    match op {
        "eq" if is_scalar(value) => Ok(Condition::Eq(value.clone())),
        "eq" => refuse("must be a string, number, boolean or null".to_owned()),
        "prefix" => match value.as_str() {
            Some(prefix) => Ok(Condition::Prefix(prefix.to_owned())),
            None => refuse("must be a string".to_owned()),
        },
        _ => {
            let items = value.as_array().filter(|items| (1..=MAX_IN_VALUES).contains(&items.len()));
            let Some(items) = items else {
                return refuse(format!("must be an array of 1 to {MAX_IN_VALUES} strings, numbers, booleans or nulls"));
            };
            if let Some(i) = items.iter().position(|item| !is_scalar(item)) {
                let field = format!("{value_field}[{i}]");
                return Err(FieldError::new(&field, format!("`{field}` must be a string, number, boolean or null")));
            }
            Ok(Condition::In(items.clone()))
        }
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

// ------------------------------------------------------------------------------ stored form

/// Filters as stored in DynamoDB: JSON text, because a DynamoDB number is narrower than a JSON
/// one (at most 38 digits, magnitudes from 1e-130 to 1e126) and `null` would be dropped. Reads
/// take the text or a plain list.
pub mod stored {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Filter;

    pub fn serialize<S: Serializer>(filters: &[Filter], s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(filters).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Filter>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            List(Vec<Filter>),
        }
        match Form::deserialize(d)? {
            Form::Text(text) => serde_json::from_str(&text).map_err(serde::de::Error::custom),
            Form::List(filters) => Ok(filters),
        }
    }

    /// The stored text of `filters`.
    pub fn to_text(filters: &[Filter]) -> String {
        serde_json::to_string(filters).unwrap_or_else(|_| "[]".to_owned())
    }
}

// ------------------------------------------------------------------------------ schema

#[cfg(feature = "openapi")]
mod schema {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{
        AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
    };
    use utoipa::{PartialSchema, ToSchema};

    use super::{Filter, MAX_IN_VALUES, PATH_PATTERN};

    fn scalar() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Number, Type::Boolean, Type::Null]))
    }

    /// One filter of one `op`: `path`, `op` and, unless `value` is `None`, a required `value`.
    fn variant(op: &str, value: Option<RefOr<Schema>>, description: &str) -> ObjectBuilder {
        let path = ObjectBuilder::new().schema_type(Type::String).pattern(Some(PATH_PATTERN));
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(description))
            .property("path", path)
            .property("op", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([op])))
            .required("path")
            .required("op")
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        if let Some(value) = value {
            object = object.property("value", value).required("value");
        }
        object
    }

    impl PartialSchema for Filter {
        fn schema() -> RefOr<Schema> {
            let values = ArrayBuilder::new().items(scalar()).min_items(Some(1)).max_items(Some(MAX_IN_VALUES));
            OneOfBuilder::new()
                .description(Some(
                    "A condition on the delivery body: the value at `path` (`type`, `company_id`, `project_id` or \
                     `data.…`) equals `value` (`eq`), is one of `value` (`in`), is a string starting with `value` \
                     (`prefix`), or is there at all (`exists`). A path that leads nowhere fails all but `exists`.",
                ))
                .item(variant("eq", Some(scalar().into()), "Equal to `value` (numbers by value)."))
                .item(variant("in", Some(values.into()), "Equal to one of `value`."))
                .item(variant(
                    "prefix",
                    Some(ObjectBuilder::new().schema_type(Type::String).into()),
                    "A string starting with `value`.",
                ))
                .item(variant("exists", None, "Any value, null included."))
                .into()
        }
    }

    impl ToSchema for Filter {}
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(data: Value) -> Event {
        Event {
            id: "evt-1".to_owned(),
            source: "app/x".to_owned(),
            event_type: "TODO_CREATED".to_owned(),
            company_id: "acme".to_owned(),
            project_id: "p1".to_owned(),
            time: "2026-11-28T10:00:00Z".to_owned(),
            data,
        }
    }

    fn filter(v: Value) -> Filter {
        parse_filter(&v, "filters[0]").unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    fn sample() -> Event {
        event(json!({
            "previousValue": null,
            "currentValue": {
                "id": "t1", "title": "Ship it", "status": "open", "points": 3, "ratio": 0.5,
                "done": false, "assignee": null, "tags": ["urgent", "web"],
                "list": {"id": "l1", "name": "Backlog"}, "count": "3", "big": 18446744073709551615u64
            }
        }))
    }

    #[test]
    fn evaluation_truth_table() {
        // (case, filter, expected on the sample event)
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, bool)> = vec![
            // eq on the body's own fields
            ("type eq", json!({"path": "type", "op": "eq", "value": "TODO_CREATED"}), true),
            ("type eq other", json!({"path": "type", "op": "eq", "value": "TODO_DELETED"}), false),
            ("type eq is exact", json!({"path": "type", "op": "eq", "value": "todo_created"}), false),
            ("company eq", json!({"path": "company_id", "op": "eq", "value": "acme"}), true),
            ("project eq", json!({"path": "project_id", "op": "eq", "value": "p2"}), false),
            ("type eq number", json!({"path": "type", "op": "eq", "value": 1}), false),
            // eq into data, nested
            ("nested string", json!({"path": "data.currentValue.status", "op": "eq", "value": "open"}), true),
            ("nested string other", json!({"path": "data.currentValue.status", "op": "eq", "value": "closed"}), false),
            ("deeper", json!({"path": "data.currentValue.list.name", "op": "eq", "value": "Backlog"}), true),
            ("array index", json!({"path": "data.currentValue.tags.1", "op": "eq", "value": "web"}), true),
            ("array index out of range", json!({"path": "data.currentValue.tags.2", "op": "exists"}), false),
            ("array index not canonical", json!({"path": "data.currentValue.tags.01", "op": "eq", "value": "web"}), false),
            ("array by name", json!({"path": "data.currentValue.tags.first", "op": "exists"}), false),
            // numbers vs strings
            ("number eq", json!({"path": "data.currentValue.points", "op": "eq", "value": 3}), true),
            ("number eq as float", json!({"path": "data.currentValue.points", "op": "eq", "value": 3.0}), true),
            ("number eq other", json!({"path": "data.currentValue.points", "op": "eq", "value": 4}), false),
            ("number is not its string", json!({"path": "data.currentValue.points", "op": "eq", "value": "3"}), false),
            ("string is not its number", json!({"path": "data.currentValue.count", "op": "eq", "value": 3}), false),
            ("fraction", json!({"path": "data.currentValue.ratio", "op": "eq", "value": 0.5}), true),
            ("big unsigned", json!({"path": "data.currentValue.big", "op": "eq", "value": 18446744073709551615u64}), true),
            ("big unsigned vs negative", json!({"path": "data.currentValue.big", "op": "eq", "value": -1}), false),
            // booleans and null
            ("bool eq", json!({"path": "data.currentValue.done", "op": "eq", "value": false}), true),
            ("bool eq other", json!({"path": "data.currentValue.done", "op": "eq", "value": true}), false),
            ("bool is not its string", json!({"path": "data.currentValue.done", "op": "eq", "value": "false"}), false),
            ("bool is not zero", json!({"path": "data.currentValue.done", "op": "eq", "value": 0}), false),
            ("null eq null", json!({"path": "data.currentValue.assignee", "op": "eq", "value": null}), true),
            ("null is not false", json!({"path": "data.currentValue.assignee", "op": "eq", "value": false}), false),
            ("absent is not null", json!({"path": "data.currentValue.nothing", "op": "eq", "value": null}), false),
            ("object is no scalar", json!({"path": "data.currentValue.list", "op": "eq", "value": "l1"}), false),
            // in
            ("in", json!({"path": "data.currentValue.status", "op": "in", "value": ["closed", "open"]}), true),
            ("in none", json!({"path": "data.currentValue.status", "op": "in", "value": ["closed", "done"]}), false),
            ("in mixed types", json!({"path": "data.currentValue.points", "op": "in", "value": ["3", 3]}), true),
            ("in strings only", json!({"path": "data.currentValue.points", "op": "in", "value": ["3"]}), false),
            ("in with null", json!({"path": "data.currentValue.assignee", "op": "in", "value": ["x", null]}), true),
            ("in on type", json!({"path": "type", "op": "in", "value": ["TAG_CREATED", "TODO_CREATED"]}), true),
            ("in on absent", json!({"path": "data.nothing", "op": "in", "value": [null]}), false),
            // prefix
            ("prefix", json!({"path": "data.currentValue.title", "op": "prefix", "value": "Ship"}), true),
            ("prefix is case-sensitive", json!({"path": "data.currentValue.title", "op": "prefix", "value": "ship"}), false),
            ("prefix whole", json!({"path": "data.currentValue.title", "op": "prefix", "value": "Ship it"}), true),
            ("prefix longer", json!({"path": "data.currentValue.title", "op": "prefix", "value": "Ship it!"}), false),
            ("prefix empty", json!({"path": "data.currentValue.title", "op": "prefix", "value": ""}), true),
            ("prefix on a number", json!({"path": "data.currentValue.points", "op": "prefix", "value": "3"}), false),
            ("prefix on null", json!({"path": "data.currentValue.assignee", "op": "prefix", "value": ""}), false),
            ("prefix on company", json!({"path": "company_id", "op": "prefix", "value": "ac"}), true),
            ("prefix on absent", json!({"path": "data.nothing", "op": "prefix", "value": ""}), false),
            // exists and absent paths
            ("exists", json!({"path": "data.currentValue.id", "op": "exists"}), true),
            ("exists on null", json!({"path": "data.previousValue", "op": "exists"}), true),
            ("exists absent", json!({"path": "data.currentValue.nothing", "op": "exists"}), false),
            ("exists below a string", json!({"path": "data.currentValue.title.x", "op": "exists"}), false),
            ("exists below null", json!({"path": "data.previousValue.id", "op": "exists"}), false),
            ("exists on data", json!({"path": "data", "op": "exists"}), true),
            ("exists on type", json!({"path": "type", "op": "exists"}), true),
            ("absent fails eq", json!({"path": "data.currentValue.nothing", "op": "eq", "value": "x"}), false),
            ("absent parent fails eq", json!({"path": "data.nothing.status", "op": "eq", "value": "open"}), false),
        ];
        let e = sample();
        for (case, f, expected) in cases {
            // GIVEN a filter WHEN evaluated on the sample event THEN it holds exactly as stated
            assert_eq!(filter(f).holds(&e), expected, "{case}");
        }
    }

    #[test]
    fn data_that_is_null_has_no_fields() {
        // GIVEN an event whose data is null
        let e = event(Value::Null);
        // THEN `data` exists (as null) and nothing below it does
        assert!(filter(json!({"path": "data", "op": "eq", "value": null})).holds(&e));
        assert!(filter(json!({"path": "data", "op": "exists"})).holds(&e));
        assert!(!filter(json!({"path": "data.status", "op": "exists"})).holds(&e));
        assert!(!filter(json!({"path": "data.status", "op": "eq", "value": null})).holds(&e));
    }

    #[test]
    fn every_filter_must_hold() {
        // GIVEN two filters, one true and one false on the sample event
        let e = sample();
        let yes = filter(json!({"path": "data.currentValue.status", "op": "eq", "value": "open"}));
        let no = filter(json!({"path": "data.currentValue.done", "op": "eq", "value": true}));
        // THEN all must hold; none is no condition at all
        assert!(all_hold(&[], &e));
        assert!(all_hold(std::slice::from_ref(&yes), &e));
        assert!(!all_hold(&[yes.clone(), no.clone()], &e));
        assert!(!all_hold(&[no, yes], &e));
    }

    fn parsed(v: Value) -> Result<Vec<Filter>, String> {
        parse_filters(&v).map_err(|e| e.field)
    }

    fn ok(v: Value) -> Result<(), String> {
        parsed(json!([v])).map(|_| ())
    }

    fn err(field: &str) -> Result<(), String> {
        Err(field.to_owned())
    }

    #[test]
    fn validation_table() {
        let long = "a".repeat(64);
        let too_long = "a".repeat(65);
        // (case, one filter, accepted or the refused field)
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, Result<(), String>)> = vec![
            ("eq string", json!({"path": "data.status", "op": "eq", "value": "open"}), Ok(())),
            ("eq number", json!({"path": "data.n", "op": "eq", "value": 1.5}), Ok(())),
            ("eq bool", json!({"path": "data.b", "op": "eq", "value": true}), Ok(())),
            ("eq null", json!({"path": "data.b", "op": "eq", "value": null}), Ok(())),
            ("eq type", json!({"path": "type", "op": "eq", "value": "TODO_CREATED"}), Ok(())),
            ("eq company", json!({"path": "company_id", "op": "eq", "value": "acme"}), Ok(())),
            ("eq project", json!({"path": "project_id", "op": "eq", "value": "p1"}), Ok(())),
            ("data itself", json!({"path": "data", "op": "exists"}), Ok(())),
            ("eight names", json!({"path": "data.a.b.c.d.e.f.g", "op": "exists"}), Ok(())),
            ("nine names", json!({"path": "data.a.b.c.d.e.f.g.h", "op": "exists"}), err("filters[0].path")),
            ("name of 64", json!({"path": format!("data.{long}"), "op": "exists"}), Ok(())),
            ("name of 65", json!({"path": format!("data.{too_long}"), "op": "exists"}), err("filters[0].path")),
            ("names with - and _", json!({"path": "data.a-b.c_d.0", "op": "exists"}), Ok(())),
            ("in of 1", json!({"path": "data.s", "op": "in", "value": ["a"]}), Ok(())),
            ("in of 100", json!({"path": "data.s", "op": "in", "value": (0..100).collect::<Vec<_>>()}), Ok(())),
            ("in mixed scalars", json!({"path": "data.s", "op": "in", "value": ["a", 1, true, null]}), Ok(())),
            ("prefix", json!({"path": "data.s", "op": "prefix", "value": "ab"}), Ok(())),
            ("prefix empty", json!({"path": "data.s", "op": "prefix", "value": ""}), Ok(())),
            ("exists", json!({"path": "data.s", "op": "exists"}), Ok(())),
            // the object
            ("not an object", json!("data.s"), err("filters[0]")),
            ("null filter", Value::Null, err("filters[0]")),
            ("unknown field", json!({"path": "data.s", "op": "exists", "values": 1}), err("filters[0].values")),
            // path
            ("path missing", json!({"op": "exists"}), err("filters[0].path")),
            ("path not a string", json!({"path": ["data"], "op": "exists"}), err("filters[0].path")),
            ("path null", json!({"path": null, "op": "exists"}), err("filters[0].path")),
            ("path empty", json!({"path": "", "op": "exists"}), err("filters[0].path")),
            ("path empty name", json!({"path": "data..s", "op": "exists"}), err("filters[0].path")),
            ("path trailing dot", json!({"path": "data.", "op": "exists"}), err("filters[0].path")),
            ("path with space", json!({"path": "data.a b", "op": "exists"}), err("filters[0].path")),
            ("path with bracket", json!({"path": "data.tags[0]", "op": "exists"}), err("filters[0].path")),
            ("path non-ASCII", json!({"path": "data.café", "op": "exists"}), err("filters[0].path")),
            ("unknown root", json!({"path": "status", "op": "exists"}), err("filters[0].path")),
            ("root other body field", json!({"path": "webhook_id", "op": "exists"}), err("filters[0].path")),
            ("root is case-sensitive", json!({"path": "Data.s", "op": "exists"}), err("filters[0].path")),
            ("below type", json!({"path": "type.name", "op": "exists"}), err("filters[0].path")),
            ("below company", json!({"path": "company_id.x", "op": "exists"}), err("filters[0].path")),
            // op
            ("op missing", json!({"path": "data.s", "value": 1}), err("filters[0].op")),
            ("op unknown", json!({"path": "data.s", "op": "ne", "value": 1}), err("filters[0].op")),
            ("op uppercase", json!({"path": "data.s", "op": "EQ", "value": 1}), err("filters[0].op")),
            ("op not a string", json!({"path": "data.s", "op": 1, "value": 1}), err("filters[0].op")),
            ("op null", json!({"path": "data.s", "op": null}), err("filters[0].op")),
            ("path before op", json!({"path": "x", "op": "x"}), err("filters[0].path")),
            // value
            ("eq without value", json!({"path": "data.s", "op": "eq"}), err("filters[0].value")),
            ("eq object", json!({"path": "data.s", "op": "eq", "value": {"a": 1}}), err("filters[0].value")),
            ("eq array", json!({"path": "data.s", "op": "eq", "value": ["a"]}), err("filters[0].value")),
            ("in without value", json!({"path": "data.s", "op": "in"}), err("filters[0].value")),
            ("in not an array", json!({"path": "data.s", "op": "in", "value": "a"}), err("filters[0].value")),
            ("in empty", json!({"path": "data.s", "op": "in", "value": []}), err("filters[0].value")),
            ("in of 101", json!({"path": "data.s", "op": "in", "value": (0..101).collect::<Vec<_>>()}), err("filters[0].value")),
            ("in with an object", json!({"path": "data.s", "op": "in", "value": ["a", "b", {}]}), err("filters[0].value[2]")),
            ("in with an array", json!({"path": "data.s", "op": "in", "value": [[1]]}), err("filters[0].value[0]")),
            ("prefix without value", json!({"path": "data.s", "op": "prefix"}), err("filters[0].value")),
            ("prefix number", json!({"path": "data.s", "op": "prefix", "value": 1}), err("filters[0].value")),
            ("prefix null", json!({"path": "data.s", "op": "prefix", "value": null}), err("filters[0].value")),
            ("exists with value", json!({"path": "data.s", "op": "exists", "value": true}), err("filters[0].value")),
            ("exists with null value", json!({"path": "data.s", "op": "exists", "value": null}), err("filters[0].value")),
        ];
        for (case, f, expected) in cases {
            // GIVEN one filter WHEN parsed THEN accepted, or refused naming the field at fault
            assert_eq!(ok(f), expected, "{case}");
        }
    }

    #[test]
    fn the_list_is_checked_and_each_filter_named_by_its_index() {
        let good = json!({"path": "data.s", "op": "exists"});
        // GIVEN lists of filters WHEN parsed THEN the list's own rules, then each by index
        assert_eq!(parsed(json!([])), Ok(vec![]));
        assert_eq!(parsed(json!({})), Err("filters".to_owned()));
        assert_eq!(parsed(Value::Null), Err("filters".to_owned()));
        assert_eq!(parsed(Value::Array(vec![good.clone(); 10])).map(|f| f.len()), Ok(10));
        assert_eq!(parsed(Value::Array(vec![good.clone(); 11])), Err("filters".to_owned()));
        let third_bad = json!([good, good, {"path": "data.s", "op": "like", "value": "a"}]);
        assert_eq!(parsed(third_bad), Err("filters[2].op".to_owned()));
    }

    #[test]
    fn the_parsed_filter_keeps_what_was_given() {
        // GIVEN one filter of each op WHEN parsed THEN the path and condition as given
        let got = parsed(json!([
            {"path": "data.s", "op": "eq", "value": 1},
            {"path": "type", "op": "in", "value": ["TAG_CREATED", "TAG_CREATED"]},
            {"value": "p", "op": "prefix", "path": "project_id"},
            {"path": "data", "op": "exists"},
        ]));
        let expected = vec![
            Filter { path: "data.s".into(), condition: Condition::Eq(json!(1)) },
            Filter { path: "type".into(), condition: Condition::In(vec![json!("TAG_CREATED"), json!("TAG_CREATED")]) },
            Filter { path: "project_id".into(), condition: Condition::Prefix("p".into()) },
            Filter { path: "data".into(), condition: Condition::Exists },
        ];
        assert_eq!(got, Ok(expected));
    }

    #[test]
    fn the_wire_form_is_path_op_and_value() -> Result<(), serde_json::Error> {
        // GIVEN filters of each op, a null value among them
        let given = json!([
            {"path": "data.s", "op": "eq", "value": null},
            {"path": "data.n", "op": "in", "value": [1, "1", 2.5, false]},
            {"path": "type", "op": "prefix", "value": "TODO_"},
            {"path": "data.x", "op": "exists"},
        ]);
        let filters = parse_filters(&given).map_err(serde::de::Error::custom)?;
        // WHEN shown by the API THEN exactly the input's form (no `value` for exists)
        assert_eq!(serde_json::to_value(&filters)?, given);
        // AND read back from JSON the same
        assert_eq!(serde_json::from_value::<Vec<Filter>>(given)?, filters);
        Ok(())
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Holder {
        #[serde(with = "stored")]
        filters: Vec<Filter>,
    }

    #[test]
    fn the_stored_form_is_text_and_reads_back_the_same() -> Result<(), serde_json::Error> {
        // GIVEN filters with values DynamoDB numbers cannot hold, and a null
        let filters = parse_filters(&json!([
            {"path": "data.n", "op": "eq", "value": 1e300},
            {"path": "data.m", "op": "in", "value": [1e-200, 123456789012345678u64, null]},
        ]))
        .map_err(serde::de::Error::custom)?;
        // WHEN stored THEN it is one string
        let holder = Holder { filters: filters.clone() };
        let stored = serde_json::to_value(&holder)?;
        assert!(stored["filters"].is_string(), "{stored}");
        assert_eq!(stored["filters"], json!(stored::to_text(&filters)));
        // AND it reads back the same, as does a plain list
        assert_eq!(serde_json::from_value::<Holder>(stored)?, holder);
        let plain = json!({"filters": serde_json::to_value(&filters)?});
        assert_eq!(serde_json::from_value::<Holder>(plain)?, holder);
        Ok(())
    }
}
