//! The configuration API's contract (SPEC §7): status codes, error shapes, check order,
//! ownership, and that bad input changes nothing.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use webhooks_tests::{Api, Stack, cloud_event, setup, setup_on, unique};

/// The shared stack, its API, the admin key, and a new company for the test's keys.
async fn setup_with_company() -> Result<(Stack, Api, String, String)> {
    let (stack, api, admin) = setup().await?;
    Ok((stack, api, admin, unique("co")))
}

fn hook(url: &str) -> Value {
    json!({"url": url})
}

/// Creates a webhook of `key` to `url`; returns its id.
async fn webhook_id(api: &Api, key: &str, url: &str) -> Result<String> {
    let created = api.create_webhook(key, hook(url)).await?;
    Ok(created["id"].as_str().context("id")?.to_owned())
}

#[tokio::test]
async fn authentication_fails_without_saying_which_part_was_wrong() -> Result<()> {
    let (_stack, api, _admin) = setup().await?;
    let unknown = format!("whk_{}", "A".repeat(40));
    for key in [None, Some("nope"), Some("whk_short"), Some(unknown.as_str())] {
        let r = api.call("GET", "/v1/me", key, None).await?;
        assert_eq!(r.status, 401, "{key:?}");
        assert_eq!(r.code(), "unauthenticated");
        assert_eq!(r.body["error"]["message"], "authentication required");
    }
    Ok(())
}

#[tokio::test]
async fn me_and_event_types_describe_the_caller_and_the_catalog() -> Result<()> {
    let (_stack, api, admin, company) = setup_with_company().await?;
    let (id, key) = api.create_key(&admin, &[&company], &["publish"]).await?;

    let me = api.call("GET", "/v1/me", Some(&key), None).await?;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], id.as_str());
    assert_eq!(me.body["companies"], json!([company]));
    assert_eq!(me.body["permissions"], json!(["publish"]));
    assert_eq!(me.body["is_admin"], false);
    assert_eq!(api.call("GET", "/v1/me", Some(&admin), None).await?.body["is_admin"], true);

    let types = api.call("GET", "/v1/event-types", Some(&key), None).await?;
    assert_eq!(types.status, 200);
    let data = types.body["data"].as_array().context("data")?;
    assert_eq!(data.len(), 37);
    assert!(
        data.iter()
            .any(|t| t == &json!({"type": "TODO_CREATED", "group": "record", "description": "A record was created."}))
    );
    assert!(data.iter().all(|t| t["type"] != "WEBHOOK_HEALTH_CHECK"));
    assert_eq!(api.call("GET", "/v1/event-types", None, None).await?.status, 401);
    Ok(())
}

