"""Guest SDK for Switchyard handler components written in Python.

Build with componentize-py against a world of the ``switchyard:handler@1.0.0`` package
(``wit/handler.wit`` in the Switchyard repository; the contract is docs/ABI.md, "The
component ABI"). componentize-py generates the low-level bindings (the ``wit_world``
package) for that world; this module wraps them:

* ``@handler`` registers a function under the name a manifest route's ``export`` uses,
  and ``Handler`` is the class componentize-py exports (re-export it from your app
  module: ``from switchyard import Handler``);
* a handler receives a ``Request`` (``event``, ``data`` as raw JSON text, ``json()``,
  ``client_id``, ``user_id``) and returns nothing (success) or raises ``HandlerError(n)``
  (the client gets ``handler failed with status n``);
* the host functions (``send_success``, ``send_to_tag``, ``join_tag``, ...) take and return
  Python values (JSON in and out); each also has a ``_raw`` form taking JSON text. A failed
  host call raises an ``Error`` subclass (``Denied``, ``Limit``, ...), whose ``code`` is
  ABI v1's negative status. Left uncaught in a handler, it fails the event with that code.

Only the interfaces in your world can be called: ``send_to_tag`` needs a world importing
``switchyard:handler/tags`` (and the manifest grant ``tags``); calling it from a world that
does not import it raises ``Denied``, as an ungranted call would.
"""

import json as _json

from componentize_py_types import Err as _Err
from wit_world.imports import host as _host
from wit_world.imports import types as _types

__all__ = [
    "Error", "BadPointer", "BadUtf8", "BadJson", "Denied", "Limit", "Invalid",
    "HandlerError", "Request", "Level", "Handler", "handler",
    "send_success", "send_success_raw", "send_error",
    "send_to_client", "send_to_client_raw", "send_to_user", "send_to_user_raw",
    "send_to_tag", "send_to_tag_raw", "send_to_all", "send_to_all_raw",
    "join_tag", "quit_tag", "tag_members", "tag_members_raw",
    "client_id", "user_id", "claims", "claims_raw",
    "log", "trace", "debug", "info", "warn", "error",
    "to_json",
]

# ---------------------------------------------------------------------------------------------
# Errors


class Error(Exception):
    """A failed host call: one of ABI v1's negative status codes (``code``, ``name``)."""

    code = 0
    name = "ERR_OTHER"
    what = "unknown host status"

    def __init__(self, detail=None):
        super().__init__(detail or f"{self.what} ({self.name}, {self.code})")

    @staticmethod
    def from_code(code):
        """The ``Error`` subclass instance for ``code`` (-1 .. -6), else a plain ``Error``."""
        cls = _BY_CODE.get(code)
        if cls is not None:
            return cls()
        err = Error(f"unknown host status ({code})")
        err.code = code
        return err


class BadPointer(Error):
    """ERR_BAD_POINTER (-1). Never raised for a component (kept for the numbering)."""

    code, name, what = -1, "ERR_BAD_POINTER", "pointer or length outside guest memory"


class BadUtf8(Error):
    """ERR_BAD_UTF8 (-2). Never raised by the host for a component."""

    code, name, what = -2, "ERR_BAD_UTF8", "string is not valid UTF-8"


class BadJson(Error):
    """ERR_BAD_JSON (-3): a ``data`` argument was not JSON (or could not be serialised)."""

    code, name, what = -3, "ERR_BAD_JSON", "not valid JSON"


class Denied(Error):
    """ERR_DENIED (-4): not granted by the module's manifest entry (a tag outside ``tags``)."""

    code, name, what = -4, "ERR_DENIED", "not granted by the module's manifest entry"


class Limit(Error):
    """ERR_LIMIT (-5): this call's send budget is used up, or the client is in too many tags."""

    code, name, what = -5, "ERR_LIMIT", "send budget of this call used up"


class Invalid(Error):
    """ERR_INVALID (-6): another invalid argument (an empty tag, ...)."""

    code, name, what = -6, "ERR_INVALID", "invalid argument"


_BY_CODE = {cls.code: cls for cls in (BadPointer, BadUtf8, BadJson, Denied, Limit, Invalid)}
# The WIT enum `status` lists the codes in order: case i is code -(i + 1).
_BY_STATUS = {status: _BY_CODE[-(status.value + 1)] for status in _types.Status}


