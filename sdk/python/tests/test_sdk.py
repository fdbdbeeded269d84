"""Unit tests of the Python SDK and the Python examples off WebAssembly, against a fake host.

    PYTHONPATH=sdk/python/bindings:sdk/python:examples/python python3 -m unittest discover -s sdk/python/tests

The generated bindings (sdk/python/bindings) stand in for the ones componentize-py generates
at build time; this file replaces their host functions (which raise NotImplementedError) with
a fake host that records what a handler sends.
"""

import json
import unittest

from componentize_py_types import Err
from wit_world.imports import host, tags, types

import switchyard as sy

Status = types.Status


class FakeHost:
    """Records replies and sends; tags allowed by prefix, like a manifest's patterns."""

    def __init__(self, user="alice", allowed=("chat:lobby", "chat:room-")):
        self.user, self.allowed, self.sent, self.members = user, allowed, [], {}

    def install(self):
        host.send_success = self.send_success
        host.send_error = lambda event, msg: self.sent.append(("error", event, msg))
        host.user_id = lambda: self.user
        host.client_id = lambda: "c1"
        host.log = lambda level, msg: self.sent.append(("log", level, msg))
        tags.join_tag = self.join_tag
        tags.send_to_tag = self.send_to_tag
        tags.tag_members = self.tag_members

    def send_success(self, event, data):
        if data:
            try:
                json.loads(data)
            except ValueError:
                raise Err(Status.BAD_JSON)
        self.sent.append(("success", event, data))

    def check(self, tag):
        if not tag:
            raise Err(Status.INVALID)
        if not tag.startswith(self.allowed):
            raise Err(Status.DENIED)

    def join_tag(self, tag):
        self.check(tag)
        self.members.setdefault(tag, set()).add(self.user)

    def send_to_tag(self, tag, event, data):
        self.check(tag)
        self.sent.append(("tag", tag, event, data))
        return len(self.members.get(tag, ()))

    def tag_members(self, tag):
        self.check(tag)
        return json.dumps(sorted(self.members.get(tag, ())), separators=(",", ":"))


def call(name, event, data, user="alice"):
    return sy.Handler().handle(name, types.Request(event, data, "c1", user))


class Sdk(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost()
        self.host.install()

    def test_errors_map_status_to_abi_codes(self):
        self.assertEqual([sy.Error.from_code(c).code for c in range(-1, -7, -1)], [-1, -2, -3, -4, -5, -6])
        self.assertIsInstance(sy.Error.from_code(-4), sy.Denied)
        self.assertEqual(sy.Error.from_code(-99).code, -99)
        with self.assertRaises(sy.BadJson):
            sy.send_success_raw("e", "{nope")
        with self.assertRaises(sy.Denied):
            sy.join_tag("vip")
        with self.assertRaises(sy.Invalid):
            sy.join_tag("")
        saved, sy._INTERFACES["send_to_all"] = sy._INTERFACES["send_to_all"], None
        try:
            with self.assertRaises(sy.Denied):  # an interface the world does not import
                sy.send_to_all("e", 1)
        finally:
            sy._INTERFACES["send_to_all"] = saved

    def test_json_in_and_out(self):
        sy.send_success("e", {"a": [1, "é"]})
        self.assertEqual(self.host.sent[-1], ("success", "e", '{"a":[1,"é"]}'))
        with self.assertRaises(sy.BadJson):
            sy.send_success("e", float("nan"))
        with self.assertRaises(sy.BadJson):
            sy.send_success("e", object())
        req = sy.Request("e", '{"x": 1}', "c", "")
        self.assertEqual(req.json(), {"x": 1})
        self.assertTrue(req.is_guest)
        with self.assertRaises(sy.BadJson):
            sy.Request("e", "{").json()
        self.assertEqual(sy.tag_members("chat:lobby"), [])

    def test_handler_status(self):
        @sy.handler("t_fail")
        def _fail(req):
            raise sy.HandlerError(0)

        @sy.handler
        def t_denied(req):
            sy.join_tag("vip")

        with self.assertRaises(Err) as e:
            call("t_fail", "e", "null")
        self.assertEqual(e.exception.value, 1)  # 0 is success, so HandlerError(0) is 1
        with self.assertRaises(Err) as e:
            call("t_denied", "e", "null")
        self.assertEqual(e.exception.value, -4)  # an uncaught SDK error keeps its code
        with self.assertRaises(Err) as e:
            call("no-such-handler", "e", "null")
        self.assertEqual(e.exception.value, -6)
        with self.assertRaises(ValueError):
            sy.handler("t_fail")(lambda req: None)
        self.assertIn("t_denied", sy.Handler().exports())


class Examples(unittest.TestCase):
    """The Python echo and chat against docs/HANDLERS.md."""

    @classmethod
    def setUpClass(cls):
        import chat  # noqa: F401  (registers chat_join, chat_send, chat_online)
        import echo  # noqa: F401  (registers echo, fail)

    def setUp(self):
        self.host = FakeHost()
        self.host.install()

    def test_echo(self):
        for data in ['{"a":[1,"two",{"3":null}]}', '"héllo"', "42", "null"]:
            call("echo", "echo", data)
            self.assertEqual(self.host.sent[-1], ("success", "echo", data))
        with self.assertRaises(Err) as e:
            call("fail", "fail", "{}")
        self.assertEqual(e.exception.value, 3)

    def test_chat(self):
        call("chat_join", "chat/join", '{"room":"lobby"}')
        self.assertEqual(self.host.sent[-1], ("success", "chat/join", '{"room":"lobby","users":["alice"]}'))
        self.host.user = "bob"
        call("chat_join", "chat/join", '{"room":"lobby"}', "bob")
        self.assertEqual(self.host.sent[-1], ("success", "chat/join", '{"room":"lobby","users":["alice","bob"]}'))
        call("chat_online", "chat/online", '{"room":"lobby"}', "bob")
        self.assertEqual(self.host.sent[-1], ("success", "chat/online", '{"room":"lobby","users":["alice","bob"]}'))
        call("chat_send", "chat/send", '{"room":"lobby","text":"hi \\"there\\" ✓"}', "bob")
        tag, reply = self.host.sent[-2:]
        self.assertEqual(tag[:3], ("tag", "chat:lobby", "chat/message"))
        self.assertEqual(json.loads(tag[3]), {"room": "lobby", "from": "bob", "text": 'hi "there" ✓'})
        self.assertEqual(reply, ("success", "chat/send", '{"delivered":2}'))
        for bad in ['{"room":"no spaces"}', "{}", '"lobby"', '{"room":"%s"}' % ("x" * 65), '{"room":7}', "null"]:
            call("chat_join", "chat/join", bad)
            self.assertEqual(self.host.sent[-1], ("error", "chat/join", "invalid room"), bad)
        call("chat_send", "chat/send", '{"room":"lobby","text":5}')
        self.assertEqual(self.host.sent[-1], ("error", "chat/send", "invalid text"))
        call("chat_join", "chat/join", '{"room":"vip"}')
        self.assertEqual(self.host.sent[-1], ("error", "chat/join", "denied"))


if __name__ == "__main__":
    unittest.main()