#[tokio::test]
async fn api_keys_are_managed_by_the_admin_only() -> Result<()> {
    let (_stack, api, admin, company) = setup_with_company().await?;
    let (id, key) = api.create_key(&admin, &[&company], &["manage", "publish"]).await?;
    assert!(key.starts_with("whk_") && key.len() == 44);

    // A customer key cannot manage keys.
    let r = api
        .call(
            "POST",
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": "x", "companies": [company], "permissions": ["manage"]})),
        )
        .await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    assert_eq!(api.call("GET", "/v1/api-keys", Some(&key), None).await?.status, 403);

    // Invalid bodies name their field and create nothing.
    for (body, field) in [
        (json!({"name": "x", "companies": [], "permissions": ["manage"]}), "companies"),
        (json!({"name": "x", "companies": ["bad id"], "permissions": ["manage"]}), "companies[0]"),
        (json!({"name": "x", "companies": ["a"], "permissions": ["root"]}), "permissions[0]"),
        (json!({"name": "x", "companies": ["a"], "permissions": ["manage"], "admin": true}), "admin"),
    ] {
        let r = api.call("POST", "/v1/api-keys", Some(&admin), Some(body.clone())).await?;
        assert_eq!((r.status, r.code()), (400, "validation_failed"), "{body}");
        assert_eq!(r.body["error"]["field"], field, "{body}");
    }

    // The listing pages through keys and never shows a secret.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/api-keys?limit=2&cursor={c}"),
            None => "/v1/api-keys?limit=2".to_owned(),
        };
        let page = api.call("GET", &path, Some(&admin), None).await?;
        assert_eq!(page.status, 200);
        let data = page.body["data"].as_array().context("data")?;
        assert!(data.len() <= 2);
        assert!(data.iter().all(|k| k.get("key").is_none() && k.get("secret_sha256").is_none()));
        seen.extend(data.iter().map(|k| k["id"].as_str().unwrap_or_default().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(seen.contains(&id));
    assert_eq!(api.call("GET", "/v1/api-keys?limit=101", Some(&admin), None).await?.status, 400);

    // PATCH changes what the key may do.
    let r = api
        .call("PATCH", &format!("/v1/api-keys/{id}"), Some(&admin), Some(json!({"permissions": ["publish"]})))
        .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["permissions"], json!(["publish"]));
    let r = api.call("POST", "/v1/webhooks", Some(&key), Some(hook("http://127.0.0.1:9/h"))).await?;
    assert_eq!(r.status, 403, "manage was taken away");

    // Rotation kills the old secret at once.
    let rotated = api.call("POST", &format!("/v1/api-keys/{id}/rotate"), Some(&admin), None).await?;
    assert_eq!(rotated.status, 200);
    let new_key = rotated.body["key"].as_str().context("new key")?.to_owned();
    assert_eq!(api.call("GET", "/v1/me", Some(&key), None).await?.status, 401);
    assert_eq!(api.call("GET", "/v1/me", Some(&new_key), None).await?.status, 200);

    // Deletion too; and the key is gone.
    assert_eq!(api.call("DELETE", &format!("/v1/api-keys/{id}"), Some(&admin), None).await?.status, 204);
    assert_eq!(api.call("GET", "/v1/me", Some(&new_key), None).await?.status, 401);
    assert_eq!(api.call("DELETE", &format!("/v1/api-keys/{id}"), Some(&admin), None).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn webhooks_are_created_listed_changed_and_deleted_by_their_owner() -> Result<()> {
    let (_stack, api, admin) = setup().await?;
    let (acme, globex) = (unique("acme"), unique("globex"));
    let (key_id, key) = api.create_key(&admin, &[&acme, &globex], &["manage"]).await?;

    let created = api
        .create_webhook(
            &key,
            json!({"url": "http://127.0.0.1:9/hook", "name": "Orders", "events": ["TODO_CREATED", "COMMENT_CREATED"],
                   "scopes": [{"company_id": acme, "project_id": "p1"}, {"company_id": globex}],
                   "headers": {"Authorization": "Bearer abc"}}),
        )
        .await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    assert!(id.starts_with("wh_"));
    assert!(created["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")));
    assert_eq!(created["owner_key_id"], key_id.as_str());
    assert_eq!(created["status"], "active");
    assert_eq!(created["disabled_reason"], Value::Null);
    assert_eq!(created["health"]["consecutive_failures"], 0);
    assert_eq!(created["parked"], 0);
    assert_eq!(created["scopes"], json!([{"company_id": acme, "project_id": "p1"}, {"company_id": globex}]));

    // Reading never shows the secret.
    let got = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&key), None).await?;
    assert_eq!(got.status, 200);
    assert!(got.body.get("secret").is_none());
    assert_eq!(got.body["name"], "Orders");

    // PATCH replaces lists whole and null clears a name.
    let patched = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            Some(&key),
            Some(json!({"events": ["TAG_CREATED"], "name": null})),
        )
        .await?;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["events"], json!(["TAG_CREATED"]));
    assert_eq!(patched.body["name"], Value::Null);
    assert_eq!(patched.body["url"], "http://127.0.0.1:9/hook");

    // The list shows it; the admin sees it too, filtered by owner.
    let list = api.call("GET", "/v1/webhooks", Some(&key), None).await?;
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(1));
    let by_owner = api.call("GET", &format!("/v1/webhooks?owner_key_id={key_id}"), Some(&admin), None).await?;
    assert_eq!(by_owner.body["data"][0]["id"], id.as_str());
    let disabled = api.call("GET", "/v1/webhooks?status=disabled", Some(&key), None).await?;
    assert_eq!(disabled.body["data"], json!([]));
    assert_eq!(api.call("GET", "/v1/webhooks?status=weird", Some(&key), None).await?.status, 400);

    // DELETE, then it is gone.
    assert_eq!(api.call("DELETE", &format!("/v1/webhooks/{id}"), Some(&key), None).await?.status, 204);
    assert_eq!(api.call("GET", &format!("/v1/webhooks/{id}"), Some(&key), None).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn another_keys_webhook_does_not_exist_for_you() -> Result<()> {
    let (_stack, api, admin, company) = setup_with_company().await?;
    let (_, owner) = api.create_key(&admin, &[&company], &["manage"]).await?;
    let (_, other) = api.create_key(&admin, &[&company], &["manage"]).await?;
    let id = webhook_id(&api, &owner, "http://127.0.0.1:9/a").await?;

    for (method, body) in [("GET", None), ("PATCH", Some(json!({"name": "mine now"}))), ("DELETE", None)] {
        let r = api.call(method, &format!("/v1/webhooks/{id}"), Some(&other), body).await?;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{method}");
    }
    assert_eq!(api.call("GET", "/v1/webhooks", Some(&other), None).await?.body["data"], json!([]));
    // The admin may read and change any webhook, but not create one.
    assert_eq!(api.call("GET", &format!("/v1/webhooks/{id}"), Some(&admin), None).await?.status, 200);
    let r = api.call("POST", "/v1/webhooks", Some(&admin), Some(hook("http://127.0.0.1:9/b"))).await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    // And the owner's webhook is untouched.
    let r = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&owner), None).await?;
    assert_eq!(r.body["name"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn checks_come_in_the_documented_order() -> Result<()> {
    let (_stack, api, admin, company) = setup_with_company().await?;
    let (_, manager) = api.create_key(&admin, &[&company], &["manage"]).await?;
    let (_, publisher) = api.create_key(&admin, &[&company], &["publish"]).await?;
    let huge = vec![b' '; 70 * 1024];
    let missing = "/v1/webhooks/wh_doesnotexist";

    // 401 before anything else, even with a bad body.
    let r = api.raw("PATCH", missing, None, Some("text/plain"), Some(huge.clone())).await?;
    assert_eq!(r.status, 401);
    // 403 (permission) before 404.
    let r = api.raw("PATCH", missing, Some(&publisher), Some("text/plain"), Some(huge.clone())).await?;
    assert_eq!(r.status, 403);
    // 404 before 415.
    let r = api.raw("PATCH", missing, Some(&manager), Some("text/plain"), Some(huge.clone())).await?;
    assert_eq!(r.status, 404);
    // 415 before 413.
    let r = api.raw("POST", "/v1/webhooks", Some(&manager), Some("text/plain"), Some(huge.clone())).await?;
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));
    // 413 before 400.
    let r = api.raw("POST", "/v1/webhooks", Some(&manager), Some("application/json"), Some(huge)).await?;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"));
    // 400 before 403 for a scope's company.
    let body = json!({"url": "ftp://example.com", "scopes": [{"company_id": "not-mine"}]});
    let r = api.call("POST", "/v1/webhooks", Some(&manager), Some(body)).await?;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("url")));
    let body = json!({"url": "http://127.0.0.1:9/h", "scopes": [{"company_id": "not-mine"}]});
    let r = api.call("POST", "/v1/webhooks", Some(&manager), Some(body)).await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    // None of it created anything.
    assert_eq!(api.call("GET", "/v1/webhooks", Some(&manager), None).await?.body["data"], json!([]));
    Ok(())
}