def _raise(err):
    """Re-raises a host call's ``Err(status)`` as the matching ``Error``."""
    cls = _BY_STATUS.get(err.value)
    raise (cls() if cls is not None else Error.from_code(-6)) from None


class HandlerError(Exception):
    """Fails the event with ``status`` (never 0: 0 becomes 1).

    The client receives ``handler failed with status N``; replies already sent are delivered.
    To fail with a message of your own, call ``send_error`` and return normally instead.
    """

    def __init__(self, status=1):
        status = int(status) or 1
        super().__init__(f"handler failed with status {status}")
        self.status = status


# ---------------------------------------------------------------------------------------------
# The request


class Request:
    """The event being handled.

    ``event``: the frame's event name; ``data``: the raw JSON text of its ``data`` (``"null"``
    when absent); ``client_id``; ``user_id`` (empty for an anonymous guest).
    """

    __slots__ = ("event", "data", "client_id", "user_id", "_json")

    def __init__(self, event, data="null", client_id="", user_id=""):
        self.event = event
        self.data = data
        self.client_id = client_id
        self.user_id = user_id
        self._json = _UNSET

    def json(self):
        """``data`` parsed as JSON (parsed once, then cached). Raises ``BadJson`` if invalid."""
        if self._json is _UNSET:
            try:
                self._json = _json.loads(self.data)
            except ValueError:
                raise BadJson() from None
        return self._json

    @property
    def is_guest(self):
        """True for an anonymous guest (no user id)."""
        return not self.user_id

    def __repr__(self):
        return f"Request(event={self.event!r}, data={self.data!r}, client_id={self.client_id!r}, user_id={self.user_id!r})"


_UNSET = object()


# ---------------------------------------------------------------------------------------------
# Handlers and the exported interface

_HANDLERS = {}


def handler(name=None):
    """Registers a handler under ``name`` (default: the function's name).

    ``@handler`` and ``@handler("chat_join")`` both work. ``name`` is what a manifest route's
    ``export`` names. The function takes a ``Request`` and returns nothing on success.
    """

    if callable(name):  # @handler without arguments
        return _register(name.__name__, name)
    return lambda fn: _register(name or fn.__name__, fn)


def _register(name, fn):
    if not isinstance(name, str) or not name:
        raise TypeError(f"switchyard: a handler name must be a non-empty string, not {name!r}")
    if name in _HANDLERS:
        raise ValueError(f"switchyard: two handlers named {name!r}")
    _HANDLERS[name] = fn
    return fn


class Handler:
    """The ``switchyard:handler/handler`` export. Re-export it from your app module."""

    def exports(self):
        return list(_HANDLERS)

    def handle(self, name, req):
        fn = _HANDLERS.get(name)
        if fn is None:
            raise _Err(Invalid.code)
        try:
            fn(Request(req.event, req.data, req.client_id, req.user_id))
        except HandlerError as e:
            raise _Err(e.status) from None
        except Error as e:
            raise _Err(e.code or 1) from None


# ---------------------------------------------------------------------------------------------
# JSON


def to_json(value):
    """``value`` as compact JSON text (UTF-8, no NaN). Raises ``BadJson`` if it cannot be."""
    try:
        return _json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise BadJson() from None


# ---------------------------------------------------------------------------------------------
# Replies to the calling client (interface `host`, always granted)


def send_success_raw(event, raw_json):
    """Sends ``{"event":event,"code":0,"data":<raw_json>}`` to the caller; ``raw_json`` is JSON
    text passed through (``BadJson`` if invalid); ``""`` omits ``data``."""
    try:
        _host.send_success(event, raw_json)
    except _Err as e:
        _raise(e)


def send_success(event, data):
    """Sends ``{"event":event,"code":0,"data":<data as JSON>}`` to the caller."""
    send_success_raw(event, to_json(data))


def send_error(event, msg):
    """Sends ``{"event":event,"code":-1,"errorMsg":msg}`` to the caller (``msg``: plain text)."""
    try:
        _host.send_error(event, str(msg))
    except _Err as e:
        _raise(e)


def client_id():
    """The calling connection's id."""
    return _host.client_id()


