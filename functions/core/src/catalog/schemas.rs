//! What each event type's `data` holds (SPEC §10 "Event schemas"): a JSON Schema (2020-12) of
//! the `data` and an example event, for every subscribable type of the catalog. They live here,
//! beside the catalog and as Rust data (no files to load, nothing to parse at run time), so a
//! type cannot be added without them: a test checks that every type has both and that every
//! example validates against its schema.
//!
//! One rule shapes every type: `data` is `{"previousValue", "currentValue"}`, the state of what
//! the event is about before and after it. Something created has no `previousValue` (null, or
//! left out), something deleted no `currentValue`; a change gives both, each with the ids of the
//! thing and the fields the event is about. Objects may carry more fields than stated (adding a
//! field is not a breaking change); field names are camelCase, as producers write them.
//!
//! The service itself never reads `data`: it forwards what producers send, checking only that
//! it is an object or null (SPEC §2). These schemas state the product's contract for
//! receivers, and give `POST /v1/webhooks/{id}/test` something real to send.
//!
//! Plain data and pure functions: no I/O.

use serde_json::{Map, Value, json};

use crate::catalog::{self, EventType};
use crate::event::Event;
use crate::payload::delivery_body;
use crate::validation::FieldError;

/// The JSON Schema dialect of every schema here.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The tenant and time of every example: the README's running example.
const EXAMPLE_COMPANY: &str = "acme";
const EXAMPLE_PROJECT: &str = "p1";
const EXAMPLE_TIME: &str = "2026-11-28T10:00:00Z";

/// The `webhook_id` of an example shown outside any webhook (`GET /v1/event-types/{type}`):
/// shaped like a real one (`wh_` and 24 base62 characters), and plainly not one.
pub const EXAMPLE_WEBHOOK_ID: &str = "wh_EXAMPLEwebhook0000000000";

/// An event type with the schema of its `data` and an example event of it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSchema {
    pub event_type: &'static EventType,
    /// A JSON Schema (2020-12) of the event's `data`.
    pub data_schema: Value,
    /// An event of this type, as the matcher would hand it to delivery.
    pub example: Event,
}

impl EventSchema {
    /// The example as webhook `webhook_id` receives it: the delivery body (SPEC §5).
    pub fn example_body(&self, webhook_id: &str) -> String {
        delivery_body(&self.example, webhook_id)
    }
}

/// The schema and example of a subscribable type; `None` for any other name (unknown, or
/// `WEBHOOK_HEALTH_CHECK`, whose body the README describes).
pub fn describe(name: &str) -> Option<EventSchema> {
    let event_type = catalog::subscribable(name)?;
    let change = change_of(event_type.name)?;
    let mut required = Vec::new();
    for (field, side) in [("previousValue", &change.previous), ("currentValue", &change.current)] {
        if !side.absent {
            required.push(field);
        }
    }
    let data_schema = json!({
        "$schema": DIALECT,
        "title": format!("data of {}", event_type.name),
        "description": format!(
            "{} `previousValue`: {}; `currentValue`: {}.",
            event_type.description, change.previous.meaning, change.current.meaning
        ),
        "type": "object",
        "properties": {"previousValue": change.previous.schema, "currentValue": change.current.schema},
        "required": required,
    });
    let example = Event {
        id: format!("evt_example_{}", event_type.name.to_ascii_lowercase()),
        source: format!("app/companies/{EXAMPLE_COMPANY}/projects/{EXAMPLE_PROJECT}"),
        event_type: event_type.name.to_owned(),
        company_id: EXAMPLE_COMPANY.to_owned(),
        project_id: EXAMPLE_PROJECT.to_owned(),
        time: EXAMPLE_TIME.to_owned(),
        data: json!({"previousValue": change.previous.example, "currentValue": change.current.example}),
    };
    Some(EventSchema { event_type, data_schema, example })
}

