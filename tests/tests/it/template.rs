//! `template.yaml` as AWS will run it: what cfn-lint and `sam validate --lint` (`make lint`)
//! accept but production would not. They miss a misspelt `ReportBatchItemFailures`, a runtime
//! that does not exist, a visibility timeout shorter than its consumer's timeout, a `!Ref` to
//! nothing inside environment variables or policies, and every question of least privilege;
//! moto, which the local stack runs on, enforces no IAM at all. So these are read here.
//!
//! No stack is needed: the template is decoded by the same parser the AWS tooling uses.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use webhooks_tests::{resources_of_type, template, template_env_names};

/// Each function's logical id and the binary it runs.
const FUNCTIONS: &[(&str, &str)] =
    &[("SubscriptionsFunction", "subscriptions"), ("MatcherFunction", "matcher"), ("DeliveryFunction", "delivery")];

/// The pseudo parameters CloudFormation resolves.
const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// SQS keeps a message hidden at most 12 hours, so one retry waits at most that long.
const SQS_MAX_VISIBILITY_SECONDS: i64 = 12 * 3600;
/// AWS's advice for SQS event sources: visibility at least 6 x the function timeout.
const VISIBILITY_PER_TIMEOUT: i64 = 6;
/// A standard queue's limit of in-flight messages.
const SQS_IN_FLIGHT_LIMIT: i64 = 120_000;
/// SQS's largest message (and what the queues must accept: fan-out batches, large events).
const ONE_MIB: i64 = 1_048_576;

/// The environment each function's code reads, and what each variable must refer to (a
/// resource or a parameter). `RUST_LOG` comes from Globals.
const ENVIRONMENT: &[(&str, &[(&str, &str)])] = &[
    (
        "SubscriptionsFunction",
        &[
            ("SUBSCRIPTIONS_TABLE", "SubscriptionsTable"),
            ("HEALTH_TABLE", "HealthTable"),
            ("DELIVERIES_TABLE", "DeliveriesTable"),
            ("INGEST_QUEUE_URL", "IngestQueue"),
            ("DELIVERY_QUEUE_URL", "DeliveryQueue"),
            ("SIGNING_KEY_ID", "SigningKey"),
            ("WEBHOOKS_ADMIN_KEY_SHA256", "AdminKeyHash"),
            ("WEBHOOKS_ALLOW_HTTP", "AllowHttp"),
            ("WEBHOOKS_ALLOWED_TARGETS", "AllowedTargets"),
            ("WEBHOOKS_DELIVERY_TIMEOUT", "DeliveryTimeout"),
            ("WEBHOOKS_MAX_WEBHOOKS_PER_KEY", "MaxWebhooksPerKey"),
            ("WEBHOOKS_PUBLISH_RATE", "PublishRate"),
            ("WEBHOOKS_MAX_ATTEMPTS", "MaxAttempts"),
            ("WEBHOOKS_PARK_TTL", "ParkTtl"),
            ("WEBHOOKS_LOG_TTL", "LogTtl"),
            ("WEBHOOKS_LOG_SUCCESSES", "LogSuccesses"),
        ],
    ),
    (
        "MatcherFunction",
        &[
            ("SUBSCRIPTIONS_TABLE", "SubscriptionsTable"),
            ("EVENTS_TABLE", "EventsTable"),
            ("INGEST_DLQ_URL", "IngestDeadLetterQueue"),
            ("DELIVERY_QUEUE_URL", "DeliveryQueue"),
        ],
    ),
    (
        "DeliveryFunction",
        &[
            ("SUBSCRIPTIONS_TABLE", "SubscriptionsTable"),
            ("HEALTH_TABLE", "HealthTable"),
            ("DELIVERIES_TABLE", "DeliveriesTable"),
            ("DELIVERY_QUEUE_URL", "DeliveryQueue"),
            ("ALERTS_TOPIC_ARN", "AlertsTopic"),
            ("SIGNING_KEY_ID", "SigningKey"),
            ("MAX_RECEIVE_COUNT", "MaxReceiveCount"),
            ("WEBHOOKS_MAX_ATTEMPTS", "MaxAttempts"),
            ("WEBHOOKS_RETRY_SCHEDULE", "RetrySchedule"),
            ("WEBHOOKS_DELIVERY_TIMEOUT", "DeliveryTimeout"),
            ("WEBHOOKS_ALLOW_HTTP", "AllowHttp"),
            ("WEBHOOKS_ALLOWED_TARGETS", "AllowedTargets"),
            ("WEBHOOKS_PARK_LIMIT", "ParkLimit"),
            ("WEBHOOKS_PARK_TTL", "ParkTtl"),
            ("WEBHOOKS_LOG_TTL", "LogTtl"),
            ("WEBHOOKS_LOG_SUCCESSES", "LogSuccesses"),
        ],
    ),
];

const DYNAMODB_READ_WRITE: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:TransactWriteItems",
    "dynamodb:ConditionCheckItem",
];
const LOGS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];
/// What Lambda's SQS event source mapping calls with the function's role.
const SQS_CONSUME: &[&str] = &["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"];

/// What a statement grants: actions, on resources (a logical id or `<table>/index/*`), under a
/// condition (its JSON) or none.
type Rule = (&'static [&'static str], &'static [&'static str], Option<&'static str>);

