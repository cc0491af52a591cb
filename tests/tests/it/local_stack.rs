//! The local stack runs the functions as AWS does: resources from the template, real binaries
//! behind a Lambda Runtime API, an HTTP API front, and SQS event source mappings with partial
//! batch responses and DLQ redrive.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use webhooks_tests::{
    Stack, eventually, resources_of_type, signal, template, template_env_names, unique, wait_for_marker,
};

/// Resolves `{"Ref": Parameter}` to the parameter's default, leaves plain values alone.
fn value_or_parameter_default(template: &Value, v: &Value) -> Value {
    match v.get("Ref").and_then(Value::as_str) {
        Some(name) => template["Parameters"][name]["Default"].clone(),
        None => v.clone(),
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

#[tokio::test]
async fn every_queue_of_the_template_exists_with_its_attributes() -> Result<()> {
    // GIVEN the stack created from the template
    let stack = Stack::shared().await?;
    let template = template()?;
    let sqs = stack.sqs().await;
    let queues = resources_of_type(&template, "AWS::SQS::Queue");
    assert!(queues.len() >= 4, "template has the ingest and delivery queues and their DLQs");

    for (logical_id, resource) in queues {
        // WHEN we read the queue's attributes from the emulator
        let url = stack.info.queues.get(&logical_id).with_context(|| format!("{logical_id} missing"))?;
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        let attr = |name: QueueAttributeName| attrs.get(&name).cloned().unwrap_or_default();
        let props = &resource["Properties"];

        // THEN they are the template's
        let expected_visibility = as_i64(&props["VisibilityTimeout"]).unwrap_or(30);
        assert_eq!(attr(QueueAttributeName::VisibilityTimeout), expected_visibility.to_string(), "{logical_id}");
        if let Some(retention) = as_i64(&props["MessageRetentionPeriod"]) {
            assert_eq!(attr(QueueAttributeName::MessageRetentionPeriod), retention.to_string(), "{logical_id}");
        }
        if let Some(size) = as_i64(&props["MaximumMessageSize"]) {
            assert_eq!(attr(QueueAttributeName::MaximumMessageSize), size.to_string(), "{logical_id}");
        }
        match props.get("RedrivePolicy") {
            Some(policy) => {
                let actual: Value = serde_json::from_str(&attr(QueueAttributeName::RedrivePolicy))?;
                let expected_count = as_i64(&value_or_parameter_default(&template, &policy["maxReceiveCount"]));
                assert_eq!(as_i64(&actual["maxReceiveCount"]), expected_count, "{logical_id} maxReceiveCount");
                let dlq_id = policy["deadLetterTargetArn"]["Fn::GetAtt"][0].as_str().unwrap_or_default();
                let dlq_url = stack.info.queues.get(dlq_id).with_context(|| format!("{dlq_id} missing"))?;
                let dlq_name = dlq_url.rsplit('/').next().unwrap_or_default();
                let target = actual["deadLetterTargetArn"].as_str().unwrap_or_default();
                assert!(target.ends_with(&format!(":{dlq_name}")), "{logical_id} redrives to {target}, not {dlq_id}");
            }
            None => assert!(attr(QueueAttributeName::RedrivePolicy).is_empty(), "{logical_id} has no redrive"),
        }
    }
    // AND the well-known queues are the ones stack.json names
    assert_eq!(stack.info.queues.get("IngestQueue"), Some(&stack.info.ingest_queue_url));
    assert_eq!(stack.info.queues.get("IngestDeadLetterQueue"), Some(&stack.info.ingest_dlq_url));
    assert_eq!(stack.info.queues.get("DeliveryQueue"), Some(&stack.info.delivery_queue_url));
    assert_eq!(stack.info.queues.get("DeliveryDeadLetterQueue"), Some(&stack.info.delivery_dlq_url));
    Ok(())
}

#[tokio::test]
async fn every_table_of_the_template_exists_with_its_keys_indexes_and_ttl() -> Result<()> {
    let stack = Stack::shared().await?;
    let template = template()?;
    let dynamodb = stack.dynamodb().await;
    let tables = resources_of_type(&template, "AWS::DynamoDB::Table");
    assert!(tables.len() >= 2, "at least subscriptions and failure counters");

    for (logical_id, resource) in tables {
        let name = stack.info.tables.get(&logical_id).with_context(|| format!("{logical_id} missing"))?;
        let props = &resource["Properties"];
        let table = dynamodb.describe_table().table_name(name).send().await?.table.context("no table")?;

        let keys: BTreeSet<(String, String)> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
            .collect();
        let expected_keys: BTreeSet<(String, String)> = props["KeySchema"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap_or_default().to_owned(),
                    k["KeyType"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(keys, expected_keys, "{logical_id} key schema");

        let indexes: BTreeSet<String> =
            table.global_secondary_indexes().iter().filter_map(|i| i.index_name().map(str::to_owned)).collect();
        let expected_indexes: BTreeSet<String> = props["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["IndexName"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(indexes, expected_indexes, "{logical_id} indexes");

        let ttl = dynamodb.describe_time_to_live().table_name(name).send().await?;
        let ttl = ttl.time_to_live_description();
        match props["TimeToLiveSpecification"]["AttributeName"].as_str() {
            Some(attribute) => {
                assert_eq!(ttl.and_then(|t| t.attribute_name()), Some(attribute), "{logical_id} TTL attribute");
                assert_eq!(
                    ttl.and_then(|t| t.time_to_live_status()).map(|s| s.as_str().to_owned()),
                    Some("ENABLED".to_owned()),
                    "{logical_id} TTL status"
                );
            }
            None => assert!(ttl.and_then(|t| t.attribute_name()).is_none(), "{logical_id} has no TTL in the template"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn health_reaches_the_real_subscriptions_binary_through_the_http_front() -> Result<()> {
    let stack = Stack::shared().await?;
    let response = reqwest::get(format!("{}/health", stack.info.api_url)).await?;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    Ok(())
}

#[tokio::test]
async fn each_function_process_gets_exactly_the_template_environment_names() -> Result<()> {
    // GIVEN the template and the processes the runner started
    let stack = Stack::shared().await?;
    let template = template()?;
    let reserved: BTreeSet<String> =
        stack.info.lambda_reserved_env.iter().cloned().chain(["AWS_ENDPOINT_URL".to_owned()]).collect();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 3);
    let processes = stack.processes().await?;

    for (logical_id, resource) in functions {
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default();
        let expected = template_env_names(&template, &logical_id);
        let running = processes.get(binary).with_context(|| format!("no processes for {binary}"))?;
        assert!(running.len() >= 2, "{binary}: several processes per function");
        for process in running {
            let pid = process.pid.context("process has no pid")?;
            // WHEN we read what the kernel says the process was given
            let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
            let names: BTreeSet<String> = environ
                .split(|b| *b == 0)
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| String::from_utf8_lossy(kv).split('=').next().map(str::to_owned))
                .filter(|name| !reserved.contains(name))
                .collect();
            // THEN, Lambda's own variables aside, it is exactly the template's list
            assert_eq!(names, expected, "{binary} (pid {pid})");
        }
    }
    Ok(())
}

/// Makes a message received from `queue_url` come back after `seconds` (its visibility timeout).
async fn set_visibility_timeout(sqs: &aws_sdk_sqs::Client, queue_url: &str, seconds: u32) -> Result<()> {
    sqs.set_queue_attributes()
        .queue_url(queue_url)
        .attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string())
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_ingest_message_reaches_the_matcher_through_the_event_source_mapping() -> Result<()> {
    // GIVEN the shared stack
    let stack = Stack::shared().await?;
    let marker = unique("not-json");
    // WHEN a malformed message is put on the ingest queue
    stack.sqs().await.send_message().queue_url(&stack.info.ingest_queue_url).message_body(&marker).send().await?;
    // THEN the matcher received it and dead-lettered it with its reason
    let attributes = wait_for_marker(&stack, &stack.info.ingest_dlq_url, &marker, Duration::from_secs(20)).await?;
    assert_eq!(attributes.get("reason").map(String::as_str), Some("invalid_json"));
    assert!(stack.function_logs("matcher").contains("event rejected"));
    Ok(())
}

#[tokio::test]
async fn a_record_reported_failed_comes_back_after_its_visibility_and_then_reaches_the_dlq() -> Result<()> {
    // GIVEN a private stack whose delivery queue retries fast and gives up after 3 receives
    let stack = Stack::private(&[], &[]).await?;
    let sqs = stack.sqs().await;
    set_visibility_timeout(&sqs, &stack.info.delivery_queue_url, 1).await?;
    let policy: Value = serde_json::from_str(
        &sqs.get_queue_attributes()
            .queue_url(&stack.info.delivery_queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await?
            .attributes
            .unwrap_or_default()
            .get(&QueueAttributeName::RedrivePolicy)
            .cloned()
            .unwrap_or_default(),
    )?;
    let redrive = serde_json::json!({"deadLetterTargetArn": policy["deadLetterTargetArn"], "maxReceiveCount": 3});
    sqs.set_queue_attributes()
        .queue_url(&stack.info.delivery_queue_url)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await?;

    // WHEN a message delivery cannot process (poison) is queued
    let marker = unique("poison");
    let sent = Instant::now();
    let message_id = sqs
        .send_message()
        .queue_url(&stack.info.delivery_queue_url)
        .message_body(format!("{{\"kind\":\"{marker}\"}}"))
        .send()
        .await?
        .message_id
        .unwrap_or_default();

    // THEN it is moved to the DLQ by the queue's own redrive
    wait_for_marker(&stack, &stack.info.delivery_dlq_url, &marker, Duration::from_secs(30)).await?;
    // AND the function saw it once per receive, a visibility timeout apart
    let receives = stack.function_logs("delivery").matches(&message_id).count();
    assert_eq!(receives, 3, "delivered to the function once per receive before redrive");
    assert!(sent.elapsed() >= Duration::from_secs(2), "receives were spaced by the 1 s visibility");
    // AND it is gone from the work queue
    let left = sqs
        .get_queue_attributes()
        .queue_url(&stack.info.delivery_queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    assert!(left.values().all(|v| v == "0"), "work queue is empty: {left:?}");
    Ok(())
}

#[tokio::test]
async fn a_killed_function_process_is_replaced_and_its_batch_is_not_lost() -> Result<()> {
    // GIVEN a private stack whose ingest queue redelivers after 1 s
    let stack = Stack::private(&[], &[]).await?;
    let sqs = stack.sqs().await;
    set_visibility_timeout(&sqs, &stack.info.ingest_queue_url, 1).await?;
    // AND every matcher process frozen, so the next batch is stuck inside one of them
    let before = stack.processes().await?.remove("matcher").context("no matcher processes")?;
    let pids: Vec<u32> = before.iter().filter_map(|p| p.pid).collect();
    for pid in &pids {
        signal(*pid, "STOP")?;
    }

    // WHEN a message arrives and the process holding it is killed
    let marker = unique("kill-me");
    sqs.send_message().queue_url(&stack.info.ingest_queue_url).message_body(&marker).send().await?;
    let busy = eventually(Duration::from_secs(20), "a busy matcher", || async {
        let now = stack.processes().await?.remove("matcher").unwrap_or_default();
        Ok(now.into_iter().find(|p| p.busy).and_then(|p| p.pid))
    })
    .await?;
    signal(busy, "KILL")?;
    for pid in pids.iter().filter(|p| **p != busy) {
        signal(*pid, "CONT")?;
    }

    // THEN a new process takes its slot
    let replaced = eventually(Duration::from_secs(20), "a replacement process", || async {
        let now = stack.processes().await?.remove("matcher").unwrap_or_default();
        Ok(now.iter().any(|p| p.restarts >= 1 && p.pid.is_some_and(|pid| pid != busy)).then_some(()))
    })
    .await;
    if let Err(e) = replaced {
        bail!("{e}: {:?}", stack.processes().await?);
    }
    // AND the message is still processed: it reaches the DLQ with the matcher's verdict
    let attributes = wait_for_marker(&stack, &stack.info.ingest_dlq_url, &marker, Duration::from_secs(30)).await?;
    assert_eq!(attributes.get("reason").map(String::as_str), Some("invalid_json"));
    Ok(())
}

// ------------------------------------------------------------- as strict as AWS where it matters

/// The endpoint the functions are given (`local_env.AWS_ENDPOINT_URL` in stack.json): the
/// proxy in front of the emulator.
fn functions_endpoint(stack: &Stack) -> Result<String> {
    let file = stack.state_dir.join("stack.json");
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    info["local_env"]["AWS_ENDPOINT_URL"].as_str().map(str::to_owned).context("local_env.AWS_ENDPOINT_URL")
}

/// SDK settings the functions use, pointed where they are pointed, without retries.
async fn functions_sdk_config(stack: &Stack) -> Result<aws_config::SdkConfig> {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(functions_endpoint(stack)?)
        .region(Region::new(stack.info.region.clone()))
        .credentials_provider(Credentials::new("test", "test", None, None, "local-stack"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await)
}

/// A table of its own (key `pk`), created on the emulator.
async fn table_of_its_own(stack: &Stack) -> Result<String> {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let name = unique("strict");
    stack
        .dynamodb()
        .await
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build()?,
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build()?)
        .send()
        .await?;
    Ok(name)
}

/// The number `n` of the item `pk` of `table` (read consistently); an error when there is no
/// such item.
async fn counter(dynamodb: &aws_sdk_dynamodb::Client, table: &str, pk: String) -> Result<Option<String>> {
    let item = dynamodb
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
        .consistent_read(true)
        .send()
        .await?
        .item
        .with_context(|| format!("no item {pk}"))?;
    Ok(item.get("n").and_then(|n| n.as_n().ok()).cloned())
}

fn nested(depth: usize) -> aws_sdk_dynamodb::types::AttributeValue {
    use aws_sdk_dynamodb::types::AttributeValue;
    (0..depth).fold(AttributeValue::S("leaf".into()), |inner, _| AttributeValue::M([("d".to_owned(), inner)].into()))
}

#[tokio::test]
async fn the_functions_endpoint_refuses_items_dynamodb_refuses() -> Result<()> {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::AttributeValue;
    // GIVEN the endpoint the functions use, and a table
    let stack = Stack::shared().await?;
    let table = table_of_its_own(&stack).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&functions_sdk_config(&stack).await?);
    let cases = [
        ("33 levels", nested(33), "Nesting Levels have exceeded supported limits"),
        (
            "39 digits",
            AttributeValue::N("1".repeat(39)),
            "Attempting to store more than 38 significant digits in a Number",
        ),
        ("over 400 KB", AttributeValue::S("x".repeat(400 * 1024)), "Item size has exceeded the maximum allowed size"),
    ];
    for (what, value, message) in cases {
        // WHEN an item DynamoDB refuses is put
        let result = dynamodb
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(unique("item")))
            .item("v", value)
            .send()
            .await;
        // THEN it is refused as DynamoDB does
        let error = result.err().with_context(|| format!("{what} was stored"))?.into_service_error();
        assert_eq!(error.code(), Some("ValidationException"), "{what}");
        assert_eq!(error.message(), Some(message), "{what}");
    }
    // AND what DynamoDB accepts is stored
    dynamodb
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(unique("item")))
        .item("v", nested(32))
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_functions_endpoint_refuses_bodies_sqs_refuses() -> Result<()> {
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    // GIVEN the endpoint the functions use, and a queue
    let stack = Stack::shared().await?;
    let queue =
        stack.sqs().await.create_queue().queue_name(unique("strict")).send().await?.queue_url.context("queue url")?;
    let sqs = aws_sdk_sqs::Client::new(&functions_sdk_config(&stack).await?);
    // WHEN a body holds U+FFFF THEN SQS's refusal comes back
    let error = sqs
        .send_message()
        .queue_url(&queue)
        .message_body("a\u{ffff}b")
        .send()
        .await
        .err()
        .context("U+FFFF was queued")?;
    let error = error.into_service_error();
    assert!(error.is_invalid_message_contents(), "{error:?}");
    assert!(error.message().unwrap_or_default().contains("'#xFFFF'"), "{error:?}");
    // AND in a batch only that entry fails
    let answer = sqs
        .send_message_batch()
        .queue_url(&queue)
        .entries(SendMessageBatchRequestEntry::builder().id("good").message_body("fine").build()?)
        .entries(SendMessageBatchRequestEntry::builder().id("bad").message_body("\u{1}").build()?)
        .send()
        .await?;
    assert_eq!(answer.successful().iter().map(|s| s.id()).collect::<Vec<_>>(), ["good"]);
    assert_eq!(
        answer.failed().iter().map(|f| (f.id(), f.code())).collect::<Vec<_>>(),
        [("bad", "InvalidMessageContents")]
    );
    Ok(())
}

#[tokio::test]
async fn overlapping_transactions_on_one_item_are_cancelled_for_a_conflict() -> Result<()> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
    // GIVEN the endpoint the functions use, and a table
    let stack = Stack::shared().await?;
    let table = table_of_its_own(&stack).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&functions_sdk_config(&stack).await?);
    let shared = unique("shared");

    // WHEN many transactions, each on the shared item and an item of its own, run at once
    let mut running = Vec::new();
    for n in 0..32 {
        let (dynamodb, table, shared) = (dynamodb.clone(), table.clone(), shared.clone());
        running.push(tokio::spawn(async move {
            let own =
                Put::builder().table_name(&table).item("pk", AttributeValue::S(format!("{shared}-own-{n}"))).build()?;
            let count = Update::builder()
                .table_name(&table)
                .key("pk", AttributeValue::S(shared))
                .update_expression("ADD n :one")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .build()?;
            let result = dynamodb
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(own).build())
                .transact_items(TransactWriteItem::builder().update(count).build())
                .send()
                .await;
            anyhow::Ok(result.map_err(|e| e.into_service_error()))
        }));
    }
    let mut done = 0;
    let mut conflicts = 0;
    for task in running {
        match task.await?? {
            Ok(_) => done += 1,
            Err(TransactWriteItemsError::TransactionCanceledException(e)) => {
                // THEN those that met another one are cancelled with the shared item's reason
                let reasons: Vec<_> =
                    e.cancellation_reasons().iter().map(|r| r.code().unwrap_or_default().to_owned()).collect();
                assert_eq!(reasons, ["None", "TransactionConflict"]);
                conflicts += 1;
            }
            Err(other) => bail!("unexpected answer: {other:?}"),
        }
    }
    assert!(conflicts > 0, "no transaction met another one on the shared item");
    // AND the others took effect, each once
    let n = counter(&stack.dynamodb().await, &table, shared).await?;
    assert_eq!(n.as_deref(), Some(done.to_string().as_str()));
    Ok(())
}

/// Single writes to an item that transactions keep busy: DynamoDB answers
/// `TransactionConflictException`, and the functions' DynamoDB client retries it, so every
/// write takes effect.
#[tokio::test]
async fn the_functions_client_retries_a_write_that_met_a_transaction() -> Result<()> {
    use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
    // GIVEN the functions' endpoint and client (with the SDK's standard retries), and a table
    let stack = Stack::shared().await?;
    let table = table_of_its_own(&stack).await?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(functions_endpoint(&stack)?)
        .region(aws_sdk_sqs::config::Region::new(stack.info.region.clone()))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "local-stack"))
        .load()
        .await;
    let dynamodb = webhooks_aws::conflicts::dynamodb_client(&sdk);
    let shared = unique("busy");
    let add = |dynamodb: aws_sdk_dynamodb::Client, table: String, shared: String| async move {
        dynamodb
            .update_item()
            .table_name(table)
            .key("pk", AttributeValue::S(shared))
            .update_expression("ADD n :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.into_service_error().to_string())
    };

    // WHEN transactions on the item and single writes to it run at once
    let mut writes = Vec::new();
    let mut transactions = Vec::new();
    for _ in 0..16 {
        let (d, t, s) = (dynamodb.clone(), table.clone(), shared.clone());
        transactions.push(tokio::spawn(async move {
            let update = Update::builder()
                .table_name(&t)
                .key("pk", AttributeValue::S(s))
                .update_expression("SET touched = :t")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .build()?;
            let _ = d
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .send()
                .await;
            anyhow::Ok(())
        }));
        writes.push(tokio::spawn(add(dynamodb.clone(), table.clone(), shared.clone())));
    }
    for t in transactions {
        t.await??;
    }
    let mut failed = Vec::new();
    for w in writes {
        if let Err(e) = w.await? {
            failed.push(e);
        }
    }

    // THEN every single write took effect
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(counter(&dynamodb, &table, shared).await?.as_deref(), Some("16"));
    Ok(())
}