#[tokio::test]
async fn webhook_input_rules_refuse_with_the_field_and_change_nothing() -> Result<()> {
    let (_stack, api, admin, company) = setup_with_company().await?;
    let (_, key) = api.create_key(&admin, &[&company], &["manage"]).await?;
    let id = api.create_webhook(&key, json!({"url": "http://127.0.0.1:9/keep", "name": "keep"})).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let cases = [
        (json!({"url": "http://127.0.0.1:9/h", "colour": "red"}), "colour"),
        (json!({"url": "https://user:pw@example.com/h"}), "url"),
        (json!({"url": "http://127.0.0.1:9/h#frag"}), "url"),
        (json!({"url": format!("http://127.0.0.1:9/{}", "a".repeat(2048))}), "url"),
        (json!({"url": "http://127.0.0.1:9/h", "events": ["TODO_CREATED", "NOPE"]}), "events[1]"),
        (json!({"url": "http://127.0.0.1:9/h", "events": ["WEBHOOK_HEALTH_CHECK"]}), "events[0]"),
        (json!({"url": "http://127.0.0.1:9/h", "scopes": [{"company_id": "bad id"}]}), "scopes[0].company_id"),
        (json!({"url": "http://127.0.0.1:9/h", "scopes": [{"company_id": company, "extra": 1}]}), "scopes[0].extra"),
        (json!({"url": "http://127.0.0.1:9/h", "headers": {"Content-Type": "text/plain"}}), "headers.Content-Type"),
        (json!({"url": "http://127.0.0.1:9/h", "headers": {"webhook-id": "x"}}), "headers.webhook-id"),
        (json!({"url": "http://127.0.0.1:9/h", "name": "n".repeat(101)}), "name"),
        (json!({"url": "http://127.0.0.1:9/h", "description": "d".repeat(1001)}), "description"),
    ];
    for (body, field) in cases {
        let r = api.call("PATCH", &format!("/v1/webhooks/{id}"), Some(&key), Some(body.clone())).await?;
        assert_eq!(
            (r.status, r.code(), r.body["error"]["field"].as_str()),
            (400, "validation_failed", Some(field)),
            "{body}"
        );
    }
    let r = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&key), None).await?;
    assert_eq!((r.body["url"].as_str(), r.body["name"].as_str()), (Some("http://127.0.0.1:9/keep"), Some("keep")));
    Ok(())
}