/// Only the items of webhooks (`WH#…`) of the configuration table: delivery disables webhooks
/// and clears their alerts; it never writes a key.
const WEBHOOK_ITEMS_ONLY: &str = r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["WH#*"]}}"#;
/// Only with a webhook's id as encryption context: the signing key serves webhook secrets alone.
const WEBHOOK_CONTEXT_ONLY: &str = r#"{"StringLike":{"kms:EncryptionContext:webhook_id":"wh_*"}}"#;
/// Only with an idempotency record's key as encryption context: the secret of a kept answer.
const IDEMPOTENCY_CONTEXT_ONLY: &str = r#"{"StringLike":{"kms:EncryptionContext:idempotency_record":"IDEM#*"}}"#;
/// Reads and condition checks (parking re-checks the webhook's state) of delivery.
const DYNAMODB_READ_AND_CHECK: &[&str] = &["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem"];

/// Exactly what each function's role may do. Every call the code makes, on its own resources,
/// and nothing more.
const PERMISSIONS: &[(&str, &[Rule])] = &[
    (
        "SubscriptionsFunction",
        &[
            (LOGS, &["SubscriptionsLogs"], None),
            (
                DYNAMODB_READ_WRITE,
                &[
                    "SubscriptionsTable",
                    "SubscriptionsTable/index/*",
                    "HealthTable",
                    "DeliveriesTable",
                    "DeliveriesTable/index/*",
                ],
                None,
            ),
            (&["sqs:SendMessage"], &["IngestQueue", "DeliveryQueue"], None),
            (&["kms:Encrypt", "kms:Decrypt"], &["SigningKey"], Some(WEBHOOK_CONTEXT_ONLY)),
            (&["kms:Encrypt", "kms:Decrypt"], &["SigningKey"], Some(IDEMPOTENCY_CONTEXT_ONLY)),
        ],
    ),
    (
        "MatcherFunction",
        &[
            (LOGS, &["MatcherLogs"], None),
            (SQS_CONSUME, &["IngestQueue"], None),
            (&["dynamodb:Query", "dynamodb:BatchGetItem"], &["SubscriptionsTable"], None),
            (&["dynamodb:PutItem", "dynamodb:GetItem"], &["EventsTable"], None),
            (&["sqs:SendMessage"], &["IngestDeadLetterQueue", "DeliveryQueue"], None),
        ],
    ),
    (
        "DeliveryFunction",
        &[
            (LOGS, &["DeliveryLogs"], None),
            (SQS_CONSUME, &["DeliveryQueue"], None),
            (&["sqs:SendMessage", "sqs:ChangeMessageVisibility"], &["DeliveryQueue"], None),
            (DYNAMODB_READ_AND_CHECK, &["SubscriptionsTable"], None),
            (&["dynamodb:UpdateItem"], &["SubscriptionsTable"], Some(WEBHOOK_ITEMS_ONLY)),
            // The index: a range replay's page loads kept payloads through gsi1.
            (DYNAMODB_READ_WRITE, &["HealthTable", "DeliveriesTable", "DeliveriesTable/index/*"], None),
            (&["sns:Publish"], &["AlertsTopic"], None),
            (&["kms:Decrypt"], &["SigningKey"], Some(WEBHOOK_CONTEXT_ONLY)),
        ],
    ),
];

/// Properties that would give a resource a fixed physical name.
const PHYSICAL_NAME_PROPERTIES: &[&str] = &[
    "QueueName",
    "TableName",
    "TopicName",
    "FunctionName",
    "RoleName",
    "AlarmName",
    "LogGroupName",
    "KeyAlias",
    "Name",
];

// ---------------------------------------------------------------------------- helpers

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn resource<'a>(template: &'a Value, logical_id: &str) -> Result<&'a Value> {
    let r = &template["Resources"][logical_id];
    if r.is_null() {
        bail!("the template has no resource {logical_id}");
    }
    Ok(r)
}

/// A function property, falling back to Globals.
fn function_property<'a>(template: &'a Value, function: &str, name: &str) -> &'a Value {
    let own = &template["Resources"][function]["Properties"][name];
    if own.is_null() { &template["Globals"]["Function"][name] } else { own }
}

/// A parameter's `Default`, `MinValue` or `MaxValue` as a number.
fn parameter_number(template: &Value, parameter: &str, field: &str) -> Result<i64> {
    int(&template["Parameters"][parameter][field])
        .with_context(|| format!("parameter {parameter} has no numeric {field}"))
}

/// `{"Ref": X}` -> X.
fn ref_target(v: &Value) -> Option<&str> {
    v.get("Ref").and_then(Value::as_str)
}

/// `{"Fn::GetAtt": [X, attribute]}` (or `"X.attribute"`) -> (X, attribute).
fn getatt(v: &Value) -> Option<(String, String)> {
    match v.get("Fn::GetAtt")? {
        Value::Array(parts) => Some((parts.first()?.as_str()?.to_owned(), parts.get(1)?.as_str()?.to_owned())),
        Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
        _ => None,
    }
}

/// The `${...}` variables of a `Fn::Sub` string, without the `${!literal}` escapes.
fn sub_variables(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') {
            found.push(name.to_owned());
        }
        rest = &after[end + 1..];
    }
    found
}

/// The queue (logical id) of an SQS event and the function consuming it, for every SQS event.
fn sqs_events(template: &Value) -> Vec<(String, String, Value)> {
    let mut events = Vec::new();
    for (function, resource) in resources_of_type(template, "AWS::Serverless::Function") {
        if let Some(all) = resource["Properties"]["Events"].as_object() {
            for (name, event) in all.iter().filter(|(_, e)| e["Type"] == "SQS") {
                events.push((function.clone(), name.clone(), event["Properties"].clone()));
            }
        }
    }
    events
}

