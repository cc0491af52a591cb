//! Parked deliveries in DeliveriesTable (`PARK#<webhook>`, oldest first), counted on the
//! webhook's HealthTable item in the same transaction that parks or removes one, so views
//! read a maintained counter and the park limit is exact.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};
use webhooks_core::message::{Delivery, ParkSlot};
use webhooks_core::model::DropReason;
use webhooks_core::reliability::{ParkCancelled, expired, park_cancelled};

use crate::dynamodb::StoreError;
use crate::health::{DynamoDbHealth, drop_attribute};
use crate::item::{cancellation_codes, conditional, get_n, get_s, n, s, unavailable};
use crate::keys::{health_key, key, park_pk, park_sort_key, webhook_key};

pub use webhooks_core::ports::{ParkGuard, ParkOutcome, ParkedDelivery};

/// DynamoDB TTL deletes parked items only this long after their keeping time ends, so a sweep
/// sees (and counts) every expiry first; TTL is a storage backstop, not the expiry.
const PARK_STORAGE_GRACE_SECONDS: i64 = 30 * 24 * 3600;
/// A transaction cancelled by conflicts or throttles is tried this many times in all (with
/// the backoff of `batch_get`, at most about 2.5 s): parks of one webhook all touch its
/// health item, so a burst of them conflicts.
const TRANSACTION_ATTEMPTS: u32 = 8;
/// Parked items a sweep looks at, oldest first (keys and expiries only): bounded work.
pub const SWEEP_PAGE: i32 = 100;
/// BatchWriteItem takes at most 25 requests.
const BATCH_WRITE_ITEMS: usize = 25;

/// The logical expiry of a parked item (`expires_at` of items parked before it had its own).
fn park_expiry(item: &HashMap<String, AttributeValue>) -> i64 {
    get_n(item, "park_expires_at").or_else(|| get_n(item, "expires_at")).unwrap_or(0)
}

/// The item of a parked delivery in its slot: the delivery, its generation, its keeping time
/// and DynamoDB's (later) TTL.
fn parked_item(d: &Delivery, sort_key: &str, expires_at: i64) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let body = serde_json::to_string(d).map_err(unavailable("serialize"))?;
    Ok(HashMap::from([
        ("pk".to_owned(), s(park_pk(&d.webhook_id))),
        ("sk".to_owned(), s(sort_key)),
        ("delivery".to_owned(), s(body)),
        ("generation".to_owned(), n(d.generation)),
        ("park_expires_at".to_owned(), n(expires_at)),
        ("expires_at".to_owned(), n(expires_at + PARK_STORAGE_GRACE_SECONDS)),
    ]))
}

/// How a cancelled transaction was cancelled, when it was one.
fn cancellation<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Option<ParkCancelled> {
    let codes = cancellation_codes(e)?;
    Some(park_cancelled(&codes.iter().map(Option::as_deref).collect::<Vec<_>>()))
}

/// The parked deliveries of DeliveriesTable, with their counters on HealthTable; a park while
/// the webhook is disabled checks it on SubscriptionsTable in the same transaction.
#[derive(Debug, Clone)]
pub struct DynamoDbParking {
    client: Client,
    table: String,
    health: DynamoDbHealth,
    subscriptions_table: String,
}

impl DynamoDbParking {
    pub fn new(client: Client, deliveries_table: String, health: DynamoDbHealth, subscriptions_table: String) -> Self {
        Self { client, table: deliveries_table, health, subscriptions_table }
    }