#[tokio::test]
async fn a_key_owns_at_most_the_configured_number_of_webhooks() -> Result<()> {
    let (_stack, api, admin) = setup_on(Stack::private(&[("WEBHOOKS_MAX_WEBHOOKS_PER_KEY", "2")], &[]).await?)?;
    let (_, key) = api.create_key(&admin, &["acme"], &["manage"]).await?;
    let first = api.create_webhook(&key, hook("http://127.0.0.1:9/1")).await?;
    api.create_webhook(&key, hook("http://127.0.0.1:9/2")).await?;
    let r = api.call("POST", "/v1/webhooks", Some(&key), Some(hook("http://127.0.0.1:9/3"))).await?;
    assert_eq!((r.status, r.code()), (409, "conflict"));
    // Deleting one frees its slot.
    let id = first["id"].as_str().unwrap_or_default();
    assert_eq!(api.call("DELETE", &format!("/v1/webhooks/{id}"), Some(&key), None).await?.status, 204);
    api.create_webhook(&key, hook("http://127.0.0.1:9/3")).await?;
    Ok(())
}

#[tokio::test]
async fn publishing_is_all_or_nothing_with_precise_errors() -> Result<()> {
    let (_stack, api, admin, company) = setup_with_company().await?;
    let (_, publisher) = api.create_key(&admin, &[&company], &["publish"]).await?;
    let (_, manager) = api.create_key(&admin, &[&company], &["manage"]).await?;
    let good = cloud_event(&unique("e"), "TODO_CREATED", &company, "p1");

    let r = api.publish(&manager, std::slice::from_ref(&good)).await?;
    assert_eq!(r.status, 403, "manage alone cannot publish");
    let r = api.publish(&admin, std::slice::from_ref(&good)).await?;
    assert_eq!(r.status, 403, "the admin cannot publish");

    let r = api
        .raw("POST", "/v1/events", Some(&publisher), Some("application/json"), Some(good.to_string().into_bytes()))
        .await?;
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));

    let mut bad = cloud_event(&unique("e"), "NOT_A_TYPE", &company, "p1");
    let r = api.publish(&publisher, &[good.clone(), bad.clone()]).await?;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("[1].type")));
    bad["type"] = json!("TODO_CREATED");
    bad["companyid"] = json!("someone-else");
    let r = api.publish(&publisher, &[good.clone(), bad]).await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"));

    let many: Vec<Value> = (0..101).map(|i| cloud_event(&format!("e{i}"), "TODO_CREATED", &company, "p1")).collect();
    assert_eq!(api.publish(&publisher, &many).await?.status, 413);
    assert_eq!(api.publish(&publisher, &[]).await?.status, 400);

    let single = api
        .raw(
            "POST",
            "/v1/events",
            Some(&publisher),
            Some("application/cloudevents+json; charset=utf-8"),
            Some(good.to_string().into_bytes()),
        )
        .await?;
    assert_eq!((single.status, single.body.clone()), (202, json!({"accepted": 1})));
    let r = api.publish(&publisher, &[good.clone(), good]).await?;
    assert_eq!((r.status, r.body.clone()), (202, json!({"accepted": 2})), "duplicates are accepted");
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_key_and_names_every_route() -> Result<()> {
    let (_stack, api, _admin) = setup().await?;
    let doc = api.call("GET", "/v1/openapi.json", None, None).await?;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert_eq!(doc.body["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let paths = doc.body["paths"].as_object().context("paths")?;
    for (path, method) in [
        ("/v1/webhooks", "post"),
        ("/v1/webhooks/{id}", "patch"),
        ("/v1/webhooks/{id}/deliveries/{message_id}/redeliver", "post"),
        ("/v1/events", "post"),
        ("/v1/api-keys/{id}/rotate", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    // Request schemas refuse unknown fields, like the API.
    let create = &doc.body["components"]["schemas"]["WebhookCreate"];
    assert_eq!(create["additionalProperties"], false);
    assert_eq!(create["required"], json!(["url"]));
    Ok(())
}

#[tokio::test]
async fn malformed_queries_and_unserved_methods_answer_in_the_documented_shape() -> Result<()> {
    let (_stack, api, admin, company) = setup_with_company().await?;
    let (_, key) = api.create_key(&admin, &[&company], &["manage"]).await?;
    let id = webhook_id(&api, &key, "http://127.0.0.1:9/hook").await?;

    // A repeated query field: JSON 400, not the router's plain text.
    let r =
        api.call("GET", &format!("/v1/webhooks/{id}/deliveries?status=failed&status=parked"), Some(&key), None).await?;
    assert_eq!((r.status, r.code()), (400, "validation_failed"), "{}", r.body);
    // An empty filter is not a filter value.
    let r = api.call("GET", "/v1/webhooks?status=", Some(&key), None).await?;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("status")), "{}", r.body);

    // A method a route does not serve: 405, through the HTTP API's ANY routes.
    for (method, path) in
        [("PUT", format!("/v1/webhooks/{id}")), ("TRACE", "/health".to_owned()), ("POST", "/v1/me".to_owned())]
    {
        let r = api.raw(method, &path, Some(&key), None, None).await?;
        assert_eq!(r.status, 405, "{method} {path}");
    }

    // `rotate-secret` takes a whole number of seconds however JSON spells it, and `null` as no body.
    for body in ["{\"grace_seconds\": 60.0}", "null", ""] {
        let r = api
            .raw(
                "POST",
                &format!("/v1/webhooks/{id}/rotate-secret"),
                Some(&key),
                Some("application/json"),
                Some(body.into()),
            )
            .await?;
        assert_eq!(r.status, 200, "{body}: {}", r.body);
    }
    let r = api
        .raw(
            "POST",
            &format!("/v1/webhooks/{id}/rotate-secret"),
            Some(&key),
            Some("application/json"),
            Some(b"{\"grace_seconds\": 60.5}".to_vec()),
        )
        .await?;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("grace_seconds")));
    Ok(())
}

