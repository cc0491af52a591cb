//! DynamoDB adapters: API keys, webhooks and the match index (SubscriptionsTable).
//!
//! Item layout of SubscriptionsTable (one table, typed by `pk` prefix):
//!
//! | item | pk | sk | gsi1 | gsi2 |
//! |---|---|---|---|---|
//! | API key | `KEY#<id>` | `KEY` | `KEYS` / `<created>#<id>` | |
//! | key lookup by secret | `KEYHASH#<sha256>` | `KEYHASH` | | |
//! | webhook | `WH#<id>` | `WH` | `OWNER#<key>` / `<created>#<id>` | `WEBHOOKS` / `<created>#<id>` |
//! | match index entry | `IDX#<partition>` | `<webhook id>` | | |
//!
//! Payload filters are stored as JSON text on both (a JSON number may not fit a DynamoDB
//! number), and travel in the index entries so the matcher checks them without another read.
//!
//! A webhook and its index entries are written in one transaction, so the matcher (which
//! reads only the index, never the webhook) sees a change whole, from the moment the API call
//! returns.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use webhooks_core::model::{DisabledReason, WebhookStatus};
use webhooks_core::resources::{ApiKey, Webhook};

use crate::item::{CONDITION_FAILED_REASON, cancellation_codes, conditional, n, s, unavailable};
use crate::keys::{
    KEY_HASH_SK, KEY_SK, WEBHOOK_SK, index_pk, key, key_hash_pk, key_pk, now_ms, webhook_key, webhook_pk,
};

/// The plain data of the match index, keys and webhooks live in the core (the ports carry
/// them).
pub use webhooks_core::ports::{IndexEntry, StoredKey, StoredSecret, StoredWebhook};

/// DynamoDB refuses a transaction of more than 100 actions.
const MAX_TRANSACTION_ACTIONS: usize = 100;

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold: the item changed, exists already, or is gone.
    #[error("the item was changed concurrently or does not exist")]
    Conflict,
    /// The owner key already has the most webhooks it may have.
    #[error("the webhook limit of the key is reached")]
    LimitReached,
    /// A cursor that this store did not hand out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// DynamoDB could not be reached or refused the request.
    #[error("dynamodb {operation} failed")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A page of a list and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Keys, webhooks and the match index in SubscriptionsTable.
#[derive(Debug, Clone)]
pub struct DynamoDbSubscriptions {
    client: Client,
    table: String,
}

fn key_of(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    key(pk, Some(sk))
}

fn to_item<T: Serialize>(value: &T, extra: &[(&str, String)]) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(value).map_err(unavailable("serialize"))?;
    // Absent optionals are left out rather than stored as NULL: smaller items, simpler reads.
    item.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
    for (k, v) in extra {
        item.insert((*k).to_owned(), s(v.clone()));
    }
    Ok(item)
}

fn from_item<T: for<'de> Deserialize<'de>>(item: HashMap<String, AttributeValue>) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(unavailable("deserialize"))
}

pub(crate) fn encode_cursor(key: Option<&HashMap<String, AttributeValue>>) -> Option<String> {
    let key = key?;
    let plain: HashMap<&str, &str> =
        key.iter().filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str()))).collect();
    serde_json::to_vec(&plain).ok().map(|json| URL_SAFE_NO_PAD.encode(json))
}

/// Longest cursor this API hands out, with room: a key of four attributes of ids and times.
const MAX_CURSOR_CHARS: usize = 2048;
/// DynamoDB refuses key attribute values longer than this (a sort key's limit; the partition
/// key's is longer).
const MAX_KEY_VALUE_BYTES: usize = 1024;

/// The start key of a page from a `cursor` this API handed out for the same list: exactly the
/// attributes `names`, the partition attribute `partition.0` equal to `partition.1`, values of
/// a length DynamoDB takes. Anything else (a cursor tampered with, or from another list) is
/// `InvalidCursor`, a 400, rather than a request DynamoDB would refuse.
pub(crate) fn decode_page_cursor(
    cursor: &str,
    names: &[&str],
    partition: (&str, &str),
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(StoreError::InvalidCursor);
    }
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let plain: HashMap<String, String> = serde_json::from_slice(&json).map_err(|_| StoreError::InvalidCursor)?;
    let shaped = plain.len() == names.len()
        && names.iter().all(|n| plain.get(*n).is_some_and(|v| !v.is_empty() && v.len() <= MAX_KEY_VALUE_BYTES))
        && plain.get(partition.0).map(String::as_str) == Some(partition.1);
    if !shaped {
        return Err(StoreError::InvalidCursor);
    }
    Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// Whether `id` can name a key or webhook at all (`key_…`, `wh_…`: letters, digits, `_`). A