    /// Up to `limit` parked items of a webhook, oldest first, with only the attributes of
    /// `projection`, read strongly consistent; `true` when more may follow.
    async fn oldest(
        &self,
        webhook_id: &str,
        projection: &str,
        limit: i32,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, bool), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(park_pk(webhook_id)))
            .projection_expression(projection)
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(unavailable("Query"))?;
        let more = out.last_evaluated_key.as_ref().is_some_and(|k| !k.is_empty());
        Ok((out.items.unwrap_or_default(), more))
    }

    /// Parks a delivery if `guard` still holds and the webhook keeps fewer than `limit`.
    ///
    /// A delivery re-sent by a replay (`slot` given) goes back to its original place: same
    /// sort key (park time) and same expiry, counted once even when two receives park it.
    /// The webhook's `parked_count` changes in the same transaction as the park, so views read
    /// a maintained counter. Only a failed limit condition means full; a transaction cancelled
    /// by a conflict or a throttle is tried again.
    pub async fn park(
        &self,
        d: &Delivery,
        guard: ParkGuard,
        limit: u64,
        now: i64,
        ttl_seconds: i64,
        slot: Option<&ParkSlot>,
    ) -> Result<ParkOutcome, StoreError> {
        let (sort_key, expires_at) = match slot {
            Some(slot) => (slot.sort_key.clone(), slot.expires_at),
            None => (park_sort_key(time::OffsetDateTime::now_utc(), &d.delivery_id), now + ttl_seconds),
        };
        let mut swept = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.park_once(d, guard, limit, &sort_key, expires_at).await? {
                None => {
                    if slot.is_some() {
                        self.health.lower_sweep_time(&d.webhook_id, expires_at).await?;
                    }
                    return Ok(ParkOutcome::Parked);
                }
                Some(ParkCancelled::AlreadyParked) => {
                    // The slot is taken: by this copy already (two receives), by a newer one,
                    // or by the older generation this copy was made from, which the replay
                    // removes only after queueing it. That one is replaced, so the replay's
                    // removal (of the generation it read) leaves this copy parked.
                    match self.replace_older(d, &sort_key, expires_at).await? {
                        Some(true) | Some(false) => return Ok(ParkOutcome::Parked),
                        // Removed in between: park it anew.
                        None if attempt < TRANSACTION_ATTEMPTS => {}
                        None => {
                            return Err(StoreError::Unavailable {
                                operation: "PutItem",
                                source: "the park slot kept changing".into(),
                            });
                        }
                    }
                }
                Some(ParkCancelled::NotDisabled) => return Ok(ParkOutcome::Send),
                Some(ParkCancelled::Transient) if attempt < TRANSACTION_ATTEMPTS => {
                    tokio::time::sleep(crate::batch_get::backoff(attempt)).await;
                }
                Some(ParkCancelled::Transient) => {
                    return Err(StoreError::Unavailable {
                        operation: "TransactWriteItems",
                        source: "cancelled by conflicts".into(),
                    });
                }
                Some(ParkCancelled::LimitOrGuard) => {
                    let record = self.health.health(&d.webhook_id).await?;
                    if let ParkGuard::Tripped(max) = guard
                        && record.health.consecutive_failures < max
                    {
                        return Ok(ParkOutcome::Send);
                    }
                    // Expired deliveries still hold slots until a sweep counts them: one
                    // bounded sweep, only when one of them may have expired.
                    if swept || record.park_sweep_at.is_none_or(|at| at > now) {
                        return Ok(ParkOutcome::Full);
                    }
                    swept = true;
                    if self.sweep_expired(&d.webhook_id, now, SWEEP_PAGE).await? == 0 {
                        return Ok(ParkOutcome::Full);
                    }
                }
            }
        }
    }

    /// Puts `d` in its slot in place of an older generation: `Some(true)` replaced, `Some(false)`
    /// the slot holds this generation or a newer one, `None` the slot is empty.
    async fn replace_older(&self, d: &Delivery, sort_key: &str, expires_at: i64) -> Result<Option<bool>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(parked_item(d, sort_key, expires_at)?))
            .condition_expression("attribute_exists(sk) AND (attribute_not_exists(generation) OR generation < :g)")
            .expression_attribute_values(":g", n(d.generation))
            .send()
            .await;
        if conditional(result, "PutItem")?.is_some() {
            return Ok(Some(true));
        }
        let current = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(park_pk(&d.webhook_id), Some(sort_key))))
            .projection_expression("sk")
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        Ok(current.item.is_some().then_some(false))
    }

    /// One park transaction: `None` when it went through.
    async fn park_once(
        &self,
        d: &Delivery,
        guard: ParkGuard,
        limit: u64,
        sort_key: &str,
        expires_at: i64,
    ) -> Result<Option<ParkCancelled>, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(parked_item(d, sort_key, expires_at)?))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(unavailable("build"))?;
        let mut counter = Update::builder()
            .table_name(self.health.table())
            .set_key(Some(health_key(&d.webhook_id)))
            .update_expression("ADD parked_count :one SET park_sweep_at = if_not_exists(park_sweep_at, :exp)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":limit", n(limit));
        counter = match guard {
            ParkGuard::Tripped(max) => counter
                .condition_expression(
                    "(attribute_not_exists(parked_count) OR parked_count < :limit) AND consecutive_failures >= :max",
                )
                .expression_attribute_values(":max", n(max)),
            _ => counter.condition_expression("attribute_not_exists(parked_count) OR parked_count < :limit"),
        };
        let mut actions = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(counter.build().map_err(unavailable("build"))?).build(),
        ];
        if guard == ParkGuard::WebhookDisabled {
            let check = ConditionCheck::builder()
                .table_name(&self.subscriptions_table)
                .set_key(Some(webhook_key(&d.webhook_id)))
                .condition_expression("#status = :disabled")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":disabled", s("disabled"))
                .build()
                .map_err(unavailable("build"))?;
            actions.push(TransactWriteItem::builder().condition_check(check).build());
        }
        let result = self.client.transact_write_items().set_transact_items(Some(actions)).send().await;
        match result {
            Ok(_) => Ok(None),
            Err(e) => cancellation(&e).map(Some).ok_or_else(|| unavailable("TransactWriteItems")(e)),
        }
    }

    /// Removes up to `limit` expired parked deliveries of a webhook (oldest first, keys only:
    /// no payload is read), each counted as dropped (`park_expired`) in the same transaction
    /// that removes it, so a sweep racing another counts each once. Returns how many it
    /// removed; moves the webhook's next sweep time to the oldest delivery still kept.
    pub async fn sweep_expired(&self, webhook_id: &str, now: i64, limit: i32) -> Result<u64, StoreError> {
        let before = self.health.health(webhook_id).await?.park_sweep_at;
        let (items, more) = self.oldest(webhook_id, "sk, park_expires_at, expires_at", limit).await?;
        let mut removed = 0;
        let mut next = None;
        for item in items {
            let sk = get_s(&item, "sk").unwrap_or_default();
            let expires_at = park_expiry(&item);
            if expired(expires_at, now) {
                if self.remove_parked(webhook_id, &sk, Some(DropReason::ParkExpired), None).await? {
                    removed += 1;
                }
            } else {
                next = Some(next.map_or(expires_at, |n: i64| n.min(expires_at)));
            }
        }
        if let Some(before) = before {
            self.health.move_sweep_time(webhook_id, before, next.or(more.then_some(now))).await?;
        }
        Ok(removed)
    }

    /// Removes one parked delivery and gives back its slot, in one transaction; with a reason,
    /// counts it as dropped too. `false` when it was not there any more.
    pub async fn remove_parked(
        &self,
        webhook_id: &str,
        sort_key: &str,
        dropped: Option<DropReason>,
        generation: Option<u32>,
    ) -> Result<bool, StoreError> {
        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(park_pk(webhook_id), Some(sort_key))));
            // Only the generation read: a newer copy parked again in the slot stays. (Items
            // parked before generations were stored have none.)
            let delete = match generation {
                Some(g) => delete
                    .condition_expression(
                        "attribute_exists(sk) AND (attribute_not_exists(generation) OR generation = :g)",
                    )
                    .expression_attribute_values(":g", n(g)),
                None => delete.condition_expression("attribute_exists(sk)"),
            };
            let delete = delete.build().map_err(unavailable("build"))?;
            let mut counter = Update::builder()
                .table_name(self.health.table())
                .set_key(Some(health_key(webhook_id)))
                .expression_attribute_values(":minus", n(-1));
            counter = match dropped {
                Some(reason) => counter
                    .update_expression("ADD parked_count :minus, #d :one")
                    .expression_attribute_names("#d", drop_attribute(reason))
                    .expression_attribute_values(":one", n(1)),
                None => counter.update_expression("ADD parked_count :minus"),
            };
            let actions = vec![
                TransactWriteItem::builder().delete(delete).build(),
                TransactWriteItem::builder().update(counter.build().map_err(unavailable("build"))?).build(),
            ];
            let result = self.client.transact_write_items().set_transact_items(Some(actions)).send().await;
            match result {
                Ok(_) => return Ok(true),
                Err(e) => match cancellation(&e) {
                    // The delete's condition: another replay or sweep removed it first.
                    Some(ParkCancelled::AlreadyParked) => return Ok(false),
                    Some(_) if attempt < TRANSACTION_ATTEMPTS => {
                        tokio::time::sleep(crate::batch_get::backoff(attempt)).await
                    }
                    _ => return Err(unavailable("TransactWriteItems")(e)),
                },
            }
        }
        Err(StoreError::Unavailable { operation: "TransactWriteItems", source: "cancelled by conflicts".into() })
    }

    /// Up to `limit` parked deliveries, oldest first, after `after` and before `until` (sort
    /// keys): a replay covers what was parked before it started. `true` when more may follow.
    pub async fn parked_page(
        &self,
        webhook_id: &str,
        after: Option<&str>,
        until: &str,
        limit: i32,
    ) -> Result<(Vec<ParkedDelivery>, bool), StoreError> {
        let start = after.map(|sk| key(park_pk(webhook_id), Some(sk)));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk < :until")
            .expression_attribute_values(":pk", s(park_pk(webhook_id)))
            .expression_attribute_values(":until", s(until))
            .consistent_read(true)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable("Query"))?;
        let more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let mut parked = Vec::new();
        for item in out.items.unwrap_or_default() {
            let Some(body) = get_s(&item, "delivery") else { continue };
            let delivery: Delivery = serde_json::from_str(&body).map_err(unavailable("deserialize"))?;
            parked.push(ParkedDelivery {
                sort_key: get_s(&item, "sk").unwrap_or_default(),
                delivery,
                expires_at: park_expiry(&item),
            });
        }
        Ok((parked, more))
    }

    /// Removes up to `limit` parked deliveries of a deleted webhook (keys only, one batch
    /// write per 25). Returns how many it removed and whether more remain.
    pub async fn purge_parked(&self, webhook_id: &str, limit: i32) -> Result<(u64, bool), StoreError> {
        let (items, more) = self.oldest(webhook_id, "pk, sk", limit).await?;
        let removed = items.len() as u64;
        for chunk in items.chunks(BATCH_WRITE_ITEMS) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    let key = item
                        .iter()
                        .filter(|(k, _)| *k == "pk" || *k == "sk")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    DeleteRequest::builder()
                        .set_key(Some(key))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect::<Result<_, _>>()
                .map_err(unavailable("build"))?;
            let mut attempt = 0;
            while !requests.is_empty() {
                attempt += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(unavailable("BatchWriteItem"))?;
                requests = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                if !requests.is_empty() {
                    if attempt >= crate::batch_get::MAX_ATTEMPTS {
                        return Err(StoreError::Unavailable {
                            operation: "BatchWriteItem",
                            source: "items left unprocessed".into(),
                        });
                    }
                    tokio::time::sleep(crate::batch_get::backoff(attempt)).await;
                }
            }
        }
        Ok((removed, more))
    }
}