// ---------------------------------------------------------------------------------------------
// The test request (`POST /v1/webhooks/{id}/test`)
// ---------------------------------------------------------------------------------------------

/// The fields of a test request's body.
pub const TEST_FIELDS: [&str; 1] = ["event_type"];

/// What a test sends: `None` (no body, `{}` or a null `event_type`) is a health check; a type
/// sends that type's example.
pub fn parse_test_request(v: Option<&Value>) -> Result<Option<EventSchema>, FieldError> {
    let Some(v) = v else { return Ok(None) };
    let Value::Object(body) = v else {
        return Err(FieldError::new("", "the body must be a JSON object"));
    };
    if let Some(unknown) = body.keys().find(|k| !TEST_FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(unknown.as_str(), format!("`{unknown}` is not a known field")));
    }
    match body.get("event_type") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => describe(name).map(Some).ok_or_else(|| {
            FieldError::new(
                "event_type",
                format!("`event_type`: `{name}` is not a subscribable event type (see GET /v1/event-types)"),
            )
        }),
        Some(_) => Err(FieldError::new("event_type", "`event_type` must be a string")),
    }
}

// ---------------------------------------------------------------------------------------------
// The data of each type
// ---------------------------------------------------------------------------------------------

/// One side of a change: the schema of `previousValue` or `currentValue`, its example, and
/// what it is, in words.
#[derive(Debug)]
struct Side {
    schema: Value,
    example: Value,
    meaning: String,
    /// Null, and may be left out.
    absent: bool,
}

/// The `data` of one type: before and after.
#[derive(Debug)]
struct Change {
    previous: Side,
    current: Side,
}

/// Identities: ids as the examples use them.
const TODO: &[(&str, &str)] = &[("id", "t1")];
const CHECKLIST: &[(&str, &str)] = &[("id", "c1"), ("todoId", "t1")];
const CHECKLIST_ITEM: &[(&str, &str)] = &[("id", "ci1"), ("checklistId", "c1"), ("todoId", "t1")];
const LIST: &[(&str, &str)] = &[("id", "l1")];
const TODO_CUSTOM_FIELD: &[(&str, &str)] = &[("todoId", "t1"), ("customFieldId", "cf1")];

