//! Asymmetric signatures (SPEC §10, `signature_scheme: v1a`): deliveries signed with Ed25519 as
//! Standard Webhooks' `v1a`, checked here by another Ed25519 implementation (AWS-LC, not the
//! service's) with the public key the API shows; rotation with an overlap; switching schemes
//! by PATCH; an unknown scheme refused.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use webhooks_tests::{Api, Received, Receiver, cloud_event, unique};

const WAIT: Duration = Duration::from_secs(30);

/// A key of one new company, allowed to manage and publish.
async fn setup() -> Result<(Api, String, String)> {
    let (_stack, api, admin) = webhooks_tests::setup().await?;
    let company = unique("co");
    let (_, key) = api.create_key(&admin, &[&company], &["manage", "publish"]).await?;
    Ok((api, key, company))
}

/// The entries of `webhook-signature` with `tag` (`v1` or `v1a`), in the order sent.
fn entries<'a>(request: &'a Received, tag: &str) -> Vec<&'a str> {
    let prefix = format!("{tag},");
    request.header("webhook-signature").split(' ').filter_map(|e| e.strip_prefix(prefix.as_str())).collect()
}

/// Whether the base64 `signature` is the Ed25519 signature, under `public_key` (`whpk_…`), of
/// the Standard Webhooks signing string `{webhook-id}.{webhook-timestamp}.{body}` of `request`.
fn verifies(public_key: &str, signature: &str, request: &Received) -> Result<bool> {
    let raw = STANDARD.decode(public_key.strip_prefix("whpk_").context("whpk_ prefix")?)?;
    let mut signed = format!("{}.{}.", request.header("webhook-id"), request.header("webhook-timestamp")).into_bytes();
    signed.extend_from_slice(&request.body);
    let signature = STANDARD.decode(signature)?;
    Ok(UnparsedPublicKey::new(&ED25519, raw).verify(&signed, &signature).is_ok())
}

/// The public key of webhook `id` as the API shows it.
async fn public_key(api: &Api, key: &str, id: &str) -> Result<String> {
    let r = api.call("GET", &format!("/v1/webhooks/{id}"), Some(key), None).await?;
    Ok(r.body["public_key"].as_str().context("public_key")?.to_owned())
}

/// Publishes one event for `company` and returns the request that brought it to `receiver`.
async fn deliver(api: &Api, key: &str, company: &str, receiver: &Receiver) -> Result<Received> {
    let event_id = unique("e");
    api.publish(key, &[cloud_event(&event_id, "TODO_CREATED", company, "p1")]).await?;
    webhooks_tests::eventually(WAIT, "the delivery", || async {
        Ok(receiver.received().into_iter().find(|r| r.json()["event_id"] == event_id.as_str()))
    })
    .await
}

fn verify_v1(secret: &str, request: &Received) -> Result<bool> {
    let verifier = standardwebhooks::Webhook::new(secret).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(verifier.verify(&request.body, &request.headers).is_ok())
}