fn queue_of(event: &Value) -> Result<String> {
    match getatt(&event["Queue"]) {
        Some((queue, attribute)) if attribute == "Arn" => Ok(queue),
        _ => bail!("an SQS event's Queue must be !GetAtt <queue>.Arn, got {}", event["Queue"]),
    }
}

/// An alarm fires on any message in `queue`: visible messages >= 1 (or > 0).
fn alarms_on_any_message(template: &Value, queue: &str) -> Vec<String> {
    resources_of_type(template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, alarm)| {
            let p = &alarm["Properties"];
            let on_queue = p["Dimensions"].as_array().is_some_and(|dims| {
                dims.iter().any(|d| {
                    d["Name"] == "QueueName" && getatt(&d["Value"]) == Some((queue.to_owned(), "QueueName".to_owned()))
                })
            });
            let threshold = p["Threshold"].as_f64().or_else(|| p["Threshold"].as_str().and_then(|s| s.parse().ok()));
            let any = match (p["ComparisonOperator"].as_str(), threshold) {
                (Some("GreaterThanOrEqualToThreshold"), Some(t)) => t <= 1.0,
                (Some("GreaterThanThreshold"), Some(t)) => t < 1.0,
                _ => false,
            };
            p["Namespace"] == "AWS/SQS" && p["MetricName"] == "ApproximateNumberOfMessagesVisible" && on_queue && any
        })
        .map(|(id, _)| id)
        .collect()
}

/// The IAM statements that apply to a function: its role's inline policies (`Role: !GetAtt
/// <role>.Arn`), plus any SAM `Policies` statements.
fn statements_of(template: &Value, function: &str) -> Result<Vec<Value>> {
    let props = &resource(template, function)?["Properties"];
    let mut statements = Vec::new();
    let mut documents = Vec::new();
    if let Some((role, _)) = getatt(&props["Role"]) {
        let role_props = &resource(template, &role)?["Properties"];
        for policy in role_props["Policies"].as_array().into_iter().flatten() {
            documents.push(policy["PolicyDocument"].clone());
        }
    } else if !props["Role"].is_null() {
        bail!("{function}: Role must be !GetAtt <a role of this template>.Arn, got {}", props["Role"]);
    }
    for policy in props["Policies"].as_array().into_iter().flatten() {
        if !policy.is_object() || policy.get("Statement").is_none() {
            bail!("{function}: Policies must be plain statements (no managed policies or templates): {policy}");
        }
        documents.push(policy.clone());
    }
    for document in documents {
        match &document["Statement"] {
            Value::Array(list) => statements.extend(list.iter().cloned()),
            Value::Object(_) => statements.push(document["Statement"].clone()),
            other => bail!("{function}: a policy without statements: {other}"),
        }
    }
    Ok(statements)
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// A policy resource as a name from the allow-list: `!GetAtt X.Arn` -> X, `!Ref Topic` -> Topic
/// (a topic's Ref is its ARN; other Refs are names or URLs, not ARNs),
/// `!Sub "${X.Arn}/index/*"` -> `X/index/*`. Anything else is returned as written.
fn policy_resource(template: &Value, v: &Value) -> String {
    if let Some((id, attribute)) = getatt(v)
        && attribute == "Arn"
    {
        return id;
    }
    if let Some(id) = ref_target(v)
        && template["Resources"][id]["Type"] == "AWS::SNS::Topic"
    {
        return id.to_owned();
    }
    if let Some(text) = v.get("Fn::Sub").and_then(Value::as_str)
        && let Some(rest) = text.strip_prefix("${")
        && let Some((name, suffix)) = rest.split_once('}')
        && let Some(id) = name.strip_suffix(".Arn")
    {
        return format!("{id}{suffix}");
    }
    v.to_string()
}

// ---------------------------------------------------------------------------- functions

#[test]
fn every_function_runs_its_rust_binary_on_arm64_al2023() -> Result<()> {
    // GIVEN the template
    let template = template()?;
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    let ids: BTreeSet<&str> = functions.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, FUNCTIONS.iter().map(|(id, _)| *id).collect(), "the three functions");

    for (function, binary) in FUNCTIONS {
        let r = resource(&template, function)?;
        // THEN each is built by cargo-lambda from the workspace, as its own binary
        assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda", "{function}");
        assert_eq!(r["Metadata"]["BuildProperties"]["Binary"], *binary, "{function}");
        assert_eq!(function_property(&template, function, "CodeUri"), ".", "{function}");
        // AND runs on the OS-only runtime, on Graviton, as the bootstrap executable
        assert_eq!(function_property(&template, function, "Runtime"), "provided.al2023", "{function}");
        assert_eq!(function_property(&template, function, "Architectures"), &json!(["arm64"]), "{function}");
        assert_eq!(function_property(&template, function, "Handler"), "bootstrap", "{function}");
        // AND memory and timeout are chosen, not Lambda's defaults (128 MB, 3 s)
        let memory = int(function_property(&template, function, "MemorySize")).context("MemorySize")?;
        let timeout = int(function_property(&template, function, "Timeout")).context("Timeout")?;
        assert!(memory >= 256, "{function}: {memory} MB");
        assert!((10..=900).contains(&timeout), "{function}: {timeout} s");
        // AND concurrency is bounded by the event source mappings, not reserved
        assert!(r["Properties"]["ReservedConcurrentExecutions"].is_null(), "{function}");
    }
    // The API must answer within API Gateway's 30 s integration limit.
    let api_timeout = int(function_property(&template, "SubscriptionsFunction", "Timeout")).unwrap_or_default();
    assert!(api_timeout < 30, "SubscriptionsFunction times out after API Gateway gave up");
    // TLS handshakes to many hosts are CPU-bound, and CPU comes with memory.
    let delivery_memory = int(function_property(&template, "DeliveryFunction", "MemorySize")).unwrap_or_default();
    assert!(delivery_memory >= 512, "DeliveryFunction: {delivery_memory} MB");
    Ok(())
}