def user_id():
    """The calling client's user id (``""`` for a guest)."""
    return _host.user_id()


class Level:
    """Log levels for ``log``."""

    TRACE = _types.Level.TRACE
    DEBUG = _types.Level.DEBUG
    INFO = _types.Level.INFO
    WARN = _types.Level.WARN
    ERROR = _types.Level.ERROR


def log(level, msg):
    """Logs ``msg`` through the host's log, prefixed with the module name."""
    _host.log(level, str(msg))


def trace(msg):
    _host.log(_types.Level.TRACE, str(msg))


def debug(msg):
    _host.log(_types.Level.DEBUG, str(msg))


def info(msg):
    _host.log(_types.Level.INFO, str(msg))


def warn(msg):
    _host.log(_types.Level.WARN, str(msg))


def error(msg):
    _host.log(_types.Level.ERROR, str(msg))


# ---------------------------------------------------------------------------------------------
# Optional interfaces. Imported here, at build time: componentize-py snapshots the interpreter
# after importing the app, and a component has no filesystem to import anything from later
# (an import inside a handler raises ModuleNotFoundError). A world without an interface has no
# bindings for it; calling it then raises Denied, as an ungranted call would.


def _optional(name):
    try:
        return __import__("wit_world.imports." + name, fromlist=["_"])
    except ImportError:
        return None


_INTERFACES = {
    name: _optional(name) for name in ("tags", "send_to_user", "send_to_client", "send_to_all", "claims")
}


def _interface(name):
    """The generated bindings module of an optional interface, or raises ``Denied`` when the
    component's world does not import it."""
    mod = _INTERFACES[name]
    if mod is None:
        raise Denied(f"this component's world does not import switchyard:handler/{name.replace('_', '-')}")
    return mod


def _count(call, *args):
    try:
        return call(*args)
    except _Err as e:
        _raise(e)


def join_tag(tag):
    """Adds the calling client to ``tag`` (idempotent). Grant: ``tags``."""
    _count(_interface("tags").join_tag, tag)


def quit_tag(tag):
    """Removes the calling client from ``tag`` (idempotent). Grant: ``tags``."""
    _count(_interface("tags").quit_tag, tag)


def send_to_tag_raw(tag, event, raw_json):
    """Sends a success frame to every connection in ``tag``; returns how many. Grant: ``tags``."""
    return _count(_interface("tags").send_to_tag, tag, event, raw_json)


def send_to_tag(tag, event, data):
    """``send_to_tag_raw`` with ``data`` serialised to JSON."""
    return send_to_tag_raw(tag, event, to_json(data))


def tag_members_raw(tag):
    """The distinct user ids online in ``tag`` as JSON text (a sorted array). Grant: ``tags``."""
    return _count(_interface("tags").tag_members, tag)


def tag_members(tag):
    """The distinct user ids online in ``tag``, sorted. Grant: ``tags``."""
    return _json.loads(tag_members_raw(tag))


def send_to_user_raw(user, event, raw_json):
    """Sends a success frame to every connection of ``user``; returns how many.
    Grant: ``capabilities = ["send_to_user"]``."""
    return _count(_interface("send_to_user").send_to_user, user, event, raw_json)


def send_to_user(user, event, data):
    return send_to_user_raw(user, event, to_json(data))


def send_to_client_raw(client, event, raw_json):
    """Sends a success frame to the connection ``client``; returns 0 or 1.
    Grant: ``capabilities = ["send_to_client"]``."""
    return _count(_interface("send_to_client").send_to_client, client, event, raw_json)


def send_to_client(client, event, data):
    return send_to_client_raw(client, event, to_json(data))


def send_to_all_raw(event, raw_json):
    """Sends a success frame to every connection; returns how many.
    Grant: ``capabilities = ["send_to_all"]``."""
    return _count(_interface("send_to_all").send_to_all, event, raw_json)


def send_to_all(event, data):
    return send_to_all_raw(event, to_json(data))


def claims_raw():
    """The caller's verified JWT claims as JSON text (``{}`` for a guest).
    Grant: ``capabilities = ["claims"]``."""
    return _interface("claims").claims()


def claims():
    """The caller's verified JWT claims as a dict (``{}`` for a guest)."""
    return _json.loads(claims_raw())
