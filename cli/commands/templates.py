"""`sendmesh templates put FILE` and `sendmesh templates show ID`.

A template file (YAML or JSON) is a `sendmesh.templates.v1.Template`:
template_id, category, default_locale, description and variants. Variants
may be a list (each with its `locale`) or a mapping from locale to parts:

    template_id: cart_reminder
    category: cart_reminder
    default_locale: en
    variants:
      en:
        email: {subject: "Your cart", text: "Hi {{ profile.attributes.name }}"}
        inapp: {title: "Your cart", body: "{{ data.items }} items wait"}
      de:
        inapp: {title: "Dein Warenkorb", body: "{{ data.items }} Artikel warten"}

The templates API is served by intake, so `--intake` is its address.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from google.protobuf import json_format
from sendmesh.templates.v1 import templates_pb2, templates_pb2_grpc

from cli.client import CALL_TIMEOUT_S
from cli.commands.calls import mesh_client
from cli.console import emit_json, fail, out
from cli.options import DEFAULT_INTAKE, DEFAULT_VAR_DIR, ApiKey, IntakeAddr, JsonOut, VarDir

app = typer.Typer(help="Templates: store new versions, show them.", no_args_is_help=True)


class BadFile(ValueError):
    """A template file that cannot be read as a Template; the message says why."""


def parse_template(text: str, suffix: str) -> templates_pb2.Template:
    """The Template a file's text describes (YAML for .yaml/.yml, else JSON)."""
    try:
        obj = yaml.safe_load(text) if suffix in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise BadFile(f"not {'YAML' if suffix in ('.yaml', '.yml') else 'JSON'}: {err}") from None
    if not isinstance(obj, dict):
        raise BadFile("the file must hold one object (a template)")
    variants = obj.get("variants")
    if isinstance(variants, dict):
        if not all(isinstance(v, dict) for v in variants.values()):
            raise BadFile("variants: each locale maps to its parts (email, sms, webpush, inapp)")
        obj["variants"] = [{"locale": str(k), **v} for k, v in variants.items()]
    try:
        return json_format.ParseDict(obj, templates_pb2.Template())
    except json_format.ParseError as err:
        raise BadFile(str(err)) from None


def template_view(template: templates_pb2.Template) -> dict[str, Any]:
    return json_format.MessageToDict(template, preserving_proto_field_name=True)


@app.command("put")
def put(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A template in YAML or JSON.")
    ],
    json_out: JsonOut = False,
    intake: IntakeAddr = DEFAULT_INTAKE,
    api_key: ApiKey = None,
    var_dir: VarDir = DEFAULT_VAR_DIR,
) -> None:
    """Store the file as the template's next version (syntax errors are refused)."""
    try:
        template = parse_template(file.read_text(encoding="utf-8"), file.suffix.lower())
    except BadFile as err:
        fail(f"{file}: {err}")
    with mesh_client(intake, api_key, var_dir) as client:
        stub = templates_pb2_grpc.TemplatesStub(client.channel)
        request = templates_pb2.PutTemplateRequest(template=template)
        reply = stub.PutTemplate(request, metadata=client.metadata, timeout=CALL_TIMEOUT_S)
    stored = reply.template
    if json_out:
        emit_json(template_view(stored))
    else:
        out.print(f"template {stored.template_id} version {stored.version} stored")


@app.command("show")
def show(
    template_id: Annotated[str, typer.Argument(help="The template's id.")],
    version: Annotated[
        int, typer.Option("--version", min=0, help="A version number; 0 is the latest.")
    ] = 0,
    json_out: JsonOut = False,
    intake: IntakeAddr = DEFAULT_INTAKE,
    api_key: ApiKey = None,
    var_dir: VarDir = DEFAULT_VAR_DIR,
) -> None:
    """Print one version of a template (the latest by default)."""
    with mesh_client(intake, api_key, var_dir) as client:
        stub = templates_pb2_grpc.TemplatesStub(client.channel)
        request = templates_pb2.GetTemplateRequest(template_id=template_id, version=version)
        reply = stub.GetTemplate(request, metadata=client.metadata, timeout=CALL_TIMEOUT_S)
    view = template_view(reply.template)
    if json_out:
        emit_json(view)
    else:
        # YAML, as the file it was put from; sources stay as they were written.
        out.print(yaml.safe_dump(view, sort_keys=False, allow_unicode=True).rstrip(), markup=False)