/// path id that cannot is not found, without asking DynamoDB (which refuses over-long keys).
fn plausible_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether a transaction failed on a condition (as opposed to being unreachable); returns the
/// index of the first failed action when DynamoDB says which.
fn cancelled_at<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Option<usize>> {
    cancellation_codes(err).map(|codes| codes.iter().position(|c| c.as_deref() == Some(CONDITION_FAILED_REASON)))
}

impl DynamoDbSubscriptions {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn put(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match condition {
            Some(c) => put.condition_expression(c),
            None => put,
        };
        Ok(TransactWriteItem::builder().put(put.build().map_err(unavailable("build"))?).build())
    }

    fn delete(
        &self,
        key: HashMap<String, AttributeValue>,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder().table_name(&self.table).set_key(Some(key));
        let delete = match condition {
            Some(c) => delete.condition_expression(c),
            None => delete,
        };
        Ok(TransactWriteItem::builder().delete(delete.build().map_err(unavailable("build"))?).build())
    }

    async fn transact(&self, actions: Vec<TransactWriteItem>) -> Result<(), (StoreError, Option<usize>)> {
        self.client.transact_write_items().set_transact_items(Some(actions)).send().await.map_err(|e| {
            match cancelled_at(&e) {
                Some(at) => (StoreError::Conflict, at),
                None => (unavailable("TransactWriteItems")(e), None),
            }
        })?;
        Ok(())
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        Ok(out.item)
    }

    // ------------------------------------------------------------------ API keys

    /// Stores a new key and its lookup-by-secret entry, atomically.
    pub async fn create_key(&self, stored: &StoredKey) -> Result<(), StoreError> {
        let key = &stored.key;
        let item = to_item(
            stored,
            &[
                ("pk", key_pk(&key.id)),
                ("sk", KEY_SK.to_owned()),
                ("gsi1pk", "KEYS".to_owned()),
                ("gsi1sk", format!("{}#{}", key.created_at, key.id)),
            ],
        )?;
        let lookup = HashMap::from([
            ("pk".to_owned(), s(key_hash_pk(&stored.secret_sha256))),
            ("sk".to_owned(), s(KEY_HASH_SK)),
            ("key_id".to_owned(), s(key.id.clone())),
        ]);
        self.transact(vec![
            self.put(item, Some("attribute_not_exists(pk)"))?,
            self.put(lookup, Some("attribute_not_exists(pk)"))?,
        ])
        .await
        .map_err(|(e, _)| e)
    }

    /// The key whose secret hashes to `secret_sha256`, read strongly consistent so that a
    /// rotated or deleted key is refused at once.
    pub async fn key_by_secret_hash(&self, secret_sha256: &str) -> Result<Option<StoredKey>, StoreError> {
        let Some(lookup) = self.get(key_hash_pk(secret_sha256), KEY_HASH_SK).await? else {
            return Ok(None);
        };
        let Some(key_id) = lookup.get("key_id").and_then(|v| v.as_s().ok()) else {
            return Ok(None);
        };
        let key = self.get_key(key_id).await?;
        // The lookup entry may outlive a rotation by a moment: the key item decides.
        Ok(key
            .filter(|k| webhooks_core::signing::constant_time_eq(k.secret_sha256.as_bytes(), secret_sha256.as_bytes())))
    }

    pub async fn get_key(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        if !plausible_id(id) {
            return Ok(None);
        }
        self.get(key_pk(id), KEY_SK).await?.map(from_item).transpose()
    }

