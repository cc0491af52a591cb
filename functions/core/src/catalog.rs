//! The event catalog: the one place that lists which event types exist, their group, and
//! whether a webhook may subscribe to them; [`schemas`] holds, beside it, what each type's
//! `data` is (a JSON Schema and an example).

use serde::Serialize;

pub mod schemas;

/// One entry of the catalog, as `GET /v1/event-types` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventType {
    #[serde(rename = "type")]
    pub name: &'static str,
    pub group: &'static str,
    pub description: &'static str,
}

const fn t(name: &'static str, group: &'static str, description: &'static str) -> EventType {
    EventType { name, group, description }
}

/// The 37 subscribable (and ingestible) event types, in catalog order.
pub const SUBSCRIBABLE: [EventType; 37] = [
    t("TODO_CREATED", "record", "A record was created."),
    t("TODO_DELETED", "record", "A record was deleted."),
    t("TODO_MOVED", "record", "A record was moved to another list."),
    t("TODO_NAME_CHANGED", "record", "A record was renamed."),
    t("TODO_DONE_STATUS_UPDATED", "record", "A record was marked done or not done."),
    t("TODO_DUE_DATE_ADDED", "record", "A due date was set on a record."),
    t("TODO_DUE_DATE_UPDATED", "record", "A record's due date changed."),
    t("TODO_DUE_DATE_REMOVED", "record", "A record's due date was removed."),
    t("TODO_ASSIGNEE_ADDED", "record", "Someone was assigned to a record."),
    t("TODO_ASSIGNEE_REMOVED", "record", "Someone was unassigned from a record."),
    t("TODO_TAG_ADDED", "record", "A tag was added to a record."),
    t("TODO_TAG_REMOVED", "record", "A tag was removed from a record."),
    t("TODO_CUSTOM_FIELD_UPDATED", "record", "A custom field value changed on a record."),
    t("TODO_CHECKLIST_CREATED", "checklist", "A checklist was added to a record."),
    t("TODO_CHECKLIST_NAME_CHANGED", "checklist", "A checklist was renamed."),
    t("TODO_CHECKLIST_DELETED", "checklist", "A checklist was deleted."),
    t("TODO_CHECKLIST_ITEM_CREATED", "checklist", "A checklist item was created."),
    t("TODO_CHECKLIST_ITEM_NAME_CHANGED", "checklist", "A checklist item was renamed."),
    t("TODO_CHECKLIST_ITEM_DELETED", "checklist", "A checklist item was deleted."),
    t("TODO_CHECKLIST_ITEM_DUE_DATE_ADDED", "checklist", "A due date was set on a checklist item."),
    t("TODO_CHECKLIST_ITEM_DUE_DATE_UPDATED", "checklist", "A checklist item's due date changed."),
    t("TODO_CHECKLIST_ITEM_DUE_DATE_REMOVED", "checklist", "A checklist item's due date was removed."),
    t("TODO_CHECKLIST_ITEM_ASSIGNEE_ADDED", "checklist", "Someone was assigned to a checklist item."),
    t("TODO_CHECKLIST_ITEM_ASSIGNEE_REMOVED", "checklist", "Someone was unassigned from a checklist item."),
    t("TODO_CHECKLIST_ITEM_DONE_STATUS_UPDATED", "checklist", "A checklist item was marked done or not done."),
    t("TODO_LIST_CREATED", "list", "A list was created."),
    t("TODO_LIST_DELETED", "list", "A list was deleted."),
    t("TODO_LIST_NAME_CHANGED", "list", "A list was renamed."),
    t("CUSTOM_FIELD_CREATED", "custom_field", "A custom field was created."),
    t("CUSTOM_FIELD_DELETED", "custom_field", "A custom field was deleted."),
    t("CUSTOM_FIELD_UPDATED", "custom_field", "A custom field's definition changed."),
    t("TAG_CREATED", "tag", "A tag was created."),
    t("TAG_DELETED", "tag", "A tag was deleted."),
    t("TAG_UPDATED", "tag", "A tag was changed."),
    t("COMMENT_CREATED", "comment", "A comment was posted."),
    t("COMMENT_DELETED", "comment", "A comment was deleted."),
    t("COMMENT_UPDATED", "comment", "A comment was edited."),
];

/// Sent by the service itself to check a receiver; never subscribable, never ingestible.
pub const HEALTH_CHECK: &str = "WEBHOOK_HEALTH_CHECK";

/// The groups, in the order a user sees them.
pub const GROUPS: [&str; 6] = ["record", "checklist", "list", "custom_field", "tag", "comment"];

/// The catalog entry of a subscribable type, if `name` is one.
pub fn subscribable(name: &str) -> Option<&'static EventType> {
    SUBSCRIBABLE.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalog_has_37_unique_types_in_known_groups() {
        let names: HashSet<_> = SUBSCRIBABLE.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), 37);
        assert!(SUBSCRIBABLE.iter().all(|t| GROUPS.contains(&t.group)));
        let counts: Vec<usize> = GROUPS.iter().map(|g| SUBSCRIBABLE.iter().filter(|t| t.group == *g).count()).collect();
        assert_eq!(counts, [13, 12, 3, 3, 3, 3]);
    }

    #[test]
    fn health_check_is_not_subscribable() {
        assert!(subscribable(HEALTH_CHECK).is_none());
        assert!(subscribable("TODO_CREATED").is_some());
        assert!(subscribable("todo_created").is_none());
    }
}