/// Trust issue, defect 11: a cursor tampered with, or an id no key or webhook can have, is the
/// caller's mistake (400, 404), never a 503.
#[tokio::test]
async fn tampered_cursors_and_impossible_ids_are_the_callers_mistake() -> Result<()> {
    let (_stack, api, admin, company) = setup_with_company().await?;
    let (_, key) = api.create_key(&admin, &[&company], &["manage"]).await?;
    let (_, other) = api.create_key(&admin, &[&company], &["manage"]).await?;
    let mut mine = String::new();
    for _ in 0..2 {
        mine = webhook_id(&api, &key, "http://127.0.0.1:9/hook").await?;
        api.create_webhook(&other, hook("http://127.0.0.1:9/hook")).await?;
    }
    // A real cursor of the other key's list, and cursors decoded, changed and encoded again
    let theirs = api.call("GET", "/v1/webhooks?limit=1", Some(&other), None).await?;
    let theirs = theirs.body["next_cursor"].as_str().context("a second page")?.to_owned();
    let encode = |v: Value| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string());
    let long = "x".repeat(3000);
    for cursor in [
        theirs,
        encode(json!({"pk": "WH#wh_x"})),
        encode(json!({"pk": "WH#wh_x", "sk": "WH", "gsi1pk": "OWNER#someone", "gsi1sk": "2026"})),
        encode(json!({"pk": long, "sk": "WH", "gsi1pk": "x", "gsi1sk": "x"})),
        encode(json!({"pk": "", "sk": "", "gsi1pk": "", "gsi1sk": ""})),
    ] {
        let r = api.call("GET", &format!("/v1/webhooks?limit=1&cursor={cursor}"), Some(&key), None).await?;
        assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("cursor")), "{cursor}: {}", r.body);
        let r = api.call("GET", &format!("/v1/api-keys?cursor={cursor}"), Some(&admin), None).await?;
        assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("cursor")), "{cursor}: {}", r.body);
        let r = api.call("GET", &format!("/v1/webhooks/{mine}/deliveries?cursor={cursor}"), Some(&key), None).await?;
        assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("cursor")), "{cursor}: {}", r.body);
    }
    // Ids no webhook or key can have
    for id in [long.as_str(), "wh_%20x", "wh_a.b"] {
        for (method, path) in [
            ("GET", format!("/v1/webhooks/{id}")),
            ("PATCH", format!("/v1/webhooks/{id}")),
            ("DELETE", format!("/v1/webhooks/{id}")),
            ("GET", format!("/v1/webhooks/{id}/deliveries")),
        ] {
            let body = (method == "PATCH").then(|| json!({"name": "x"}));
            let r = api.call(method, &path, Some(&key), body).await?;
            assert_eq!(
                (r.status, r.code()),
                (404, "not_found"),
                "{method} {}: {}",
                &path[..path.len().min(60)],
                r.body
            );
        }
        let r = api.call("PATCH", &format!("/v1/api-keys/{id}"), Some(&admin), Some(json!({"name": "x"}))).await?;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.body);
    }
    Ok(())
}