#[tokio::test]
async fn a_v1a_delivery_verifies_with_the_public_key_from_the_api() -> Result<()> {
    // GIVEN a webhook created with `v1a`
    let (api, key, company) = setup().await?;
    let receiver = Receiver::start().await?;
    let created = api.create_webhook(&key, json!({"url": receiver.url, "signature_scheme": "v1a"})).await?;
    let id = created["id"].as_str().context("id")?;
    // THEN it shows its public key and no secret, on create and on every read
    assert_eq!(created["signature_scheme"], "v1a");
    assert!(created.get("secret").is_none(), "a key pair has no secret to show: {created}");
    let public = created["public_key"].as_str().context("public_key")?.to_owned();
    assert!(public.starts_with("whpk_") && STANDARD.decode(&public[5..])?.len() == 32, "{public}");
    assert_eq!(public_key(&api, &key, id).await?, public);

    // WHEN an event is delivered
    let request = deliver(&api, &key, &company, &receiver).await?;
    // THEN it carries one v1a signature, which another Ed25519 verifies with that public key
    let signatures = entries(&request, "v1a");
    assert_eq!(signatures.len(), 1, "{}", request.header("webhook-signature"));
    assert!(entries(&request, "v1").is_empty());
    assert!(verifies(&public, signatures[0], &request)?, "the signature verifies");
    // AND not for another body, nor for another webhook's key
    let tampered = Received { body: request.body.iter().rev().copied().collect(), ..request.clone() };
    assert!(!verifies(&public, signatures[0], &tampered)?);
    let other = api.create_webhook(&key, json!({"url": receiver.url, "signature_scheme": "v1a"})).await?;
    assert!(!verifies(other["public_key"].as_str().context("other key")?, signatures[0], &request)?);

    // AND `test` signs with the scheme too
    let before = receiver.received().len();
    let r = api.call("POST", &format!("/v1/webhooks/{id}/test"), Some(&key), None).await?;
    assert_eq!((r.status, r.body["status_code"].as_u64()), (200, Some(200)), "{}", r.body);
    let test = receiver.received().into_iter().skip(before).find(|r| r.json()["webhook_id"] == id);
    let test = test.context("the test request")?;
    assert!(verifies(&public, entries(&test, "v1a").first().context("v1a entry")?, &test)?);
    Ok(())
}

#[tokio::test]
async fn rotating_a_v1a_webhook_signs_with_both_key_pairs_during_the_overlap() -> Result<()> {
    // GIVEN a v1a webhook and its public key
    let (api, key, company) = setup().await?;
    let receiver = Receiver::start().await?;
    let created = api.create_webhook(&key, json!({"url": receiver.url, "signature_scheme": "v1a"})).await?;
    let id = created["id"].as_str().context("id")?;
    let old = created["public_key"].as_str().context("public_key")?.to_owned();

    // WHEN it is rotated (default grace)
    let r = api.call("POST", &format!("/v1/webhooks/{id}/rotate-secret"), Some(&key), None).await?;
    // THEN the answer is the new public key, which the webhook now shows; no secret
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.as_object().map(|o| o.len()), Some(1), "{}", r.body);
    let new = r.body["public_key"].as_str().context("new public key")?.to_owned();
    assert_ne!(new, old);
    assert_eq!(public_key(&api, &key, id).await?, new);

    // WHEN an event is delivered THEN both keys sign it: the new one first
    let request = deliver(&api, &key, &company, &receiver).await?;
    let signatures = entries(&request, "v1a");
    assert_eq!(signatures.len(), 2, "{}", request.header("webhook-signature"));
    assert!(verifies(&new, signatures[0], &request)? && verifies(&old, signatures[1], &request)?);
    assert!(!verifies(&old, signatures[0], &request)?);

    // WHEN rotated again without grace THEN only the newest key signs
    let r = api
        .call("POST", &format!("/v1/webhooks/{id}/rotate-secret"), Some(&key), Some(json!({"grace_seconds": 0})))
        .await?;
    let newest = r.body["public_key"].as_str().context("newest")?.to_owned();
    let request = deliver(&api, &key, &company, &receiver).await?;
    let signatures = entries(&request, "v1a");
    assert_eq!(signatures.len(), 1, "{}", request.header("webhook-signature"));
    assert!(verifies(&newest, signatures[0], &request)?);
    assert!(!verifies(&new, signatures[0], &request)?);
    Ok(())
}