#[test]
fn each_function_gets_exactly_the_environment_its_code_reads() -> Result<()> {
    let template = template()?;
    assert_eq!(template["Globals"]["Function"]["Environment"]["Variables"]["RUST_LOG"], "info");

    for (function, variables) in ENVIRONMENT {
        // THEN the names are exactly the expected ones (Globals' RUST_LOG included)
        let expected: BTreeSet<String> =
            variables.iter().map(|(name, _)| (*name).to_owned()).chain(["RUST_LOG".to_owned()]).collect();
        assert_eq!(template_env_names(&template, function), expected, "{function}");

        // AND each refers to the right resource or parameter, by a Ref that resolves
        let env = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
        for (name, target) in *variables {
            let value = &env[*name];
            assert_eq!(ref_target(value), Some(*target), "{function}.{name} = {value}");
            let kind = template["Resources"][*target]["Type"].as_str().unwrap_or("parameter");
            let expected_kind = match *name {
                n if n.ends_with("_TABLE") => "AWS::DynamoDB::Table",
                n if n.ends_with("_QUEUE_URL") || n.ends_with("_DLQ_URL") => "AWS::SQS::Queue",
                "SIGNING_KEY_ID" => "AWS::KMS::Key",
                "ALERTS_TOPIC_ARN" => "AWS::SNS::Topic",
                _ => "parameter",
            };
            assert_eq!(kind, expected_kind, "{function}.{name} refers to {target}");
            if kind == "parameter" {
                assert!(template["Parameters"][*target].is_object(), "{function}.{name}: no parameter {target}");
            }
        }
    }
    Ok(())
}