fn change_of(name: &str) -> Option<Change> {
    let due = || (instant(), json!("2026-12-01T17:00:00Z"));
    let due_later = || (instant(), json!("2026-12-03T17:00:00Z"));
    let no_due = || (null_only(), Value::Null);
    let change = match name {
        // record
        "TODO_CREATED" => created(todo(), todo_example()),
        "TODO_DELETED" => deleted(todo(), todo_example()),
        "TODO_MOVED" => field(TODO, "todoListId", (id(), json!("l1")), (id(), json!("l2"))),
        "TODO_NAME_CHANGED" => field(TODO, "title", (text(), json!("Ship it")), (text(), json!("Ship it today"))),
        "TODO_DONE_STATUS_UPDATED" => field(TODO, "done", (flag(), json!(false)), (flag(), json!(true))),
        "TODO_DUE_DATE_ADDED" => field(TODO, "dueDate", no_due(), due()),
        "TODO_DUE_DATE_UPDATED" => field(TODO, "dueDate", due(), due_later()),
        "TODO_DUE_DATE_REMOVED" => field(TODO, "dueDate", due(), no_due()),
        "TODO_ASSIGNEE_ADDED" => created(todo_assignee(), json!({"todoId": "t1", "userId": "u2"})),
        "TODO_ASSIGNEE_REMOVED" => deleted(todo_assignee(), json!({"todoId": "t1", "userId": "u2"})),
        "TODO_TAG_ADDED" => created(todo_tag(), json!({"todoId": "t1", "tagId": "tg2"})),
        "TODO_TAG_REMOVED" => deleted(todo_tag(), json!({"todoId": "t1", "tagId": "tg2"})),
        "TODO_CUSTOM_FIELD_UPDATED" => {
            field(TODO_CUSTOM_FIELD, "value", (any(), json!("Medium")), (any(), json!("High")))
        }
        // checklist
        "TODO_CHECKLIST_CREATED" => created(checklist(), checklist_example()),
        "TODO_CHECKLIST_NAME_CHANGED" => {
            field(CHECKLIST, "title", (text(), json!("Launch")), (text(), json!("Launch steps")))
        }
        "TODO_CHECKLIST_DELETED" => deleted(checklist(), checklist_example()),
        "TODO_CHECKLIST_ITEM_CREATED" => created(checklist_item(), checklist_item_example()),
        "TODO_CHECKLIST_ITEM_NAME_CHANGED" => {
            field(CHECKLIST_ITEM, "title", (text(), json!("Write notes")), (text(), json!("Write release notes")))
        }
        "TODO_CHECKLIST_ITEM_DELETED" => deleted(checklist_item(), checklist_item_example()),
        "TODO_CHECKLIST_ITEM_DUE_DATE_ADDED" => field(CHECKLIST_ITEM, "dueDate", no_due(), due()),
        "TODO_CHECKLIST_ITEM_DUE_DATE_UPDATED" => field(CHECKLIST_ITEM, "dueDate", due(), due_later()),
        "TODO_CHECKLIST_ITEM_DUE_DATE_REMOVED" => field(CHECKLIST_ITEM, "dueDate", due(), no_due()),
        "TODO_CHECKLIST_ITEM_ASSIGNEE_ADDED" => created(checklist_item_assignee(), checklist_item_assignee_example()),
        "TODO_CHECKLIST_ITEM_ASSIGNEE_REMOVED" => deleted(checklist_item_assignee(), checklist_item_assignee_example()),
        "TODO_CHECKLIST_ITEM_DONE_STATUS_UPDATED" => {
            field(CHECKLIST_ITEM, "done", (flag(), json!(false)), (flag(), json!(true)))
        }
        // list
        "TODO_LIST_CREATED" => created(list(), list_example()),
        "TODO_LIST_DELETED" => deleted(list(), list_example()),
        "TODO_LIST_NAME_CHANGED" => field(LIST, "title", (text(), json!("Backlog")), (text(), json!("Next up"))),
        // custom_field
        "CUSTOM_FIELD_CREATED" => created(custom_field(), custom_field_example()),
        "CUSTOM_FIELD_DELETED" => deleted(custom_field(), custom_field_example()),
        "CUSTOM_FIELD_UPDATED" => {
            let mut after = custom_field_example();
            after["options"] = json!(["Low", "Medium", "High", "Urgent"]);
            changed(custom_field(), custom_field_example(), after)
        }
        // tag
        "TAG_CREATED" => created(tag(), tag_example()),
        "TAG_DELETED" => deleted(tag(), tag_example()),
        "TAG_UPDATED" => {
            let mut after = tag_example();
            after["color"] = json!("#dc2626");
            changed(tag(), tag_example(), after)
        }
        // comment
        "COMMENT_CREATED" => created(comment(), comment_example()),
        "COMMENT_DELETED" => deleted(comment(), comment_example()),
        "COMMENT_UPDATED" => {
            let mut after = comment_example();
            after["text"] = json!("Looks good to me. Shipping on Monday.");
            after["updatedAt"] = json!("2026-11-28T10:00:00Z");
            changed(comment(), comment_example(), after)
        }
        _ => return None,
    };
    Some(change)
}

/// Something new: no `previousValue`, `currentValue` the whole of it.
fn created(schema: Value, example: Value) -> Change {
    Change {
        previous: nothing("null (it did not exist)"),
        current: Side { schema, example, meaning: "what was created".into(), absent: false },
    }
}

/// Something removed: `previousValue` the whole of it as it was, no `currentValue`.
fn deleted(schema: Value, example: Value) -> Change {
    Change {
        previous: Side { schema, example, meaning: "what was deleted, as it was".into(), absent: false },
        current: nothing("null (it no longer exists)"),
    }
}

