from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from cli.client import NoApiKey, auth_metadata, describe_rpc_error, resolve_api_key
from cli.keyfile import ensure_dev_key


class FailedCall(grpc.RpcError):
    """What a stub raises: an RpcError that is also a Call with trailers."""

    def __init__(self, code: grpc.StatusCode, details: str, status: status_pb2.Status | None):
        self._code, self._details = code, details
        trailers: tuple[tuple[str, bytes], ...] = ()
        if status is not None:
            trailers = (("grpc-status-details-bin", status.SerializeToString()),)
        self._trailers = trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self):
        return self._trailers


def bad_request(*violations: tuple[str, str]) -> FailedCall:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in violations
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(bad)
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT, message="invalid request", details=[packed]
    )
    return FailedCall(grpc.StatusCode.INVALID_ARGUMENT, "invalid request", status)


def test_the_flag_wins_over_the_environment_and_the_file(tmp_path: Path):
    ensure_dev_key(tmp_path)
    assert resolve_api_key("smk_flag", {"SENDMESH_API_KEY": "smk_env"}, tmp_path) == "smk_flag"


def test_the_environment_wins_over_the_file(tmp_path: Path):
    ensure_dev_key(tmp_path)
    assert resolve_api_key(None, {"SENDMESH_API_KEY": "smk_env"}, tmp_path) == "smk_env"


def test_the_dev_key_file_is_the_last_resort(tmp_path: Path):
    key = ensure_dev_key(tmp_path)
    assert resolve_api_key(None, {}, tmp_path) == key


def test_no_key_anywhere_says_where_it_looked(tmp_path: Path):
    with pytest.raises(NoApiKey, match=r"--api-key.*SENDMESH_API_KEY.*dev-api-key"):
        resolve_api_key(None, {"SENDMESH_API_KEY": " "}, tmp_path)


def test_the_key_travels_as_a_bearer_token():
    assert auth_metadata("smk_x") == (("authorization", "Bearer smk_x"),)


def test_field_violations_make_one_line():
    err = bad_request(
        ("intent.channels", "must not be empty"), ("intent.audience", "no recipients")
    )
    line = describe_rpc_error(err, "127.0.0.1:50051")
    assert line == (
        "INVALID_ARGUMENT: intent.channels: must not be empty; intent.audience: no recipients"
    )
    assert "\n" not in line


def test_an_error_without_details_shows_its_message_and_a_hint():
    err = FailedCall(grpc.StatusCode.UNAVAILABLE, "failed to connect", None)
    line = describe_rpc_error(err, "127.0.0.1:1")
    assert line.startswith("UNAVAILABLE: failed to connect")
    assert "127.0.0.1:1" in line and "make run" in line