#[test]
fn every_reference_resolves_to_a_parameter_a_resource_or_a_pseudo_parameter() -> Result<()> {
    let template = template()?;
    let parameters: BTreeSet<String> =
        template["Parameters"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    let resources: BTreeMap<String, String> = template["Resources"]
        .as_object()
        .map(|r| r.iter().map(|(k, v)| (k.clone(), v["Type"].as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default();
    let conditions: BTreeSet<String> =
        template["Conditions"].as_object().map(|c| c.keys().cloned().collect()).unwrap_or_default();
    // The attributes we read, per type: a typo or an attribute the type lacks fails here.
    let attributes: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("AWS::SQS::Queue", &["Arn", "QueueName", "QueueUrl"][..]),
        ("AWS::DynamoDB::Table", &["Arn", "StreamArn"][..]),
        ("AWS::KMS::Key", &["Arn", "KeyId"][..]),
        ("AWS::SNS::Topic", &["TopicArn", "TopicName"][..]),
        ("AWS::IAM::Role", &["Arn", "RoleId"][..]),
        ("AWS::Events::Rule", &["Arn"][..]),
        ("AWS::Logs::LogGroup", &["Arn"][..]),
        ("AWS::Serverless::Function", &["Arn"][..]),
        ("AWS::Serverless::HttpApi", &["ApiEndpoint"][..]),
    ]);

    let mut problems = Vec::new();
    let check_name = |name: &str, at: &str, problems: &mut Vec<String>| {
        if !(parameters.contains(name) || resources.contains_key(name) || PSEUDO_PARAMETERS.contains(&name)) {
            problems.push(format!("{at}: {name} is no parameter, resource or pseudo parameter"));
        }
    };
    let check_attribute = |id: &str, attribute: &str, at: &str, problems: &mut Vec<String>| match resources.get(id) {
        None => problems.push(format!("{at}: GetAtt of {id}, which is no resource")),
        Some(kind) => match attributes.get(kind.as_str()) {
            Some(known) if known.contains(&attribute) => {}
            Some(_) => problems.push(format!("{at}: {kind} {id} has no attribute {attribute}")),
            None => problems.push(format!("{at}: GetAtt of a {kind}: add its attributes to this test")),
        },
    };

    fn walk(v: &Value, at: &str, visit: &mut dyn FnMut(&str, &Value, &str)) {
        match v {
            Value::Object(map) => {
                for (key, child) in map {
                    visit(key, child, at);
                    walk(child, &format!("{at}.{key}"), visit);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}[{i}]"), visit);
                }
            }
            _ => {}
        }
    }

    for section in ["Resources", "Outputs", "Conditions", "Rules"] {
        walk(&template[section], section, &mut |key, arg, at| match key {
            "Ref" => {
                if let Some(name) = arg.as_str() {
                    check_name(name, at, &mut problems);
                }
            }
            "Fn::GetAtt" => match getatt(&json!({"Fn::GetAtt": arg})) {
                Some((id, attribute)) => check_attribute(&id, &attribute, at, &mut problems),
                None => problems.push(format!("{at}: malformed GetAtt {arg}")),
            },
            "Fn::Sub" => {
                let (text, local) = match arg {
                    Value::String(text) => (text.as_str(), None),
                    Value::Array(parts) => (parts.first().and_then(Value::as_str).unwrap_or_default(), parts.get(1)),
                    _ => ("", None),
                };
                for variable in sub_variables(text) {
                    if local.is_some_and(|l| l.get(&variable).is_some()) {
                        continue;
                    }
                    match variable.split_once('.') {
                        Some((id, attribute)) if !variable.starts_with("AWS::") => {
                            check_attribute(id, attribute, at, &mut problems)
                        }
                        _ => check_name(&variable, at, &mut problems),
                    }
                }
            }
            "Condition" | "Fn::If" => {
                let name = if key == "Condition" { arg.as_str() } else { arg.get(0).and_then(Value::as_str) };
                if let Some(name) = name
                    && !conditions.contains(name)
                {
                    problems.push(format!("{at}: no condition {name}"));
                }
            }
            _ => {}
        });
    }
    assert!(problems.is_empty(), "unresolvable references:\n{}", problems.join("\n"));
    Ok(())
}

// ---------------------------------------------------------------------------- queues

#[test]
fn every_sqs_event_reports_batch_item_failures_and_is_bounded_by_max_concurrency() -> Result<()> {
    let template = template()?;
    let events = sqs_events(&template);
    let consumers: BTreeSet<&str> = events.iter().map(|(f, _, _)| f.as_str()).collect();
    assert_eq!(consumers, BTreeSet::from(["MatcherFunction", "DeliveryFunction"]));

    for (function, name, event) in &events {
        let at = format!("{function}.{name}");
        assert_eq!(event["FunctionResponseTypes"], json!(["ReportBatchItemFailures"]), "{at}");
        let batch = int(&event["BatchSize"]).with_context(|| format!("{at}: BatchSize"))?;
        assert!((1..=10).contains(&batch), "{at}: BatchSize {batch} (without a batching window: 1..=10)");
        assert_eq!(int(&event["MaximumBatchingWindowInSeconds"]), Some(0), "{at}: events wait for no batch");
        assert_eq!(event["ScalingConfig"]["MaximumConcurrency"], json!({"Ref": "MaxConcurrency"}), "{at}");
        let queue = queue_of(event)?;
        assert_eq!(template["Resources"][&queue]["Type"], "AWS::SQS::Queue", "{at}: {queue}");
    }
    let min = parameter_number(&template, "MaxConcurrency", "MinValue")?;
    let max = parameter_number(&template, "MaxConcurrency", "MaxValue")?;
    assert!(min >= 2 && max <= 1000, "Lambda accepts MaximumConcurrency 2..=1000, the parameter allows {min}..={max}");
    Ok(())
}

#[test]
fn queue_visibility_is_at_least_six_times_the_consuming_function_timeout() -> Result<()> {
    let template = template()?;
    for (function, name, event) in sqs_events(&template) {
        // GIVEN a queue and the function consuming it
        let queue = queue_of(&event)?;
        let timeout = int(function_property(&template, &function, "Timeout")).unwrap_or(3);
        let visibility = int(&template["Resources"][&queue]["Properties"]["VisibilityTimeout"]).unwrap_or(30);
        // THEN a batch still running is never handed to a second poller
        assert!(
            visibility >= VISIBILITY_PER_TIMEOUT * timeout,
            "{queue}: visibility {visibility} s < {VISIBILITY_PER_TIMEOUT} x {function}.Timeout {timeout} s ({name})"
        );
    }
    Ok(())
}

#[test]
fn every_work_queue_has_a_dead_letter_queue_that_outlives_it_and_an_alarm_on_it() -> Result<()> {
    let template = template()?;
    // Receives that made no attempt (throttles, crashes before sending) must never push a
    // delivery to its DLQ: there is room for them above the largest number of attempts.
    let receives = parameter_number(&template, "MaxReceiveCount", "MinValue")?;
    let attempts = parameter_number(&template, "MaxAttempts", "MaxValue")?;
    assert!(receives > attempts, "MaxReceiveCount >= {receives} leaves no room above MaxAttempts <= {attempts}");

    for (function, _, event) in sqs_events(&template) {
        let queue = queue_of(&event)?;
        let props = &template["Resources"][&queue]["Properties"];
        let redrive = &props["RedrivePolicy"];
        let dlq = match getatt(&redrive["deadLetterTargetArn"]) {
            Some((dlq, attribute)) if attribute == "Arn" => dlq,
            _ => bail!("{queue} (consumed by {function}) has no dead-letter queue"),
        };
        assert_eq!(redrive["maxReceiveCount"], json!({"Ref": "MaxReceiveCount"}), "{queue}");
        assert_eq!(template["Resources"][&dlq]["Type"], "AWS::SQS::Queue", "{queue} -> {dlq}");
        // A standard queue's message keeps its enqueue time when moved: the DLQ must keep
        // messages longer than the work queue, or they expire on arrival.
        let retention = int(&props["MessageRetentionPeriod"]).unwrap_or(345_600);
        let dlq_retention =
            int(&template["Resources"][&dlq]["Properties"]["MessageRetentionPeriod"]).unwrap_or(345_600);
        assert!(dlq_retention > retention, "{dlq} keeps {dlq_retention} s, {queue} {retention} s");
        // AND any message in the DLQ raises an alarm that reaches the alerts topic
        let alarms = alarms_on_any_message(&template, &dlq);
        assert!(!alarms.is_empty(), "no alarm on any message in {dlq}");
        for alarm in alarms {
            assert_eq!(
                template["Resources"][&alarm]["Properties"]["AlarmActions"],
                json!([{"Ref": "AlertsTopic"}]),
                "{alarm}"
            );
        }
    }
    Ok(())
}

#[test]
fn queues_are_encrypted_take_1_mib_and_keep_messages_past_the_retry_window() -> Result<()> {
    let template = template()?;
    for (queue, r) in resources_of_type(&template, "AWS::SQS::Queue") {
        let p = &r["Properties"];
        assert!(p["SqsManagedSseEnabled"] == true || !p["KmsMasterKeyId"].is_null(), "{queue}: not encrypted");
        assert_eq!(int(&p["MaximumMessageSize"]), Some(ONE_MIB), "{queue}: MaximumMessageSize set explicitly");
    }
    let receives = parameter_number(&template, "MaxReceiveCount", "MaxValue")?;
    let attempts = parameter_number(&template, "MaxAttempts", "MaxValue")?;
    for (function, _, event) in sqs_events(&template) {
        let queue = queue_of(&event)?;
        let p = &template["Resources"][&queue]["Properties"];
        let retention = int(&p["MessageRetentionPeriod"]).unwrap_or(345_600);
        // Retried receive by receive: every receive may wait a whole visibility timeout.
        let visibility = int(&p["VisibilityTimeout"]).unwrap_or(30);
        assert!(retention > receives * visibility, "{queue}: {retention} s <= {receives} receives x {visibility} s");
        // Deliveries wait up to 12 h (the SQS visibility maximum) before each later attempt.
        if function == "DeliveryFunction" {
            let window = (attempts - 1) * SQS_MAX_VISIBILITY_SECONDS;
            assert!(retention > window, "{queue}: {retention} s <= the {window} s retry window of {attempts} attempts");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------- least privilege

#[test]
fn each_role_allows_exactly_the_calls_its_function_makes_on_its_own_resources() -> Result<()> {
    let template = template()?;
    for (function, rules) in PERMISSIONS {
        // GIVEN what the function's code calls
        let expected: BTreeSet<(String, String, String)> = rules
            .iter()
            .flat_map(|(actions, resources, condition)| {
                let condition =
                    condition.map(|c| serde_json::from_str::<Value>(c).map(|v| v.to_string()).unwrap_or_default());
                actions.iter().flat_map(move |a| {
                    let condition = condition.clone().unwrap_or_default();
                    resources.iter().map(move |r| ((*a).to_owned(), (*r).to_owned(), condition.clone()))
                })
            })
            .collect();

        // WHEN we read every statement its role carries
        let mut granted = BTreeSet::new();
        for statement in statements_of(&template, function)? {
            assert_eq!(statement["Effect"], "Allow", "{function}: {statement}");
            for forbidden in ["NotAction", "NotResource", "Principal"] {
                assert!(statement.get(forbidden).is_none(), "{function}: {forbidden} in {statement}");
            }
            let condition = statement.get("Condition").map(Value::to_string).unwrap_or_default();
            for action in as_list(&statement["Action"]) {
                let action = action.as_str().with_context(|| format!("{function}: action {action}"))?.to_owned();
                for resource in as_list(&statement["Resource"]) {
                    granted.insert((action.clone(), policy_resource(&template, &resource), condition.clone()));
                }
            }
        }

        // THEN it may do exactly that: nothing more, and nothing it needs is missing
        let extra: Vec<_> = granted.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&granted).collect();
        assert!(extra.is_empty(), "{function} may do more than its code does: {extra:?}");
        assert!(missing.is_empty(), "{function} lacks permissions its code needs: {missing:?}");
    }
    Ok(())
}

#[test]
fn roles_carry_no_managed_policy_except_vpc_networking_when_in_a_vpc() -> Result<()> {
    let template = template()?;
    for (function, _) in FUNCTIONS {
        let props = &resource(&template, function)?["Properties"];
        let (role, _) = getatt(&props["Role"]).with_context(|| format!("{function}: Role is written out"))?;
        let role_props = &resource(&template, &role)?["Properties"];
        assert_eq!(
            role_props["AssumeRolePolicyDocument"]["Statement"],
            json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]),
            "{role}"
        );
        let managed = &role_props["ManagedPolicyArns"];
        if *function == "DeliveryFunction" {
            let eni = json!({"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"});
            assert_eq!(managed, &json!({"Fn::If": ["DeliveryInVpc", [eni], {"Ref": "AWS::NoValue"}]}), "{role}");
        } else {
            assert!(managed.is_null(), "{role}: {managed}");
        }
    }
    Ok(())
}

#[test]
fn the_signing_key_rotates_and_is_administered_by_the_account_only() -> Result<()> {
    let template = template()?;
    let key = resource(&template, "SigningKey")?;
    let p = &key["Properties"];
    assert_eq!(key["Type"], "AWS::KMS::Key");
    assert_eq!(p["EnableKeyRotation"], true);
    assert!(p["KeySpec"].is_null() || p["KeySpec"] == "SYMMETRIC_DEFAULT");
    assert_eq!(key["DeletionPolicy"], "Retain", "losing the key loses every signing secret");
    let statements = as_list(&p["KeyPolicy"]["Statement"]);
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(
        statements[0]["Principal"],
        json!({"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}),
        "usage is granted through the roles' policies only"
    );
    Ok(())
}

// ---------------------------------------------------------------------------- the rest

#[test]
fn no_resource_has_a_physical_name() -> Result<()> {
    let template = template()?;
    let resources = template["Resources"].as_object().context("no Resources")?;
    for (id, r) in resources {
        for property in PHYSICAL_NAME_PROPERTIES {
            assert!(r["Properties"].get(*property).is_none(), "{id} sets {property}: let CloudFormation name it");
        }
    }
    Ok(())
}

#[test]
fn tables_are_on_demand_encrypted_and_recoverable() -> Result<()> {
    let template = template()?;
    let tables = resources_of_type(&template, "AWS::DynamoDB::Table");
    let ids: BTreeSet<&str> = tables.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["SubscriptionsTable", "HealthTable", "EventsTable", "DeliveriesTable"]));
    for (table, r) in &tables {
        let p = &r["Properties"];
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{table}");
        assert_eq!(p["SSESpecification"]["SSEEnabled"], true, "{table}");
        assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true, "{table}");
    }
    for table in ["SubscriptionsTable", "HealthTable", "EventsTable", "DeliveriesTable"] {
        let ttl = &template["Resources"][table]["Properties"]["TimeToLiveSpecification"];
        assert_eq!(ttl, &json!({"AttributeName": "expires_at", "Enabled": true}), "{table}");
    }
    // Parked deliveries and kept payloads are read through DeliveriesTable's gsi1.
    let deliveries = &template["Resources"]["DeliveriesTable"]["Properties"];
    let gsi1 = deliveries["GlobalSecondaryIndexes"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["IndexName"] == "gsi1"))
        .context("DeliveriesTable has no gsi1")?;
    assert_eq!(
        gsi1["KeySchema"],
        json!([{"AttributeName": "gsi1pk", "KeyType": "HASH"}, {"AttributeName": "gsi1sk", "KeyType": "RANGE"}])
    );
    assert_eq!(gsi1["Projection"], json!({"ProjectionType": "ALL"}));
    let attributes = deliveries["AttributeDefinitions"].as_array().context("AttributeDefinitions")?;
    for key in ["gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"] {
        assert!(attributes.contains(&json!({"AttributeName": key, "AttributeType": "S"})), "{key}");
    }
    // The log by event type goes through gsi2, which keeps no payloads (up to 256 KiB each).
    let gsi2 = deliveries["GlobalSecondaryIndexes"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["IndexName"] == "gsi2"))
        .context("DeliveriesTable has no gsi2")?;
    assert_eq!(gsi2["Projection"]["ProjectionType"], "INCLUDE");
    let kept = gsi2["Projection"]["NonKeyAttributes"].as_array().context("NonKeyAttributes")?;
    assert!(!kept.contains(&json!("event")), "gsi2 must not keep payloads");
    assert!(kept.contains(&json!("expires_at")), "log pages filter on expiry");
    Ok(())
}