/// The whole of something, before and after a change.
fn changed(schema: Value, before: Value, after: Value) -> Change {
    Change {
        previous: Side { schema: schema.clone(), example: before, meaning: "as it was".into(), absent: false },
        current: Side { schema, example: after, meaning: "as it is now".into(), absent: false },
    }
}

/// One field of something (with its ids), before and after: `(schema, example)` of the field.
fn field(ids: &[(&str, &str)], name: &str, before: (Value, Value), after: (Value, Value)) -> Change {
    let side = |(schema, value): (Value, Value), meaning: String| {
        let mut properties: Vec<(&str, Value)> = ids.iter().map(|(k, _)| (*k, id())).collect();
        properties.push((name, schema));
        let required: Vec<&str> = properties.iter().map(|(k, _)| *k).collect();
        let mut example: Map<String, Value> = ids.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        example.insert(name.to_owned(), value);
        Side { schema: object(&properties, &required), example: Value::Object(example), meaning, absent: false }
    };
    let ids_and = if ids.len() == 1 { "its id" } else { "its ids" };
    Change {
        previous: side(before, format!("{ids_and} and `{name}` before the change")),
        current: side(after, format!("{ids_and} and `{name}` now")),
    }
}

fn nothing(meaning: &str) -> Side {
    Side { schema: null_only(), example: Value::Null, meaning: meaning.to_owned(), absent: true }
}

// ---------------------------------------------------------------------------------------------
// Schemas of values and things, with their examples
// ---------------------------------------------------------------------------------------------

fn id() -> Value {
    json!({"type": "string", "minLength": 1})
}

fn text() -> Value {
    json!({"type": "string"})
}

fn flag() -> Value {
    json!({"type": "boolean"})
}

fn instant() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn null_only() -> Value {
    json!({"type": "null"})
}

/// Any JSON value (a custom field holds text, a number, a date, a choice, ...).
fn any() -> Value {
    json!({})
}

fn or_null(schema: Value) -> Value {
    json!({"anyOf": [schema, null_only()]})
}

fn ids() -> Value {
    json!({"type": "array", "items": id(), "uniqueItems": true})
}

/// An object with these properties, `required` of them required; others allowed.
fn object(properties: &[(&str, Value)], required: &[&str]) -> Value {
    let properties: Map<String, Value> = properties.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    json!({"type": "object", "properties": properties, "required": required})
}

/// A record (todo).
fn todo() -> Value {
    object(
        &[
            ("id", id()),
            ("todoListId", id()),
            ("title", text()),
            ("done", flag()),
            ("dueDate", or_null(instant())),
            ("assigneeIds", ids()),
            ("tagIds", ids()),
            ("createdAt", instant()),
        ],
        &["id", "title"],
    )
}

fn todo_example() -> Value {
    json!({"id": "t1", "todoListId": "l1", "title": "Ship it", "done": false, "dueDate": null,
           "assigneeIds": ["u1"], "tagIds": ["tg1"], "createdAt": EXAMPLE_TIME})
}

fn todo_assignee() -> Value {
    object(&[("todoId", id()), ("userId", id())], &["todoId", "userId"])
}

fn todo_tag() -> Value {
    object(&[("todoId", id()), ("tagId", id())], &["todoId", "tagId"])
}

fn checklist() -> Value {
    object(
        &[("id", id()), ("todoId", id()), ("title", text()), ("position", json!({"type": "integer", "minimum": 0}))],
        &["id", "todoId", "title"],
    )
}

fn checklist_example() -> Value {
    json!({"id": "c1", "todoId": "t1", "title": "Launch", "position": 0})
}

