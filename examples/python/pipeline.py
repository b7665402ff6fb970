#!/usr/bin/env python3
"""A pipeline in Python that hands videos to grok-video-worker through Temporal.

It uses only the official Temporal Python SDK (``temporalio``), ``protobuf`` and, for the
classes generated from ``proto/grokvideo/v1/video.proto``, ``grpcio-tools``. Each step
starts a workflow on the worker's task queue, waits for its result and prints one JSON line:

  archive_dict          ArchiveVideo, input a plain dict            -> json/plain payload
  archive_json_proto    ArchiveVideo, input an ArchiveVideoRequest  -> json/protobuf payload
  archive_binary_proto  ArchiveVideo, same message, a client whose
                        converter prefers binary protobuf           -> binary/protobuf payload
  generate_dict         GenerateVideo, input a plain dict           -> json/plain payload

The worker answers with json/plain (proto field names, the status enum as its name, 64-bit
integers as numbers), which the SDK hands back as a dict; each step also decodes that dict
into the generated ``ArchivedVideo`` class with ``json_format.ParseDict``.

Exit status: 0 when every step succeeded, 1 when one failed (its line has ``"ok": false``
and ``error.type``, the Temporal ApplicationError type such as ``VideoGenerationFailed``),
2 for bad usage. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.converter import (
    BinaryNullPayloadConverter,
    BinaryPlainPayloadConverter,
    BinaryProtoPayloadConverter,
    CompositePayloadConverter,
    DataConverter,
    JSONPlainPayloadConverter,
    JSONProtoPayloadConverter,
)
from temporalio.envconfig import ClientConfig
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_TASK_QUEUE = "grok-video"
PROTO_FILE = "grokvideo/v1/video.proto"
REPO_PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"


class BinaryProtoFirstPayloadConverter(CompositePayloadConverter):
    """The SDK's default converters with binary/protobuf tried before json/protobuf.

    A CompositePayloadConverter encodes a value with the first converter that accepts it;
    the default order puts JSONProtoPayloadConverter first, so protobuf messages travel as
    json/protobuf. Decoding picks the converter by the payload's encoding, so this client
    still reads json/plain results.
    """

    def __init__(self) -> None:
        super().__init__(
            BinaryNullPayloadConverter(),
            BinaryPlainPayloadConverter(),
            BinaryProtoPayloadConverter(),
            JSONProtoPayloadConverter(),
            JSONPlainPayloadConverter(),
        )


BINARY_PROTO_DATA_CONVERTER = DataConverter(
    payload_converter_class=BinaryProtoFirstPayloadConverter
)


class StepFailed(Exception):
    """A step's failure, already described as {type, message}."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error['type']}: {error['message']}")
        self.error = error