/// Trust issue, defect 11: deleting a key that AWS interrupts half-way (its webhooks partly
/// deleted) is completed by repeating the request; no webhook of a deleted key is left.
#[tokio::test]
async fn an_interrupted_key_deletion_is_completed_by_repeating_it() -> Result<()> {
    // GIVEN a stack whose AWS calls can be made to fail, and a key with a dozen webhooks
    let stack = Stack::private(webhooks_tests::TEST_SETTINGS, &[]).await?;
    let stack = if webhooks_tests::chaos::fault_proxy_url(&stack)?.is_some() {
        stack
    } else {
        drop(stack);
        Stack::private_with(&[("WEBHOOKS_LOCAL_FAULT_RATE", "0.000001")]).await?
    };
    let proxy = webhooks_tests::chaos::fault_proxy_url(&stack)?.context("the stack runs the fault proxy")?;
    let (_stack, api, admin) = setup_on(stack)?;
    let company = unique("co");
    let (key_id, key) = api.create_key(&admin, &[&company], &["manage"]).await?;
    let mut webhooks = Vec::new();
    for _ in 0..12 {
        webhooks.push(webhook_id(&api, &key, "http://127.0.0.1:9/hook").await?);
    }

    // WHEN its deletion meets failing AWS calls, and the admin repeats it until it is answered
    webhooks_tests::chaos::set_fault_rate(&proxy, 0.6).await?;
    let mut answers = Vec::new();
    for _ in 0..40 {
        let r = api.call("DELETE", &format!("/v1/api-keys/{key_id}"), Some(&admin), None).await?;
        answers.push(r.status);
        if r.status != 503 {
            break;
        }
    }
    webhooks_tests::chaos::set_fault_rate(&proxy, 0.0).await?;

    // THEN it ends in 204 (or 404 when an earlier try finished the work), and nothing of the
    // key is left
    assert!(matches!(answers.last(), Some(204 | 404)), "{answers:?}");
    assert_eq!(api.call("GET", "/v1/me", Some(&key), None).await?.status, 401);
    for id in &webhooks {
        let r = api.call("GET", &format!("/v1/webhooks/{id}"), Some(&admin), None).await?;
        assert_eq!(r.status, 404, "webhook {id} of the deleted key is still there (answers {answers:?})");
    }
    Ok(())
}