fn checklist_item() -> Value {
    object(
        &[
            ("id", id()),
            ("checklistId", id()),
            ("todoId", id()),
            ("title", text()),
            ("done", flag()),
            ("dueDate", or_null(instant())),
            ("assigneeIds", ids()),
        ],
        &["id", "checklistId", "todoId", "title"],
    )
}

fn checklist_item_example() -> Value {
    json!({"id": "ci1", "checklistId": "c1", "todoId": "t1", "title": "Write notes", "done": false,
           "dueDate": null, "assigneeIds": []})
}

fn checklist_item_assignee() -> Value {
    object(
        &[("checklistItemId", id()), ("checklistId", id()), ("todoId", id()), ("userId", id())],
        &["checklistItemId", "checklistId", "todoId", "userId"],
    )
}

fn checklist_item_assignee_example() -> Value {
    json!({"checklistItemId": "ci1", "checklistId": "c1", "todoId": "t1", "userId": "u2"})
}

/// A list of records.
fn list() -> Value {
    object(&[("id", id()), ("title", text()), ("position", json!({"type": "integer", "minimum": 0}))], &["id", "title"])
}

fn list_example() -> Value {
    json!({"id": "l1", "title": "Backlog", "position": 0})
}

/// The definition of a custom field (its values on records: `TODO_CUSTOM_FIELD_UPDATED`).
fn custom_field() -> Value {
    object(
        &[
            ("id", id()),
            ("name", text()),
            ("type", json!({"type": "string", "enum": ["text", "number", "date", "checkbox", "select"]})),
            ("options", json!({"type": "array", "items": {"type": "string"}})),
        ],
        &["id", "name", "type"],
    )
}

fn custom_field_example() -> Value {
    json!({"id": "cf1", "name": "Priority", "type": "select", "options": ["Low", "Medium", "High"]})
}

fn tag() -> Value {
    object(
        &[("id", id()), ("title", text()), ("color", json!({"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"}))],
        &["id", "title"],
    )
}

fn tag_example() -> Value {
    json!({"id": "tg2", "title": "Urgent", "color": "#f59e0b"})
}

fn comment() -> Value {
    object(
        &[
            ("id", id()),
            ("todoId", id()),
            ("authorId", id()),
            ("text", text()),
            ("createdAt", instant()),
            ("updatedAt", or_null(instant())),
        ],
        &["id", "todoId", "text"],
    )
}

