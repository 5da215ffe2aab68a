"""A local SMS provider that behaves like a Twilio-style Messages API.

It checks basic auth, the path, the form and the To number the way the real
one does (a bad number gets 400 code 21211, whose message quotes the number,
so a test can prove we never repeat it), answers the same SID to a request
whose I-Twilio-Idempotency-Token it has already accepted, and can be scripted
to answer 429, bursts of 5xx, or to answer slowly. It can also fail a seeded
random share of requests (500/503/429), or every request until it recovers,
switchable while it runs. It records what it accepted, how often it accepted
each token, and every failure it answered.
"""

from __future__ import annotations

import base64
import hmac
import json
import random
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import phonenumbers

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "peer-auth-token"
TOKEN_HEADER = "I-Twilio-Idempotency-Token"

Reply = tuple[int, dict[str, str], dict[str, Any]]


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's JSON error body."""
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    return {"code": code, "message": message, "more_info": more_info, "status": status}


@dataclass(frozen=True)
class Scripted:
    """One answer given instead of the normal one, to the next request."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def rate_limited(cls, retry_after: str | None = None) -> Scripted:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(429, error_body(429, 20429, "Too Many Requests"), headers)

    @classmethod
    def unavailable(cls, status: int = 503) -> Scripted:
        return cls(status, error_body(status, 20500, "Service Unavailable"))


@dataclass
class FailureMode:
    """Answer a share of requests with an error instead of accepting them."""

    rate: float
    rng: random.Random
    statuses: tuple[int, ...] = (500, 503, 429)
    retry_after: str = "1"
    # At most this many failures per idempotency token (None: no bound), so a
    # test can fail often and still know every message gets through in time.
    max_per_token: int | None = None

    def pick(self, failed_before: int) -> Scripted | None:
        if self.max_per_token is not None and failed_before >= self.max_per_token:
            return None
        if self.rng.random() >= self.rate:
            return None
        status = self.rng.choice(self.statuses)
        if status == 429:
            return Scripted.rate_limited(self.retry_after)
        return Scripted.unavailable(status)


@dataclass(frozen=True)
class Accepted:
    """A message the peer accepted (and would have sent)."""

    sid: str
    form: dict[str, str]
    token: str

    @property
    def to(self) -> str:
        return self.form.get("To", "")


class SmsPeer:
    """Start with `with SmsPeer() as peer:`; point sms_api_base at `peer.url`."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.credentials = f"{account_sid}:{auth_token}"
        self.path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.accepted: list[Accepted] = []
        self.requests = 0  # every request that reached the peer, answered or not
        # time.monotonic() of each request's arrival: a rate limit test counts them.
        self.arrivals: list[float] = []
        self.max_in_flight = 0
        self.latency_s = 0.0
        # Numbers that are well formed but the real API refuses: unassigned (21211)
        # or unable to receive SMS (21614).
        self.invalid: set[str] = set()
        self.not_mobile: set[str] = set()
        self._script: deque[Scripted] = deque()
        self._failing: FailureMode | None = None
        # Errors answered, by status; and by idempotency token.
        self.failures: Counter[int] = Counter()
        self.failures_by_token: Counter[str] = Counter()
        # Every 201 answered per token, a repeated token included: a count
        # above 1 is a message the sender really sent twice.
        self.accepts_by_token: Counter[str] = Counter()
        self._by_token: dict[str, Accepted] = {}
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> SmsPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def script(self, *answers: Scripted) -> None:
        """Give these answers, in order, to the next requests."""
        with self._lock:
            self._script.extend(answers)

    def fail_randomly(
        self,
        rate: float,
        *,
        seed: int = 0,
        statuses: tuple[int, ...] = (500, 503, 429),
        retry_after: str = "1",
        max_per_token: int | None = None,
    ) -> None:
        """From now on, answer a seeded random `rate` of requests with one of `statuses`."""
        mode = FailureMode(rate, random.Random(seed), statuses, retry_after, max_per_token)
        with self._lock:
            self._failing = mode

    def go_down(self, status: int = 503) -> None:
        """From now on, answer every request with `status` (until `recover`)."""
        self.fail_randomly(1.0, statuses=(status,))

    def recover(self) -> None:
        with self._lock:
            self._failing = None

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        token = headers.get(TOKEN_HEADER.lower(), "")
        with self._lock:
            self.requests += 1
            self.arrivals.append(time.monotonic())
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            scripted = self._script.popleft() if self._script else None
            if scripted is None and self._failing is not None:
                scripted = self._failing.pick(self.failures_by_token[token])
                if scripted is not None:
                    self.failures[scripted.status] += 1
                    self.failures_by_token[token] += 1
        try:
            time.sleep(scripted.delay_s if scripted else self.latency_s)
            if scripted is not None:
                return scripted.status, scripted.headers, scripted.body
            return self._answer(path, headers, body)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if not self._authorised(headers.get("authorization", "")):
            return (
                401,
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
                error_body(401, 20003, "Authenticate"),
            )
        if path != self.path:
            return 404, {}, error_body(404, 20404, "The requested resource was not found")
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        problem = form_problem(form, self.invalid, self.not_mobile)
        if problem is not None:
            return 400, {}, problem
        return 201, {}, self._accept(form, headers.get(TOKEN_HEADER.lower(), ""))

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True)
        except ValueError:
            return False
        return scheme == "Basic" and hmac.compare_digest(given, self.credentials.encode())

    def _accept(self, form: dict[str, str], token: str) -> dict[str, Any]:
        with self._lock:
            self.accepts_by_token[token] += 1
            seen = self._by_token.get(token) if token else None
            if seen is None:
                seen = Accepted("SM" + uuid.uuid4().hex, form, token)
                self.accepted.append(seen)
                if token:
                    self._by_token[token] = seen
        return message_body(seen)


def form_problem(
    form: dict[str, str], invalid: set[str], not_mobile: set[str]
) -> dict[str, Any] | None:
    """The error the real API gives for this form, or None when it is sendable."""
    to = form.get("To", "")
    if not to:
        return error_body(400, 21604, "A 'To' phone number is required.")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return error_body(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
    if not form.get("Body"):
        return error_body(400, 21602, "Message body is required.")
    if not is_e164(to) or to in invalid:
        return error_body(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if to in not_mobile:
        return error_body(400, 21614, f"'To' number {to} is not a valid mobile number")
    return None


def is_e164(number: str) -> bool:
    if not number.startswith("+"):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


def message_body(message: Accepted) -> dict[str, Any]:
    """The Message resource the real API answers (the fields a client reads)."""
    form = message.form
    return {
        "sid": message.sid,
        "account_sid": ACCOUNT_SID,
        "to": form["To"],
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "body": form["Body"],
        "status": "accepted" if form.get("MessagingServiceSid") else "queued",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "error_code": None,
        "error_message": None,
    }


class _Server(ThreadingHTTPServer):
    def __init__(self, peer: SmsPeer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.peer = peer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) is expected; anything else is not."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; httpx pools connections
    timeout = 10  # an idle kept-alive connection lets its thread go

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        assert isinstance(self.server, _Server)
        status, extra, document = self.server.peer.answer(self.path, headers, body)
        payload = json.dumps(document).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **extra}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output is for assertions, not access logs."""
