//! Safe to open to every customer (SPEC §4 rule 3, §7, §8): URLs checked at create and update,
//! secrets encrypted at rest and never logged, rotation with a grace period, and the live gate
//! on the owner key's companies.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use webhooks_tests::{Api, Receiver, Stack, cloud_event, eventually, unique};

const WAIT: Duration = Duration::from_secs(30);

async fn setup(companies: &[&str]) -> Result<(Stack, Api, String, String)> {
    let (stack, api, admin) = webhooks_tests::setup().await?;
    let (id, key) = api.create_key(&admin, companies, &["manage", "publish"]).await?;
    Ok((stack, api, id, key))
}

#[tokio::test]
async fn private_and_unresolvable_urls_are_refused_at_create_and_update() -> Result<()> {
    let company = unique("co");
    let (_stack, api, _, key) = setup(&[&company]).await?;
    for url in [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/",
        "http://[fd00:ec2::254]/",
        "http://192.168.1.10:8080/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::ffff:10.0.0.1]/",
        "http://nothing-here.invalid/hook",
    ] {
        let r = api.call("POST", "/v1/webhooks", Some(&key), Some(json!({"url": url}))).await?;
        assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("url")), "{url}: {}", r.body);
    }
    // An allowed target (loopback, for local development) is accepted; changing it to a
    // private address is refused and changes nothing.
    let receiver = Receiver::start().await?;
    let created = api.create_webhook(&key, json!({"url": receiver.url})).await?;
    let id = created["id"].as_str().context("id")?;
    let r =
        api.call("PATCH", &format!("/v1/webhooks/{id}"), Some(&key), Some(json!({"url": "http://10.1.2.3/"}))).await?;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("url")));
    let w = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&key), None).await?;
    assert_eq!(w.body["url"], receiver.url.as_str());
    assert_eq!(api.call("GET", "/v1/webhooks", Some(&key), None).await?.body["data"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_rotated_with_grace_and_never_logged() -> Result<()> {
    // GIVEN a webhook and its secret
    let company = unique("co");
    let (stack, api, _, key) = setup(&[&company]).await?;
    let receiver = Receiver::start().await?;
    let created = api.create_webhook(&key, json!({"url": receiver.url})).await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    let old = created["secret"].as_str().context("secret")?.to_owned();

    // THEN the stored webhook holds no plaintext secret
    let table = stack.info.tables.get("SubscriptionsTable").context("table")?;
    let item = stack
        .dynamodb()
        .await
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("WH#{id}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("WH".into()))
        .send()
        .await?
        .item
        .context("stored webhook")?;
    let stored = format!("{item:?}");
    let key_part = old.trim_start_matches("whsec_");
    assert!(!stored.contains(key_part), "the secret is stored encrypted");
    assert!(stored.contains("ciphertext"));

    // WHEN the secret is rotated with the default grace
    let r = api.call("POST", &format!("/v1/webhooks/{id}/rotate-secret"), Some(&key), None).await?;
    assert_eq!(r.status, 200);
    let new = r.body["secret"].as_str().context("new secret")?.to_owned();
    assert_ne!(new, old);
    assert_eq!(r.body.as_object().map(|o| o.len()), Some(1), "only the secret: {}", r.body);
    api.publish(&key, &[cloud_event(&unique("e"), "TODO_CREATED", &company, "p")]).await?;
    receiver.wait_for(1, WAIT).await?;

    // THEN the delivery carries two signatures; the official library verifies with either
    let got = receiver.received();
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    receiver.verified_event_ids(&old)?;
    receiver.verified_event_ids(&new)?;

    // WHEN rotated again without grace THEN only the newest verifies
    let r = api
        .call("POST", &format!("/v1/webhooks/{id}/rotate-secret"), Some(&key), Some(json!({"grace_seconds": 0})))
        .await?;
    let newest = r.body["secret"].as_str().context("newest")?.to_owned();
    let r = api
        .call("POST", &format!("/v1/webhooks/{id}/rotate-secret"), Some(&key), Some(json!({"grace_seconds": 604801})))
        .await?;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("grace_seconds")));
    api.publish(&key, &[cloud_event(&unique("e"), "TODO_CREATED", &company, "p")]).await?;
    let got = receiver.wait_for(2, WAIT).await?;
    let last = &got[1];
    assert_eq!(last.header("webhook-signature").split(' ').count(), 1);
    let verifier = standardwebhooks::Webhook::new(&newest).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(verifier.verify(&last.body, &last.headers).is_ok());
    let verifier = standardwebhooks::Webhook::new(&new).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(verifier.verify(&last.body, &last.headers).is_err(), "a secret without grace is dead at once");
    api.call("POST", &format!("/v1/webhooks/{id}/test"), Some(&key), None).await?;

    // AND no function ever logged any of the secrets
    for binary in ["subscriptions", "matcher", "delivery"] {
        let logs = stack.function_logs(binary);
        assert!(!logs.is_empty() || binary == "matcher", "{binary} logged something");
        for secret in [&old, &new, &newest] {
            assert!(!logs.contains(secret.trim_start_matches("whsec_")), "{binary} logged a secret");
        }
    }
    Ok(())
}

#[tokio::test]
async fn removing_a_company_from_the_owner_key_stops_queued_retries() -> Result<()> {
    // GIVEN a webhook whose receiver fails, with a retry queued
    let (acme, other) = (unique("acme"), unique("other"));
    let (stack, api, key_id, key) = setup(&[&acme, &other]).await?;
    let admin = stack.info.admin_key.clone().context("admin key")?;
    let receiver = Receiver::start().await?;
    receiver.respond_with(&[500; 20]);
    let created = api.create_webhook(&key, json!({"url": receiver.url})).await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    api.publish(&key, &[cloud_event(&unique("e"), "TODO_CREATED", &acme, "p")]).await?;
    receiver.wait_for(1, WAIT).await?;

    // WHEN the key loses acme
    let r =
        api.call("PATCH", &format!("/v1/api-keys/{key_id}"), Some(&admin), Some(json!({"companies": [other]}))).await?;
    assert_eq!(r.status, 200);

    // THEN the queued retry is dropped as owner_revoked, and no further attempt is made
    let w = eventually(WAIT, "owner_revoked drop", || async {
        let w: Value = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&admin), None).await?.body;
        Ok((w["health"]["dropped"]["owner_revoked"] == 1).then_some(w))
    })
    .await?;
    assert_eq!(w["status"], "active");
    let attempts = receiver.received().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), attempts);
    assert!(attempts <= 2, "{attempts}");
    // AND the drop is a metric CloudWatch extracts from the delivery function's log
    let counted = stack.metric_logged("delivery", "DroppedDeliveries", "owner_revoked");
    assert!(counted, "no DroppedDeliveries line in Embedded Metric Format");
    Ok(())
}