#[test]
fn the_http_api_is_throttled_and_routes_only_the_api_the_web_app_and_health() -> Result<()> {
    let template = template()?;
    let api = resource(&template, "HttpApi")?;
    let settings = &api["Properties"]["DefaultRouteSettings"];
    assert!(int(&settings["ThrottlingRateLimit"]).is_some_and(|r| r > 0), "{settings}");
    assert!(int(&settings["ThrottlingBurstLimit"]).is_some_and(|b| b > 0), "{settings}");

    let events =
        template["Resources"]["SubscriptionsFunction"]["Properties"]["Events"].as_object().context("Events")?;
    let routes: BTreeSet<(String, String)> = events
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .inspect(|e| assert_eq!(e["Properties"]["ApiId"], json!({"Ref": "HttpApi"})))
        .map(|e| {
            (
                e["Properties"]["Method"].as_str().unwrap_or_default().to_uppercase(),
                e["Properties"]["Path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = BTreeSet::from([
        ("GET".to_owned(), "/".to_owned()),
        ("ANY".to_owned(), "/health".to_owned()),
        ("ANY".to_owned(), "/v1/{proxy+}".to_owned()),
    ]);
    assert_eq!(routes, expected);
    Ok(())
}

#[test]
fn eventbridge_events_on_the_configured_bus_reach_the_ingest_queue() -> Result<()> {
    let template = template()?;
    let rule = &resource(&template, "IngestRule")?["Properties"];
    assert_eq!(rule["EventBusName"], json!({"Ref": "EventBusName"}));
    assert!(rule["EventPattern"].is_object(), "a pattern, not every event of the bus");
    let targets = as_list(&rule["Targets"]);
    assert!(targets.iter().any(|t| getatt(&t["Arn"]) == Some(("IngestQueue".into(), "Arn".into()))), "{targets:?}");

    // The queue admits EventBridge, for this rule only.
    let policy = &resource(&template, "IngestQueuePolicy")?["Properties"];
    assert!(as_list(&policy["Queues"]).contains(&json!({"Ref": "IngestQueue"})));
    let statement = as_list(&policy["PolicyDocument"]["Statement"])
        .into_iter()
        .find(|s| s["Principal"] == json!({"Service": "events.amazonaws.com"}))
        .context("no statement for events.amazonaws.com")?;
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(as_list(&statement["Action"]), vec![json!("sqs:SendMessage")]);
    assert!(as_list(&statement["Resource"]).contains(&json!({"Fn::GetAtt": ["IngestQueue", "Arn"]})));
    assert_eq!(statement["Condition"], json!({"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["IngestRule", "Arn"]}}}));
    // Whatever the rule targets, the policy admits it there too (e.g. its own DLQ).
    for target in &targets {
        for arn in [&target["Arn"], &target["DeadLetterConfig"]["Arn"]].into_iter().filter(|a| !a.is_null()) {
            assert!(as_list(&statement["Resource"]).contains(arn), "the queue policy does not cover {arn}");
        }
    }
    Ok(())
}

#[test]
fn alarms_cover_errors_throttles_and_in_flight_messages_and_reach_the_alerts_topic() -> Result<()> {
    let template = template()?;
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    for (alarm, r) in &alarms {
        assert_eq!(r["Properties"]["AlarmActions"], json!([{"Ref": "AlertsTopic"}]), "{alarm}");
        assert_eq!(r["Properties"]["TreatMissingData"], "notBreaching", "{alarm}: quiet when idle");
    }
    // Every metric an alarm watches, as (namespace, metric, dimension value), with its threshold.
    let mut watched: Vec<(String, String, Value, Option<f64>)> = Vec::new();
    for (_, r) in &alarms {
        let p = &r["Properties"];
        let threshold = p["Threshold"].as_f64();
        let dimension = |dims: &Value| dims.get(0).map(|d| d["Value"].clone()).unwrap_or(Value::Null);
        if p["MetricName"].is_string() {
            watched.push((
                p["Namespace"].as_str().unwrap_or_default().into(),
                p["MetricName"].as_str().unwrap_or_default().into(),
                dimension(&p["Dimensions"]),
                threshold,
            ));
        }
        for m in p["Metrics"].as_array().into_iter().flatten() {
            let metric = &m["MetricStat"]["Metric"];
            if metric.is_object() {
                watched.push((
                    metric["Namespace"].as_str().unwrap_or_default().into(),
                    metric["MetricName"].as_str().unwrap_or_default().into(),
                    dimension(&metric["Dimensions"]),
                    threshold,
                ));
            }
        }
    }
    let watches = |namespace: &str, metric: &str, dimension: &Value| {
        watched
            .iter()
            .filter(|(n, m, d, _)| n == namespace && m == metric && d == dimension)
            .map(|w| w.3)
            .collect::<Vec<_>>()
    };

    assert!(!watches("AWS/Lambda", "Errors", &json!({"Ref": "DeliveryFunction"})).is_empty(), "delivery errors");
    for (function, _) in FUNCTIONS {
        assert!(!watches("AWS/Lambda", "Throttles", &json!({"Ref": function})).is_empty(), "{function} throttles");
    }
    let in_flight = watches(
        "AWS/SQS",
        "ApproximateNumberOfMessagesNotVisible",
        &json!({"Fn::GetAtt": ["DeliveryQueue", "QueueName"]}),
    );
    assert!(
        in_flight.iter().any(|t| t.is_some_and(|t| t < SQS_IN_FLIGHT_LIMIT as f64)),
        "an alarm before the delivery queue reaches the {SQS_IN_FLIGHT_LIMIT} in-flight limit: {in_flight:?}"
    );
    Ok(())
}

#[test]
fn optional_settings_are_parameters_and_conditions() -> Result<()> {
    let template = template()?;
    let parameters = &template["Parameters"];
    for (name, kind, default) in [
        ("ParkLimit", "Number", "10000"),
        ("ParkTtl", "String", "7d"),
        ("LogTtl", "String", "3d"),
        ("LogSuccesses", "String", "true"),
        ("AlertEmail", "String", ""),
        ("EventBusName", "String", "default"),
        ("SubnetIds", "CommaDelimitedList", ""),
        ("SecurityGroupIds", "CommaDelimitedList", ""),
    ] {
        assert_eq!(parameters[name]["Type"], kind, "{name}");
        let actual = &parameters[name]["Default"];
        let text = actual.as_str().map(str::to_owned).unwrap_or_else(|| actual.to_string());
        assert_eq!(text, default, "{name}: default");
    }
    assert_eq!(parameters["AdminKeyHash"]["NoEcho"], true);

    // An e-mail subscription only when an address is given.
    let subscription = resource(&template, "AlertsEmailSubscription")?;
    assert_eq!(subscription["Condition"], "HasAlertEmail");
    assert_eq!(subscription["Properties"]["Endpoint"], json!({"Ref": "AlertEmail"}));
    // A VPC only when subnets are given.
    let vpc = &resource(&template, "DeliveryFunction")?["Properties"]["VpcConfig"];
    let branches = vpc["Fn::If"].as_array().context("DeliveryFunction.VpcConfig is conditional")?;
    assert_eq!(branches.first(), Some(&json!("DeliveryInVpc")));
    assert_eq!(
        branches.get(1),
        Some(&json!({"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}}))
    );
    assert_eq!(branches.get(2), Some(&json!({"Ref": "AWS::NoValue"})));
    for function in ["SubscriptionsFunction", "MatcherFunction"] {
        assert!(
            template["Resources"][function]["Properties"]["VpcConfig"].is_null(),
            "{function}: only delivery goes out"
        );
    }

    for output in ["ApiUrl", "WebAppUrl", "IngestQueueUrl", "IngestQueueArn", "AlertsTopicArn"] {
        assert!(template["Outputs"][output]["Value"].is_object(), "output {output}");
    }
    Ok(())
}
