//! Matching (SPEC §4): is an event for a webhook, which match-index partitions a webhook and an
//! event live in, and where a match goes (queued, parked or dropped).
//!
//! The matcher never scans: it queries the match index by the two partitions of an event and
//! then applies [`matches()`] to what it read. [`partitions_for_webhook`] and
//! [`partitions_for_event`] are therefore one contract: whenever rules 1 and 2 select an event,
//! the webhook's partitions share at least one key with the event's (tested below).
//!
//! What the reads return is put in a [`MatchIndex`] once per batch, grouped by event type, so
//! matching one event visits only the entries that select its type (or every type), however
//! many webhooks its project has.
//!
//! Pure functions over the model; no storage, no clock.

use std::collections::{BTreeSet, HashMap};

use crate::event::Event;
use crate::filters::{self, Filter};
use crate::model::{DisabledReason, DropReason, Scope, Selection, WebhookStatus};

/// Prefix of the partition of one project: `P#<company>#<project>`.
const PROJECT_PARTITION_PREFIX: &str = "P#";
/// Prefix of the partition of one company: `C#<company>`.
const COMPANY_PARTITION_PREFIX: &str = "C#";

/// What matching needs to know about a webhook's owner key (possibly cached up to 60 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerView<'a> {
    /// False once the key is deleted or revoked.
    pub active: bool,
    /// The companies the key holds now.
    pub companies: &'a [String],
}

impl OwnerView<'_> {
    /// Rule 3: the key is active and still holds `company_id`.
    pub fn permits(&self, company_id: &str) -> bool {
        self.active && self.companies.iter().any(|c| c == company_id)
    }
}

/// Whether `event` is for a webhook with selection `sel` owned by `owner`: SPEC §4 rules 1–3.
///
/// 1. `sel.events` is empty or contains the event's type;
/// 2. `sel.scopes` is empty (every company the owner holds) or one scope has the event's
///    company and either no project or the event's project;
/// 3. the owner key is active and holds the event's company.
pub fn matches(sel: &Selection, owner: OwnerView<'_>, event: &Event) -> bool {
    selects(sel, owner.companies, event) && owner.permits(&event.company_id)
}

/// Rules 1 and 2 alone: whether the selection picks `event`, given the companies the owner
/// holds (which an empty scope list stands for). Rule 3 is [`OwnerView::permits`].
pub fn selects(sel: &Selection, owner_companies: &[String], event: &Event) -> bool {
    selects_parts(&sel.events, &sel.scopes, owner_companies, event)
}

/// [`selects`] over a selection's two lists, as the match index stores them.
fn selects_parts(events: &[String], scopes: &[Scope], owner_companies: &[String], event: &Event) -> bool {
    let type_selected = events.is_empty() || events.contains(&event.event_type);
    let scope_selected = if scopes.is_empty() {
        owner_companies.contains(&event.company_id)
    } else {
        scopes
            .iter()
            .any(|s| s.company_id == event.company_id && s.project_id.as_ref().is_none_or(|p| *p == event.project_id))
    };
    type_selected && scope_selected
}

/// The match-index partition of one project.
pub fn project_partition(company_id: &str, project_id: &str) -> String {
    format!("{PROJECT_PARTITION_PREFIX}{company_id}#{project_id}")
}

/// The match-index partition of one whole company.
pub fn company_partition(company_id: &str) -> String {
    format!("{COMPANY_PARTITION_PREFIX}{company_id}")
}

/// The match-index partitions a webhook is written under: `P#<company>#<project>` per project
/// scope, `C#<company>` per whole-company scope, and with no scopes one `C#<company>` per company
/// the owner holds.
///
/// Because an empty scope list follows the owner's companies, changing a key's companies must
/// rewrite the index entries of its webhooks that have no scopes. Event types are not part of
/// the partition: rule 1 is applied after the read.
pub fn partitions_for_webhook(sel: &Selection, owner_companies: &[String]) -> BTreeSet<String> {
    if sel.scopes.is_empty() {
        return owner_companies.iter().map(|c| company_partition(c)).collect();
    }
    sel.scopes
        .iter()
        .map(|s| match &s.project_id {
            Some(p) => project_partition(&s.company_id, p),
            None => company_partition(&s.company_id),
        })
        .collect()
}

