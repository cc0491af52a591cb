"""The local stack: the whole service on one machine, without Docker or an AWS account.

`template.yaml` stays the single source of truth. This package reads it and

* starts the AWS emulator (moto server) on loopback and creates the template's plain
  resources (queues, tables, topic, key) through the emulator's own CloudFormation, so that
  `!Ref`, `!GetAtt` and `!Sub` are resolved by a CloudFormation implementation rather than by
  us (`template.py`, `emulator.py`);
* runs every `AWS::Serverless::Function` as its real binary, several processes per function,
  each against its own Lambda Runtime API server, restarting processes that exit and killing
  the ones that overrun the function's timeout (`lambda_runtime.py`, `processes.py`);
* stands in for what SAM would wire up around them: an API Gateway HTTP API (payload format
  2.0) in front of the functions with `HttpApi` events (`http_api.py`) and SQS event source
  mappings with partial batch responses for the functions with `SQS` events
  (`sqs_source.py`);
* exposes a small control server (status and the Lambda Invoke API) for tests
  (`control.py`), and writes `<state-dir>/stack.json` describing all of it (`runner.py`).

Run it from the repository root as `PYTHONPATH=infra .venv/bin/python -m local_stack`.
"""