fn comment_example() -> Value {
    json!({"id": "cm1", "todoId": "t1", "authorId": "u1", "text": "Looks good to me.",
           "createdAt": "2026-11-28T09:30:00Z", "updatedAt": null})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{HEALTH_CHECK, SUBSCRIBABLE};

    /// A validator of `schema` as JSON Schema 2020-12, formats asserted (`date-time`).
    fn validator(schema: &Value) -> jsonschema::Validator {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(schema)
            .unwrap_or_else(|e| panic!("not a valid schema: {e}\n{schema:#}"))
    }

    fn errors(schema: &Value, data: &Value) -> Vec<String> {
        validator(schema).iter_errors(data).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }

    #[test]
    fn every_catalog_type_has_a_schema_and_an_example() {
        for t in &SUBSCRIBABLE {
            let described = describe(t.name).unwrap_or_else(|| panic!("{} has no schema", t.name));
            assert_eq!(described.event_type, t);
            assert_eq!(described.example.event_type, t.name);
            assert!(described.example.data.is_object(), "{}", t.name);
        }
    }

    #[test]
    fn every_schema_is_a_2020_12_schema_and_every_example_validates_against_it() {
        for t in &SUBSCRIBABLE {
            let Some(described) = describe(t.name) else { panic!("{} has no schema", t.name) };
            // GIVEN the schema, checked against the 2020-12 meta-schema
            assert_eq!(described.data_schema["$schema"], DIALECT);
            assert!(jsonschema::meta::is_valid(&described.data_schema), "{}", t.name);
            // THEN the example's data validates
            assert_eq!(errors(&described.data_schema, &described.example.data), Vec::<String>::new(), "{}", t.name);
        }
    }

    #[test]
    fn every_example_is_a_delivery_body_of_its_type() {
        let mut event_ids = std::collections::BTreeSet::new();
        for t in &SUBSCRIBABLE {
            let Some(described) = describe(t.name) else { panic!("{} has no schema", t.name) };
            let body: Value = serde_json::from_str(&described.example_body("wh_1")).unwrap_or_default();
            assert_eq!(body["type"], t.name);
            assert_eq!(body["webhook_id"], "wh_1");
            assert_eq!((&body["company_id"], &body["project_id"]), (&json!("acme"), &json!("p1")));
            assert_eq!(body["data"], described.example.data);
            assert!(event_ids.insert(described.example.id.clone()), "one example id per type");
        }
        let id = EXAMPLE_WEBHOOK_ID.strip_prefix("wh_").unwrap_or_default();
        assert!(id.len() == 24 && id.bytes().all(|b| b.is_ascii_alphanumeric()), "shaped like a webhook id");
    }

    #[test]
    fn schemas_refuse_data_that_breaks_them() {
        // GIVEN schemas of a creation, a deletion and a change
        let created = describe("TODO_CREATED").map(|d| d.data_schema).unwrap_or_default();
        let deleted = describe("TODO_DELETED").map(|d| d.data_schema).unwrap_or_default();
        let renamed = describe("TODO_NAME_CHANGED").map(|d| d.data_schema).unwrap_or_default();
        // THEN what the README publishes passes, and wrong shapes fail
        assert!(errors(&created, &json!({"currentValue": {"id": "t1", "title": "Ship it"}})).is_empty());
        assert!(!errors(&created, &json!({"previousValue": null})).is_empty(), "currentValue is required");
        assert!(!errors(&created, &json!({"currentValue": {"id": "t1"}})).is_empty(), "a record has a title");
        assert!(
            !errors(&deleted, &json!({"previousValue": {"id": "t1", "title": "x"}, "currentValue": {}})).is_empty()
        );
        assert!(
            !errors(
                &renamed,
                &json!({"previousValue": {"id": "t1", "title": 1}, "currentValue": {"id": "t1", "title": "x"}})
            )
            .is_empty()
        );
        assert!(
            !errors(&created, &json!({"currentValue": {"id": "t1", "title": "x", "createdAt": "yesterday"}}))
                .is_empty()
        );
    }

    #[test]
    fn only_subscribable_types_are_described() {
        assert!(describe(HEALTH_CHECK).is_none());
        assert!(describe("todo_created").is_none());
        assert!(describe("NOPE").is_none());
    }

    #[test]
    fn a_test_request_names_a_subscribable_type_or_nothing() {
        // GIVEN bodies a caller may send; THEN the health check, an example, or the field at fault
        let parse = |v: Option<Value>| parse_test_request(v.as_ref()).map(|d| d.map(|d| d.event_type.name));
        assert_eq!(parse(None), Ok(None));
        assert_eq!(parse(Some(json!({}))), Ok(None));
        assert_eq!(parse(Some(json!({"event_type": null}))), Ok(None));
        assert_eq!(parse(Some(json!({"event_type": "TAG_CREATED"}))), Ok(Some("TAG_CREATED")));
        let field = |v: Value| parse_test_request(Some(&v)).map(|_| ()).map_err(|e| e.field);
        assert_eq!(field(json!({"event_type": "NOPE"})), Err("event_type".to_owned()));
        assert_eq!(field(json!({"event_type": HEALTH_CHECK})), Err("event_type".to_owned()));
        assert_eq!(field(json!({"event_type": 3})), Err("event_type".to_owned()));
        assert_eq!(field(json!({"event_type": "TAG_CREATED", "extra": 1})), Err("extra".to_owned()));
        assert_eq!(field(json!(["TAG_CREATED"])), Err(String::new()));
    }
}