#[tokio::test]
async fn switching_schemes_by_patch_keeps_the_previous_signature_for_the_overlap() -> Result<()> {
    // GIVEN a v1 webhook and its secret
    let (api, key, company) = setup().await?;
    let receiver = Receiver::start().await?;
    let created = api.create_webhook(&key, json!({"url": receiver.url})).await?;
    let id = created["id"].as_str().context("id")?;
    let path = format!("/v1/webhooks/{id}");
    let secret = created["secret"].as_str().context("secret")?.to_owned();
    assert_eq!((&created["signature_scheme"], &created["public_key"]), (&json!("v1"), &Value::Null));

    // WHEN it switches to v1a
    let r = api.call("PATCH", &path, Some(&key), Some(json!({"signature_scheme": "v1a"}))).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["signature_scheme"], "v1a");
    assert!(r.body.get("secret").is_none(), "{}", r.body);
    let public = r.body["public_key"].as_str().context("public_key")?.to_owned();
    // THEN deliveries are signed with the key pair, and still with the secret (for the overlap)
    let request = deliver(&api, &key, &company, &receiver).await?;
    assert!(request.header("webhook-signature").starts_with("v1a,"), "{}", request.header("webhook-signature"));
    assert!(verifies(&public, entries(&request, "v1a")[0], &request)?);
    assert!(verify_v1(&secret, &request)?, "the official library still verifies the secret");

    // WHEN the same scheme is set again THEN nothing changes
    let r = api.call("PATCH", &path, Some(&key), Some(json!({"signature_scheme": "v1a"}))).await?;
    assert_eq!((r.status, r.body["public_key"].as_str()), (200, Some(public.as_str())));

    // WHEN it switches back within the overlap THEN the secret it still has signs again (not
    // shown: the receiver holds it) and the public key is gone from the webhook
    let r = api.call("PATCH", &path, Some(&key), Some(json!({"signature_scheme": "v1"}))).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((&r.body["signature_scheme"], &r.body["public_key"]), (&json!("v1"), &Value::Null));
    assert!(r.body.get("secret").is_none(), "{}", r.body);
    let request = deliver(&api, &key, &company, &receiver).await?;
    assert!(request.header("webhook-signature").starts_with("v1,"), "{}", request.header("webhook-signature"));
    assert!(verify_v1(&secret, &request)?);
    assert!(verifies(&public, entries(&request, "v1a").first().context("overlap")?, &request)?);

    // GIVEN a webhook created with v1a WHEN it switches to v1 THEN a new secret is shown once,
    // and it signs the deliveries
    let receiver = Receiver::start().await?;
    let created = api.create_webhook(&key, json!({"url": receiver.url, "signature_scheme": "v1a"})).await?;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().context("id")?);
    let r = api.call("PATCH", &path, Some(&key), Some(json!({"signature_scheme": "v1"}))).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = r.body["secret"].as_str().context("a new secret")?.to_owned();
    assert!(secret.starts_with("whsec_"));
    assert!(api.call("GET", &path, Some(&key), None).await?.body.get("secret").is_none());
    let request = deliver(&api, &key, &company, &receiver).await?;
    assert!(verify_v1(&secret, &request)?);
    Ok(())
}

#[tokio::test]
async fn an_unknown_scheme_is_refused_and_changes_nothing() -> Result<()> {
    let (api, key, _) = setup().await?;
    let receiver = Receiver::start().await?;
    for scheme in [json!("v2"), json!("V1A"), json!("ed25519"), Value::Null, json!(1)] {
        // WHEN a webhook is created with it THEN 400 on `signature_scheme`
        let body = json!({"url": receiver.url, "signature_scheme": scheme});
        let r = api.call("POST", "/v1/webhooks", Some(&key), Some(body)).await?;
        assert_eq!(r.status, 400, "{scheme}: {}", r.body);
        assert_eq!((r.code(), r.body["error"]["field"].as_str()), ("validation_failed", Some("signature_scheme")));
    }
    let listed = api.call("GET", "/v1/webhooks", Some(&key), None).await?;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(0), "nothing was created");

    // AND a PATCH with it changes nothing
    let created = api.create_webhook(&key, json!({"url": receiver.url})).await?;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().context("id")?);
    let r = api.call("PATCH", &path, Some(&key), Some(json!({"signature_scheme": "v3", "name": "x"}))).await?;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("signature_scheme")), "{}", r.body);
    let now = api.call("GET", &path, Some(&key), None).await?.body;
    if now["signature_scheme"] != "v1" || now["name"] != Value::Null {
        bail!("the refused PATCH changed the webhook: {now}");
    }
    Ok(())
}