def env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    conn = p.add_argument_group("Temporal")
    conn.add_argument(
        "--address",
        default=env("TEMPORAL_ADDRESS") or None,
        help="Temporal frontend host:port (env TEMPORAL_ADDRESS; unset: Temporal's envconfig, "
        f"then {DEFAULT_ADDRESS})",
    )
    conn.add_argument(
        "--namespace",
        default=env("TEMPORAL_NAMESPACE") or None,
        help="namespace (env TEMPORAL_NAMESPACE; unset: envconfig, then default)",
    )
    conn.add_argument(
        "--task-queue",
        default=env("GROK_TASK_QUEUE") or DEFAULT_TASK_QUEUE,
        help="the worker's task queue (env GROK_TASK_QUEUE)",
    )

    steps = p.add_argument_group("steps (each runs when its option is set)")
    steps.add_argument(
        "--task-id",
        default=env("PIPELINE_TASK_ID"),
        help="archive_dict: ArchiveVideo for this provider task, input a dict "
        "(env PIPELINE_TASK_ID)",
    )
    steps.add_argument(
        "--json-proto-task-id",
        default=env("PIPELINE_JSON_PROTO_TASK_ID"),
        help="archive_json_proto: ArchiveVideo, input an ArchiveVideoRequest message as "
        "json/protobuf (env PIPELINE_JSON_PROTO_TASK_ID)",
    )
    steps.add_argument(
        "--binary-proto-task-id",
        default=env("PIPELINE_BINARY_PROTO_TASK_ID"),
        help="archive_binary_proto: ArchiveVideo, input an ArchiveVideoRequest message as "
        "binary/protobuf (env PIPELINE_BINARY_PROTO_TASK_ID)",
    )
    steps.add_argument(
        "--generate-prompt",
        default=env("PIPELINE_GENERATE_PROMPT"),
        help="generate_dict: GenerateVideo with this prompt, input a dict "
        "(env PIPELINE_GENERATE_PROMPT). Billed by the provider.",
    )

    gen = p.add_argument_group("GenerateVideo")
    gen.add_argument("--model", default=env("PIPELINE_GENERATE_MODEL") or "grok_video3",
                     help="env PIPELINE_GENERATE_MODEL")
    gen.add_argument("--duration-seconds", type=int,
                     default=env_int("PIPELINE_GENERATE_DURATION_SECONDS") or 6,
                     help="env PIPELINE_GENERATE_DURATION_SECONDS")
    gen.add_argument("--resolution", default=env("PIPELINE_GENERATE_RESOLUTION") or None,
                     help="480p or 720p (env PIPELINE_GENERATE_RESOLUTION; unset: the "
                     "provider's default)")
    gen.add_argument(
        "--generate-workflow-id",
        default=env("PIPELINE_GENERATE_WORKFLOW_ID"),
        help="workflow id of the order (env PIPELINE_GENERATE_WORKFLOW_ID; unset: "
        "generate-<random uuid>). Run again with the same id, the pipeline reads the "
        "first order's outcome instead of ordering twice.",
    )

    dest = p.add_argument_group("destination and polling (all steps)")
    dest.add_argument("--bucket", default=env("GROK_S3_BUCKET") or None,
                      help="destination bucket (env GROK_S3_BUCKET; unset: the worker's default)")
    dest.add_argument("--first-poll-delay-seconds", type=int,
                      default=env_int("PIPELINE_FIRST_POLL_DELAY_SECONDS"),
                      help="env PIPELINE_FIRST_POLL_DELAY_SECONDS; unset: the worker's "
                      "model-based default")
    dest.add_argument("--poll-interval-seconds", type=int,
                      default=env_int("PIPELINE_POLL_INTERVAL_SECONDS"),
                      help="env PIPELINE_POLL_INTERVAL_SECONDS; unset: 30")
    dest.add_argument("--deadline-seconds", type=int,
                      default=env_int("PIPELINE_DEADLINE_SECONDS"),
                      help="env PIPELINE_DEADLINE_SECONDS; unset: from the model's estimate")

    run = p.add_argument_group("run")
    run.add_argument("--result-timeout-seconds", type=float,
                     default=float(env("PIPELINE_RESULT_TIMEOUT_SECONDS") or 1800),
                     help="give up waiting for one workflow's result after this long (the "
                     "workflow keeps running) (env PIPELINE_RESULT_TIMEOUT_SECONDS)")
    run.add_argument("--show-payloads", action="store_true",
                     default=env("PIPELINE_SHOW_PAYLOADS", "") not in ("", "0", "false"),
                     help="add to each line the input and result payloads as the Temporal "
                     "server stored them (from the workflow history)")
    run.add_argument("--fail-fast", action="store_true",
                     help="stop at the first failed step (default: run all, exit 1 at the end)")
    run.add_argument("--concurrent", action="store_true",
                     default=env("PIPELINE_CONCURRENT", "") not in ("", "0", "false"),
                     help="run the steps at the same time, printing each line as its result "
                     "arrives (env PIPELINE_CONCURRENT; --fail-fast does not apply)")
    run.add_argument("--proto-dir", type=Path,
                     default=Path(env("PIPELINE_PROTO_DIR") or REPO_PROTO_DIR),
                     help="include dir holding grokvideo/v1/video.proto (env PIPELINE_PROTO_DIR)")
    run.add_argument("--proto-out", type=Path, default=env("PIPELINE_PROTO_OUT") or None,
                     help="where to generate the Python classes (env PIPELINE_PROTO_OUT; "
                     "unset: a temporary directory removed at exit)")
    args = p.parse_args(argv)
    if not (args.task_id or args.json_proto_task_id or args.binary_proto_task_id
            or args.generate_prompt):
        p.error("nothing to do: give --task-id, --json-proto-task-id, --binary-proto-task-id "
                "and/or --generate-prompt")
    return args