/// The two partitions the matcher queries for an event: its project's, then its company's.
pub fn partitions_for_event(e: &Event) -> [String; 2] {
    [project_partition(&e.company_id, &e.project_id), company_partition(&e.company_id)]
}

/// One match-index entry as a batch read it, with its owner key resolved.
#[derive(Debug, Clone, Copy)]
pub struct Subscriber<'a> {
    pub webhook_id: &'a str,
    /// The webhook's selection: event types (empty = all) and scopes (empty = the owner's
    /// companies).
    pub events: &'a [String],
    pub scopes: &'a [Scope],
    /// The webhook's payload filters (rule 4), all of which must hold.
    pub filters: &'a [Filter],
    pub owner: OwnerView<'a>,
}

impl Subscriber<'_> {
    /// [`matches`] for this entry, then rule 4: its filters, last, as they are the dearest
    /// check and only the entries that passed the others need it.
    pub fn matches(&self, event: &Event) -> bool {
        selects_parts(self.events, self.scopes, self.owner.companies, event)
            && self.owner.permits(&event.company_id)
            && filters::all_hold(self.filters, event)
    }
}

/// The entries one batch read, by partition and by the event types they select; entries that
/// take every type are kept apart. Built once per batch (one pass over what the Queries
/// returned); matching an event then costs in proportion to the entries that select its type,
/// not to the size of its project.
#[derive(Debug, Default)]
pub struct MatchIndex<'a> {
    typed: HashMap<(&'a str, &'a str), Vec<Subscriber<'a>>>,
    every_type: HashMap<&'a str, Vec<Subscriber<'a>>>,
}

impl<'a> MatchIndex<'a> {
    /// Adds an entry read from `partition`.
    pub fn insert(&mut self, partition: &'a str, subscriber: Subscriber<'a>) {
        if subscriber.events.is_empty() {
            self.every_type.entry(partition).or_default().push(subscriber);
        }
        for event_type in subscriber.events {
            self.typed.entry((partition, event_type.as_str())).or_default().push(subscriber);
        }
    }

    /// The webhooks `event` is for (rules 1–4), each once: first those of its project's
    /// partition, then those of its company's, in the order they were inserted.
    pub fn matching(&self, event: &Event) -> Vec<&'a str> {
        let mut found: Vec<&'a str> = Vec::new();
        for partition in partitions_for_event(event) {
            let typed = self.typed.get(&(partition.as_str(), event.event_type.as_str()));
            let every_type = self.every_type.get(partition.as_str());
            for s in typed.into_iter().chain(every_type).flatten() {
                // Linear: an event matches few webhooks, and the list keeps the order.
                if !found.contains(&s.webhook_id) && s.matches(event) {
                    found.push(s.webhook_id);
                }
            }
        }
        found
    }
}

/// Where one match goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Put a delivery on the delivery queue (for a tripped webhook: as its probe).
    Queue,
    /// Keep the delivery for a later replay.
    Park,
    /// Count it as dropped for this reason.
    Drop(DropReason),
}

/// Whether a webhook is tripped (SPEC §6): it failed at least as many times in a row as a
/// delivery has attempts, so new deliveries are parked except for one probe.
pub fn is_tripped(consecutive_failures: u32, max_attempts: u32) -> bool {
    consecutive_failures >= max_attempts
}