    /// Keys in creation order.
    pub async fn list_keys(&self, limit: i32, cursor: Option<&str>) -> Result<Page<ApiKey>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s("KEYS"))
            .limit(limit)
            .set_exclusive_start_key(
                cursor
                    .map(|c| decode_page_cursor(c, &["pk", "sk", "gsi1pk", "gsi1sk"], ("gsi1pk", "KEYS")))
                    .transpose()?,
            )
            .send()
            .await
            .map_err(unavailable("Query"))?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item::<StoredKey>)
            .map(|k| k.map(|k| k.key))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor: encode_cursor(out.last_evaluated_key.as_ref()) })
    }

    /// Replaces a key's name, companies and permissions; `Conflict` if it is gone.
    pub async fn update_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let companies = serde_dynamo::to_attribute_value(&key.companies).map_err(unavailable("serialize"))?;
        let permissions = serde_dynamo::to_attribute_value(&key.permissions).map_err(unavailable("serialize"))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key_pk(&key.id), KEY_SK)))
            .update_expression("SET #n = :n, #c = :c, #p = :p")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#n", "name")
            .expression_attribute_names("#c", "companies")
            .expression_attribute_names("#p", "permissions")
            .expression_attribute_values(":n", s(key.name.clone()))
            .expression_attribute_values(":c", companies)
            .expression_attribute_values(":p", permissions)
            .send()
            .await;
        conditional(result, "UpdateItem")?.ok_or(StoreError::Conflict)?;
        Ok(())
    }

    /// Swaps a key's secret: the old one stops working in the same transaction.
    pub async fn rotate_key(&self, stored: &StoredKey, new_sha256: &str) -> Result<(), StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key_pk(&stored.key.id), KEY_SK)))
            .update_expression("SET secret_sha256 = :new")
            .condition_expression("secret_sha256 = :old")
            .expression_attribute_values(":new", s(new_sha256))
            .expression_attribute_values(":old", s(stored.secret_sha256.clone()))
            .build()
            .map_err(unavailable("build"))?;
        let lookup = HashMap::from([
            ("pk".to_owned(), s(key_hash_pk(new_sha256))),
            ("sk".to_owned(), s(KEY_HASH_SK)),
            ("key_id".to_owned(), s(stored.key.id.clone())),
        ]);
        self.transact(vec![
            TransactWriteItem::builder().update(update).build(),
            self.delete(key_of(key_hash_pk(&stored.secret_sha256), KEY_HASH_SK), None)?,
            self.put(lookup, Some("attribute_not_exists(pk)"))?,
        ])
        .await
        .map_err(|(e, _)| e)
    }

    /// Removes a key's lookup-by-secret entry: from then on the key authenticates nothing,
    /// while its item stays for a deletion to find again if it is interrupted.
    pub async fn revoke_key_secret(&self, stored: &StoredKey) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key_hash_pk(&stored.secret_sha256), KEY_HASH_SK)))
            .send()
            .await
            .map_err(unavailable("DeleteItem"))?;
        Ok(())
    }

    /// Deletes a key that owns no webhook any more, and its lookup entry; `Conflict` when it
    /// still owns one (created while its webhooks were being deleted) or is gone.
    pub async fn delete_key(&self, stored: &StoredKey) -> Result<(), StoreError> {
        let key = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key_pk(&stored.key.id), KEY_SK)))
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(webhook_count) OR webhook_count = :zero)",
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .build()
            .map_err(unavailable("build"))?;
        self.transact(vec![
            TransactWriteItem::builder().delete(key).build(),
            self.delete(key_of(key_hash_pk(&stored.secret_sha256), KEY_HASH_SK), None)?,
        ])
        .await
        .map_err(|(e, _)| e)
    }

    /// Records that a key was used (best effort, called at most once a minute per key).
    pub async fn touch_key(&self, id: &str, at: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key_pk(id), KEY_SK)))
            .update_expression("SET last_used_at = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", s(at))
            .send()
            .await
            .map_err(unavailable("UpdateItem"))?;
        Ok(())
    }

    /// The keys among `ids` that still exist: one BatchGetItem per 100 ids (batch_get).
    pub async fn keys_by_ids(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, StoredKey>, StoreError> {
        let keys = ids.iter().map(|id| key_of(key_pk(id), KEY_SK)).collect();
        let items = crate::batch_get::batch_get_all(&self.client, &self.table, keys, true)
            .await
            .map_err(unavailable("BatchGetItem"))?;
        items.into_iter().map(|item| from_item::<StoredKey>(item).map(|v| (v.key.id.clone(), v))).collect()
    }

    // ------------------------------------------------------------------ webhooks

    fn webhook_item(&self, stored: &StoredWebhook) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let w = &stored.webhook;
        let order = format!("{}#{}", w.created_at, w.id);
        to_item(
            stored,
            &[
                ("pk", webhook_pk(&w.id)),
                ("sk", WEBHOOK_SK.to_owned()),
                ("gsi1pk", format!("OWNER#{}", w.owner_key_id)),
                ("gsi1sk", order.clone()),
                ("gsi2pk", "WEBHOOKS".to_owned()),
                ("gsi2sk", order),
                // As JSON text, like the index entries: a filter's value may be a JSON number
                // DynamoDB cannot hold (`filters::stored`).
                ("filters", webhooks_core::filters::stored::to_text(&w.filters)),
            ],
        )
    }

    fn index_item(&self, webhook: &Webhook, partition: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let entry = IndexEntry {
            webhook_id: webhook.id.clone(),
            owner_key_id: webhook.owner_key_id.clone(),
            events: webhook.events.clone(),
            scopes: webhook.scopes.clone(),
            filters: webhook.filters.clone(),
        };
        to_item(&entry, &[("pk", index_pk(partition)), ("sk", webhook.id.clone())])
    }

    /// Writes a webhook with its index entries, checking the owner key still exists and stays
    /// within `max_per_key` webhooks.
    pub async fn create_webhook(&self, stored: &StoredWebhook, max_per_key: u32) -> Result<(), StoreError> {
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key_pk(&stored.webhook.owner_key_id), KEY_SK)))
            .update_expression("SET webhook_count = if_not_exists(webhook_count, :zero) + :one")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(webhook_count) OR webhook_count < :max)",
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(max_per_key.to_string()))
            .build()
            .map_err(unavailable("build"))?;
        let mut actions = vec![
            TransactWriteItem::builder().update(count).build(),
            self.put(self.webhook_item(stored)?, Some("attribute_not_exists(pk)"))?,
        ];
        for partition in &stored.partitions {
            actions.push(self.put(self.index_item(&stored.webhook, partition)?, None)?);
        }
        match self.write_in_transactions(actions).await {
            Err((StoreError::Conflict, Some(0))) => Err(StoreError::LimitReached),
            other => other.map_err(|(e, _)| e),
        }
    }

    /// Writes actions in one transaction, or, beyond DynamoDB's 100 actions, the index entries
    /// first and the rest last (the webhook item is the last word: a retry rewrites all).
    async fn write_in_transactions(
        &self,
        mut actions: Vec<TransactWriteItem>,
    ) -> Result<(), (StoreError, Option<usize>)> {
        if actions.len() <= MAX_TRANSACTION_ACTIONS {
            return self.transact(actions).await;
        }
        // The first two actions are the conditional ones; index entries follow.
        let head: Vec<_> = actions.drain(..2).collect();
        while actions.len() > MAX_TRANSACTION_ACTIONS - head.len() {
            let rest = actions.split_off(MAX_TRANSACTION_ACTIONS);
            self.transact(std::mem::replace(&mut actions, rest)).await.map_err(|(e, _)| (e, None))?;
        }
        let mut last = head;
        last.extend(actions);
        self.transact(last).await
    }

    pub async fn get_webhook(&self, id: &str) -> Result<Option<StoredWebhook>, StoreError> {
        if !plausible_id(id) {
            return Ok(None);
        }
        self.get(webhook_pk(id), WEBHOOK_SK).await?.map(from_item).transpose()
    }

    /// Several webhooks by id, strongly consistent: one BatchGetItem per 100 ids (batch_get).
    pub async fn webhooks_by_ids(&self, ids: &BTreeSet<String>) -> Result<HashMap<String, StoredWebhook>, StoreError> {
        let keys = ids.iter().map(|id| key_of(webhook_pk(id), WEBHOOK_SK)).collect();
        let items = crate::batch_get::batch_get_all(&self.client, &self.table, keys, true)
            .await
            .map_err(unavailable("BatchGetItem"))?;
        items.into_iter().map(|item| from_item::<StoredWebhook>(item).map(|v| (v.webhook.id.clone(), v))).collect()
    }

    /// Disables an active webhook for `reason`, marking `alert` (JSON) pending on it. `true`
    /// for the one call that won: only it publishes the alert.
    pub async fn deactivate(
        &self,
        webhook_id: &str,
        reason: DisabledReason,
        alert: &str,
        at: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(webhook_key(webhook_id)))
            .update_expression("SET #status = :disabled, disabled_reason = :reason, alert_pending = :alert, updated_at = :at, disabled_at_ms = :ms ADD version :one")
            .condition_expression("#status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":disabled", s("disabled"))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(":reason", s(reason.as_str()))
            .expression_attribute_values(":alert", s(alert))
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":ms", n(now_ms()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        Ok(conditional(result, "UpdateItem")?.is_some())
    }

    /// Clears a published alert (only that one: a newer deactivation's alert stays).
    pub async fn clear_alert(&self, webhook_id: &str, alert: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(webhook_key(webhook_id)))
            .update_expression("REMOVE alert_pending")
            .condition_expression("alert_pending = :alert")
            .expression_attribute_values(":alert", s(alert))
            .send()
            .await;
        conditional(result, "UpdateItem")?;
        Ok(())
    }

    /// A page of webhooks, oldest first: one owner's, or everyone's; optionally one status.
    pub async fn list_webhooks(
        &self,
        owner: Option<&str>,
        status: Option<WebhookStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<StoredWebhook>, StoreError> {
        let (index, pk_name, pk) = match owner {
            Some(owner) => ("gsi1", "gsi1pk", format!("OWNER#{owner}")),
            None => ("gsi2", "gsi2pk", "WEBHOOKS".to_owned()),
        };
        let sk_name = pk_name.replace("pk", "sk");
        let mut start =
            cursor.map(|c| decode_page_cursor(c, &["pk", "sk", pk_name, &sk_name], (pk_name, &pk))).transpose()?;
        let mut items = Vec::new();
        // Filtering by status happens after DynamoDB's limit: keep reading until the page is
        // full or the list ends, and hand out the cursor of the last item taken.
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(pk.clone()))
                .limit((limit - items.len()) as i32)
                .set_exclusive_start_key(start.take());
            if let Some(status) = status {
                query = query
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status.as_str()));
            }
            let out = query.send().await.map_err(unavailable("Query"))?;
            for item in out.items.unwrap_or_default() {
                items.push(from_item::<StoredWebhook>(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if items.len() < limit => start = Some(key),
                Some(_) => {
                    let next = items.last().map(|w| {
                        let order = format!("{}#{}", w.webhook.created_at, w.webhook.id);
                        let mut key = key_of(webhook_pk(&w.webhook.id), WEBHOOK_SK);
                        key.insert(pk_name.to_owned(), s(pk.clone()));
                        key.insert(sk_name.clone(), s(order));
                        key
                    });
                    return Ok(Page { items, next_cursor: encode_cursor(next.as_ref()) });
                }
                None => return Ok(Page { items, next_cursor: None }),
            }
        }
    }

    /// Replaces a webhook (if still at `previous.version`) and moves its index entries to
    /// `next.partitions`, atomically.
    pub async fn update_webhook(&self, previous: &StoredWebhook, next: &StoredWebhook) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.webhook_item(next)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(previous.version.to_string()));
        let mut actions = vec![TransactWriteItem::builder().put(put.build().map_err(unavailable("build"))?).build()];
        // The owner must still exist; conditional actions come first (write_in_transactions).
        actions.push(self.condition_exists(&next.webhook.owner_key_id)?);
        for partition in &next.partitions {
            actions.push(self.put(self.index_item(&next.webhook, partition)?, None)?);
        }
        for stale in previous.partitions.difference(&next.partitions) {
            actions.push(self.delete(key_of(index_pk(stale), &next.webhook.id), None)?);
        }
        self.write_in_transactions(actions).await.map_err(|(e, _)| e)
    }

    fn condition_exists(&self, owner_key_id: &str) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key_pk(owner_key_id), KEY_SK)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(unavailable("build"))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Deletes a webhook, its index entries, and gives its slot back to the owner key.
    pub async fn delete_webhook(&self, stored: &StoredWebhook) -> Result<(), StoreError> {
        let w = &stored.webhook;
        let mut actions = vec![self.delete(key_of(webhook_pk(&w.id), WEBHOOK_SK), Some("attribute_exists(pk)"))?];
        // The owner key may be gone already (key deletion deletes its webhooks after it).
        let release = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key_pk(&w.owner_key_id), KEY_SK)))
            .update_expression("SET webhook_count = webhook_count - :one")
            .condition_expression("webhook_count > :zero")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .build()
            .map_err(unavailable("build"))?;
        let owner_exists = self.get_key(&w.owner_key_id).await?.is_some();
        if owner_exists {
            actions.push(TransactWriteItem::builder().update(release).build());
        }
        for partition in &stored.partitions {
            actions.push(self.delete(key_of(index_pk(partition), &w.id), None)?);
        }
        if actions.len() > MAX_TRANSACTION_ACTIONS {
            // Index entries first: an entry without its webhook only costs a dropped match.
            let rest = actions.split_off(2);
            for chunk in rest.chunks(MAX_TRANSACTION_ACTIONS) {
                self.transact(chunk.to_vec()).await.map_err(|(e, _)| e)?;
            }
        }
        self.transact(actions).await.map_err(|(e, _)| e)
    }

    // ------------------------------------------------------------------ matching

    /// The index entries of one partition that select one of `event_types` or every type (an
    /// empty list), all pages, strongly consistent. The filter is applied by DynamoDB after
    /// the read, so the read units are those of the whole partition, but only candidates are
    /// sent and decoded: a project with 10 000 webhooks costs the matcher the few that take
    /// the batch's event types. An empty `event_types` returns every entry.
    pub async fn index_entries(
        &self,
        partition: &str,
        event_types: &BTreeSet<&str>,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let mut entries = Vec::new();
        let mut start = None;
        let filter = (!event_types.is_empty()).then(|| {
            let mut filter = "size(#events) = :no_types".to_owned();
            for i in 0..event_types.len() {
                filter.push_str(&format!(" OR contains(#events, :t{i})"));
            }
            filter
        });
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(index_pk(partition)))
                .consistent_read(true);
            if let Some(filter) = &filter {
                query = query
                    .filter_expression(filter)
                    .expression_attribute_names("#events", "events")
                    .expression_attribute_values(":no_types", AttributeValue::N("0".to_owned()));
                for (i, event_type) in event_types.iter().enumerate() {
                    query = query.expression_attribute_values(format!(":t{i}"), s(*event_type));
                }
            }
            let out = query.set_exclusive_start_key(start).send().await.map_err(unavailable("Query"))?;
            for item in out.items.unwrap_or_default() {
                entries.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(entries),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use webhooks_core::filters::{Filter, parse_filters};
    use webhooks_core::model::Scope;

    use super::*;

    /// Filters with what a DynamoDB number cannot hold (1e300, 1e-200) and a null.
    fn awkward_filters() -> Vec<Filter> {
        parse_filters(&json!([
            {"path": "data.n", "op": "eq", "value": 1e300},
            {"path": "data.m", "op": "in", "value": [1e-200, null, "x"]},
            {"path": "type", "op": "exists"},
        ]))
        .unwrap_or_default()
    }

    #[test]
    fn an_index_entry_keeps_its_filters_as_text_and_reads_them_back() -> Result<(), StoreError> {
        // GIVEN an index entry with filters
        let entry = IndexEntry {
            webhook_id: "wh_1".into(),
            owner_key_id: "key_1".into(),
            events: vec!["TODO_CREATED".into()],
            scopes: vec![Scope::project("acme", "p1")],
            filters: awkward_filters(),
        };
        assert_eq!(entry.filters.len(), 3);
        // WHEN it becomes an item THEN its filters are one string attribute
        let item = to_item(&entry, &[])?;
        assert!(matches!(item.get("filters"), Some(AttributeValue::S(_))), "{item:?}");
        // AND it reads back the same
        assert_eq!(from_item::<IndexEntry>(item)?, entry);
        // AND an entry without filters has no such attribute, and reads back with none
        let plain = IndexEntry { filters: Vec::new(), ..entry };
        let item = to_item(&plain, &[])?;
        assert!(!item.contains_key("filters"));
        assert_eq!(from_item::<IndexEntry>(item)?, plain);
        Ok(())
    }

    #[test]
    fn a_webhook_item_keeps_its_filters_as_text_and_reads_them_back() -> Result<(), StoreError> {
        // GIVEN a stored webhook with filters, made an item as `webhook_item` makes it
        let webhook: Webhook = serde_json::from_value(json!({
            "id": "wh_1", "owner_key_id": "key_1", "name": null, "description": null,
            "url": "https://example.com/h", "events": [], "scopes": [], "headers": {},
            "status": "active", "disabled_reason": null,
            "created_at": "2026-11-28T10:00:00Z", "updated_at": "2026-11-28T10:00:00Z"
        }))
        .map_err(unavailable("fixture"))?;
        assert!(webhook.filters.is_empty(), "a webhook stored before filters existed has none");
        let stored = StoredWebhook {
            webhook: Webhook { filters: awkward_filters(), ..webhook },
            secrets: Vec::new(),
            version: 1,
            partitions: BTreeSet::from(["C#acme".to_owned()]),
            alert_pending: None,
            disabled_at_ms: None,
        };
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let store = DynamoDbSubscriptions::new(Client::from_conf(config), "table".into());
        let item = store.webhook_item(&stored)?;
        // THEN the filters are one string, and the webhook reads back the same
        assert!(matches!(item.get("filters"), Some(AttributeValue::S(_))), "{item:?}");
        let read: StoredWebhook = from_item(item)?;
        assert_eq!(read.webhook, stored.webhook);
        Ok(())
    }
}