def generate_proto_module(proto_dir: Path, out_dir: Path) -> ModuleType:
    """Runs protoc (from grpcio-tools) on video.proto and imports the generated module."""
    source = proto_dir / PROTO_FILE
    if not source.is_file():
        raise StepFailed({"type": "ProtoNotFound", "message": f"{source} does not exist"})
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}",
           f"--python_out={out_dir}", str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise StepFailed({"type": "ProtocFailed",
                          "message": f"{' '.join(cmd)}: {done.stderr.strip()}"})
    sys.path.insert(0, str(out_dir))
    importlib.invalidate_caches()
    return importlib.import_module("grokvideo.v1.video_pb2")


def destination_and_polling(args: argparse.Namespace) -> dict[str, Any]:
    """The optional fields shared by ArchiveVideoRequest and GenerateVideoRequest."""
    fields: dict[str, Any] = {}
    if args.bucket:
        fields["bucket"] = args.bucket
    for name in ("first_poll_delay_seconds", "poll_interval_seconds", "deadline_seconds"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    return fields


def describe_error(err: BaseException) -> dict[str, Any]:
    """{type, message} of a failure: the ApplicationError in the cause chain when there is
    one (the worker's stable failure types), else the exception's class."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ApplicationError):
            return {
                "type": seen.type or "ApplicationError",
                "message": seen.message,
                "non_retryable": seen.non_retryable,
            }
        seen = seen.__cause__
    cause = err.__cause__
    if isinstance(err, WorkflowFailureError) and cause is not None:
        # Terminated, timed out or cancelled: the cause's class names it.
        return {"type": type(cause).__name__, "message": str(cause)}
    return {"type": type(err).__name__, "message": str(err)}


def payload_json(payload: Payload) -> dict[str, Any]:
    """A payload as JSON: metadata as text, data as text (JSON encodings) or hex, and base64."""
    metadata = {k: v.decode("utf-8", "replace") for k, v in payload.metadata.items()}
    out: dict[str, Any] = {
        "metadata": metadata,
        "data_base64": base64.b64encode(payload.data).decode(),
    }
    if metadata.get("encoding", "").startswith("json/"):
        out["data"] = payload.data.decode("utf-8", "replace")
    else:
        out["data_hex"] = payload.data.hex()
    return out


async def stored_payloads(handle: Any) -> dict[str, Any]:
    """The input and result payloads as the server holds them in the workflow history."""
    history = await handle.fetch_history()
    out: dict[str, Any] = {}
    for event in history.events:
        if event.HasField("workflow_execution_started_event_attributes"):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            out["sent"] = [payload_json(p) for p in payloads]
        if event.HasField("workflow_execution_completed_event_attributes"):
            payloads = event.workflow_execution_completed_event_attributes.result.payloads
            out["received"] = [payload_json(p) for p in payloads]
    return out


@dataclasses.dataclass
class Step:
    name: str
    workflow: str
    workflow_id: str
    arg: Any
    client: Client
    input_encoding: str
    # What a closed workflow under the same id allows: a new archive after a failed one, but
    # never a second order (a failed GenerateVideo may have created its task already).
    reuse_policy: WorkflowIDReusePolicy


async def run_step(step: Step, args: argparse.Namespace, pb: ModuleType) -> dict[str, Any]:
    line: dict[str, Any] = {
        "step": step.name,
        "workflow": step.workflow,
        "workflow_id": step.workflow_id,
        "input_encoding": step.input_encoding,
    }
    if isinstance(step.arg, Message):
        line["input_type"] = step.arg.DESCRIPTOR.full_name
    handle = None
    try:
        try:
            # A running workflow under this id is joined, not started twice.
            handle = await step.client.start_workflow(
                step.workflow,
                step.arg,
                id=step.workflow_id,
                task_queue=args.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=step.reuse_policy,
            )
        except WorkflowAlreadyStartedError:
            # Closed already (completed, or an order that failed): read its outcome.
            handle = step.client.get_workflow_handle(step.workflow_id)
            line["existing"] = True
        # No result_type: the worker answers json/plain, which the SDK decodes to a dict.
        result = await asyncio.wait_for(handle.result(), timeout=args.result_timeout_seconds)
        line["ok"] = True
        line["result"] = result
        # The json/plain result fits the generated class: proto field names, enum names and
        # 64-bit integers as numbers are all valid proto3 JSON input.
        archived = json_format.ParseDict(result, pb.ArchivedVideo())
        line["as_proto"] = json_format.MessageToDict(archived, preserving_proto_field_name=True)
    except asyncio.TimeoutError:
        line["ok"] = False
        line["error"] = {"type": "ResultTimeout",
                         "message": f"no result within {args.result_timeout_seconds} s "
                                    "(the workflow is still running)"}
    except json_format.ParseError as err:
        line["ok"] = False
        line["error"] = {"type": "ResultDoesNotMatchProto", "message": str(err)}
    except Exception as err:  # noqa: BLE001 - every failure becomes the step's error line
        line["ok"] = False
        line["error"] = describe_error(err)
    if args.show_payloads and handle is not None:
        try:
            line.update(await stored_payloads(handle))
        except Exception as err:  # noqa: BLE001
            line["payloads_error"] = describe_error(err)
    return line


ARCHIVE_REUSE = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY


def build_steps(args: argparse.Namespace, client: Client, binary_client: Client,
                pb: ModuleType) -> list[Step]:
    common = destination_and_polling(args)
    steps: list[Step] = []
    if args.task_id:
        # 1. A plain dict: the default converter sends it as json/plain.
        steps.append(Step("archive_dict", "ArchiveVideo", f"archive-{args.task_id}",
                          {"task_id": args.task_id, **common}, client, "json/plain",
                          ARCHIVE_REUSE))
    if args.json_proto_task_id:
        # 2. A generated message: the default converter sends it as json/protobuf
        #    (metadata messageType=grokvideo.v1.ArchiveVideoRequest, lowerCamelCase JSON).
        request = json_format.ParseDict({"task_id": args.json_proto_task_id, **common},
                                        pb.ArchiveVideoRequest())
        steps.append(Step("archive_json_proto", "ArchiveVideo",
                          f"archive-{args.json_proto_task_id}", request, client,
                          "json/protobuf", ARCHIVE_REUSE))
    if args.binary_proto_task_id:
        # 2b. The same message through a client whose converter prefers binary/protobuf.
        request = pb.ArchiveVideoRequest(task_id=args.binary_proto_task_id, **common)
        steps.append(Step("archive_binary_proto", "ArchiveVideo",
                          f"archive-{args.binary_proto_task_id}", request, binary_client,
                          "binary/protobuf", ARCHIVE_REUSE))
    if args.generate_prompt:
        # 4. GenerateVideo with a dict. One workflow id per order: never two provider tasks.
        order: dict[str, Any] = {
            "model": args.model,
            "prompt": args.generate_prompt,
            "duration_seconds": args.duration_seconds,
            **common,
        }
        if args.resolution:
            order["resolution"] = args.resolution
        workflow_id = args.generate_workflow_id or f"generate-{uuid.uuid4()}"
        steps.append(Step("generate_dict", "GenerateVideo", workflow_id, order, client,
                          "json/plain", WorkflowIDReusePolicy.REJECT_DUPLICATE))
    return steps


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line, sort_keys=True), flush=True)
    if not line.get("ok", True):
        err = line["error"]
        print(f"pipeline: {line['step']} failed: {err['type']}: {err['message']}",
              file=sys.stderr, flush=True)


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="grokvideo-pb2-") as tmp:
        try:
            pb = generate_proto_module(args.proto_dir, args.proto_out or Path(tmp))
        except StepFailed as err:
            emit({"step": "generate_proto_classes", "ok": False, "error": err.error})
            return 1

        # Temporal's envconfig (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
        # temporal.toml profiles), as the worker reads it; flags win.
        connect = dict(ClientConfig.load_client_connect_config())
        if args.address:
            connect["target_host"] = args.address
        connect.setdefault("target_host", DEFAULT_ADDRESS)
        if args.namespace:
            connect["namespace"] = args.namespace
        try:
            client = await Client.connect(**connect)
        except Exception as err:  # noqa: BLE001
            emit({"step": "connect", "ok": False, "address": connect["target_host"],
                  "error": describe_error(err)})
            return 1
        # Same connection and namespace, another data converter.
        binary_client = Client(**{**client.config(), "data_converter": BINARY_PROTO_DATA_CONVERTER})

        steps = build_steps(args, client, binary_client, pb)
        failed = False
        if args.concurrent:
            # All workflows at once; lines in the order the results arrive.
            for next_line in asyncio.as_completed([run_step(s, args, pb) for s in steps]):
                line = await next_line
                emit(line)
                failed |= not line["ok"]
        else:
            for step in steps:
                line = await run_step(step, args, pb)
                emit(line)
                if not line["ok"]:
                    failed = True
                    if args.fail_fast:
                        break
        return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(sys.argv[1:])))
    except KeyboardInterrupt:
        sys.exit(130)