/// Where a new match for a webhook goes (SPEC §4 last paragraph, §6):
///
/// - active and not tripped: queued;
/// - active and tripped: queued as the probe when the probe slot is free, else parked;
/// - disabled for `failing` or `gone`: parked (re-sent after a successful `enable`);
/// - disabled by hand: dropped (`manual_disabled`).
///
/// A disabled webhook without a recorded reason should not exist; it is parked, the choice
/// that loses nothing. A reason left on an active webhook is ignored.
pub fn route(status: WebhookStatus, reason: Option<DisabledReason>, tripped: bool, probe_slot_free: bool) -> Route {
    match status {
        WebhookStatus::Active if !tripped || probe_slot_free => Route::Queue,
        WebhookStatus::Active => Route::Park,
        WebhookStatus::Disabled => match reason {
            Some(DisabledReason::Manual) => Route::Drop(DropReason::ManualDisabled),
            Some(DisabledReason::Failing | DisabledReason::Gone) | None => Route::Park,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Scope;
    use serde_json::Value;

    fn event(event_type: &str, company: &str, project: &str) -> Event {
        Event {
            id: "evt-1".to_owned(),
            source: "test".to_owned(),
            event_type: event_type.to_owned(),
            company_id: company.to_owned(),
            project_id: project.to_owned(),
            time: "2026-11-28T10:00:00Z".to_owned(),
            data: Value::Null,
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn selection(events: &[&str], scopes: &[Scope]) -> Selection {
        Selection { events: strings(events), scopes: scopes.to_vec() }
    }

    #[test]
    fn matching_truth_table() {
        let acme = Scope::company("acme");
        let acme_p1 = Scope::project("acme", "p1");
        let globex_p9 = Scope::project("globex", "p9");
        let initech = Scope::company("initech");
        let both = strings(&["acme", "globex"]);
        let acme_only = strings(&["acme"]);
        let globex_only = strings(&["globex"]);
        let none: Vec<String> = Vec::new();
        // (case, events, scopes, owner active, owner companies, event (type, company, project), expected)
        type Case<'a> = (&'a str, &'a [&'a str], Vec<Scope>, bool, &'a [String], (&'a str, &'a str, &'a str), bool);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // Rule 1: event types.
            ("empty events = all", &[], vec![], true, &both, ("TAG_CREATED", "acme", "p1"), true),
            ("listed type", &["TODO_CREATED"], vec![], true, &both, ("TODO_CREATED", "acme", "p1"), true),
            ("unlisted type", &["TODO_CREATED"], vec![], true, &both, ("TODO_DELETED", "acme", "p1"), false),
            ("one of several", &["TAG_CREATED", "TODO_DELETED"], vec![], true, &both, ("TODO_DELETED", "acme", "p1"), true),
            ("type compared exactly", &["todo_created"], vec![], true, &both, ("TODO_CREATED", "acme", "p1"), false),
            // Rule 2: scopes.
            ("whole company, any project", &[], vec![acme.clone()], true, &both, ("TODO_CREATED", "acme", "p7"), true),
            ("whole company, other company", &[], vec![acme.clone()], true, &both, ("TODO_CREATED", "globex", "p1"), false),
            ("project scope, same project", &[], vec![acme_p1.clone()], true, &both, ("TODO_CREATED", "acme", "p1"), true),
            ("project scope, other project", &[], vec![acme_p1.clone()], true, &both, ("TODO_CREATED", "acme", "p2"), false),
            ("project scope, same project id in other company", &[], vec![acme_p1.clone()], true, &both, ("TODO_CREATED", "globex", "p1"), false),
            ("cross-company: first", &[], vec![acme_p1.clone(), globex_p9.clone()], true, &both, ("TODO_CREATED", "acme", "p1"), true),
            ("cross-company: second", &[], vec![acme_p1.clone(), globex_p9.clone()], true, &both, ("TODO_CREATED", "globex", "p9"), true),
            ("cross-company: neither", &[], vec![acme_p1.clone(), globex_p9.clone()], true, &both, ("TODO_CREATED", "globex", "p1"), false),
            ("company and project scope overlap", &[], vec![acme.clone(), acme_p1.clone()], true, &both, ("TODO_CREATED", "acme", "p2"), true),
            ("empty scopes, first owner company", &[], vec![], true, &both, ("TODO_CREATED", "acme", "p1"), true),
            ("empty scopes, second owner company", &[], vec![], true, &both, ("TODO_CREATED", "globex", "p3"), true),
            ("empty scopes, company not held", &[], vec![], true, &both, ("TODO_CREATED", "initech", "p1"), false),
            ("types and scopes both needed", &["TAG_CREATED"], vec![acme_p1.clone()], true, &both, ("TODO_CREATED", "acme", "p1"), false),
            // Rule 3: the owner key.
            ("owner inactive", &[], vec![], false, &both, ("TODO_CREATED", "acme", "p1"), false),
            ("owner inactive, explicit scope", &[], vec![acme.clone()], false, &both, ("TODO_CREATED", "acme", "p1"), false),
            ("owner no longer holds the scoped company", &[], vec![acme.clone()], true, &globex_only, ("TODO_CREATED", "acme", "p1"), false),
            ("owner holds one of two scoped companies", &[], vec![acme_p1.clone(), globex_p9.clone()], true, &acme_only, ("TODO_CREATED", "globex", "p9"), false),
            ("owner holds nothing", &[], vec![], true, &none, ("TODO_CREATED", "acme", "p1"), false),
            ("scope on a company never held", &[], vec![initech], true, &both, ("TODO_CREATED", "initech", "p1"), false),
        ];
        for (case, events, scopes, active, companies, (t, c, p), expected) in cases {
            // GIVEN a webhook selection and its owner
            let sel = selection(events, &scopes);
            let owner = OwnerView { active, companies };
            // WHEN an event arrives
            let got = matches(&sel, owner, &event(t, c, p));
            // THEN it matches exactly per rules 1-3
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn partitions_of_a_webhook() {
        let owner = strings(&["acme", "globex"]);
        // (case, scopes, owner companies, expected partitions)
        type Case<'a> = (&'a str, Vec<Scope>, &'a [String], Vec<&'a str>);
        let cases: Vec<Case> = vec![
            ("empty scopes: one per owner company", vec![], &owner, vec!["C#acme", "C#globex"]),
            ("empty scopes, owner holds nothing", vec![], &[], vec![]),
            ("whole company", vec![Scope::company("acme")], &owner, vec!["C#acme"]),
            ("project", vec![Scope::project("acme", "p1")], &owner, vec!["P#acme#p1"]),
            (
                "mixed, cross-company, duplicates collapse",
                vec![
                    Scope::project("acme", "p1"),
                    Scope::company("globex"),
                    Scope::project("acme", "p1"),
                    Scope::project("globex", "p9"),
                ],
                &owner,
                vec!["C#globex", "P#acme#p1", "P#globex#p9"],
            ),
            ("explicit scopes ignore owner companies", vec![Scope::company("initech")], &owner, vec!["C#initech"]),
        ];
        for (case, scopes, companies, expected) in cases {
            // GIVEN a selection WHEN its partitions are computed THEN they are exactly these
            let got = partitions_for_webhook(&selection(&[], &scopes), companies);
            let expected: BTreeSet<String> = expected.into_iter().map(str::to_owned).collect();
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn partitions_of_an_event_are_its_project_then_its_company() {
        // GIVEN an event WHEN its partitions are computed THEN project first, company second
        let got = partitions_for_event(&event("TODO_CREATED", "acme", "p1"));
        assert_eq!(got, ["P#acme#p1".to_owned(), "C#acme".to_owned()]);
    }

    /// Every subset of `items`, by bit mask.
    fn subsets<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        (0..1u32 << items.len())
            .map(|mask| {
                items.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, x)| x.clone()).collect()
            })
            .collect()
    }

    #[test]
    fn a_selected_event_is_always_found_in_the_index() {
        // GIVEN every combination of scopes, owner companies and event lists on a small grid
        let companies = ["acme", "globex", "initech"];
        let projects = ["p1", "p2"];
        let candidate_scopes = [
            Scope::company("acme"),
            Scope::project("acme", "p1"),
            Scope::project("globex", "p2"),
            Scope::company("initech"),
            Scope::project("initech", "p1"),
            Scope::project("acme", "p2"),
        ];
        let event_lists: [&[&str]; 3] = [&[], &["TODO_CREATED"], &["TAG_CREATED", "TODO_CREATED"]];
        let types = ["TODO_CREATED", "TAG_CREATED"];
        let owner_sets = subsets(&strings(&companies));
        let mut selected = 0usize;
        let mut checked = 0usize;
        for scopes in subsets(&candidate_scopes) {
            for events in event_lists {
                let sel = selection(events, &scopes);
                for owner in &owner_sets {
                    let webhook_partitions = partitions_for_webhook(&sel, owner);
                    for c in companies {
                        for p in projects {
                            for t in types {
                                // WHEN rules 1 and 2 select an event
                                let e = event(t, c, p);
                                checked += 1;
                                if !selects(&sel, owner, &e) {
                                    continue;
                                }
                                selected += 1;
                                // THEN one of the event's partitions holds the webhook
                                let found = partitions_for_event(&e).iter().any(|k| webhook_partitions.contains(k));
                                assert!(found, "{sel:?} owner={owner:?} event={c}/{p}/{t}");
                            }
                        }
                    }
                }
            }
        }
        // The grid is not vacuous: both outcomes occur.
        assert!(selected > 0 && selected < checked, "{selected} of {checked}");
    }

    #[test]
    fn the_match_index_finds_exactly_what_the_rules_select() {
        // GIVEN webhooks for every combination of scopes and event lists, with owners active or
        // not and holding various companies, each inserted under its partitions
        let companies = ["acme", "globex"];
        let candidate_scopes = [
            Scope::company("acme"),
            Scope::project("acme", "p1"),
            Scope::project("globex", "p2"),
            Scope::project("acme", "p2"),
        ];
        let event_lists: [&[&str]; 4] = [&[], &["TODO_CREATED"], &["TAG_CREATED", "TODO_CREATED"], &["TAG_CREATED"]];
        let owner_sets = subsets(&strings(&companies));
        let mut webhooks = Vec::new();
        for scopes in subsets(&candidate_scopes) {
            for events in event_lists {
                for (o, owner) in owner_sets.iter().enumerate() {
                    for active in [true, false] {
                        let id = format!("wh{}", webhooks.len());
                        webhooks.push((id, selection(events, &scopes), owner.clone(), active, o));
                    }
                }
            }
        }
        let partitions: Vec<Vec<String>> = webhooks
            .iter()
            .map(|(_, sel, owner, _, _)| partitions_for_webhook(sel, owner).into_iter().collect())
            .collect();
        let mut index = MatchIndex::default();
        for ((id, sel, owner, active, _), parts) in webhooks.iter().zip(&partitions) {
            for partition in parts {
                let owner = OwnerView { active: *active, companies: owner };
                index.insert(
                    partition,
                    Subscriber { webhook_id: id, events: &sel.events, scopes: &sel.scopes, filters: &[], owner },
                );
            }
        }
        let mut matched = 0usize;
        for c in ["acme", "globex", "initech"] {
            for p in ["p1", "p2"] {
                for t in ["TODO_CREATED", "TAG_CREATED", "TODO_DELETED"] {
                    // WHEN an event is matched through the index
                    let e = event(t, c, p);
                    let mut got = index.matching(&e);
                    // THEN it finds each webhook the rules select, once, and no other
                    let mut expected: Vec<&str> = webhooks
                        .iter()
                        .filter(|(_, sel, owner, active, _)| {
                            matches(sel, OwnerView { active: *active, companies: owner }, &e)
                        })
                        .map(|(id, ..)| id.as_str())
                        .collect();
                    got.sort_unstable();
                    expected.sort_unstable();
                    assert_eq!(got, expected, "{c}/{p}/{t}");
                    matched += got.len();
                }
            }
        }
        // Not vacuous: some events match, and not everything matches.
        assert!(matched > 0 && matched < webhooks.len() * 18, "{matched}");
    }

    #[test]
    fn the_match_index_keeps_project_entries_first() {
        // GIVEN one webhook on the company and one on the project, both for every type
        let owner = strings(&["acme"]);
        let view = OwnerView { active: true, companies: &owner };
        let company = [Scope::company("acme")];
        let project = [Scope::project("acme", "p1")];
        let mut index = MatchIndex::default();
        index.insert(
            "C#acme",
            Subscriber { webhook_id: "wh_company", events: &[], scopes: &company, filters: &[], owner: view },
        );
        index.insert(
            "P#acme#p1",
            Subscriber { webhook_id: "wh_project", events: &[], scopes: &project, filters: &[], owner: view },
        );
        // WHEN an event of the project is matched THEN the project's partition comes first
        assert_eq!(index.matching(&event("TODO_CREATED", "acme", "p1")), ["wh_project", "wh_company"]);
        // AND an event of another project meets only the company's webhook
        assert_eq!(index.matching(&event("TODO_CREATED", "acme", "p2")), ["wh_company"]);
    }

    #[test]
    fn the_match_index_applies_filters_after_the_other_rules() {
        // GIVEN three webhooks on a project for TODO_CREATED: one without filters, one for
        // open records only, one for open records of another company's events (never selected)
        let owner = strings(&["acme"]);
        let view = OwnerView { active: true, companies: &owner };
        let project = [Scope::project("acme", "p1")];
        let events = strings(&["TODO_CREATED"]);
        let open = crate::filters::parse_filters(&serde_json::json!([
            {"path": "data.status", "op": "eq", "value": "open"}
        ]))
        .unwrap_or_default();
        assert_eq!(open.len(), 1);
        let mut index = MatchIndex::default();
        for (id, filters) in [("wh_all", &[][..]), ("wh_open", &open[..])] {
            index.insert(
                "P#acme#p1",
                Subscriber { webhook_id: id, events: &events, scopes: &project, filters, owner: view },
            );
        }
        let with_status =
            |t: &str, status: &str| Event { data: serde_json::json!({"status": status}), ..event(t, "acme", "p1") };
        // WHEN events are matched THEN the filtered webhook gets only those its filters pass
        assert_eq!(index.matching(&with_status("TODO_CREATED", "open")), ["wh_all", "wh_open"]);
        assert_eq!(index.matching(&with_status("TODO_CREATED", "closed")), ["wh_all"]);
        assert_eq!(index.matching(&event("TODO_CREATED", "acme", "p1")), ["wh_all"], "absent path");
        // AND filters never widen what rules 1-3 select
        assert!(index.matching(&with_status("TODO_DELETED", "open")).is_empty());
        let inactive = OwnerView { active: false, companies: &owner };
        let s =
            Subscriber { webhook_id: "wh_open", events: &events, scopes: &project, filters: &open, owner: inactive };
        assert!(!s.matches(&with_status("TODO_CREATED", "open")));
    }

    #[test]
    fn matches_is_selects_plus_owner_rule() {
        // GIVEN the same grid of owners WHEN an owner is inactive THEN nothing matches
        let owner = strings(&["acme"]);
        let sel = selection(&[], &[]);
        let e = event("TODO_CREATED", "acme", "p1");
        assert!(selects(&sel, &owner, &e));
        assert!(matches(&sel, OwnerView { active: true, companies: &owner }, &e));
        assert!(!matches(&sel, OwnerView { active: false, companies: &owner }, &e));
    }

    #[test]
    fn trip_threshold_is_inclusive() {
        // GIVEN a failure count and a max attempts WHEN compared THEN tripped from max on
        let cases = [(0, 5, false), (4, 5, false), (5, 5, true), (6, 5, true), (1, 1, true), (0, 0, true)];
        for (failures, max, expected) in cases {
            assert_eq!(is_tripped(failures, max), expected, "{failures}/{max}");
        }
    }

    #[test]
    fn routing_truth_table() {
        use DisabledReason::{Failing, Gone, Manual};
        use WebhookStatus::{Active, Disabled};
        // (status, reason, tripped, probe slot free, expected)
        let cases = [
            (Active, None, false, false, Route::Queue),
            (Active, None, false, true, Route::Queue),
            (Active, None, true, true, Route::Queue),
            (Active, None, true, false, Route::Park),
            (Active, Some(Manual), false, false, Route::Queue),
            (Active, Some(Failing), true, false, Route::Park),
            (Disabled, Some(Failing), false, false, Route::Park),
            (Disabled, Some(Failing), true, true, Route::Park),
            (Disabled, Some(Gone), false, true, Route::Park),
            (Disabled, Some(Gone), true, false, Route::Park),
            (Disabled, Some(Manual), false, false, Route::Drop(DropReason::ManualDisabled)),
            (Disabled, Some(Manual), true, true, Route::Drop(DropReason::ManualDisabled)),
            (Disabled, None, false, false, Route::Park),
        ];
        for (status, reason, tripped, free, expected) in cases {
            // GIVEN a webhook state WHEN a new match is routed THEN it goes where SPEC §4/§6 say
            assert_eq!(route(status, reason, tripped, free), expected, "{status:?} {reason:?} {tripped} {free}");
        }
    }
}