/// Trust issue, defect 1: a publisher of one company wraps another company's event in
/// EventBridge envelope fields. The API must enqueue the event it validated, re-serialised, so
/// the other company's webhooks never see the forged one.
#[tokio::test]
async fn a_publisher_cannot_forge_another_companys_event_through_envelope_fields() -> Result<()> {
    // GIVEN a victim company with a webhook, and an attacker key that may publish only for its own
    let (victim, attacker) = (unique("victim"), unique("attacker"));
    let (stack, api, _, victim_key) = setup(&[&victim]).await?;
    let admin = stack.info.admin_key.clone().context("admin key")?;
    let (_, attacker_key) = api.create_key(&admin, &[&attacker], &["manage", "publish"]).await?;
    let victim_hook = Receiver::start().await?;
    api.create_webhook(&victim_key, json!({"url": victim_hook.url})).await?;
    let attacker_hook = Receiver::start().await?;
    api.create_webhook(&attacker_key, json!({"url": attacker_hook.url})).await?;

    // WHEN the attacker publishes valid events of its own company that carry envelope fields
    // holding an event of the victim's, one alone and in a batch
    let forged = |id: &str| {
        let mut own = cloud_event(id, "TODO_CREATED", &attacker, "p1");
        own["detail-type"] = json!("TODO_CREATED");
        own["detail"] = cloud_event(&format!("{id}-forged"), "TODO_CREATED", &victim, "p1");
        own
    };
    let (single, batched) = (unique("single"), unique("batched"));
    let r = api
        .raw(
            "POST",
            "/v1/events",
            Some(&attacker_key),
            Some("application/cloudevents+json"),
            Some(forged(&single).to_string().into_bytes()),
        )
        .await?;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(api.publish(&attacker_key, &[forged(&batched)]).await?.status, 202);

    // THEN the attacker's own webhook receives the events it validated (its own company's)
    let got = attacker_hook.wait_for(2, WAIT).await?;
    let mut ids: Vec<String> =
        got.iter().map(|r| r.json()["event_id"].as_str().unwrap_or_default().to_owned()).collect();
    ids.sort();
    let mut want = vec![single.clone(), batched.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert!(got.iter().all(|r| r.json()["company_id"] == attacker.as_str()));
    // AND the victim's webhook receives nothing
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(victim_hook.received().len(), 0, "a forged event reached another company's webhook");
    Ok(())
}
